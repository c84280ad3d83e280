//! Who sent a datagram: an IP address and a UDP port, as plain fields.

use core::fmt;
use core::str::FromStr;
use std::net::{AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A sender's IP address and UDP port.
///
/// The same value as a [`SocketAddr`] (IPv6 flow label and scope id aside, which the protocol
/// does not use), but a plain struct: `SocketAddr` is an enum, which a compiler keeps in
/// memory, so every copy and comparison on the per-packet path (classify, the verifier's
/// image key) went through a store and a reload, and the reload of a value written piecewise
/// stalls. An IPv4 address is kept in its IPv4-mapped IPv6 form with a flag, so that a
/// sender using a literal `::ffff:a.b.c.d` address stays distinct from `a.b.c.d`. The
/// address is two 64-bit halves rather than one `u128`: a `u128` built from packet bytes
/// was stored in 1-, 2-, 4- and 8-byte pieces and reloaded as two words, which stalls.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    ip_hi: u64,
    ip_lo: u64,
    port: u16,
    v4: bool,
}

impl Source {
    /// An IPv4 sender.
    #[inline]
    pub const fn v4(ip: [u8; 4], port: u16) -> Source {
        Source {
            ip_hi: 0,
            ip_lo: 0xffff_0000_0000 | u32::from_be_bytes(ip) as u64,
            port,
            v4: true,
        }
    }

    /// An IPv6 sender.
    #[inline]
    pub const fn v6(ip: [u8; 16], port: u16) -> Source {
        let ip = u128::from_be_bytes(ip);
        Source {
            ip_hi: (ip >> 64) as u64,
            ip_lo: ip as u64,
            port,
            v4: false,
        }
    }

    /// The UDP port.
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// The IP address.
    pub fn ip(&self) -> IpAddr {
        if self.v4 {
            IpAddr::V4(Ipv4Addr::from(self.ip_lo as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(
                (self.ip_hi as u128) << 64 | self.ip_lo as u128,
            ))
        }
    }

    /// As a standard socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip(), self.port)
    }
}

impl From<SocketAddr> for Source {
    fn from(a: SocketAddr) -> Source {
        match a.ip() {
            IpAddr::V4(ip) => Source::v4(ip.octets(), a.port()),
            IpAddr::V6(ip) => Source::v6(ip.octets(), a.port()),
        }
    }
}

impl From<Source> for SocketAddr {
    fn from(s: Source) -> SocketAddr {
        s.socket_addr()
    }
}

impl PartialEq<SocketAddr> for Source {
    fn eq(&self, other: &SocketAddr) -> bool {
        *self == Source::from(*other)
    }
}

impl PartialEq<Source> for SocketAddr {
    fn eq(&self, other: &Source) -> bool {
        Source::from(*self) == *other
    }
}

/// Written as a [`SocketAddr`]: `10.0.0.1:40000`, `[2001:db8::1]:40000`.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.socket_addr(), f)
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Parsed as a [`SocketAddr`].
impl FromStr for Source {
    type Err = AddrParseError;
    fn from_str(s: &str) -> Result<Source, AddrParseError> {
        s.parse::<SocketAddr>().map(Source::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_socket_addr_and_text() {
        for text in [
            "10.0.0.1:40000",
            "[2001:db8::1]:9000",
            "[::ffff:10.0.0.1]:1",
        ] {
            let a: SocketAddr = text.parse().unwrap();
            let s: Source = text.parse().unwrap();
            assert_eq!(SocketAddr::from(s), a);
            assert_eq!(s.to_string(), text);
            assert_eq!(format!("{s:?}"), text);
            assert_eq!(s, a);
            assert_eq!((s.ip(), s.port()), (a.ip(), a.port()));
        }
        assert_eq!(
            Source::v4([192, 168, 1, 2], 5),
            "192.168.1.2:5".parse::<Source>().unwrap()
        );
    }

    #[test]
    fn an_ipv4_mapped_ipv6_sender_is_not_the_ipv4_sender() {
        let v4: Source = "10.0.0.1:1".parse().unwrap();
        let mapped: Source = "[::ffff:10.0.0.1]:1".parse().unwrap();
        assert_ne!(v4, mapped);
        assert_ne!(v4, "10.0.0.1:2".parse::<Source>().unwrap());
    }
}
