//! UDP headers.

use crate::{be16, checksum, put16, Error, Result};
use std::net::IpAddr;

pub(crate) mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of a UDP header.
pub const HEADER_LEN: usize = 8;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks that the header fits and that the declared length is at least the header and
    /// at most the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let declared = self.len() as usize;
        if declared < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if declared > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Declared length (header plus payload).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The payload, up to the declared length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// Whether the checksum verifies against the pseudo-header (zero means "not computed"
    /// for IPv4 and is accepted there).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if src.is_ipv4() && self.checksum() == 0 {
            return true;
        }
        let dgram = &self.buffer.as_ref()[..self.len() as usize];
        checksum::fold(checksum::sum(
            pseudo_header_sum(src, dst, dgram.len()),
            dgram,
        )) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes and stores the checksum over the pseudo-header, header and payload.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let dgram = &self.buffer.as_ref()[..self.len() as usize];
        let sum = checksum::sum(pseudo_header_sum(src, dst, dgram.len()), dgram);
        let c = match checksum::fold(sum) {
            0 => 0xffff, // zero means "no checksum" on the wire
            c => c,
        };
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

fn pseudo_header_sum(src: IpAddr, dst: IpAddr, udp_len: usize) -> u32 {
    let mut acc = 0;
    for a in [src, dst] {
        acc = match a {
            IpAddr::V4(a) => checksum::sum(acc, &a.octets()),
            IpAddr::V6(a) => checksum::sum(acc, &a.octets()),
        };
    }
    acc + crate::ipv4::PROTOCOL_UDP as u32 + (udp_len as u32 & 0xffff) + (udp_len as u32 >> 16)
}

/// The plain values of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl Repr {
    /// Parses the header and checks its lengths (the checksum is left to the caller: the
    /// payload it covers is protected end to end by the tensor CRC).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: p.len() as usize - HEADER_LEN,
        })
    }

    /// Writes the header with a zero checksum; call [`Packet::fill_checksum`] once the
    /// payload is in place.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        put16(b, field::SRC_PORT, self.src_port);
        put16(b, field::DST_PORT, self.dst_port);
        put16(b, field::LENGTH, (HEADER_LEN + self.payload_len) as u16);
        put16(b, field::CHECKSUM, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    // 10.0.0.1:4000 -> 10.0.0.2:9000, payload "netml!\0\0"
    static DGRAM: [u8; 16] = [
        0x0f, 0xa0, 0x23, 0x28, 0x00, 0x10, 0x00, 0x00, b'n', b'e', b't', b'm', b'l', b'!', 0, 0,
    ];

    fn addrs() -> (IpAddr, IpAddr) {
        (
            Ipv4Addr::new(10, 0, 0, 1).into(),
            Ipv4Addr::new(10, 0, 0, 2).into(),
        )
    }

    #[test]
    fn parse_literal() {
        let r = Repr::parse(&Packet::new_unchecked(&DGRAM[..])).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 4000,
                dst_port: 9000,
                payload_len: 8
            }
        );
    }

    #[test]
    fn emit_and_checksum_round_trip() {
        let (s, d) = addrs();
        let mut b = DGRAM;
        Repr {
            src_port: 4000,
            dst_port: 9000,
            payload_len: 8,
        }
        .emit(&mut Packet::new_unchecked(&mut b[..]));
        assert_eq!(&b[..6], &DGRAM[..6]);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum(s, d);
        assert_ne!(p.checksum(), 0);
        assert!(p.verify_checksum(s, d));
        b[9] ^= 0x40;
        assert!(!Packet::new_unchecked(&b[..]).verify_checksum(s, d));
    }

    #[test]
    fn lengths() {
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&DGRAM[..7])),
            Err(Error::Truncated)
        );
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&DGRAM[..15])),
            Err(Error::Truncated)
        );
        let mut b = DGRAM;
        b[5] = 4;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::Malformed)
        );
    }
}
