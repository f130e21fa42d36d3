//! The internal gRPC server on `--internal-listen` (default 0.0.0.0:9093):
//! the controller quorum's `Raft` service, the `Replication` service
//! followers fetch from, and the `Admin` service for the operator and tools. It starts before the broker registers, because the quorum
//! cannot form until voters reach each other here.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::broker::Broker;

/// Serves the internal services on `listener` until the broker shuts down.
pub fn serve(broker: Arc<Broker>, listener: TcpListener) {
    // TCP_NODELAY on every accepted connection (tonic's own `tcp_nodelay`
    // applies only to listeners it binds itself): with Nagle's algorithm on,
    // a follower's small fetch answer could wait for a delayed ACK (~40 ms),
    // which an acks=all produce waits for in turn.
    let incoming = tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |accepted| {
        if let Ok(stream) = &accepted {
            let _ = stream.set_nodelay(true);
        }
        accepted
    });
    let replication = strom_proto::replication::replication_server::ReplicationServer::new(
        crate::replica::service::ReplicationService::new(broker.replicas.clone()),
    );
    let admin = crate::admin_service::AdminService::new(broker.controller.clone(), broker.config.settings.clone())
        .into_server();
    let router = tonic::transport::Server::builder()
        .add_service(broker.controller.raft_service())
        .add_service(replication)
        .add_service(admin);
    let shutdown = broker.shutdown.clone();
    let node_id = broker.config.node_id;
    tokio::spawn(async move {
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned()).await {
            tracing::error!(node_id, error = %e, "internal gRPC server stopped");
        }
    });
}
