//! lab-proto: the contract both ends of labfleet agree on.
//!
//! It owns the generated protobuf code (`lab.v1` on the wire, `lab.store.v1` for the coordinator's
//! records), the identity URIs, the enrollment token format, the message limits and the TLS
//! helpers every peer uses. Its only I/O is opening TLS connections and writing key files safely.

pub mod backoff;
pub mod clidocs;
pub mod client;
pub mod codec;
pub mod csr;
pub mod ctlconfig;
pub mod endpoints;
pub mod facts;
pub mod files;
pub mod identity;
pub mod labels;
pub mod limits;
pub mod logging;
pub mod net;
pub mod nixos;
pub mod pages;
pub mod pem;
pub mod recipient;
pub mod selector;
pub mod shutdown;
pub mod sops;
pub mod standby;
pub mod tls;
pub mod token;
pub mod topology;
pub mod v1ext;

/// Generated types of the wire contract, package `lab.v1`.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("lab.v1");
}

/// Generated types of the coordinator's stored records, package `lab.store.v1`.
#[allow(missing_docs, clippy::all)]
pub mod store {
    /// Version 1 of the store records.
    pub mod v1 {
        tonic::include_proto!("lab.store.v1");
    }
}

/// The part of etcd's v3 API the coordinator's etcd store speaks (package `etcdserverpb`,
/// trimmed from etcd's own definitions, see `lab/etcd/rpc.proto`).
#[allow(missing_docs, clippy::all)]
pub mod etcd {
    tonic::include_proto!("etcdserverpb");
}

/// Version of labfleet, as the binaries report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
