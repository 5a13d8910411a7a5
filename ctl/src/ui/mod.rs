//! `labctl ui`: the web dashboard, served on the operator's own machine (like `kubectl proxy`).
//!
//! A local HTTP server (axum), bound to loopback by default, renders pages from the
//! coordinator's `OperatorService`, called with the labctl context's own mTLS identity: the
//! dashboard can do exactly what that identity may (a viewer sees everything and changes
//! nothing), and nothing new listens on the coordinator. The only way in is the URL printed at
//! start, which holds a random per-run secret (see `auth`). Pages are server-rendered HTML;
//! the stylesheet and a small plain script are compiled in (`assets`); the job page follows
//! `WatchJob` through server-sent events (`live`).
//!
//! Module map: `server` (routes, state, errors), `auth` (secret, cookie, origin, CSRF), `html`
//! (escaping and the page frame), `pages/*` (one module per page), `actions` (cancel, run
//! again, pause, resume), `live` (the job's event stream), `assets`.
//! It must not keep fleet state of its own: every page asks the coordinator afresh.

pub mod actions;
pub mod assets;
pub mod auth;
pub mod html;
pub mod live;
pub mod pages;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use lab_proto::ctlconfig::Context;
use lab_proto::v1::WhoAmIRequest;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::failure::{from_status, Failure};

/// How `labctl ui` was asked to run.
#[derive(Debug, Clone)]
pub struct UiOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// A non-loopback `listen` was asked for on purpose.
    pub allow_remote: bool,
    /// Start the browser on the URL.
    pub open: bool,
}

/// Refuses a non-loopback address unless it was allowed. Pure.
pub fn check_listen(options: &UiOptions) -> Result<(), Failure> {
    if options.listen.ip().is_loopback() || options.allow_remote {
        return Ok(());
    }
    Err(Failure::Usage(format!(
        "--listen {} is not a loopback address: anyone who can reach it and has the printed URL acts as this context's identity; add --allow-remote to do that on purpose, or listen on 127.0.0.1",
        options.listen
    )))
}

/// The `Host` values a loopback dashboard accepts. Pure.
pub fn loopback_hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut hosts = vec![format!("localhost:{port}")];
    hosts.push(match addr {
        SocketAddr::V4(a) => format!("{}:{port}", a.ip()),
        SocketAddr::V6(a) => format!("[{}]:{port}", a.ip()),
    });
    hosts
}

/// The URL to print: the address (127.0.0.1 for an unspecified one) with the secret.
fn url(addr: SocketAddr, secret: &str) -> String {
    let host = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        SocketAddr::V6(a) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        a => a.to_string(),
    };
    format!("http://{host}/?token={secret}")
}

/// Runs the dashboard until `shutdown`.
pub async fn run(
    ctx: Context,
    options: UiOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    check_listen(&options)?;
    let mut client = crate::context::dial(&ctx).await?;
    let me = client
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(from_status)?
        .into_inner();
    let listener = TcpListener::bind(options.listen).await.map_err(|e| {
        Failure::Usage(format!(
            "cannot listen on {}: {e}; pick another address with --listen",
            options.listen
        ))
    })?;
    let addr = listener.local_addr()?;
    let keys = auth::Keys::random(addr.port());
    let url = url(addr, &keys.secret);
    let loopback = addr.ip().is_loopback();
    if !loopback {
        crate::errln!(
            "warning: labctl ui listens on {addr}, not only on this machine; anyone who can reach it and has the URL acts as '{}' ({:?})",
            me.user,
            me.role()
        );
    }
    crate::errln!(
        "labctl ui: context '{}' (coordinator {}) as '{}'; open this URL (it holds this run's secret), Ctrl-C stops:",
        ctx.name,
        ctx.servers.join(", "),
        me.user
    );
    crate::outln!("{url}")?;
    if options.open {
        open_browser(&url).await;
    }
    let ui = Arc::new(server::Ui {
        client,
        keys,
        context: ctx.name.clone(),
        coordinator: ctx.servers.join(", "),
        hosts: loopback.then(|| loopback_hosts(addr)),
        shutdown,
    });
    server::serve(listener, ui).await
}

/// Starts `$BROWSER` or `xdg-open` on `url`; a failure is only reported.
async fn open_browser(url: &str) {
    let program = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "xdg-open".into());
    let started = tokio::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = started {
        crate::errln!("cannot start the browser ({program}: {e}); open the URL above yourself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(listen: &str, allow_remote: bool) -> UiOptions {
        UiOptions {
            listen: listen.parse().unwrap(),
            allow_remote,
            open: false,
        }
    }

    #[test]
    fn only_loopback_without_the_flag() {
        assert!(check_listen(&options("127.0.0.1:0", false)).is_ok());
        assert!(check_listen(&options("[::1]:8080", false)).is_ok());
        let e = check_listen(&options("0.0.0.0:8080", false)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        assert!(check_listen(&options("0.0.0.0:8080", true)).is_ok());
    }

    #[test]
    fn urls_and_hosts() {
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(url(a, "abc"), "http://127.0.0.1:4000/?token=abc");
        assert_eq!(
            url("0.0.0.0:5".parse().unwrap(), "x"),
            "http://127.0.0.1:5/?token=x"
        );
        assert_eq!(loopback_hosts(a), ["localhost:4000", "127.0.0.1:4000"]);
        assert_eq!(
            loopback_hosts("[::1]:9".parse().unwrap()),
            ["localhost:9", "[::1]:9"]
        );
    }
}
