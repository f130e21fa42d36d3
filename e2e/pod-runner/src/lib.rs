//! `strom-pod-runner`: a stand-in kubelet for the local end-to-end
//! environment, running the operator's broker pods as `strom-broker`
//! processes on loopback addresses (see README.md).
//!
//! - [`address`]: deterministic pod addresses, pod DNS names rewritten to them.
//! - [`subnets`]: one subnet per StatefulSet for a runner of many clusters.
//! - [`launch`]: a pod spec read into a plan, and the broker's command line.
//! - [`status`]: the pod status a kubelet would report.
//! - [`node`]: the Node object and its heartbeat.
//! - [`volume`]: claim directories and the PersistentVolumes that bind them.
//! - [`secret`]: Secret volumes (and the `--advertised-overrides` ConfigMap volume) written as files and kept in step.
//! - [`process`]: one broker process: spawn, probe, signal, reap.
//! - [`pod`]: one pod's worker: starts, restarts, reports, stops.
//! - [`runner`]: the polling loop: bind, start, stop, clean up.
//! - [`context`]: shared state and the directory layout.
//! - [`owner`]: exit when the owning (test) process is gone.

pub mod address;
pub mod context;
pub mod launch;
pub mod node;
pub mod owner;
pub mod pod;
pub mod process;
pub mod runner;
pub mod secret;
pub mod status;
pub mod subnets;
pub mod volume;
