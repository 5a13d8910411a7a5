//! A real headless browser for the dashboard's tests: Debian's `chromium`, driven over the
//! DevTools protocol through a pipe (`--remote-debugging-pipe`: commands go to the browser's
//! fd 3, answers and events come from its fd 4, each a JSON message ended by a NUL byte). No
//! crate and no WebSocket needed; the browser's own profile lives in a temp dir.
//!
//! Everything waits with deadlines; a browser that does not answer fails the test with what it
//! was asked.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A running headless Chromium with one page attached.
pub struct Browser {
    child: Child,
    to_browser: ChildStdin,
    from_browser: Receiver<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromium` headless (as root it needs `--no-sandbox`) with a viewport of
    /// `width`×`height` and attaches to its page.
    pub fn start(width: u32, height: u32) -> Browser {
        let found = Command::new("sh")
            .args(["-c", "command -v chromium"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "chromium not found: install Debian's package with 'apt-get install chromium' (.ci/run does)"
        );
        let profile = tempfile::tempdir().expect("browser profile dir");
        // fd 3 ← our stdin pipe, fd 4 → our stdout pipe; the browser's own stdout goes away.
        let script = "exec chromium --headless --no-sandbox --disable-gpu --no-first-run \
             --no-default-browser-check --disable-extensions --disable-background-networking \
             --disable-dev-shm-usage --hide-scrollbars --mute-audio \
             --remote-debugging-pipe --user-data-dir=\"$1\" --window-size=\"$2\" about:blank \
             3<&0 4>&1 0</dev/null 1>/dev/null";
        let mut child = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(profile.path())
            .arg(format!("{width},{height}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromium");
        let to_browser = child.stdin.take().expect("browser stdin");
        let mut from = child.stdout.take().expect("browser stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&message[..end]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            to_browser,
            from_browser: rx,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let targets = browser.command(None, "Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .expect("a page target")
            .to_owned();
        let attached = browser.command(
            None,
            "Target.attachToTarget",
            json!({"targetId": page, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    /// Sends a command (to the page's session, or the browser) and waits for its answer.
    fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).expect("json");
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .and_then(|_| self.to_browser.flush())
            .unwrap_or_else(|e| panic!("browser gone while sending {method}: {e}"));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from_browser.recv_timeout(left) {
                Ok(v) if v["id"] == id => {
                    if let Some(e) = v.get("error") {
                        panic!("browser refused {method} {message}: {e}");
                    }
                    return v["result"].clone();
                }
                Ok(_) => continue, // an event or an answer to an earlier command
                Err(RecvTimeoutError::Timeout) => panic!("browser did not answer {method}"),
                Err(RecvTimeoutError::Disconnected) => panic!("browser exited during {method}"),
            }
        }
    }

    /// A command to the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.command(Some(&session), method, params)
    }

    /// Evaluates `js` in the page (promises awaited) and returns its value; `Err` with the
    /// exception's text when it threw (e.g. while the page is being replaced).
    pub fn try_eval(&mut self, js: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        match r.get("exceptionDetails") {
            Some(e) => Err(e.to_string()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// Evaluates `js`; panics when it threw.
    pub fn eval(&mut self, js: &str) -> Value {
        self.try_eval(js)
            .unwrap_or_else(|e| panic!("page script {js} threw: {e}"))
    }

    /// Polls `js` every 50 ms until it is truthy; panics after `timeout` naming `what` and what
    /// `report` (a script) says about the page then.
    pub fn wait_for(&mut self, js: &str, timeout: Duration, what: &str, report: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(v) = self.try_eval(js) {
                let truthy = !matches!(&v, Value::Null | Value::Bool(false))
                    && v != json!("")
                    && v != json!(0);
                if truthy {
                    return v;
                }
            }
            if Instant::now() >= deadline {
                let seen = self.try_eval(report).unwrap_or_else(|e| json!(e));
                panic!("timed out after {timeout:?} waiting for: {what}\npage: {seen}");
            }
            std::thread::sleep(Duration::from_millis(50)); // sleep-ok: polling interval of wait_for
        }
    }

    /// Opens `url` and waits until the new page has loaded (redirects followed).
    pub fn goto(&mut self, url: &str) {
        let _ = self.try_eval("window.__leaving = true");
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for(
            "!window.__leaving && document.readyState === 'complete'",
            Duration::from_secs(20),
            &format!("page {url} loaded"),
            "location.href + ' ' + document.readyState",
        );
    }

    /// Light or dark colours (`prefers-color-scheme`).
    pub fn color_scheme(&mut self, dark: bool) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": if dark { "dark" } else { "light" }}]}),
        );
    }

    /// A PNG of the whole page (beyond the viewport) written to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let data = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, data).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
