//! The table of Kafka-named settings Strom understands, and their validation.
//!
//! Every setting keeps Apache Kafka's name, type, default and meaning, so a
//! Kafka user already knows them. Two tables exist: broker settings (set at
//! start from the config file, `--set` or `STROM_SET`) and topic settings (set
//! per topic by CreateTopics / IncrementalAlterConfigs). A topic setting may take
//! its default from a broker setting (`retention.ms` from `log.retention.ms`),
//! exactly as in Kafka.
//!
//! Invariant: a [`Settings`] value only ever holds known names with values that
//! parsed and passed their range check, so typed getters cannot fail on input.

use std::collections::BTreeMap;
use std::fmt;

/// What kind of value a setting takes, with its allowed range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SettingKind {
    /// A 32-bit integer within `[min, max]`.
    Int { min: i64, max: i64 },
    /// A 64-bit integer within `[min, max]`.
    Long { min: i64, max: i64 },
    /// A floating-point number within `[min, max]`.
    Double { min: f64, max: f64 },
    /// `true` or `false`.
    Bool,
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// A comma-separated, non-empty subset of a fixed set of words.
    List(&'static [&'static str]),
    /// Kafka's throttled-replica list: empty (none), `*` (every replica),
    /// or comma-separated `partition:broker` pairs.
    ReplicaList,
    /// Kafka principals (`Type:name`) separated by semicolons; may be empty.
    PrincipalList,
}

impl SettingKind {
    /// Kafka's DescribeConfigs `config_type` code for this kind.
    pub fn kafka_config_type(&self) -> i8 {
        match self {
            SettingKind::Bool => 1,
            SettingKind::Enum(_) | SettingKind::PrincipalList => 2,
            SettingKind::Int { .. } => 3,
            SettingKind::Long { .. } => 5,
            SettingKind::Double { .. } => 6,
            SettingKind::List(_) | SettingKind::ReplicaList => 7,
        }
    }
}

/// One known setting: its Kafka name, kind, default and a line of doc.
#[derive(Debug, Clone, Copy)]
pub struct SettingDef {
    /// Kafka's name for the setting.
    pub name: &'static str,
    /// Type and range.
    pub kind: SettingKind,
    /// Kafka's default, as text. For topic settings with a `broker_synonym`
    /// the broker setting's value takes precedence.
    pub default: &'static str,
    /// For a topic setting, the broker setting that supplies its default.
    pub broker_synonym: Option<&'static str>,
    /// One line on what it does.
    pub doc: &'static str,
}

const I32: (i64, i64) = (i32::MIN as i64, i32::MAX as i64);
const fn int(min: i64, max: i64) -> SettingKind {
    SettingKind::Int { min, max }
}
const fn long(min: i64) -> SettingKind {
    SettingKind::Long { min, max: i64::MAX }
}
/// `authorizer.class.name` values: empty (off) or Kafka's ACL authorizers.
const AUTHORIZER_CLASS_NAMES: &[&str] =
    &["", "org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer"];
