//! A `labctl ui` process for the dashboard's tests, and plain HTTP/1.1 requests to it (for
//! what a browser would not send: no secret, a forged cross-site POST, a viewer calling an
//! action directly).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{bin, stop};

/// A running `labctl ui`.
pub struct Dashboard {
    /// The URL it printed, with the secret.
    pub url: String,
    /// `http://HOST:PORT`.
    pub base: String,
    /// `HOST:PORT`.
    pub addr: String,
    child: Option<Child>,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header lines as received (`name: value`, names lowercased).
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Answer {
    /// The first header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Dashboard {
    /// Starts `labctl --config CONFIG ui` (stderr into `log`) and waits for its URL.
    pub fn start(config: &Path, log: &Path) -> Dashboard {
        let mut child = Command::new(bin("labctl"))
            .arg("--config")
            .arg(config)
            .args(["ui", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log).expect("ui log")))
            .spawn()
            .expect("spawn labctl ui");
        let stdout = child.stdout.take().expect("labctl ui stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "labctl ui printed no URL within 20 s: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            });
        let url = line.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.contains("/?token="),
            "labctl ui printed {url:?}"
        );
        let base = url.split("/?").next().unwrap_or_default().to_owned();
        let addr = base.trim_start_matches("http://").to_owned();
        Dashboard {
            url,
            base,
            addr,
            child: Some(child),
        }
    }

    /// The secret of the printed URL.
    pub fn token(&self) -> &str {
        self.url.split("token=").nth(1).unwrap_or_default()
    }

    /// The URL of `path` with the secret (opens a session in a fresh browser).
    pub fn signed(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}token={}", self.base, self.token())
    }

    /// A raw HTTP/1.1 request (`Connection: close`) with extra header lines and a body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut s = std::net::TcpStream::connect(&self.addr).expect("connect to labctl ui");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).expect("send request");
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Answer {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    /// The session cookie (`name=value`) the secret buys.
    pub fn cookie(&self) -> String {
        let a = self.request("GET", &format!("/?token={}", self.token()), &[], "");
        assert_eq!(a.status, 303, "signing in: {a:?}");
        a.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned()
    }

    /// The CSRF token the pages carry (from the overview's meta tag), with `cookie`.
    pub fn csrf(&self, cookie: &str) -> String {
        let a = self.request("GET", "/", &[("Cookie", cookie)], "");
        assert_eq!(a.status, 200, "overview: {a:?}");
        a.body
            .split("<meta name=\"csrf\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("csrf meta tag")
            .to_owned()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, false);
        }
    }
}
