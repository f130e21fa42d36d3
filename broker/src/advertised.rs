//! Keeps this broker's advertised listener addresses in step with its
//! `--advertised-overrides` file while it runs.
//!
//! The operator writes each broker's external address into a ConfigMap key
//! the pod mounts; the kubelet updates the file some time after the
//! ConfigMap changes (and a LoadBalancer's address is only known after the
//! broker started). [`watch`] re-reads the file every
//! [`POLL_INTERVAL`]; when the listeners it registers would change it
//! proposes `UpdateBrokerListeners` for this broker, so every broker's
//! Metadata answers show the new address without a restart. A file that
//! cannot be read or is refused keeps the last good addresses (logged once
//! per distinct error): never a wrong host. Parsing is
//! [`crate::config::advertised`]'s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::config::advertised::{self, OverridesError};
use crate::controller::image::Command;

/// How often the overrides file is re-read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The listener endpoints this broker registers now: the overrides file
/// read once (a missing file gives no address to its listeners).
pub fn current(config: &BrokerConfig) -> Result<BTreeMap<String, String>, OverridesError> {
    let addresses = match &config.advertised_overrides {
        Some(o) => advertised::read(o)?,
        None => BTreeMap::new(),
    };
    Ok(advertised::registered_listeners(&config.listeners, config.advertised_overrides.as_ref(), &addresses))
}

/// Re-reads the overrides file until shutdown and proposes this broker's
/// new endpoints when they change; `registered` is what it registered with.
/// Returns at once without `--advertised-overrides`.
pub async fn watch(broker: Arc<Broker>, mut registered: BTreeMap<String, String>) {
    if broker.config.advertised_overrides.is_none() {
        return;
    }
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = broker.shutdown.cancelled() => return,
        }
        let wanted = match current(&broker.config) {
            Ok(w) => w,
            Err(e) => {
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::error!(error = %text, "advertised overrides refused; keeping the addresses advertised now");
                    last_error = Some(text);
                }
                continue;
            }
        };
        last_error = None;
        if wanted == registered {
            continue;
        }
        let command = Command::UpdateBrokerListeners {
            broker_id: broker.config.node_id,
            broker_epoch: broker.broker_epoch(),
            listeners: wanted.clone(),
        };
        match broker.controller.propose(command).await {
            Ok(Ok(_)) => {
                tracing::info!(listeners = ?wanted, "advertised listener addresses changed");
                registered = wanted;
            }
            // Tried again at the next poll.
            Ok(Err(e)) => tracing::warn!(error = %e, "the controller refused this broker's new listener addresses"),
            Err(e) => tracing::debug!(error = %e, "new listener addresses did not reach the controller"),
        }
    }
}