const CLEANUP_POLICIES: &[&str] = &["delete", "compact"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
/// Values of `verify.reads` / `log.verify.reads`.
const VERIFY_READS: &[&str] = &["once", "always"];
/// Kafka's `compression.type` values: `producer` keeps each batch's codec.
pub const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Broker-level settings, as in Kafka's `server.properties`.
pub const BROKER_SETTINGS: &[SettingDef] = &[
    SettingDef {
        name: "log.segment.bytes",
        kind: int(14, I32.1),
        default: "1073741824",
        broker_synonym: None,
        doc: "Maximum size of a single log segment file.",
    },
    SettingDef {
        name: "log.roll.ms",
        kind: long(1),
        default: "604800000",
        broker_synonym: None,
        doc: "Time after which a new segment is rolled even if the active one is not full (wins over log.roll.hours).",
    },
    SettingDef {
        name: "log.roll.hours",
        kind: int(1, I32.1),
        default: "168",
        broker_synonym: None,
        doc: "As log.roll.ms, in hours; used when log.roll.ms is not set.",
    },
    SettingDef {
        name: "log.retention.ms",
        kind: long(-1),
        default: "604800000",
        broker_synonym: None,
        doc: "How long to keep a segment before deleting it; -1 keeps forever (wins over minutes and hours).",
    },
    SettingDef {
        name: "log.retention.minutes",
        kind: int(-1, I32.1),
        default: "10080",
        broker_synonym: None,
        doc: "As log.retention.ms, in minutes; used when log.retention.ms is not set.",
    },
    SettingDef {
        name: "log.retention.hours",
        kind: int(-1, I32.1),
        default: "168",
        broker_synonym: None,
        doc: "As log.retention.ms, in hours; used when neither ms nor minutes is set.",
    },
    SettingDef {
        name: "log.retention.bytes",
        kind: long(-1),
        default: "-1",
        broker_synonym: None,
        doc: "Maximum size of a partition's log before old segments are deleted; -1 is unlimited.",
    },
    SettingDef {
        name: "group.initial.rebalance.delay.ms",
        kind: int(0, I32.1),
        default: "3000",
        broker_synonym: None,
        doc: "How long the first rebalance of an empty group waits for more members to join.",
    },
    SettingDef {
        name: "group.min.session.timeout.ms",
        kind: int(0, I32.1),
        default: "6000",
        broker_synonym: None,
        doc: "Smallest session timeout a group member may ask for.",
    },
    SettingDef {
        name: "group.max.session.timeout.ms",
        kind: int(0, I32.1),
        default: "1800000",
        broker_synonym: None,
        doc: "Largest session timeout a group member may ask for.",
    },
    SettingDef {
        name: "group.max.size",
        kind: int(1, I32.1),
        default: "2147483647",
        broker_synonym: None,
        doc: "Most members a consumer group may have.",
    },
    SettingDef {
        name: "group.consumer.heartbeat.interval.ms",
        kind: int(1, I32.1),
        default: "5000",
        broker_synonym: None,
        doc: "Heartbeat interval the coordinator gives members of consumer-protocol groups (KIP-848).",
    },
    SettingDef {
        name: "group.consumer.session.timeout.ms",
        kind: int(1, I32.1),
        default: "45000",
        broker_synonym: None,
        doc: "How long a consumer-protocol group member may go without a heartbeat before it is removed.",
    },
    SettingDef {
        name: "group.consumer.max.size",
        kind: int(1, I32.1),
        default: "2147483647",
        broker_synonym: None,
        doc: "Most members a consumer-protocol group may have.",
    },
    SettingDef {
        name: "group.consumer.assignors",
        kind: SettingKind::List(&["uniform", "range"]),
        default: "uniform,range",
        broker_synonym: None,
        doc: "Server-side assignors of consumer-protocol groups (uniform, range); the first is the default.",
    },
    SettingDef {
        name: "group.consumer.migration.policy",
        kind: SettingKind::Enum(&["bidirectional", "upgrade", "downgrade", "disabled"]),
        default: "bidirectional",
        broker_synonym: None,
        doc: "Online conversions between classic and consumer-protocol groups with members: \
              bidirectional, upgrade (classic to consumer), downgrade (consumer to classic) or disabled.",
    },
    SettingDef {
        name: "offsets.topic.num.partitions",
        kind: int(1, I32.1),
        default: "50",
        broker_synonym: None,
        doc: "Partitions of __consumer_offsets when it is created.",
    },
    SettingDef {
        name: "offsets.topic.replication.factor",
        kind: int(1, i16::MAX as i64),
        default: "3",
        broker_synonym: None,
        doc: "Replication factor of __consumer_offsets when it is created (capped to the controller voters; creation waits until that many brokers are live).",
    },
    SettingDef {
        name: "offsets.topic.segment.bytes",
        kind: int(14, I32.1),
        default: "104857600",
        broker_synonym: None,
        doc: "Segment size of __consumer_offsets.",
    },
    SettingDef {
        name: "offset.metadata.max.bytes",
        kind: int(0, I32.1),
        default: "4096",
        broker_synonym: None,
        doc: "Longest metadata an offset commit may carry.",
    },
    SettingDef {
        name: "offsets.retention.minutes",
        kind: int(1, I32.1),
        default: "10080",
        broker_synonym: None,
        doc: "How long committed offsets are kept once their group is empty (or since commit, for simple consumers).",
    },
    SettingDef {
        name: "offsets.retention.check.interval.ms",
        kind: long(1),
        default: "600000",
        broker_synonym: None,
        doc: "How often expired committed offsets are removed.",
    },
    SettingDef {
        name: "transaction.state.log.num.partitions",
        kind: int(1, I32.1),
        default: "50",
        broker_synonym: None,
        doc: "Partitions of __transaction_state when it is created.",
    },
    SettingDef {
        name: "transaction.state.log.replication.factor",
        kind: int(1, i16::MAX as i64),
        default: "3",
        broker_synonym: None,
        doc: "Replication factor of __transaction_state when it is created (capped to the controller voters; creation waits until that many brokers are live).",
    },
    SettingDef {
        name: "transaction.state.log.min.isr",
        kind: int(1, I32.1),
        default: "2",
        broker_synonym: None,
        doc: "min.insync.replicas of __transaction_state (capped to its replication factor); coordinator writes are refused (retriably) while fewer replicas are in sync.",
    },
    SettingDef {
        name: "transaction.state.log.segment.bytes",
        kind: int(14, I32.1),
        default: "104857600",
        broker_synonym: None,
        doc: "Segment size of __transaction_state.",
    },
    SettingDef {
        name: "transaction.max.timeout.ms",
        kind: int(1, I32.1),
        default: "900000",
        broker_synonym: None,
        doc: "Largest transaction.timeout.ms a transactional producer may ask for.",
    },
    SettingDef {
        name: "transactional.id.expiration.ms",
        kind: int(1, I32.1),
        default: "604800000",
        broker_synonym: None,
        doc: "How long a transactional id without any transaction is kept before it is removed.",
    },
    SettingDef {
        name: "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        kind: int(1, I32.1),
        default: "10000",
        broker_synonym: None,
        doc: "How often the coordinator aborts transactions open longer than their timeout.",
    },
    SettingDef {
        name: "transaction.remove.expired.transaction.cleanup.interval.ms",
        kind: int(1, I32.1),
        default: "3600000",
        broker_synonym: None,
        doc: "How often the coordinator removes expired transactional ids.",
    },
    SettingDef {
        name: "transaction.version",
        kind: int(0, 2),
        default: "2",
        broker_synonym: None,
        doc: "The finalized transaction.version feature level advertised in ApiVersions (Kafka finalizes it with kafka-features.sh): 2 turns on KIP-890 part 2 (an epoch bump per transaction, implicit partition adds) for clients that support it; 0 or 1 keeps the older protocol.",
    },
    SettingDef {
        name: "log.cleaner.delete.retention.ms",
        kind: long(0),
        default: "86400000",
        broker_synonym: None,
        doc: "How long a tombstone (null value) stays in a compacted log after its segment is cleaned.",
    },
    SettingDef {
        name: "log.cleaner.backoff.ms",
        kind: long(1),
        default: "15000",
        broker_synonym: None,
        doc: "How often compacted logs are checked for segments to clean.",
    },
    SettingDef {
        name: "log.retention.check.interval.ms",
        kind: long(1),
        default: "300000",
        broker_synonym: None,
        doc: "How often retention and time-based segment rolls are checked.",
    },
    SettingDef {
        name: "log.index.interval.bytes",
        kind: int(0, I32.1),
        default: "4096",
        broker_synonym: None,
        doc: "Bytes of log between two entries of the offset and time indexes.",
    },
    SettingDef {
        name: "log.cleanup.policy",
        kind: SettingKind::List(CLEANUP_POLICIES),
        default: "delete",
        broker_synonym: None,
        doc: "Default cleanup policy of topics: delete, compact or both.",
    },
    SettingDef {
        name: "log.message.timestamp.type",
        kind: SettingKind::Enum(TIMESTAMP_TYPES),
        default: "CreateTime",
        broker_synonym: None,
        doc: "Whether record timestamps are the producer's (CreateTime) or the broker's (LogAppendTime).",
    },
    SettingDef {
        name: "log.flush.interval.messages",
        kind: long(1),
        default: "9223372036854775807",
        broker_synonym: None,
        doc: "Records appended to a partition before its log is fsynced.",
    },
    SettingDef {
        name: "log.flush.interval.ms",
        kind: long(0),
        default: "9223372036854775807",
        broker_synonym: None,
        doc: "Milliseconds a record may stay unflushed before its log is fsynced.",
    },
    SettingDef {
        name: "message.max.bytes",
        kind: int(0, I32.1),
        default: "1048588",
        broker_synonym: None,
        doc: "Largest record batch the broker accepts (topic default for max.message.bytes).",
    },
    SettingDef {
        name: "num.partitions",
        kind: int(1, I32.1),
        default: "1",
        broker_synonym: None,
        doc: "Partitions of an automatically created topic, or of one created with -1 partitions.",
    },
    SettingDef {
        name: "default.replication.factor",
        kind: int(1, i16::MAX as i64),
        default: "1",
        broker_synonym: None,
        doc: "Replication factor of automatically created topics.",
    },
    SettingDef {
        name: "min.insync.replicas",
        kind: int(1, I32.1),
        default: "1",
        broker_synonym: None,
        doc: "Replicas that must be in sync for an acks=all produce to succeed.",
    },
    SettingDef {
        name: "auto.create.topics.enable",
        kind: SettingKind::Bool,
        default: "true",
        broker_synonym: None,
        doc: "Create a topic when a client asks for metadata of one that does not exist.",
    },
    SettingDef {
        name: "authorizer.class.name",
        kind: SettingKind::Enum(AUTHORIZER_CLASS_NAMES),
        default: "",
        broker_synonym: None,
        doc: "Empty: no authorization, every client may do everything. Kafka's StandardAuthorizer or \
              AclAuthorizer class name: every request is checked against the ACLs (kafka-acls.sh).",
    },
    SettingDef {
        name: "super.users",
        kind: SettingKind::PrincipalList,
        default: "",
        broker_synonym: None,
        doc: "Principals allowed everything whatever the ACLs say, separated by semicolons \
              (User:admin;User:operator).",
    },
    SettingDef {
        name: "allow.everyone.if.no.acl.found",
        kind: SettingKind::Bool,
        default: "false",
        broker_synonym: None,
        doc: "With the authorizer on: allow any principal on a resource that has no ACL at all.",
    },
    SettingDef {
        name: "delete.topic.enable",
        kind: SettingKind::Bool,
        default: "true",
        broker_synonym: None,
        doc: "Allow DeleteTopics.",
    },
    SettingDef {
        name: "unclean.leader.election.enable",
        kind: SettingKind::Bool,
        default: "false",
        broker_synonym: None,
        doc: "Allow a replica outside the ISR to become leader (may lose records).",
    },
    SettingDef {
        name: "replica.lag.time.max.ms",
        kind: long(0),
        default: "30000",
        broker_synonym: None,
        doc: "A follower that has not caught up for this long leaves the ISR.",
    },
    SettingDef {
        name: "replica.fetch.max.bytes",
        kind: int(0, I32.1),
        default: "1048576",
        broker_synonym: None,
        doc: "Bytes of records a follower asks its leader for per partition and fetch (at least one batch is always sent).",
    },
    SettingDef {
        name: "replica.fetch.response.max.bytes",
        kind: int(0, I32.1),
        default: "10485760",
        broker_synonym: None,
        doc: "Bytes of records a follower asks one leader for across all the partitions it copies from it, \
              per fetch (at least one batch is always sent).",
    },
    SettingDef {
        name: "replica.fetch.wait.max.ms",
        kind: int(0, I32.1),
        default: "500",
        broker_synonym: None,
        doc: "Longest a caught-up follower's fetch waits at the leader for new records.",
    },
    SettingDef {
        name: "replica.fetch.stream",
        kind: SettingKind::Bool,
        default: "true",
        broker_synonym: None,
        doc: "Strom's own, internal, kept for measuring: true, a follower fetches from each leader over one \
              persistent FetchStream (falling back to FetchPartitions calls against a leader without it); \
              false, one FetchPartitions call per fetch round.",
    },
    SettingDef {
        name: "replica.fetch.backoff.ms",
        kind: int(0, I32.1),
        default: "1000",
        broker_synonym: None,
        doc: "Longest pause before a follower retries a failed fetch (retries start at a hundredth of it and double).",
    },
    SettingDef {
        name: "log.scrub.bytes.per.second",
        kind: long(0),
        default: "10485760",
        broker_synonym: None,
        doc: "Bytes per second a broker reads to verify its log segments again in the background \
              (CRC-32C and batch framing; each, the active one too, up to its size when the pass reaches the \
              partition), one pass \
              after another; 0 turns the background scrub off.",
    },
    SettingDef {
        name: "log.verify.reads",
        kind: SettingKind::Enum(VERIFY_READS),
        default: "once",
        broker_synonym: None,
        doc: "When a leader verifies (CRC-32C and batch framing) the stored batches it sends to consumers: \
              once, only bytes this process does not yet hold for sound (not checked at start, by a read \
              or by the scrub, nor appended by it after those; a replica that becomes leader after \
              following checks again), the background scrub re-reading the rest; always, every batch \
              before each send. Followers' fetches are verified either way.",
    },
    SettingDef {
        name: "log.segment.reserve.bytes",
        kind: int(0, 1 << 30),
        default: "8388608",
        broker_synonym: None,
        doc: "Most a segment file reserves ahead of its appends at once (fallocate keeping its size; as much \
              again as the file holds, at least 64 KiB or this if smaller, never past segment.bytes); read \
              at start. Spares an append the wait for ext4's block allocation at writeback. The unused part \
              stays allocated until the segment is deleted, truncated or compacted, unseen by \
              retention.bytes. 0 reserves nothing.",
    },
    SettingDef {
        name: "log.writer.threads",
        kind: int(0, 64),
        default: "1",
        broker_synonym: None,
        doc: "Threads that run this broker's log appends (client produce and follower fetch), each taking \
              the appends queued meanwhile one after another; read at start. More threads shorten the \
              produce latency tail when a write sleeps in the filesystem (it then holds up only the \
              appends queued on its thread) and cost some CPU per MiB. 0: tokio's blocking pool, one \
              task per request (the previous design, kept to measure against).",
    },
    SettingDef {
        name: "follower.replication.throttled.rate",
        kind: long(1),
        default: "9223372036854775807",
        broker_synonym: None,
        doc: "Bytes per second this broker copies, together, for the out-of-sync replicas a topic's \
              follower.replication.throttled.replicas names (the default does not throttle).",
    },
    SettingDef {
        name: "replica.socket.timeout.ms",
        kind: int(1, I32.1),
        default: "30000",
        broker_synonym: None,
        doc: "Longest a follower waits for its leader to answer a fetch, beyond replica.fetch.wait.max.ms.",
    },
    SettingDef {
        name: "broker.session.timeout.ms",
        kind: long(1),
        default: "9000",
        broker_synonym: None,
        doc: "A broker whose heartbeats stop for this long is fenced: it leaves every ISR and leads nothing.",
    },
    SettingDef {
        name: "broker.heartbeat.interval.ms",
        kind: long(1),
        default: "2000",
        broker_synonym: None,
        doc: "How often a broker heartbeats to the active controller.",
    },
    SettingDef {
        name: "socket.request.max.bytes",
        kind: int(1, I32.1),
        default: "104857600",
        broker_synonym: None,
        doc: "Largest request frame accepted; a larger one closes the connection.",
    },
    SettingDef {
        name: "max.connections",
        kind: int(0, I32.1),
        default: "10000",
        broker_synonym: None,
        doc: "Most client connections open at once; more are refused.",
    },
    SettingDef {
        name: "max.connections.per.ip",
        kind: int(0, I32.1),
        default: "5000",
        broker_synonym: None,
        doc: "Most client connections open at once from one IP address; more from it are refused.",
    },
    SettingDef {
        name: "sasl.server.max.receive.size",
        kind: int(1, I32.1),
        default: "524288",
        broker_synonym: None,
        doc: "Largest request frame a SASL listener accepts before the connection has authenticated; a larger one closes it.",
    },
    SettingDef {
        name: "sasl.authentication.timeout.ms",
        kind: int(1, I32.1),
        default: "30000",
        broker_synonym: None,
        doc: "How long a connection to a SASL listener may take to authenticate, counted from its accept (Strom's bound; Kafka has none): a connection still unauthenticated then is closed, so an unauthenticated peer cannot keep a connection slot by trickling requests.",
    },
    SettingDef {
        name: "connection.failed.authentication.delay.ms",
        kind: int(0, I32.1),
        default: "100",
        broker_synonym: None,
        doc: "How long a failed authentication waits before its answer and the close, to slow down password guessing.",
    },
    SettingDef {
        name: "quota.window.num",
        kind: int(1, I32.1),
        default: "11",
        broker_synonym: None,
        doc: "Samples a client quota's rate is measured over (Kafka's quota.window.num).",
    },
    SettingDef {
        name: "quota.window.size.seconds",
        kind: int(1, I32.1),
        default: "1",
        broker_synonym: None,
        doc: "Span of one client quota sample, in seconds (Kafka's quota.window.size.seconds).",
    },
    SettingDef {
        name: "max.broker.partitions",
        kind: int(-1, I32.1),
        default: "-1",
        broker_synonym: None,
        doc: "Most partition replicas this broker hosts; CreateTopics, CreatePartitions, auto-creation and reassignments past it are refused with POLICY_VIOLATION. -1 (or 0): derived from the memory the broker may use (MemTotal of /proc/meminfo, or the cgroup's memory limit if lower): a quarter of it at 32 KiB per partition, at least 100 (196,608 with 24 GiB). Open files no longer bound it (see log.open.files.max).",
    },
    SettingDef {
        name: "log.open.files.max",
        kind: int(-1, I32.1),
        default: "-1",
        broker_synonym: None,
        doc: "Most segment .log files kept open at once, across all partitions (Strom's; Kafka keeps every segment open). Others are opened when read or written and the least recently used closed. -1 (or 0): half the open-file soft limit (after raising it to the hard limit at start), at least 16; the other half is for connections, index writes, checkpoints and the controller.",
    },
    SettingDef {
        name: "max.request.partitions",
        kind: int(1, I32.1),
        default: "100000",
        broker_synonym: None,
        doc: "Most topics, partitions and other names (config keys, groups) one request may carry, each counting one; a request naming more is refused before it is decoded and its connection closed (Strom's; Kafka has no such limit).",
    },
    SettingDef {
        name: "connections.max.idle.ms",
        kind: long(1),
        default: "600000",
        broker_synonym: None,
        doc: "A client connection with no request in flight that sends nothing for this long is closed.",
    },
    SettingDef {
        name: "request.frame.timeout.ms",
        kind: long(1),
        default: "30000",
        broker_synonym: None,
        doc: "A request frame whose first byte arrived must arrive whole within this time (waiting for queued.max.request.bytes included), or the connection is closed (Strom's; Kafka has no such limit).",
    },
    SettingDef {
        name: "queued.max.request.bytes",
        kind: long(1),
        default: "536870912",
        broker_synonym: None,
        doc: "Bytes of requests read and not yet handled, across all client connections; a connection waits for room (within request.frame.timeout.ms) before reading a frame's body. A frame larger than this takes the whole pool.",
    },
    SettingDef {
        name: "metrics.enabled",
        kind: SettingKind::Bool,
        default: "true",
        broker_synonym: None,
        doc: "Record request, byte and record metrics (state gauges on /metrics are computed at scrape time either way).",
    },
];

/// Topic-level settings, as set by `kafka-configs --entity-type topics`.
pub const TOPIC_SETTINGS: &[SettingDef] = &[
    SettingDef {
        name: "cleanup.policy",
        kind: SettingKind::List(CLEANUP_POLICIES),
        default: "delete",
        broker_synonym: Some("log.cleanup.policy"),
        doc: "delete: drop old segments by retention; compact: keep the latest record per key.",
    },
    SettingDef {
        name: "retention.ms",
        kind: long(-1),
        default: "604800000",
        broker_synonym: Some("log.retention.ms"),
        doc: "How long to keep a segment; -1 keeps forever.",
    },
    SettingDef {
        name: "retention.bytes",
        kind: long(-1),
        default: "-1",
        broker_synonym: Some("log.retention.bytes"),
        doc: "Maximum size of a partition's log; -1 is unlimited.",
    },
    SettingDef {
        name: "delete.retention.ms",
        kind: long(0),
        default: "86400000",
        broker_synonym: Some("log.cleaner.delete.retention.ms"),
        doc: "How long tombstones are kept in a compacted log after cleaning.",
    },
    SettingDef {
        name: "segment.bytes",
        kind: int(14, I32.1),
        default: "1073741824",
        broker_synonym: Some("log.segment.bytes"),
        doc: "Maximum size of a segment file.",
    },
    SettingDef {
        name: "segment.ms",
        kind: long(1),
        default: "604800000",
        broker_synonym: Some("log.roll.ms"),
        doc: "Time after which the active segment is rolled.",
    },
    SettingDef {
        name: "index.interval.bytes",
        kind: int(0, I32.1),
        default: "4096",
        broker_synonym: Some("log.index.interval.bytes"),
        doc: "Bytes of log between index entries.",
    },
    SettingDef {
        name: "max.message.bytes",
        kind: int(0, I32.1),
        default: "1048588",
        broker_synonym: Some("message.max.bytes"),
        doc: "Largest record batch accepted for this topic.",
    },
    SettingDef {
        name: "message.timestamp.type",
        kind: SettingKind::Enum(TIMESTAMP_TYPES),
        default: "CreateTime",
        broker_synonym: Some("log.message.timestamp.type"),
        doc: "CreateTime or LogAppendTime.",
    },
    SettingDef {
        name: "min.insync.replicas",
        kind: int(1, I32.1),
        default: "1",
        broker_synonym: Some("min.insync.replicas"),
        doc: "In-sync replicas needed for acks=all.",
    },
    SettingDef {
        name: "flush.messages",
        kind: long(1),
        default: "9223372036854775807",
        broker_synonym: Some("log.flush.interval.messages"),
        doc: "Records between fsyncs of the log.",
    },
    SettingDef {
        name: "flush.ms",
        kind: long(0),
        default: "9223372036854775807",
        broker_synonym: Some("log.flush.interval.ms"),
        doc: "Milliseconds between fsyncs of the log.",
    },
    SettingDef {
        name: "unclean.leader.election.enable",
        kind: SettingKind::Bool,
        default: "false",
        broker_synonym: Some("unclean.leader.election.enable"),
        doc: "Allow a replica outside the ISR to become leader.",
    },
    SettingDef {
        name: "follower.replication.throttled.replicas",
        kind: SettingKind::ReplicaList,
        default: "",
        broker_synonym: None,
        doc: "Replicas (partition:broker pairs, or *) whose catch-up outside the ISR is held to the \
              broker's follower.replication.throttled.rate.",
    },
    SettingDef {
        name: "compression.type",
        kind: SettingKind::Enum(COMPRESSION_TYPES),
        default: "producer",
        broker_synonym: None,
        doc: "Codec batches are stored with: producer keeps the producer's; uncompressed, gzip, snappy, lz4 \
              or zstd make the leader recompress batches sent with another codec.",
    },
    SettingDef {
        name: "min.compaction.lag.ms",
        kind: long(0),
        default: "0",
        broker_synonym: None,
        doc: "A compacted log's segment is cleaned only once its newest record is at least this old.",
    },
    SettingDef {
        name: "max.compaction.lag.ms",
        kind: long(1),
        default: "9223372036854775807",
        broker_synonym: None,
        doc: "A compacted log's active segment is rolled (so it can be cleaned) once its first batch is this \
              old, when shorter than segment.ms.",
    },
    SettingDef {
        name: "verify.reads",
        kind: SettingKind::Enum(VERIFY_READS),
        default: "once",
        broker_synonym: Some("log.verify.reads"),
        doc: "When the leader verifies the stored batches it sends to consumers: once (bytes it does not \
              yet hold for sound) or always (every batch before each send).",
    },
    SettingDef {
        name: "segment.index.bytes",
        kind: int(4, I32.1),
        default: "10485760",
        broker_synonym: None,
        doc: "Largest offset index of a segment: the active segment rolls when its offset index (8-byte \
              entries) or time index (12-byte entries) would grow past it.",
    },
    SettingDef {
        name: "min.cleanable.dirty.ratio",
        kind: SettingKind::Double { min: 0.0, max: 1.0 },
        default: "0.5",
        broker_synonym: None,
        doc: "Accepted and described for Kafka compatibility; no effect in Strom (a compacted log is cleaned \
              whenever a segment has rolled since the last run).",
    },
    SettingDef {
        name: "file.delete.delay.ms",
        kind: long(0),
        default: "60000",
        broker_synonym: None,
        doc: "Accepted and described for Kafka compatibility; no effect in Strom (deleted segments' files are \
              renamed at once and removed by a background thread right after).",
    },
    SettingDef {
        name: "preallocate",
        kind: SettingKind::Bool,
        default: "false",
        broker_synonym: None,
        doc: "Accepted and described for Kafka compatibility; no effect in Strom (a segment file reserves \
              its blocks ahead of its appends in steps, log.segment.reserve.bytes, keeping its size).",
    },
];

/// A setting name or value that was refused, saying which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// The name is not a setting Strom knows.
    #[error("unknown {scope} setting `{name}`{hint}")]
    Unknown { scope: &'static str, name: String, hint: String },
    /// The value does not fit the setting's type or range.
    #[error("invalid value `{value}` for setting `{name}`: expected {expected}")]
    Invalid { name: String, value: String, expected: String },
}

fn describe_expected(kind: &SettingKind) -> String {
    match kind {
        SettingKind::Int { min, max } | SettingKind::Long { min, max } => {
            if *max == i64::MAX {
                format!("an integer >= {min}")
            } else {
                format!("an integer from {min} to {max}")
            }
        }
        SettingKind::Double { min, max } => format!("a number from {min} to {max}"),
        SettingKind::Bool => "true or false".to_string(),
        SettingKind::Enum(words) => format!("one of {}", words.join(", ")),
        SettingKind::List(words) => {
            format!("a comma-separated list of {}", words.join(", "))
        }
        SettingKind::PrincipalList => {
            "principals of the form Type:name (User:alice) separated by semicolons, or empty".to_string()
        }
        SettingKind::ReplicaList => {
            "empty, `*` (every replica) or comma-separated partition:broker pairs of non-negative integers".to_string()
        }
    }
}

/// Checks `value` against `def`, returning its normalised text.
pub fn validate(def: &SettingDef, value: &str) -> Result<String, SettingError> {
    let invalid = || SettingError::Invalid {
        name: def.name.to_string(),
        value: value.to_string(),
        expected: describe_expected(&def.kind),
    };
    let trimmed = value.trim();
    match def.kind {
        SettingKind::Int { min, max } | SettingKind::Long { min, max } => {
            let n: i64 = trimmed.parse().map_err(|_| invalid())?;
            if n < min || n > max {
                return Err(invalid());
            }
            Ok(n.to_string())
        }
        SettingKind::Double { min, max } => {
            let n: f64 = trimmed.parse().map_err(|_| invalid())?;
            if !n.is_finite() || n < min || n > max {
                return Err(invalid());
            }
            Ok(format_double(n))
        }
        SettingKind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Ok("true".into()),
            "false" => Ok("false".into()),
            _ => Err(invalid()),
        },
        SettingKind::Enum(words) => {
            words.iter().find(|w| w.eq_ignore_ascii_case(trimmed)).map(|w| w.to_string()).ok_or_else(invalid)
        }
        SettingKind::List(words) => {
            let mut items = Vec::new();
            for item in trimmed.split(',').map(str::trim) {
                let word = words.iter().find(|w| w.eq_ignore_ascii_case(item)).ok_or_else(invalid)?;
                if !items.contains(word) {
                    items.push(*word);
                }
            }
            Ok(items.join(","))
        }
        SettingKind::PrincipalList => {
            let mut principals: Vec<&str> = Vec::new();
            for item in trimmed.split(';').map(str::trim).filter(|i| !i.is_empty()) {
                let valid = item.split_once(':').is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty());
                if !valid {
                    return Err(invalid());
                }
                if !principals.contains(&item) {
                    principals.push(item);
                }
            }
            Ok(principals.join(";"))
        }
        SettingKind::ReplicaList => {
            if trimmed == "*" {
                return Ok("*".to_string());
            }
            let mut pairs: Vec<(i32, i32)> = Vec::new();
            for item in trimmed.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let pair = parse_replica(item).ok_or_else(invalid)?;
                if !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
            Ok(pairs.iter().map(|(p, b)| format!("{p}:{b}")).collect::<Vec<_>>().join(","))
        }
    }
}

