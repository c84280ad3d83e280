//! Batched sending: frames copied into a reusable batch and handed to the kernel with one
//! `sendmmsg(2)` per batch instead of one `send(2)` per frame.
#![allow(unsafe_code)]

use crate::output::is_transient;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Frames per `sendmmsg` call unless `--batch` says otherwise.
pub const DEFAULT_BATCH: u16 = 64;

/// Frames waiting to be sent, and the kernel's view of them (rebuilt for every call, the
/// allocations kept).
#[derive(Debug)]
pub struct Batch {
    /// One buffer per slot; the first `len` hold frames.
    bufs: Vec<Vec<u8>>,
    len: usize,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovecs` and `headers` are only written and read inside
// `send`, where they point into `bufs` and the caller's destination of the same call;
// between calls they are stale values that nothing dereferences.
unsafe impl Send for Batch {}

impl Batch {
    /// An empty batch of up to `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> Batch {
        let capacity = capacity.max(1);
        Batch {
            bufs: (0..capacity).map(|_| Vec::new()).collect(),
            len: 0,
            iovecs: Vec::with_capacity(capacity),
            headers: Vec::with_capacity(capacity),
        }
    }

    /// Copies `frame` into the next slot; the caller sends when [`Batch::is_full`].
    pub fn push(&mut self, frame: &[u8]) {
        let buf = &mut self.bufs[self.len];
        buf.clear();
        buf.extend_from_slice(frame);
        self.len += 1;
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the next push needs a send first.
    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// Sends every waiting frame on `fd` (to `dst`, or to where the socket is bound or
    /// connected when none), in order, retrying while the kernel has no room (a full
    /// socket or interface queue), and empties the batch. Each frame leaves whole or the
    /// call fails.
    pub fn send(&mut self, fd: RawFd, dst: Option<&SocketAddr>) -> io::Result<()> {
        let n = self.len;
        if n == 0 {
            return Ok(());
        }
        let mut addr = dst.map(SockAddr::from);
        let (name, namelen) = match &mut addr {
            Some(a) => (a.as_mut_ptr(), a.len),
            None => (std::ptr::null_mut(), 0),
        };
        self.iovecs.clear();
        self.iovecs
            .extend(self.bufs[..n].iter_mut().map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            }));
        self.headers.clear();
        for iov in self.iovecs.iter_mut() {
            // SAFETY: msghdr and mmsghdr are plain old data; all-zero is a valid value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = name;
            h.msg_hdr.msg_namelen = namelen;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            self.headers.push(h);
        }
        let mut sent = 0;
        while sent < n {
            let rest = &mut self.headers[sent..];
            // SAFETY: `rest` holds `rest.len()` initialised mmsghdrs whose iovecs point into
            // `self.bufs` and whose name points to `addr`, all alive and unmoved until the
            // call returns; the kernel writes only their msg_len fields.
            let rc = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
            if rc > 0 {
                let done = rc as usize;
                for (h, iov) in rest[..done].iter().zip(&self.iovecs[sent..]) {
                    if h.msg_len as usize != iov.iov_len {
                        return Err(io::Error::other("short send in sendmmsg"));
                    }
                }
                sent += done;
                continue;
            }
            let e = if rc == 0 {
                io::Error::other("sendmmsg sent nothing")
            } else {
                io::Error::last_os_error()
            };
            if rc < 0 && is_transient(&e) {
                std::thread::yield_now();
                continue;
            }
            // Keep what was not sent out of later calls: the run fails here anyway.
            self.len = 0;
            return Err(e);
        }
        self.len = 0;
        Ok(())
    }
}

/// A socket address in the form the kernel takes.
struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl SockAddr {
    fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        (&mut self.storage as *mut libc::sockaddr_storage).cast()
    }
}

impl From<&SocketAddr> for SockAddr {
    fn from(a: &SocketAddr) -> SockAddr {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match a {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe {
                    std::ptr::write(
                        (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>(),
                        sin,
                    )
                };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe {
                    std::ptr::write(
                        (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>(),
                        sin6,
                    )
                };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        SockAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn a_batch_arrives_whole_and_in_order_over_udp() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dst = rx.local_addr().unwrap();
        let mut b = Batch::new(4);
        for round in 0..3u8 {
            for k in 0..4u8 {
                assert!(!b.is_full());
                b.push(&vec![round * 4 + k; 100 + usize::from(k)]);
            }
            assert!(b.is_full());
            b.send(tx.as_raw_fd(), Some(&dst)).unwrap();
            assert!(b.is_empty());
        }
        let mut buf = [0u8; 2048];
        for i in 0..12u8 {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(n, 100 + usize::from(i % 4));
            assert!(buf[..n].iter().all(|&x| x == i), "datagram {i}");
        }
    }

    #[test]
    fn ipv6_destinations_work_where_loopback_has_ipv6() {
        let Ok(rx) = UdpSocket::bind("[::1]:0") else {
            eprintln!("skipping: no IPv6 loopback");
            return;
        };
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        let mut b = Batch::new(2);
        b.push(b"one");
        b.push(b"two");
        b.send(tx.as_raw_fd(), Some(&rx.local_addr().unwrap()))
            .unwrap();
        let mut buf = [0u8; 16];
        for expected in [b"one", b"two"] {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], expected);
        }
    }

    #[test]
    fn a_send_error_is_reported_and_empties_the_batch() {
        let mut b = Batch::new(2);
        b.push(b"x");
        let e = b.send(-1, None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        assert!(b.is_empty());
    }
}
