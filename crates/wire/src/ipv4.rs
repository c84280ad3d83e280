//! IPv4 headers (options are skipped, fragments are reported, not reassembled).

use crate::{be16, checksum, put16, Error, Result};
use std::net::Ipv4Addr;

pub(crate) mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// IP protocol number of UDP.
pub const PROTOCOL_UDP: u8 = 17;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer and checks its lengths (see [`Packet::check_len`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the fixed header, the options and the declared total length fit in the
    /// buffer, and that the lengths are self-consistent.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || (self.total_len() as usize) < hl {
            return Err(Error::Malformed);
        }
        if len < self.total_len() as usize {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// IP version (4 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    /// Total length: header plus payload.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }
    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[field::FLG_OFF] & 0x20 != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) << 3
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// Payload protocol number.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let a: [u8; 4] = self.buffer.as_ref()[field::SRC].try_into().unwrap();
        a.into()
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let a: [u8; 4] = self.buffer.as_ref()[field::DST].try_into().unwrap();
        a.into()
    }
    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::internet(&self.buffer.as_ref()[..self.header_len()]) == 0
    }
    /// The payload (after options, up to the declared total length).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recomputes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let c = checksum::internet(&self.buffer.as_ref()[..self.header_len()]);
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// The plain values of an IPv4 header netml uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Whether this is one fragment of a larger IP datagram.
    pub is_fragment: bool,
}

impl Repr {
    /// Parses and validates a header: version, lengths and checksum.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 4 {
            return Err(Error::Unrecognized);
        }
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len(),
            ttl: p.ttl(),
            is_fragment: p.more_frags() || p.frag_offset() != 0,
        })
    }

    /// Writes a 20-byte header (no options, don't-fragment set) with its checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[field::VER_IHL] = 0x45;
        b[field::DSCP_ECN] = 0;
        put16(b, field::LENGTH, (HEADER_LEN + self.payload_len) as u16);
        put16(b, field::IDENT, 0);
        put16(b, field::FLG_OFF, 0x4000);
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        b[field::SRC].copy_from_slice(&self.src_addr.octets());
        b[field::DST].copy_from_slice(&self.dst_addr.octets());
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 10.0.0.2, UDP, total length 28 (8 bytes of payload), DF, TTL 64.
    static HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x26, 0xcf, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02,
    ];

    fn packet() -> Vec<u8> {
        let mut b = HEADER.to_vec();
        b.extend_from_slice(&[0u8; 8]);
        b
    }

    #[test]
    fn parse_literal() {
        let b = packet();
        let r = Repr::parse(&Packet::new_unchecked(&b[..])).unwrap();
        assert_eq!(r.src_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.dst_addr, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(r.protocol, PROTOCOL_UDP);
        assert_eq!(r.payload_len, 8);
        assert!(!r.is_fragment);
    }

    #[test]
    fn emit_matches_literal() {
        let r = Repr::parse(&Packet::new_unchecked(&packet()[..])).unwrap();
        let mut out = [0u8; 28];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..20], &HEADER[..]);
    }

    #[test]
    fn rejects_bad_checksum_version_and_lengths() {
        let mut b = packet();
        b[11] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::Checksum)
        );
        let mut b = packet();
        b[0] = 0x65;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::Unrecognized)
        );
        let b = packet();
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..27])),
            Err(Error::Truncated)
        );
        let mut b = packet();
        b[0] = 0x44;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn fragments_are_flagged() {
        let mut b = packet();
        b[6] = 0x20; // MF, offset 0
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        assert!(
            Repr::parse(&Packet::new_unchecked(&b[..]))
                .unwrap()
                .is_fragment
        );
    }
}