/// A double as Kafka's DescribeConfigs shows it (`0.5`, `1.0`).
fn format_double(n: f64) -> String {
    if n.fract() == 0.0 { format!("{n:.1}") } else { n.to_string() }
}

/// One `partition:broker` pair of a replica list.
fn parse_replica(item: &str) -> Option<(i32, i32)> {
    let (partition, broker) = item.split_once(':')?;
    let partition: i32 = partition.trim().parse().ok().filter(|p| *p >= 0)?;
    let broker: i32 = broker.trim().parse().ok().filter(|b| *b >= 0)?;
    Some((partition, broker))
}

/// Whether a validated replica list (see [`SettingKind::ReplicaList`])
/// names `broker`'s replica of `partition`.
pub fn replica_list_contains(list: &str, partition: i32, broker: i32) -> bool {
    let list = list.trim();
    list == "*" || list.split(',').filter_map(|item| parse_replica(item.trim())).any(|r| r == (partition, broker))
}

/// Whether a broker setting can change on running brokers (Kafka's
/// cluster-wide dynamic broker configs): the broker defaults of topic
/// settings, such as `log.retention.ms` or `min.insync.replicas`. Every
/// other broker setting is read at start.
pub fn is_dynamic_broker_setting(name: &str) -> bool {
    TOPIC_SETTINGS.iter().any(|d| d.broker_synonym == Some(name))
}

