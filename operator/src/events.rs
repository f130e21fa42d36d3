//! Kubernetes Events (events.k8s.io/v1) about the operator's resources.
//!
//! One Event per distinct (object, type, reason, action, note): publishing
//! the same note again bumps that Event's series count; a different note is
//! a new Event. (kube-runtime's recorder keys on reason and action alone and
//! patches only the count, so a second InvalidSpec kept showing the first
//! message and six RestartingBroker events all read "broker 0".)
//!
//! The cache of published Events is this process's: after a restart (or a
//! leader change) the first repeat of a note is a new Event, as with
//! kube-runtime's recorder. Entries older than [`SERIES_TTL`] are dropped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// How long a repeat still counts into the same Event's series.
const SERIES_TTL: Duration = Duration::from_secs(3600);
/// The API server refuses longer notes.
const MAX_NOTE: usize = 1024;

/// What makes two Events the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    object: String,
    warning: bool,
    reason: String,
    action: String,
    note: String,
}

/// A published Event: its name and namespace, how often, when last.
struct Published {
    name: String,
    namespace: String,
    count: i32,
    last: Instant,
}

/// Publishes Events as the operator (`reportingController` and instance).
pub struct EventPublisher {
    client: kube::Client,
    controller: String,
    instance: String,
    published: tokio::sync::Mutex<HashMap<Key, Published>>,
}

/// `note` cut to what the API server takes, on a character boundary.
fn bounded(note: &str) -> String {
    if note.len() <= MAX_NOTE {
        return note.to_string();
    }
    let mut end = MAX_NOTE - 3;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &note[..end])
}

impl EventPublisher {
    /// A publisher reporting as `controller` / `instance`.
    pub fn new(client: kube::Client, controller: String, instance: String) -> EventPublisher {
        EventPublisher { client, controller, instance, published: Default::default() }
    }

    /// Publishes an Event about `object`, or counts a repeat of the same one.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let note = bounded(note);
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let key = Key {
            object: format!(
                "{}/{}/{}",
                object.kind.as_deref().unwrap_or(""),
                namespace,
                object.uid.as_deref().unwrap_or("")
            ),
            warning,
            reason: reason.into(),
            action: action.into(),
            note: note.clone(),
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = MicroTime(Timestamp::now());
        let mut published = self.published.lock().await;
        published.retain(|_, p| p.last.elapsed() < SERIES_TTL);
        if let Some(p) = published.get_mut(&key) {
            p.count += 1;
            p.last = Instant::now();
            let series = EventSeries { count: p.count, last_observed_time: now.clone() };
            let patch = serde_json::json!({ "series": series });
            let api: Api<Event> = Api::namespaced(self.client.clone(), &p.namespace);
            match api.patch(&p.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // Expired by the API server meanwhile: publish it anew.
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    published.remove(&key);
                }
                Err(e) => return Err(e),
            }
        }
        let name = format!("{}.{:x}", object.name.as_deref().unwrap_or("object"), rand_suffix());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(now),
            action: Some(action.into()),
            reason: Some(reason.into()),
            note: Some(note),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            regarding: Some(object.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        api.create(&PostParams::default(), &event).await?;
        published.insert(key, Published { name, namespace, count: 1, last: Instant::now() });
        Ok(())
    }
}

/// A suffix that makes Event names unique (time and a per-process counter).
fn rand_suffix() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    (nanos << 16) ^ u128::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(800);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_NOTE && cut.ends_with("..."), "{}", cut.len());
    }
}
