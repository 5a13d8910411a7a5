//! One file over plain HTTP on a loopback port, for a test VM to download: QEMU's user-mode
//! network maps the guest's [`GUEST_HOST`] to the host's loopback, so the VM fetches from the
//! test process and nothing leaves the machine. Serves `GET /NAME` only (404 for anything else),
//! one connection at a time, and counts the downloads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The host's address as a VM on QEMU's user-mode network sees it.
pub const GUEST_HOST: &str = "10.0.2.2";

/// The server; stops when dropped.
pub struct FileServer {
    addr: SocketAddr,
    name: String,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Serves the file at `path` as `/NAME` (its file name) on 127.0.0.1 and a free port.
    pub fn serve(path: &Path) -> Result<FileServer, String> {
        let body =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{} has no file name", path.display()))?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("bind: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, served, path) = (stop.clone(), served.clone(), format!("/{name}"));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    if respond(&mut conn, &path, &body).unwrap_or(false) {
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        Ok(FileServer {
            addr,
            name,
            stop,
            served,
            thread: Some(thread),
        })
    }

    /// The file's URL as a VM on QEMU's user-mode network reaches it.
    pub fn guest_url(&self) -> String {
        format!("http://{GUEST_HOST}:{}/{}", self.addr.port(), self.name)
    }

    /// How many times the whole file was sent.
    pub fn downloads(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// Reads one request and answers it; true when the file was sent.
fn respond(conn: &mut TcpStream, path: &str, body: &[u8]) -> std::io::Result<bool> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let wanted = head.lines().next().and_then(|l| {
        let mut parts = l.split(' ');
        (parts.next() == Some("GET"))
            .then(|| parts.next())
            .flatten()
    });
    if wanted != Some(path) {
        conn.write_all(
            b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(false);
    }
    write!(
        conn,
        "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    Ok(true)
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
