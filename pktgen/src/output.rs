//! Where frames go: a pcap file, a Linux interface, or UDP sockets.

use crate::afpacket::PacketSocket;
use crate::error::Context;
use crate::mmsg::Batch;
use crate::{bail, Result};
use netml_wire::frame::Endpoints;
use netml_wire::pcap;
use std::fs::File;
use std::io::{self, BufWriter};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A destination for frames.
pub trait Sink {
    /// Sends or records one frame of flow `flow` at `timestamp_ns`; its UDP payload starts
    /// at `payload_start`. Returns the bytes handed to the output.
    fn send(
        &mut self,
        frame: &[u8],
        timestamp_ns: u64,
        flow: usize,
        payload_start: usize,
    ) -> Result<usize>;
    /// Sends what a live output has batched; the send loop calls it before waiting for a
    /// paced frame's slot, so that no frame waits in a batch past its time.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// Flushes what is buffered.
    fn finish(&mut self) -> Result<()>;
    /// Whether frames leave in real time (and must be paced by waiting).
    fn is_live(&self) -> bool;
}

/// Writes a classic pcap file.
pub struct PcapSink {
    path: PathBuf,
    writer: Option<pcap::Writer<BufWriter<File>>>,
}

impl PcapSink {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).context(path.display())?;
        let writer =
            pcap::Writer::new(BufWriter::with_capacity(1 << 20, f)).context(path.display())?;
        Ok(PcapSink {
            path: path.to_path_buf(),
            writer: Some(writer),
        })
    }
}

impl Sink for PcapSink {
    fn send(&mut self, frame: &[u8], ts: u64, _flow: usize, _payload: usize) -> Result<usize> {
        match &mut self.writer {
            Some(w) => w.write(ts, frame).context(self.path.display())?,
            None => bail!("{}: written after finish", self.path.display()),
        }
        Ok(frame.len())
    }
    fn finish(&mut self) -> Result<()> {
        if let Some(w) = self.writer.take() {
            w.into_inner().context(self.path.display())?;
        }
        Ok(())
    }
    fn is_live(&self) -> bool {
        false
    }
}

/// Sends whole frames on a Linux interface through an AF_PACKET raw socket, `batch` frames
/// per `sendmmsg` call.
pub struct InterfaceSink {
    iface: String,
    socket: PacketSocket,
    batch: Batch,
}

impl InterfaceSink {
    /// Opens a raw socket bound to `iface` (needs root or CAP_NET_RAW) that sends up to
    /// `batch` frames per system call and, with `qdisc_bypass`, hands them straight to the
    /// driver (`PACKET_QDISC_BYPASS`: no queueing discipline, and no copy to packet
    /// sockets capturing on the interface, such as a tcpdump there).
    pub fn open(iface: &str, batch: usize, qdisc_bypass: bool) -> Result<Self> {
        let socket = PacketSocket::open(iface)?;
        if qdisc_bypass {
            socket
                .bypass_qdisc()
                .context(format_args!("PACKET_QDISC_BYPASS on {iface}"))?;
        }
        Ok(InterfaceSink {
            iface: iface.to_string(),
            socket,
            batch: Batch::new(batch),
        })
    }
}

impl Sink for InterfaceSink {
    fn send(&mut self, frame: &[u8], _ts: u64, _flow: usize, _payload: usize) -> Result<usize> {
        if self.batch.is_full() {
            self.flush()?;
        }
        self.batch.push(frame);
        Ok(frame.len())
    }
    fn flush(&mut self) -> Result<()> {
        self.socket
            .send_batch(&mut self.batch)
            .context(format_args!("sending on {}", self.iface))
    }
    fn finish(&mut self) -> Result<()> {
        self.flush()
    }
    fn is_live(&self) -> bool {
        true
    }
}

/// Sends only UDP payloads, one socket per flow bound to the flow's source address, so that
/// results come back to the socket that sent the image.
pub struct UdpSink {
    sockets: Vec<UdpSocket>,
    dst: SocketAddr,
    /// Payloads of one flow waiting for one `sendmmsg` on its socket.
    batch: Batch,
    batch_flow: usize,
}

impl UdpSink {
    /// Binds one socket per flow; consecutive payloads of a flow leave up to `batch` per
    /// `sendmmsg` call.
    pub fn bind(endpoints: &[Endpoints], batch: usize) -> Result<Self> {
        let mut sockets = Vec::with_capacity(endpoints.len());
        for ep in endpoints {
            let s = UdpSocket::bind(ep.src).map_err(|e| {
                crate::Error::new(format!(
                    "cannot bind a UDP socket to {} ({e}); --udp needs a local --src address, \
                     e.g. --src 127.0.0.1:40000",
                    ep.src
                ))
            })?;
            sockets.push(s);
        }
        let dst = endpoints.first().map(|e| e.dst);
        match dst {
            Some(dst) => Ok(UdpSink {
                sockets,
                dst,
                batch: Batch::new(batch),
                batch_flow: 0,
            }),
            None => bail!("no flows"),
        }
    }

    /// Clones of the flow sockets, for a receiver collecting results.
    pub fn try_clone_sockets(&self) -> Result<Vec<UdpSocket>> {
        self.sockets
            .iter()
            .map(|s| s.try_clone().context("cloning a UDP socket"))
            .collect()
    }
}

impl Sink for UdpSink {
    fn send(&mut self, frame: &[u8], _ts: u64, flow: usize, payload: usize) -> Result<usize> {
        let data = &frame[payload.min(frame.len())..];
        if !self.batch.is_empty() && (self.batch.is_full() || flow != self.batch_flow) {
            self.flush()?;
        }
        self.batch_flow = flow;
        self.batch.push(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> Result<()> {
        let fd = self.sockets[self.batch_flow].as_raw_fd();
        match self.batch.send(fd, Some(&self.dst)) {
            Ok(()) => Ok(()),
            Err(e) => bail!("sending to {}: {e}", self.dst),
        }
    }
    fn finish(&mut self) -> Result<()> {
        self.flush()
    }
    fn is_live(&self) -> bool {
        true
    }
}

/// Errors that mean "try again": interrupted, would block, no buffer space.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(libc::ENOBUFS)
}