/// Finds a definition by name in a table.
pub fn find(table: &'static [SettingDef], name: &str) -> Option<&'static SettingDef> {
    table.iter().find(|d| d.name == name)
}

fn unknown(scope: &'static str, table: &'static [SettingDef], name: &str) -> SettingError {
    let hint = match suggestion(table, name) {
        Some(n) => format!(" (did you mean `{n}`? all settings are listed in docs/CONFIGURATION.md)"),
        None => " (all settings are listed in docs/CONFIGURATION.md)".to_string(),
    };
    SettingError::Unknown { scope, name: name.to_string(), hint }
}

/// The known name closest to `name` by edit distance, when it is close
/// enough to be a typo of it (at most a quarter of the name's characters,
/// and at least 2, differ).
fn suggestion(table: &'static [SettingDef], name: &str) -> Option<&'static str> {
    let limit = (name.chars().count() / 4).max(2);
    table
        .iter()
        .map(|d| (strsim::levenshtein(d.name, name), d.name))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, n)| n)
}

/// A validated set of explicitly given settings over one table's defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    table: &'static [SettingDef],
    scope: &'static str,
    explicit: BTreeMap<String, String>,
}

impl Settings {
    /// Broker settings with nothing set explicitly.
    pub fn broker_defaults() -> Settings {
        Settings { table: BROKER_SETTINGS, scope: "broker", explicit: BTreeMap::new() }
    }

