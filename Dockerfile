# syntax=docker/dockerfile:1
# One image with both binaries: strom-broker (the entrypoint, what KafkaCluster
# pods run) and strom-operator (the Helm chart's Deployment runs it as its command).
#
#   docker build -t ghcr.io/strom/strom-broker:0.1.0 .
#
# docs/INSTALL.md explains the choices; operator/tests/dockerfile.rs checks that
# the build command and binary paths below match the workspace.

# ---- builder: the release build of both binaries -------------------------------
FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target/ between builds (BuildKit); the
# binaries are copied out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p strom-broker -p strom-operator \
    && mkdir -p /out \
    && cp target/release/strom-broker target/release/strom-operator /out/

# ---- runtime: glibc + libgcc only, no shell, user 65532 ------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/strom-broker /usr/local/bin/strom-broker
COPY --from=builder /out/strom-operator /usr/local/bin/strom-operator
# The broker keeps ./data here when run without the operator (`docker run`); on
# Kubernetes the operator mounts a volume at /var/lib/strom.
WORKDIR /home/nonroot
USER 65532:65532
# 9092 Kafka clients, 9093 internal gRPC, 9094 /metrics /healthz /readyz (broker);
# 8080 the operator's /metrics /healthz /readyz.
EXPOSE 9092 9093 9094 8080
ENTRYPOINT ["/usr/local/bin/strom-broker"]
