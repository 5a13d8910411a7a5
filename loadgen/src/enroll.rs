//! Enrolling simulated agents through the real token flow, and caching what they got.
//!
//! For each agent: the admin creates a one-time token bound to its name (`CreateToken`); the
//! agent makes its own P-256 key and a CSR, and calls `Enroll` over a TLS connection that trusts
//! the coordinator only through the CA pin in the token (as `lab-agent enroll` does). Workers
//! share nothing but the admin client; each has its own pinned connection and calls `Bootstrap`
//! first to check the pin.
//!
//! Cache: `DIR/identities.jsonl`, one enrolled identity per line, appended as agents enroll, so a
//! re-run against the same coordinator data directory skips the ones it has.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use lab_proto::client::{agent_client, connect, ConnectOptions};
use lab_proto::csr::{csr_for_key, new_key_pem};
use lab_proto::pem::certs_from_pem;
use lab_proto::tls::{cert_sha256, pinned_client_config};
use lab_proto::token::EnrollToken;
use lab_proto::v1::{BootstrapRequest, EnrollRequest};
use serde::{Deserialize, Serialize};

use crate::admin::Admin;

/// One simulated agent's credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimIdentity {
    /// Node name.
    pub name: String,
    /// Certificate chain (PEM) issued by the coordinator.
    pub cert_pem: String,
    /// The agent's private key (PEM).
    pub key_pem: String,
}

/// The identities to run with, and what enrolling them cost.
pub struct Identities {
    /// The first N identities, by name.
    pub list: Vec<SimIdentity>,
    /// How many were enrolled in this run (the rest came from the cache).
    pub enrolled_now: usize,
    /// Wall time of this run's enrollments.
    pub enroll_time: Duration,
}

impl Identities {
    /// Enrollments per second in this run (0 when none).
    pub fn rate(&self) -> f64 {
        if self.enrolled_now == 0 {
            return 0.0;
        }
        self.enrolled_now as f64 / self.enroll_time.as_secs_f64().max(1e-9)
    }
}

/// Name of the simulated agent number `i` (from 1).
pub fn sim_name(i: usize) -> String {
    format!("sim-{i:05}")
}

fn cache_file(dir: &Path) -> PathBuf {
    dir.join("identities.jsonl")
}

fn load_cache(dir: &Path) -> Vec<SimIdentity> {
    let text = std::fs::read_to_string(cache_file(dir)).unwrap_or_default();
    // A line cut short by an interrupted run is skipped; enrolling that name again then fails
    // (the coordinator has the node already), which asks for a fresh data directory.
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Makes sure agents `sim-00001..=sim-N` are enrolled; enrolls the missing ones with
/// `concurrency` workers (bounded by `timeout`).
pub async fn ensure(
    admin: &Admin,
    cache_dir: &Path,
    n: usize,
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<Identities> {
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("cannot create {}", cache_dir.display()))?;
    let cached = load_cache(cache_dir);
    let have: HashSet<String> = cached.iter().map(|i| i.name.clone()).collect();
    let missing: Vec<String> = (1..=n)
        .map(sim_name)
        .filter(|name| !have.contains(name))
        .collect();
    let started = Instant::now();
    let enrolled_now = missing.len();
    if !missing.is_empty() {
        eprintln!(
            "enrolling {} simulated agents ({} cached)...",
            missing.len(),
            have.len()
        );
        tokio::time::timeout(
            timeout,
            enroll_all(admin, cache_dir, missing, concurrency.max(1)),
        )
        .await
        .map_err(|_| anyhow::anyhow!("enrollment did not finish within {timeout:?}"))??;
    }
    let enroll_time = started.elapsed();
    let mut all = load_cache(cache_dir);
    let wanted: HashSet<String> = (1..=n).map(sim_name).collect();
    all.retain(|i| wanted.contains(&i.name));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all.dedup_by(|a, b| a.name == b.name);
    anyhow::ensure!(
        all.len() == n,
        "only {} of {n} identities are enrolled",
        all.len()
    );
    Ok(Identities {
        list: all,
        enrolled_now,
        enroll_time,
    })
}

async fn enroll_all(
    admin: &Admin,
    cache_dir: &Path,
    names: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let names = Arc::new(names);
    let next = Arc::new(AtomicUsize::new(0));
    let cache = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cache_file(cache_dir))?,
    ));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(names.len()) {
        let (admin, names, next, cache) =
            (admin.clone(), names.clone(), next.clone(), cache.clone());
        workers.spawn(async move { worker(admin, names, next, cache).await });
    }
    while let Some(joined) = workers.join_next().await {
        joined??;
    }
    Ok(())
}

async fn worker(
    admin: Admin,
    names: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    cache: Arc<Mutex<std::fs::File>>,
) -> anyhow::Result<()> {
    let mut client = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(name) = names.get(i) else {
            return Ok(());
        };
        let token_text = admin.create_token(name).await?;
        let token: EnrollToken = token_text.parse()?;
        if client.is_none() {
            let tls = pinned_client_config(token.ca_pin)?;
            let channel = connect(&admin.addr, tls, &ConnectOptions::default()).await?;
            let mut c = agent_client(channel);
            let boot = c
                .bootstrap(BootstrapRequest {})
                .await
                .map_err(|s| anyhow::anyhow!("Bootstrap failed: {}", s.message()))?
                .into_inner();
            let ca = certs_from_pem(&boot.ca_pem)?;
            anyhow::ensure!(
                ca.first().map(|c| cert_sha256(c)) == Some(token.ca_pin),
                "the coordinator's CA does not match the pin in the token"
            );
            client = Some(c);
        }
        let Some(c) = client.as_mut() else {
            continue;
        };
        let key_pem = new_key_pem()?;
        let csr_pem = csr_for_key(&key_pem)?;
        let resp = c
            .enroll(EnrollRequest {
                token: token_text,
                csr_pem,
                node_name: name.clone(),
                default_node_name: String::new(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("Enroll of {name} failed: {}", s.message()))?
            .into_inner();
        anyhow::ensure!(
            resp.node_name == *name,
            "asked for {name}, got {}",
            resp.node_name
        );
        let line = serde_json::to_string(&SimIdentity {
            name: name.clone(),
            cert_pem: resp.certificate_pem,
            key_pem,
        })?;
        let mut file = cache.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(file, "{line}")?;
        if (i + 1).is_multiple_of(1000) {
            eprintln!("  {} enrolled", i + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_number_order() {
        assert_eq!(sim_name(7), "sim-00007");
        assert!(sim_name(99) < sim_name(100));
        assert!(sim_name(9999) < sim_name(10000));
    }

    #[test]
    fn cache_skips_broken_lines() {
        let dir = tempfile::tempdir().unwrap();
        let id = SimIdentity {
            name: "sim-00001".into(),
            cert_pem: "c".into(),
            key_pem: "k".into(),
        };
        let text = format!(
            "{}\n{{\"name\": \"sim-0",
            serde_json::to_string(&id).unwrap()
        );
        std::fs::write(cache_file(dir.path()), text).unwrap();
        let got = load_cache(dir.path());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "sim-00001");
    }
}
