//! Limits both ends enforce, so that a peer cannot make the other allocate without bound.

use std::time::Duration;

/// Largest gRPC message either side encodes or accepts.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Largest response the coordinator sends to an operator (and `labctl` accepts): `ListNodes`
/// or `GetJob` of a 10,000-node fleet is about 5 MB, over [`MAX_MESSAGE_BYTES`]. Requests
/// stay under [`MAX_MESSAGE_BYTES`]; only operators with a valid certificate get this far.
pub const MAX_OPERATOR_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Largest fact document (JSON) an agent may report.
pub const MAX_FACTS_BYTES: usize = 1024 * 1024;

/// Longest node or user name.
pub const MAX_NAME_LEN: usize = 63;

/// Most labels on one node or token.
pub const MAX_LABELS: usize = 64;

/// Longest label key or value.
pub const MAX_LABEL_LEN: usize = 253;

/// Heartbeat interval the coordinator hands to agents unless configured otherwise.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// A node is offline once this many heartbeat intervals pass without a message from it.
pub const MISSED_HEARTBEATS_OFFLINE: u32 = 3;

/// Default lifetime of a node certificate.
pub const DEFAULT_NODE_CERT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Default lifetime of an enrollment token.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Longest lifetime an enrollment token may be given.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Default lifetime of operator certificates (renewed with `labctl user renew`).
pub const DEFAULT_OPERATOR_CERT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Longest lifetime an operator certificate may be given.
pub const MAX_OPERATOR_CERT_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Default gRPC port of the coordinator.
pub const DEFAULT_GRPC_PORT: u16 = 7443;

/// Sequence number of a final task update re-sent after an agent restart (see `TaskUpdate`).
pub const FINAL_SEQ_UNKNOWN: u64 = u64::MAX;

/// Largest output chunk an agent sends in one `TaskUpdate`.
pub const MAX_OUTPUT_CHUNK: usize = 32 * 1024;
