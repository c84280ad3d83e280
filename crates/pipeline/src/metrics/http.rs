//! A minimal HTTP/1.x server for `GET /metrics`, on one thread of its own.
//!
//! One connection at a time, each bounded: the request head must arrive within
//! [`IO_TIMEOUT`] and fit in [`MAX_HEAD`] bytes, the answer must be taken within
//! [`IO_TIMEOUT`] per write, and the connection is closed after one answer. A client that
//! stalls costs the next scrape at most that long; nothing else waits on this thread.

use super::{encode, Latest};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long a client may take to send its request, and to take each part of the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest request head read (request line and headers).
const MAX_HEAD: usize = 8192;

/// Starts the thread serving `latest` on `listener`.
pub(super) fn spawn(listener: TcpListener, latest: Latest) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("netml-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => {
                        if let Err(e) = serve(stream, &latest) {
                            tracing::debug!("metrics client: {e}");
                        }
                    }
                    // Out of file descriptors, say: do not spin.
                    Err(e) => {
                        tracing::warn!("metrics endpoint: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
    Ok(())
}

fn serve(mut stream: TcpStream, latest: &Latest) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let Some(head) = read_head(&mut stream)? else {
        return respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
        );
    };
    let mut words = head.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let sample = latest.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match sample {
                Some(s) => {
                    let body = encode::render(&s);
                    respond(&mut stream, "200 OK", encode::CONTENT_TYPE, body.as_bytes())
                }
                None => respond(
                    &mut stream,
                    "503 Service Unavailable",
                    "text/plain",
                    b"the pipeline has not started yet\n",
                ),
            }
        }
        ("GET", "/") => respond(
            &mut stream,
            "200 OK",
            "text/plain",
            b"netml: Prometheus metrics at /metrics\n",
        ),
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", b"not found\n"),
        _ => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET\n",
        ),
    }
}

/// The request line, once the whole head has arrived; `None` when it is malformed or too
/// long, or the client took longer than [`IO_TIMEOUT`] overall.
fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let t0 = Instant::now();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() >= MAX_HEAD || t0.elapsed() > IO_TIMEOUT {
            return Ok(None);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(std::str::from_utf8(line)
        .ok()
        .map(|l| l.trim_end_matches('\r').to_string()))
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let t0 = Instant::now();
    stream.write_all(head.as_bytes())?;
    // In pieces, so that a client taking the answer a byte at a time is cut off after about
    // two timeouts instead of one timeout per byte.
    for piece in body.chunks(16 * 1024) {
        if t0.elapsed() > IO_TIMEOUT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client too slow to take the answer",
            ));
        }
        stream.write_all(piece)?;
    }
    stream.flush()
}
