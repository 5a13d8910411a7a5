//! `connect-storm` (all agents connect at once) and `idle` (the connected fleet at steady
//! heartbeats).

use std::time::{Duration, Instant};

use super::{Section, SimEnv};
use crate::procstat::{self, cpu_percent};
use crate::report::{self, mib, Summary};
use crate::sim::{self, Fleet};

/// How long the fleet may take to report every fact document after connecting.
const FACTS_TIMEOUT: Duration = Duration::from_secs(300);

/// Starts every agent at once and waits until all are in a session.
pub async fn connect_storm(env: &SimEnv) -> anyhow::Result<(Fleet, Section)> {
    let n = env.args.agents;
    let opts = env.fleet_options();
    let agents = sim::build_agents(&env.ids.list, &opts)?;
    let coord0 = env.coord.sample()?;
    let self0 = procstat::sample_self()?;
    let started = Instant::now();
    let fleet = Fleet::launch(agents, &opts);
    let all_online = fleet.wait_connected(n, env.args.connect_timeout).await?;
    let coord1 = env.coord.sample()?;
    let self1 = procstat::sample_self()?;
    // Hello and facts are stored after the welcome; wait for them too.
    let facts_deadline = Instant::now() + FACTS_TIMEOUT;
    while fleet.stats.facts_acked() < n && Instant::now() < facts_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_facts = started.elapsed();
    let coord2 = env.coord.sample()?;
    let list_started = Instant::now();
    let listed = env.admin.node_counts().await;
    let list_time = list_started.elapsed();

    let welcomes: Vec<f64> = fleet
        .stats
        .welcomes_since(0.0)
        .into_iter()
        .map(f64::from)
        .collect();
    let per_agent = Summary::of(&welcomes);
    let peak = report::peak_rate(&welcomes, 1.0);
    let attempts = fleet.stats.attempts();
    let secs = all_online.as_secs_f64();

    let mut s = Section::new(
        "connect_storm",
        format!("connect storm: {n} simulated agents connect at once"),
    );
    s.row("time until all online", format!("{secs:.2} s"));
    s.row("per-agent time to online", per_agent.brief(1.0, "s"));
    s.row(
        "handshakes/s (mTLS + Connect + Welcome)",
        format!(
            "{:.0} average, {peak} in the busiest second",
            n as f64 / secs
        ),
    );
    s.row(
        "connection attempts",
        format!("{attempts} ({} retries)", attempts.saturating_sub(n as u64)),
    );
    s.row(
        "time until all facts stored",
        format!(
            "{:.2} s ({} of {n})",
            all_facts.as_secs_f64(),
            fleet.stats.facts_acked()
        ),
    );
    s.row(
        "coordinator CPU until all online",
        format!(
            "{:.2} s ({:.0} % of one core)",
            coord1.cpu_secs - coord0.cpu_secs,
            cpu_percent(&coord0, &coord1, all_online)
        ),
    );
    s.row(
        "coordinator CPU until all facts stored",
        format!("{:.2} s", coord2.cpu_secs - coord0.cpu_secs),
    );
    s.row(
        "coordinator peak RSS (VmHWM)",
        format!(
            "{} (before agents: {})",
            mib(coord2.hwm_kib),
            mib(env.before_agents.rss_kib)
        ),
    );
    s.row(
        "lab-loadgen CPU until all online",
        format!(
            "{:.2} s (its RSS now {})",
            self1.cpu_secs - self0.cpu_secs,
            mib(self1.rss_kib)
        ),
    );
    match &listed {
        Ok((nodes, online)) => {
            s.row(
                "ListNodes",
                format!(
                    "{online} of {nodes} online; the call took {:.0} ms",
                    list_time.as_secs_f64() * 1e3
                ),
            );
            s.set("list_nodes_online", online);
        }
        Err(e) => {
            s.row("ListNodes", format!("FAILED: {e:#}"));
            s.set("list_nodes_error", format!("{e:#}"));
        }
    }
    for (e, count) in fleet.stats.errors().into_iter().take(3) {
        s.row(format!("session error ×{count}"), e);
    }
    s.set("agents", n);
    s.set("all_online_secs", secs);
    s.set("all_facts_secs", all_facts.as_secs_f64());
    s.set("online_time_secs", per_agent);
    s.set("handshakes_per_sec", n as f64 / secs);
    s.set("peak_handshakes_in_one_sec", peak);
    s.set("attempts", attempts);
    s.set(
        "coordinator_cpu_secs_until_online",
        coord1.cpu_secs - coord0.cpu_secs,
    );
    s.set(
        "coordinator_cpu_secs_until_facts",
        coord2.cpu_secs - coord0.cpu_secs,
    );
    s.set("coordinator_peak_rss_kib", coord2.hwm_kib);
    s.set(
        "coordinator_rss_before_agents_kib",
        env.before_agents.rss_kib,
    );
    s.set("loadgen_cpu_secs", self1.cpu_secs - self0.cpu_secs);
    s.set("loadgen_rss_kib", self1.rss_kib);
    s.set("list_nodes_ms", list_time.as_secs_f64() * 1e3);
    s.set("errors", fleet.stats.errors());
    Ok((fleet, s))
}