    /// Topic settings with nothing set explicitly (overrides only).
    pub fn topic_overrides() -> Settings {
        Settings { table: TOPIC_SETTINGS, scope: "topic", explicit: BTreeMap::new() }
    }

    /// Sets `name` to `value` after checking both; on error nothing changes.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SettingError> {
        let def = find(self.table, name).ok_or_else(|| unknown(self.scope, self.table, name))?;
        let normalised = validate(def, value)?;
        self.explicit.insert(def.name.to_string(), normalised);
        Ok(())
    }

    /// Removes an explicit value so the default applies again.
    pub fn unset(&mut self, name: &str) -> Result<(), SettingError> {
        let def = find(self.table, name).ok_or_else(|| unknown(self.scope, self.table, name))?;
        self.explicit.remove(def.name);
        Ok(())
    }

    /// The explicitly set value of `name`, if any.
    pub fn explicit(&self, name: &str) -> Option<&str> {
        self.explicit.get(name).map(String::as_str)
    }

    /// All explicitly set (name, value) pairs.
    pub fn explicit_entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.explicit.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `name`: the explicit one or the table default.
    ///
    /// `name` must be in the table; asking for another is a programming
    /// error caught by the tests, answered with an empty string.
    pub fn get(&self, name: &str) -> &str {
        if let Some(v) = self.explicit.get(name) {
            return v;
        }
        find(self.table, name).map(|d| d.default).unwrap_or("")
    }

    /// The value of an integer setting.
    pub fn long(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or_default()
    }

    /// The value of a boolean setting.
    pub fn bool(&self, name: &str) -> bool {
        self.get(name) == "true"
    }

    /// The table this value set is checked against.
    pub fn table(&self) -> &'static [SettingDef] {
        self.table
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.explicit {
            writeln!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_passes_its_own_validation() {
        for def in BROKER_SETTINGS.iter().chain(TOPIC_SETTINGS) {
            assert_eq!(validate(def, def.default).as_deref(), Ok(def.default), "{}", def.name);
        }
    }

    #[test]
    fn every_setting_is_documented() {
        let doc = include_str!("../../docs/CONFIGURATION.md");
        for def in BROKER_SETTINGS.iter().chain(TOPIC_SETTINGS) {
            let row = format!("| `{}` |", def.name);
            assert!(doc.contains(&row), "docs/CONFIGURATION.md lacks a row for {}", def.name);
        }
    }

    #[test]
    fn every_topic_synonym_names_a_broker_setting() {
        for def in TOPIC_SETTINGS {
            if let Some(syn) = def.broker_synonym {
                assert!(find(BROKER_SETTINGS, syn).is_some(), "{} -> {syn}", def.name);
            }
        }
    }

    #[test]
    fn unknown_setting_is_refused_with_a_suggestion() {
        let mut s = Settings::broker_defaults();
        let err = s.set("log.segment.byte", "100").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`log.segment.byte`"), "{msg}");
        assert!(msg.contains("did you mean `log.segment.bytes`"), "{msg}");
        // By edit distance, not by a shared dotted prefix.
        let msg = s.set("log.retention.hourz", "1").unwrap_err().to_string();
        assert!(msg.contains("did you mean `log.retention.hours`"), "{msg}");
        let msg = s.set("completely.different", "1").unwrap_err().to_string();
        assert!(!msg.contains("did you mean"), "no hint for a name like no other: {msg}");
    }

    #[test]
    fn out_of_range_value_names_setting_value_and_range() {
        let mut s = Settings::broker_defaults();
        let msg = s.set("log.segment.bytes", "10").unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid value `10` for setting `log.segment.bytes`: expected an integer from 14 to 2147483647"
        );
        assert_eq!(s.long("log.segment.bytes"), 1073741824, "nothing changed");
    }

    #[test]
    fn authorizer_settings_take_kafkas_values() {
        let mut s = Settings::broker_defaults();
        assert_eq!(s.get("authorizer.class.name"), "");
        s.set("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer").unwrap();
        let msg = s.set("authorizer.class.name", "com.example.Mine").unwrap_err().to_string();
        assert!(msg.contains("kafka.security.authorizer.AclAuthorizer"), "{msg}");
        s.set("super.users", " User:admin ;User:ops;User:admin").unwrap();
        assert_eq!(s.get("super.users"), "User:admin;User:ops");
        let msg = s.set("super.users", "admin").unwrap_err().to_string();
        assert!(msg.contains("Type:name"), "{msg}");
        s.set("super.users", "").unwrap();
    }

    #[test]
    fn values_are_normalised() {
        let mut s = Settings::topic_overrides();
        s.set("cleanup.policy", "Compact, delete").unwrap();
        assert_eq!(s.get("cleanup.policy"), "compact,delete");
        s.set("message.timestamp.type", "logappendtime").unwrap();
        assert_eq!(s.get("message.timestamp.type"), "LogAppendTime");
        assert!(s.set("cleanup.policy", "shred").is_err());
    }

    #[test]
    fn replica_lists_are_normalised_and_matched() {
        let mut s = Settings::topic_overrides();
        let name = "follower.replication.throttled.replicas";
        s.set(name, " 0:1, 2:0 ,0:1").unwrap();
        assert_eq!(s.get(name), "0:1,2:0", "trimmed, duplicates dropped");
        assert!(replica_list_contains(s.get(name), 0, 1));
        assert!(replica_list_contains(s.get(name), 2, 0));
        assert!(!replica_list_contains(s.get(name), 1, 0), "partition 1 on broker 0 is not listed");
        s.set(name, " * ").unwrap();
        assert!(replica_list_contains(s.get(name), 7, 3), "* names every replica");
        s.set(name, "").unwrap();
        assert!(!replica_list_contains(s.get(name), 0, 0));
        for bad in ["0", "a:1", "0:-1", "0:1,*", "1:2:3"] {
            let err = s.set(name, bad).expect_err(bad).to_string();
            assert!(err.contains(name) && err.contains("partition:broker"), "{bad}: {err}");
        }
    }

    #[test]
    fn doubles_are_range_checked_and_normalised() {
        let mut s = Settings::topic_overrides();
        let name = "min.cleanable.dirty.ratio";
        assert_eq!(s.get(name), "0.5");
        s.set(name, " 1 ").unwrap();
        assert_eq!(s.get(name), "1.0");
        s.set(name, "0.25").unwrap();
        assert_eq!(s.get(name), "0.25");
        for bad in ["1.5", "-0.1", "NaN", "half", "inf"] {
            let err = s.set(name, bad).expect_err(bad).to_string();
            assert!(err.contains(name) && err.contains("a number from 0 to 1"), "{bad}: {err}");
        }
        assert_eq!(s.get(name), "0.25", "refused values change nothing");
    }

    #[test]
    fn every_kafka_compression_type_is_accepted() {
        let mut s = Settings::topic_overrides();
        for codec in ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer", "LZ4"] {
            s.set("compression.type", codec).expect(codec);
            assert_eq!(s.get("compression.type"), codec.to_ascii_lowercase());
        }
        assert!(s.set("compression.type", "brotli").is_err());
    }

    #[test]
    fn bool_and_long_getters_read_defaults_and_overrides() {
        let mut s = Settings::broker_defaults();
        assert!(s.bool("auto.create.topics.enable"));
        s.set("auto.create.topics.enable", "FALSE").unwrap();
        assert!(!s.bool("auto.create.topics.enable"));
        assert_eq!(s.long("log.retention.bytes"), -1);
    }
}
