//! Reading a program's stdout or stderr line by line on a task of its own, into a bounded
//! channel (a full channel stops reading, so the program waits on its pipe); lines longer than
//! the limit are cut and the rest skipped without being kept.

use lab_proto::v1::OutputStream;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

/// Sends each line of `r` (without its newline, cut at `max` bytes) to `tx`.
pub(super) fn spawn<R: AsyncRead + Unpin + Send + 'static>(
    r: Option<R>,
    stream: OutputStream,
    max: usize,
    tx: mpsc::Sender<(OutputStream, String)>,
) {
    let Some(r) = r else { return };
    tokio::spawn(async move {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match (&mut reader)
                .take(max as u64)
                .read_until(b'\n', &mut buf)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() != Some(&b'\n')
                && buf.len() >= max
                && skip_line(&mut reader).await.is_err()
            {
                break;
            }
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\n', '\r'])
                .to_owned();
            if tx.send((stream, line)).await.is_err() {
                break;
            }
        }
    });
}

/// Skips the rest of a line that was cut, without keeping it.
async fn skip_line<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<()> {
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            r.consume(i + 1);
            return Ok(());
        }
        let n = buf.len();
        r.consume(n);
    }
}
