//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.

use crate::{be16, put16, Error, Result};

/// EtherType values netml understands.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
}

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
    /// Within a VLAN tag (which starts where the EtherType would be).
    pub const VLAN_TCI: usize = 0;
    pub const VLAN_INNER_TYPE: usize = 2;
    pub const VLAN_LEN: usize = 4;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = field::VLAN_LEN;
/// At most this many stacked VLAN tags are walked before a frame is called malformed.
pub const MAX_VLAN_TAGS: usize = 2;

/// A six-byte MAC address.
pub type MacAddress = [u8; 6];

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps a buffer and checks that the untagged header fits.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the untagged header fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Destination MAC.
    pub fn dst_addr(&self) -> MacAddress {
        self.buffer.as_ref()[field::DST].try_into().unwrap()
    }

    /// Source MAC.
    pub fn src_addr(&self) -> MacAddress {
        self.buffer.as_ref()[field::SRC].try_into().unwrap()
    }

    /// The outer EtherType (a VLAN TPID for tagged frames).
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Walks VLAN tags and returns the inner EtherType and the offset of the layer-3 header.
    pub fn inner(&self) -> Result<(u16, usize)> {
        let b = self.buffer.as_ref();
        let mut ty = self.ethertype();
        let mut at = field::PAYLOAD;
        let mut tags = 0;
        while ty == ethertype::VLAN || ty == ethertype::QINQ {
            if tags == MAX_VLAN_TAGS {
                return Err(Error::Malformed);
            }
            if b.len() < at + field::VLAN_LEN {
                return Err(Error::Truncated);
            }
            ty = be16(b, at + field::VLAN_INNER_TYPE);
            at += field::VLAN_LEN;
            tags += 1;
        }
        Ok((ty, at))
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    pub fn set_dst_addr(&mut self, a: MacAddress) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }
    /// Sets the source MAC.
    pub fn set_src_addr(&mut self, a: MacAddress) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }
    /// Sets the outer EtherType.
    pub fn set_ethertype(&mut self, t: u16) {
        put16(self.buffer.as_mut(), field::ETHERTYPE, t)
    }
}

/// The plain values of an Ethernet header with at most one VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source MAC.
    pub src_addr: MacAddress,
    /// Destination MAC.
    pub dst_addr: MacAddress,
    /// 802.1Q tag control information (PCP, DEI, VLAN id), if tagged.
    pub vlan_tci: Option<u16>,
    /// EtherType of the payload.
    pub ethertype: u16,
}

impl Repr {
    /// Parses the header (including at most [`MAX_VLAN_TAGS`] tags; only the outermost TCI
    /// is kept).
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        let (ethertype, l3) = frame.inner()?;
        let vlan_tci =
            (l3 > HEADER_LEN).then(|| be16(frame.buffer.as_ref(), HEADER_LEN + field::VLAN_TCI));
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlan_tci,
            ethertype,
        })
    }

    /// Bytes this header occupies.
    pub const fn header_len(&self) -> usize {
        if self.vlan_tci.is_some() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header at the start of `frame` (which must hold `header_len()` bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        match self.vlan_tci {
            None => frame.set_ethertype(self.ethertype),
            Some(tci) => {
                frame.set_ethertype(ethertype::VLAN);
                let b = frame.buffer.as_mut();
                put16(b, HEADER_LEN + field::VLAN_TCI, tci);
                put16(b, HEADER_LEN + field::VLAN_INNER_TYPE, self.ethertype);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static UNTAGGED: [u8; 14] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
    static TAGGED: [u8; 18] = [
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x81, 0x00, 0x20, 0x64, 0x86, 0xdd,
    ];

    #[test]
    fn parse_untagged() {
        let r = Repr::parse(&Frame::new_unchecked(&UNTAGGED[..])).unwrap();
        assert_eq!(r.dst_addr, [2, 0, 0, 0, 0, 2]);
        assert_eq!(r.src_addr, [2, 0, 0, 0, 0, 1]);
        assert_eq!(r.ethertype, ethertype::IPV4);
        assert_eq!(r.vlan_tci, None);
        assert_eq!(r.header_len(), 14);
    }

    #[test]
    fn parse_tagged() {
        let r = Repr::parse(&Frame::new_unchecked(&TAGGED[..])).unwrap();
        assert_eq!(r.vlan_tci, Some(0x2064));
        assert_eq!(r.ethertype, ethertype::IPV6);
        assert_eq!(
            Frame::new_unchecked(&TAGGED[..]).inner().unwrap(),
            (ethertype::IPV6, 18)
        );
    }

    #[test]
    fn emit_round_trips() {
        for bytes in [&UNTAGGED[..], &TAGGED[..]] {
            let r = Repr::parse(&Frame::new_unchecked(bytes)).unwrap();
            let mut out = vec![0u8; r.header_len()];
            r.emit(&mut Frame::new_unchecked(&mut out[..]));
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn truncated_tag_is_an_error() {
        assert_eq!(
            Frame::new_unchecked(&TAGGED[..16]).inner(),
            Err(Error::Truncated)
        );
        assert_eq!(
            Frame::new_checked(&UNTAGGED[..13]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn too_many_tags_is_malformed() {
        let mut b = UNTAGGED.to_vec();
        b[12..14].copy_from_slice(&[0x88, 0xa8]);
        for _ in 0..3 {
            b.extend_from_slice(&[0, 1, 0x81, 0x00]);
        }
        assert_eq!(Frame::new_unchecked(&b[..]).inner(), Err(Error::Malformed));
    }
}
