//! Fuzzes the operator-side validation of the custom resources: any JSON a
//! user can put in a KafkaCluster, KafkaTopic or KafkaUser spec is either refused with an
//! error or accepted — never a panic — and what is accepted keeps the rules
//! the CRD's CEL rules state (storage sizes with a known unit, greater than
//! zero; topic names of 1–249 ASCII letters, digits, '.', '_', '-'; a
//! KafkaUser's ACL operations apply to their resource type).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_crds::quantity::parse_storage_size;
use strom_crds::topic::validate_topic_name;
use strom_crds::{AclOperation, KafkaClusterSpec, KafkaTopicSpec, KafkaUserSpec};

const UNITS: [&str; 13] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E"];

fn well_formed_size(s: &str) -> bool {
    let digits = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let mut parts = number.split('.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    parts.next().is_none()
        && !whole.is_empty()
        && fraction.is_none_or(|f| !f.is_empty())
        && UNITS.contains(&unit)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(bytes) = parse_storage_size(&text) {
        assert!(bytes > 0, "accepted a zero size {text:?}");
        assert!(well_formed_size(&text), "accepted a malformed size {text:?}");
    }
    if validate_topic_name("spec.topicName", &text).is_ok() {
        assert!((1..=249).contains(&text.len()), "accepted a name of {} bytes", text.len());
        assert!(text != "." && text != "..");
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')), "{text:?}");
    }
    if let Ok(spec) = serde_json::from_slice::<KafkaClusterSpec>(data) {
        let voters = spec.voters();
        if spec.validate().is_ok() && spec.controller_voters.is_none() {
            assert!(matches!(voters, 1 | 3), "default quorum size {voters}");
        }
    }
    if let Ok(spec) = serde_json::from_slice::<KafkaTopicSpec>(data) {
        let _ = spec.topic_name.as_deref().map(|name| validate_topic_name("spec.topicName", name));
    }
    if let Ok(spec) = serde_json::from_slice::<KafkaUserSpec>(data)
        && spec.validate().is_ok()
    {
        for rule in spec.authorization.iter().flat_map(|a| a.acls.iter()) {
            let allowed = rule.resource.r#type.operations();
            assert!(!rule.operations.is_empty());
            assert!(rule.operations.iter().all(|o| *o == AclOperation::All || allowed.contains(o)), "{rule:?}");
        }
    }
});
