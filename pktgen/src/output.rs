//! Where frames go: a pcap file, a Linux interface, or UDP sockets.

use crate::afpacket::PacketSocket;
use crate::error::Context;
use crate::{bail, Result};
use netml_wire::frame::Endpoints;
use netml_wire::pcap;
use std::fs::File;
use std::io::{self, BufWriter};
use std::net::{SocketAddr, UdpSocket};
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

/// Sends whole frames on a Linux interface through an AF_PACKET raw socket.
pub struct InterfaceSink {
    iface: String,
    socket: PacketSocket,
}

impl InterfaceSink {
    /// Opens a raw socket bound to `iface` (needs root or CAP_NET_RAW).
    pub fn open(iface: &str) -> Result<Self> {
        Ok(InterfaceSink {
            iface: iface.to_string(),
            socket: PacketSocket::open(iface)?,
        })
    }
}

impl Sink for InterfaceSink {
    fn send(&mut self, frame: &[u8], _ts: u64, _flow: usize, _payload: usize) -> Result<usize> {
        self.socket
            .send(frame)
            .context(format_args!("sending on {}", self.iface))?;
        Ok(frame.len())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
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
}

impl UdpSink {
    /// Binds one socket per flow.
    pub fn bind(endpoints: &[Endpoints]) -> Result<Self> {
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
            Some(dst) => Ok(UdpSink { sockets, dst }),
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
        loop {
            match self.sockets[flow].send_to(data, self.dst) {
                Ok(n) => return Ok(n),
                // The local socket buffer is full: wait for the kernel to drain it.
                Err(e) if is_transient(&e) => std::thread::yield_now(),
                Err(e) => bail!("sending to {}: {e}", self.dst),
            }
        }
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
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
