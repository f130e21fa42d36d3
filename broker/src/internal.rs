//! The internal gRPC server on `--internal-listen`: the controller quorum's
//! `Raft` service, the `Replication` service followers fetch from, the
//! `TxnMarkers` service transaction coordinators write markers through, the
//! `TxnCoordinator` service partition leaders verify transactional produces
//! with, and the `Admin` service for the operator and tools. It starts before the broker
//! registers, because the quorum cannot form until voters reach each other
//! here.
//!
//! With internal TLS (see [`crate::tls`]) every connection completes a
//! mutual TLS handshake with a certificate of the cluster CA before any
//! call, and each service checks the caller's identity: Raft,
//! Replication, TxnMarkers and TxnCoordinator (brokers only) in their handlers, Admin here ([`authorize_admin`]: brokers
//! and the operator only). Without it (`--internal-insecure`, or the
//! loopback-only single-node default) the listener is plain and nobody is
//! authenticated; with `--internal-insecure` a warning says so every minute.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::{Request, Status};

use crate::broker::Broker;
use crate::tls::{Caller, Identity};

/// Admits an Admin call from a broker or the operator (anyone on an
/// insecure listener).
#[allow(clippy::result_large_err)] // tonic's interceptor signature
pub fn authorize_admin(request: Request<()>) -> Result<Request<()>, Status> {
    match crate::tls::caller(&request) {
        Caller::Insecure | Caller::Authenticated(Identity::Broker(_) | Identity::Operator) => Ok(request),
        Caller::Unidentified(reason) => {
            Err(Status::permission_denied(format!("the Admin service is for brokers and the operator: {reason}")))
        }
    }
}

/// Serves the internal services on `listener` until the broker shuts down.
pub fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let replication = strom_proto::replication::replication_server::ReplicationServer::new(
        crate::replica::service::ReplicationService::new(broker.replicas.clone()),
    );
    let admin = strom_proto::admin::admin_server::AdminServer::with_interceptor(
        crate::admin_service::AdminService::new(broker.clone()),
        authorize_admin,
    );
    let router = tonic::transport::Server::builder()
        .add_service(broker.controller.raft_service())
        .add_service(replication)
        .add_service(crate::txn_markers_service::TxnMarkersService::server(broker.clone()))
        .add_service(crate::txn::service::TxnCoordinatorService::server(broker.txns.clone()))
        .add_service(admin);
    let shutdown = broker.shutdown.clone();
    let node_id = broker.config.node_id;
    let stopped = move |result: Result<(), tonic::transport::Error>| {
        if let Err(e) = result {
            tracing::error!(node_id, error = %e, "internal gRPC server stopped");
        }
    };
    match &broker.internal_tls {
        Some(tls) => {
            let incoming = crate::tls::tls_incoming(listener, tls.clone(), shutdown.clone());
            tokio::spawn(async move {
                stopped(router.serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned()).await);
            });
        }
        None => {
            if broker.config.internal_insecure {
                tokio::spawn(warn_insecure(broker.clone()));
            }
            // TCP_NODELAY on every accepted connection (tonic's own
            // `tcp_nodelay` applies only to listeners it binds itself): with
            // Nagle's algorithm on, a follower's small fetch answer could
            // wait for a delayed ACK (~40 ms), which an acks=all produce
            // waits for in turn.
            let incoming =
                tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |accepted| {
                    if let Ok(stream) = &accepted {
                        let _ = stream.set_nodelay(true);
                    }
                    accepted
                });
            tokio::spawn(async move {
                stopped(router.serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned()).await);
            });
        }
    }
}

/// Says every minute that the internal plane is unauthenticated.
async fn warn_insecure(broker: Arc<Broker>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = broker.shutdown.cancelled() => return,
        }
        tracing::warn!(
            internal = %broker.config.internal_listen,
            "--internal-insecure: the internal plane (Raft, replication, admin) runs without TLS; anyone who can \
             reach it can forge replication, controller and admin calls (see docs/SECURITY.md)"
        );
    }
}
