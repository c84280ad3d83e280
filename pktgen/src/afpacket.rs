//! A minimal AF_PACKET raw socket for sending whole Ethernet frames.
#![allow(unsafe_code)]

use crate::mmsg::Batch;
use crate::output::is_transient;
use crate::{bail, Result};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A send-only raw socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a raw socket bound to `iface`.
    pub fn open(iface: &str) -> Result<Self> {
        let Ok(name) = CString::new(iface) else {
            bail!("bad interface name {iface:?}");
        };
        // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            bail!("no network interface named {iface:?}");
        }
        // Protocol 0: the socket only sends, so the kernel queues no received traffic to it.
        // SAFETY: plain system call with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EPERM) {
                bail!("opening a raw socket on {iface}: {e} (needs root or CAP_NET_RAW)");
            }
            bail!("opening a raw socket on {iface}: {e}");
        }
        // SAFETY: `fd` is a freshly opened descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            bail!(
                "binding a raw socket to {iface}: {}",
                io::Error::last_os_error()
            );
        }
        Ok(PacketSocket { fd })
    }

    /// Makes the socket hand frames straight to the driver (`PACKET_QDISC_BYPASS`): no
    /// queueing discipline, and packet sockets capturing on the interface do not see them.
    /// A frame the driver cannot take fails with ENOBUFS, which [`PacketSocket::send`] and
    /// [`PacketSocket::send_batch`] retry.
    pub fn bypass_qdisc(&self) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: `on` is a live c_int and the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends the frames of `batch` with `sendmmsg`, in order, retrying while the interface
    /// queue is full, and empties it.
    pub fn send_batch(&self, batch: &mut Batch) -> io::Result<()> {
        batch.send(self.fd.as_raw_fd(), None)
    }

    /// Sends one frame, retrying while the interface queue is full.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: the pointer and length describe the live `frame` slice.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    frame.as_ptr() as *const libc::c_void,
                    frame.len(),
                    0,
                )
            };
            if n >= 0 {
                if n as usize != frame.len() {
                    return Err(io::Error::other("short send on a raw socket"));
                }
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if !is_transient(&e) {
                return Err(e);
            }
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_interface_is_a_clear_error() {
        let e = PacketSocket::open("nosuchif0").unwrap_err();
        assert!(e.0.contains("no network interface"), "{e}");
    }

    #[test]
    fn sends_on_loopback_when_permitted() {
        match PacketSocket::open("lo") {
            Ok(s) => {
                let mut frame = vec![0u8; 60];
                frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
                s.send(&frame).unwrap();
                let mut b = Batch::new(3);
                for _ in 0..3 {
                    b.push(&frame);
                }
                s.send_batch(&mut b).unwrap();
                assert!(b.is_empty());
                s.bypass_qdisc().unwrap();
                b.push(&frame);
                s.send_batch(&mut b).unwrap();
            }
            Err(e) => eprintln!("skipping raw-socket send: {e}"),
        }
    }
}
