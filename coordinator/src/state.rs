//! The coordinator's shared state: store, CA, live sessions and settings, loaded once per process.

use std::time::Duration;

use lab_proto::identity::{Identity, NodeName, SpiffeId, TrustDomain, UserName};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ca::Ca;
use crate::datadir::{DataDir, Settings};
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::store::{Location, Store, StoreOptions};

/// Tunables of a running coordinator.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Heartbeat interval handed to agents.
    pub heartbeat_interval: Duration,
    /// Lifetime of node certificates issued by enroll and renew.
    pub node_cert_ttl: Duration,
    /// Job engine tunables.
    pub jobs: crate::jobs::JobSettings,
    /// Size of the store's page cache in bytes.
    pub store_cache_bytes: u64,
    /// Free space of the data directory below which new jobs, enrollments and schedules are
    /// refused, bytes.
    pub min_free_bytes: u64,
    /// Limits on connections without a client certificate.
    pub connections: crate::accept::ConnectionLimits,
    /// Where the store lives; `None`: sled in the data directory.
    pub store: Option<Location>,
    /// etcd: TTL of the leader lease (a standby takes over this long after the leader stopped
    /// renewing it).
    pub leader_ttl: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            heartbeat_interval: lab_proto::limits::DEFAULT_HEARTBEAT_INTERVAL,
            node_cert_ttl: lab_proto::limits::DEFAULT_NODE_CERT_TTL,
            jobs: crate::jobs::JobSettings::default(),
            store_cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
            min_free_bytes: crate::store::DEFAULT_MIN_FREE_MIB * 1024 * 1024,
            connections: crate::accept::ConnectionLimits::default(),
            store: None,
            leader_ttl: crate::store::leader::DEFAULT_TTL,
        }
    }
}

/// Everything the RPC handlers share.
pub struct Coordinator {
    /// Durable state.
    pub store: Store,
    /// The CA.
    pub ca: Ca,
    /// Trust domain of the CA.
    pub trust_domain: TrustDomain,
    /// What init decided.
    pub settings: Settings,
    /// Tunables.
    pub options: ServeOptions,
    /// Live agent sessions.
    pub sessions: Sessions,
    /// Counters and gauges.
    pub metrics: Metrics,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Background tasks (sessions, sweepers) that shutdown waits for.
    pub tasks: TaskTracker,
    /// The job engine's in-memory part.
    pub jobs: crate::jobs::Jobs,
    /// Serializes enrollments, so name checks, token use and node creation are one step.
    pub enroll_lock: tokio::sync::Mutex<()>,
    /// The schedules' in-memory part (the lock serializing changes to schedule records).
    pub schedules: crate::schedules::Schedules,
    /// How often peers may fail to enroll and renew.
    pub limits: crate::ratelimit::AccessLimits,
    /// Operators' open streams and the lock serializing user changes.
    pub operators: crate::operators::Operators,
    /// The lab's topology from every node's facts.
    pub topology: crate::topology::TopologyIndex,
    /// When this process loaded its store and became the serving coordinator (seconds since
    /// the epoch).
    pub started_unix: i64,
}

impl Coordinator {
    /// Loads the coordinator from an initialized data directory and its sled store.
    pub fn open(
        dir: &DataDir,
        options: ServeOptions,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let store = Store::open_with(&dir.state(), &Self::store_options(&options))?;
        Self::with_store(dir, store, options, shutdown)
    }

    /// How `serve` opens its store (it must exist: `init` made it).
    pub fn store_options(options: &ServeOptions) -> StoreOptions {
        StoreOptions {
            cache_bytes: options.store_cache_bytes,
            min_free_bytes: options.min_free_bytes,
            create: false,
            fence: None,
        }
    }

    /// Loads the coordinator from an initialized data directory with an open store.
    pub fn with_store(
        dir: &DataDir,
        store: Store,
        options: ServeOptions,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let settings = Settings::load(dir)?;
        let read = |p: std::path::PathBuf| {
            std::fs::read_to_string(&p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
        };
        let ca = Ca::load(&read(dir.ca_cert())?, &read(dir.ca_key())?)?;
        let trust_domain = settings
            .trust_domain
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.settings().display()))?;
        let jobs = crate::jobs::Jobs::new(options.jobs.clone());
        let limits = crate::ratelimit::AccessLimits::new(options.node_cert_ttl);
        let topology = crate::topology::TopologyIndex::new(crate::topology::own_product_uuid());
        topology.load(&store)?;
        let mut metrics = Metrics::default();
        metrics.register_store(store.stats());
        Ok(Coordinator {
            store,
            ca,
            trust_domain,
            settings,
            options,
            sessions: Sessions::default(),
            metrics,
            shutdown,
            tasks: TaskTracker::new(),
            jobs,
            enroll_lock: tokio::sync::Mutex::new(()),
            schedules: Default::default(),
            limits,
            operators: Default::default(),
            topology,
            started_unix: crate::clock::now_ms() / 1000,
        })
    }

    /// What the job engine works with, lent from this coordinator.
    pub fn job_cx(&self) -> crate::jobs::Cx<'_> {
        crate::jobs::Cx {
            store: &self.store,
            jobs: &self.jobs,
            sessions: &self.sessions,
            topology: &self.topology,
        }
    }

    /// The SPIFFE id of a node in this trust domain.
    pub fn node_id(&self, name: &NodeName) -> SpiffeId {
        SpiffeId {
            trust_domain: self.trust_domain.clone(),
            identity: Identity::Node(name.clone()),
        }
    }

    /// Issues and records a certificate for `id` (see [`crate::certs::issue`]).
    pub async fn issue_certificate(
        &self,
        id: &SpiffeId,
        csr_pem: &str,
        ttl: Duration,
    ) -> Result<crate::ca::Issued, crate::error::ApiError> {
        let key = crate::certs::PublicKey::Csr(csr_pem);
        crate::certs::issue(&self.ca, &self.store, id, key, ttl).await
    }

    /// The SPIFFE id of an operator in this trust domain.
    pub fn operator_id(&self, user: &UserName) -> SpiffeId {
        SpiffeId {
            trust_domain: self.trust_domain.clone(),
            identity: Identity::Operator(user.clone()),
        }
    }
}

impl crate::inventory::Live for Coordinator {
    fn online(&self, node: &str) -> bool {
        self.sessions.is_online(node)
    }

    fn hypervisor(&self, node: &str) -> Option<String> {
        self.topology.hypervisor_of(node)
    }
}
