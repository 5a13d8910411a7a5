//! Reading a process's CPU time and memory from `/proc`, and raising this process's open-file
//! limit. Linux only; nothing here starts or stops processes.

use std::time::Duration;

use anyhow::Context as _;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProcSample {
    /// User plus system CPU time since the process started, in seconds.
    pub cpu_secs: f64,
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size since the process started, KiB.
    pub hwm_kib: u64,
    /// Proportional set size (shared pages divided among their users), KiB; 0 if unknown.
    pub pss_kib: u64,
    /// Private pages (clean + dirty, the process's own memory), KiB; 0 if unknown.
    pub private_kib: u64,
    /// Anonymous resident memory (heap, stacks: what the process itself costs), KiB.
    pub anon_kib: u64,
    /// Threads.
    pub threads: u64,
}

fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`.
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat; did the process exit?"))?;
    // The command name is in parentheses and may hold spaces; fields after it are plain.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/PID/stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3 of the man page, so utime (14) and stime (15) are 11 and 12.
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .context("unexpected /proc/PID/stat format")
    };
    let cpu_secs = (tick(11)? + tick(12)?) as f64 / clock_ticks();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // RSS counts clean pages of the executable and libraries that every process of the same
    // binary shares; smaps_rollup tells them apart (missing on old kernels: zeros).
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let rollup_field = |name: &str| -> u64 {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        cpu_secs,
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        pss_kib: rollup_field("Pss:"),
        private_kib: rollup_field("Private_Clean:") + rollup_field("Private_Dirty:"),
        anon_kib: field("RssAnon:"),
        threads: field("Threads:"),
    })
}

/// A reading of this process.
pub fn sample_self() -> anyhow::Result<ProcSample> {
    sample(std::process::id())
}

/// CPU used between two readings, as a percentage of one core over `over`.
pub fn cpu_percent(before: &ProcSample, after: &ProcSample, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    (after.cpu_secs - before.cpu_secs).max(0.0) / secs * 100.0
}

/// Raises RLIMIT_NOFILE to `want` (soft = hard), or to the current hard limit when raising the
/// hard limit is not permitted. Child processes (the coordinator, real agents) inherit it.
/// Returns the limit now in force.
pub fn raise_nofile(want: u64) -> anyhow::Result<u64> {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(RLIMIT_NOFILE)")?;
    let target = want.max(hard);
    if setrlimit(Resource::RLIMIT_NOFILE, target, target).is_ok() {
        return Ok(target);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(RLIMIT_NOFILE)")?;
    Ok(hard)
}

/// Total memory and CPU model of this machine, for the report.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    serde_json::json!({
        "cpu_model": model,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "mem_gib": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0,
        "kernel": kernel.trim(),
        "loadavg_at_start": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "date": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample_self().unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.hwm_kib >= s.rss_kib);
        assert!(s.threads >= 1);
        assert!(s.private_kib <= s.rss_kib);
    }

    #[test]
    fn percent_of_one_core() {
        let a = ProcSample {
            cpu_secs: 1.0,
            ..Default::default()
        };
        let b = ProcSample {
            cpu_secs: 1.5,
            ..Default::default()
        };
        let p = cpu_percent(&a, &b, Duration::from_secs(10));
        assert!((p - 5.0).abs() < 1e-9);
    }
}
