//! Compiles proto/*.proto with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/raft.proto", "proto/replication.proto", "proto/admin.proto", "proto/transactions.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    // Record batches as `bytes::Bytes`: the leader hands over what it read
    // without a copy, and the follower's decode slices the received buffer.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".strom.replication.v1.FetchRecordsResponse.records")
        .compile_fds(fds)?;
    Ok(())
}
