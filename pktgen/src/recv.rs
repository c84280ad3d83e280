//! Receiving result messages and matching them against the manifest.

use crate::error::Context;
use crate::manifest::Entry;
use crate::pace::realtime_ns;
pub use crate::report::{status_name, Answer, Latency, Report};
use crate::Result;
use netml_wire::result;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A datagram as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Address of the socket it arrived on (the flow's source address, as the pipeline saw
    /// it).
    pub local: SocketAddr,
    /// Who sent it.
    pub peer: SocketAddr,
    /// Wall-clock arrival time (ns since the Unix epoch).
    pub recv_ns: u64,
    /// The UDP payload.
    pub data: Vec<u8>,
}

/// Background threads reading result datagrams from a set of sockets.
pub struct Listener {
    rx: mpsc::Receiver<Arrival>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Listener {
    /// Starts one reader thread per socket.
    pub fn spawn(sockets: Vec<UdpSocket>) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for s in sockets {
            // The timeout bounds how long a reader takes to notice `stop`.
            s.set_read_timeout(Some(Duration::from_millis(50)))
                .context("setting a socket timeout")?;
            let local = s.local_addr().context("reading a socket address")?;
            let (tx, stop) = (tx.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    match s.recv_from(&mut buf) {
                        Ok((n, peer)) => {
                            let a = Arrival {
                                local,
                                peer,
                                recv_ns: realtime_ns(),
                                data: buf[..n].to_vec(),
                            };
                            if tx.send(a).is_err() {
                                return;
                            }
                        }
                        Err(_) => continue,
                    }
                }
            }));
        }
        Ok(Listener { rx, stop, threads })
    }

    /// Binds and listens on `addrs`.
    pub fn bind(addrs: &[SocketAddr]) -> Result<Self> {
        let sockets = addrs
            .iter()
            .map(|a| UdpSocket::bind(a).context(format_args!("listening on {a}")))
            .collect::<Result<Vec<_>>>()?;
        Self::spawn(sockets)
    }

    /// Stops and joins the reader threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            // A reader that panicked has nothing left to report.
            let _ = t.join();
        }
    }
}

/// Matches arrivals to manifest entries.
#[derive(Debug)]
pub struct Matcher {
    report: Report,
    index: HashMap<(u8, u32), Vec<usize>>,
    answered: Vec<bool>,
    answered_intact: usize,
    answered_all: usize,
}

impl Matcher {
    /// A matcher for `manifest`.
    pub fn new(manifest: Vec<Entry>) -> Self {
        let mut index: HashMap<(u8, u32), Vec<usize>> = HashMap::new();
        for (i, e) in manifest.iter().enumerate() {
            index.entry((e.model, e.image)).or_default().push(i);
        }
        Matcher {
            answered: vec![false; manifest.len()],
            report: Report {
                manifest,
                ..Report::default()
            },
            index,
            answered_intact: 0,
            answered_all: 0,
        }
    }

    /// Takes one datagram.
    pub fn add(&mut self, a: &Arrival) {
        let r = match result::Repr::parse(&result::Packet::new_unchecked(&a.data[..])) {
            Ok(r) => r,
            Err(_) => {
                self.report.malformed += 1;
                return;
            }
        };
        let Some(cands) = self.index.get(&(r.model, r.image)) else {
            self.report.unexpected += 1;
            return;
        };
        let m = &self.report.manifest;
        // Image ids repeat across flows, so the socket the result came back to (the flow's
        // source address) picks the flow; a lone candidate is taken even if addresses were
        // rewritten on the way.
        let same_src = |i: &usize| {
            let src = m[*i].src;
            src.port() == a.local.port()
                && (a.local.ip().is_unspecified() || src.ip() == a.local.ip())
        };
        let chosen = if cands.len() == 1 {
            Some(cands[0])
        } else {
            let by_src: Vec<usize> = cands.iter().copied().filter(same_src).collect();
            let unanswered = by_src.iter().copied().find(|i| !self.answered[*i]);
            unanswered.or(by_src.first().copied())
        };
        let Some(i) = chosen else {
            self.report.unexpected += 1;
            return;
        };
        if self.answered[i] {
            self.report.duplicates += 1;
            return;
        }
        self.answered[i] = true;
        self.answered_intact += m[i].intact as usize;
        self.answered_all += 1;
        // An `incomplete` result whose fragment 0 never arrived echoes 0: the manifest
        // knows when the image was sent.
        let sent_ns = match r.sender_timestamp {
            0 => m[i].sender_timestamp,
            ts => ts,
        };
        self.report.answers.push(Answer {
            entry: i,
            status: r.status,
            arrived: r.arrived,
            top1: r.top_k.first().copied(),
            // 0 is "not computed" (docs/protocol.md §9), unless the tensor's CRC is 0.
            crc_match: (r.crc32 != 0 || m[i].crc32 == 0).then_some(r.crc32 == m[i].crc32),
            latency_ns: (a.recv_ns as i128 - sent_ns as i128)
                .clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        });
    }

    /// Whether every intact image has an answer (false for a manifest without any).
    pub fn complete(&self) -> bool {
        let expected = self.report.expected();
        expected > 0 && self.answered_intact == expected
    }

    /// Whether every image of the manifest, damaged ones included, has an answer.
    pub fn all_answered(&self) -> bool {
        self.answered_all == self.answered.len()
    }

    /// The report so far.
    pub fn into_report(self) -> Report {
        self.report
    }
}

/// How long `recv` waits, once every intact image is answered, for the `incomplete` answers
/// of damaged images: longer than the pipeline's default eviction timeout (500 ms), after
/// which it answers them.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);

/// Collects from `listener` until every image is answered, or every intact image is answered
/// and `linger` more has passed (for the `incomplete` answers of damaged images), or
/// `deadline` passes.
pub fn collect(
    listener: &Listener,
    manifest: Vec<Entry>,
    deadline: Instant,
    linger: Duration,
) -> Report {
    let mut m = Matcher::new(manifest);
    let mut stop_at = deadline;
    let mut lingering = false;
    while !m.all_answered() {
        if !lingering && m.complete() {
            lingering = true;
            stop_at = stop_at.min(Instant::now() + linger);
        }
        let left = stop_at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match listener.rx.recv_timeout(left) {
            Ok(a) => m.add(&a),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Take what already arrived, so duplicates and stragglers are counted.
    while let Ok(a) = listener.rx.try_recv() {
        m.add(&a);
    }
    m.into_report()
}
