//! `ui`: how long `labctl ui` takes to answer each dashboard page at fleet size. One `true`
//! job to every agent runs first (so the job page has N tasks); then the `labctl` next to this
//! program serves the dashboard with the admin's config, and every page is fetched `rounds`
//! times one after the other over HTTP/1.1 on loopback (after one unmeasured fetch). A figure
//! is the time from sending the request to the last byte of the answer: the coordinator calls
//! and the rendering, as a browser waits for them (without the browser's own layout time).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Section, SimEnv};
use crate::admin::ExecJob;
use crate::procstat;
use crate::report::{mib, Summary};

/// One HTTP answer: status, `Set-Cookie` (if any), body length.
struct Answer {
    status: u16,
    cookie: Option<String>,
    bytes: usize,
}

async fn get(addr: &str, path: &str, cookie: &str) -> anyhow::Result<Answer> {
    let mut s = TcpStream::connect(addr).await?;
    lab_proto::net::set_nodelay(&mut s);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    Ok(Answer {
        status,
        cookie,
        bytes: body.len(),
    })
}

/// Measures every page `rounds` times.
pub async fn pages(env: &SimEnv, bin_dir: &Path, rounds: usize) -> anyhow::Result<Section> {
    let n = env.args.agents;
    let (job, _) = env
        .admin
        .submit(&ExecJob::everywhere(&["true"], Duration::from_secs(600)))
        .await?;
    env.admin
        .finish_or_cancel(&job, env.args.job_timeout)
        .await?;
    let mut child = tokio::process::Command::new(bin_dir.join("labctl"))
        .arg("--config")
        .arg(env.coord.labctl_config())
        .args(["ui", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut url = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).read_line(&mut url),
    )
    .await??;
    let url = url.trim();
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("labctl ui printed {url:?}"))?;
    let (addr, signin) = rest
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("labctl ui printed {url:?}"))?;
    let cookie = get(addr, &format!("/{signin}"), "")
        .await?
        .cookie
        .ok_or_else(|| anyhow::anyhow!("no session cookie from {url}"))?;
    let node = env
        .ids
        .list
        .first()
        .map(|i| i.name.clone())
        .unwrap_or_default();
    let last_page = n.div_ceil(100);
    let pages = [
        ("overview", "/".to_owned()),
        ("nodes (offline first, page 1)", "/nodes".to_owned()),
        (
            "nodes sorted by memory, last page",
            format!("/nodes?sort=memory&page={last_page}"),
        ),
        (
            "nodes with a selector",
            "/nodes?l=status%3Donline".to_owned(),
        ),
        ("node", format!("/nodes/{node}")),
        ("jobs", "/jobs".to_owned()),
        ("job with N tasks (page 1)", format!("/jobs/{job}")),
        ("backups", "/backups".to_owned()),
        ("schedules", "/schedules".to_owned()),
        ("topology", "/topology".to_owned()),
    ];
    let pid = child.id().unwrap_or(0);
    let before = procstat::sample(pid)?;
    let started = Instant::now();
    let mut s = Section::new(
        "ui",
        format!("labctl ui: page answer times with {n} agents, {rounds} fetches per page (send -> last byte)"),
    );
    let mut figures = serde_json::Map::new();
    for (name, path) in pages {
        let warm = get(addr, &path, &cookie).await?;
        anyhow::ensure!(warm.status == 200, "{path}: HTTP {}", warm.status);
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            let a = get(addr, &path, &cookie).await?;
            times.push(t.elapsed().as_secs_f64());
            anyhow::ensure!(a.status == 200, "{path}: HTTP {}", a.status);
        }
        let summary = Summary::of(&times);
        s.row(
            name,
            format!("{} ({} KiB)", summary.brief(1e3, "ms"), warm.bytes / 1024),
        );
        figures.insert(
            name.to_owned(),
            serde_json::json!({"path": path, "secs": summary, "bytes": warm.bytes}),
        );
    }
    let after = procstat::sample(pid)?;
    s.row(
        "labctl ui CPU",
        format!(
            "{:.0} % of one core while measuring",
            procstat::cpu_percent(&before, &after, started.elapsed())
        ),
    );
    s.row("labctl ui RSS after", mib(after.rss_kib));
    s.set("agents", n);
    s.set("rounds", rounds);
    s.set("pages", figures);
    s.set("labctl_rss_kib", after.rss_kib);
    let _ = child.kill().await;
    Ok(s)
}