/// Measures the connected fleet for `duration` at steady heartbeats.
pub async fn idle(env: &SimEnv, fleet: &Fleet, duration: Duration) -> anyhow::Result<Section> {
    let n = env.args.agents;
    let interval = env.args.base.heartbeat_interval;
    // Settle: two heartbeat intervals after the storm.
    tokio::time::sleep(interval * 2).await;
    let coord0 = env.coord.sample()?;
    let self0 = procstat::sample_self()?;
    let started = Instant::now();
    let mut max_rss = coord0.rss_kib;
    while started.elapsed() < duration {
        let left = duration.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        max_rss = max_rss.max(env.coord.sample()?.rss_kib);
    }
    let took = started.elapsed();
    let coord1 = env.coord.sample()?;
    let self1 = procstat::sample_self()?;
    let connected = fleet.stats.connected();
    let grown = coord1.rss_kib.saturating_sub(env.before_agents.rss_kib);
    let per_agent_kib = grown as f64 / n.max(1) as f64;
    let cpu = cpu_percent(&coord0, &coord1, took);
    let heartbeats = n as f64 * took.as_secs_f64() / interval.as_secs_f64();
    let cpu_per_hb_us = (coord1.cpu_secs - coord0.cpu_secs) / heartbeats.max(1.0) * 1e6;

    let mut s = Section::new(
        "idle",
        format!(
            "idle: {n} agents, heartbeat every {}, measured {:.0} s",
            humantime::format_duration(interval),
            took.as_secs_f64()
        ),
    );
    s.row("agents connected at the end", format!("{connected} of {n}"));
    s.row(
        "coordinator RSS",
        format!(
            "{} (before agents {}, max during {})",
            mib(coord1.rss_kib),
            mib(env.before_agents.rss_kib),
            mib(max_rss)
        ),
    );
    s.row(
        "coordinator RSS per connected agent",
        format!("{per_agent_kib:.1} KiB"),
    );
    s.row("coordinator CPU", format!("{cpu:.2} % of one core"));
    s.row(
        "coordinator CPU per heartbeat",
        format!("{cpu_per_hb_us:.1} µs ({heartbeats:.0} heartbeats)"),
    );
    s.row(
        "coordinator private memory per connected agent",
        format!(
            "{:.1} KiB (private {} now, {} before agents)",
            coord1
                .private_kib
                .saturating_sub(env.before_agents.private_kib) as f64
                / n.max(1) as f64,
            mib(coord1.private_kib),
            mib(env.before_agents.private_kib)
        ),
    );
    s.row("coordinator threads", coord1.threads.to_string());
    s.row(
        "lab-loadgen CPU (all simulated agents)",
        format!("{:.2} % of one core", cpu_percent(&self0, &self1, took)),
    );
    s.set("agents", n);
    s.set("connected_at_end", connected);
    s.set("heartbeat_interval_ms", interval.as_millis() as u64);
    s.set("measured_secs", took.as_secs_f64());
    s.set("coordinator_rss_kib", coord1.rss_kib);
    s.set(
        "coordinator_rss_before_agents_kib",
        env.before_agents.rss_kib,
    );
    s.set("coordinator_rss_max_kib", max_rss);
    s.set("coordinator_rss_per_agent_kib", per_agent_kib);
    s.set("coordinator_private_kib", coord1.private_kib);
    s.set(
        "coordinator_private_before_agents_kib",
        env.before_agents.private_kib,
    );
    s.set("coordinator_cpu_percent", cpu);
    s.set("coordinator_cpu_us_per_heartbeat", cpu_per_hb_us);
    s.set("loadgen_cpu_percent", cpu_percent(&self0, &self1, took));
    anyhow::ensure!(
        connected == n,
        "only {connected} of {n} agents stayed connected"
    );
    Ok(s)
}
