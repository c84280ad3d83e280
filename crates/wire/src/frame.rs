//! Whole Ethernet frames: classification of received frames and construction of frames to
//! send.

use crate::ethernet::{self, ethertype, MacAddress};
use crate::source::Source;
use crate::{fragment, ipv4, ipv6, udp, Error, Result};
use core::ops::Range;
use std::net::{IpAddr, SocketAddr};

/// A UDP datagram located inside an Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Source MAC.
    pub src_mac: MacAddress,
    /// Destination MAC.
    pub dst_mac: MacAddress,
    /// Outermost VLAN TCI, if tagged.
    pub vlan_tci: Option<u16>,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Byte range of the UDP payload within the frame.
    pub payload: Range<usize>,
}

/// Locates the UDP payload of an IPv4 or IPv6 frame (optionally VLAN-tagged).
///
/// Returns `Ok(None)` for frames that are well-formed but not unfragmented UDP over IP
/// (ARP, TCP, IP fragments, IPv6 extension headers): they are somebody else's traffic.
pub fn parse_udp(frame: &[u8]) -> Result<Option<Datagram>> {
    let eth = ethernet::Frame::new_checked(frame)?;
    let (ethertype, l3) = eth.inner()?;
    let vlan_tci = (l3 > ethernet::HEADER_LEN).then(|| crate::be16(frame, ethernet::HEADER_LEN));
    let (src_ip, dst_ip, l4, l4_len): (IpAddr, IpAddr, usize, usize) = match ethertype {
        ethertype::IPV4 => {
            let p = ipv4::Packet::new_unchecked(&frame[l3..]);
            let r = ipv4::Repr::parse(&p)?;
            if r.protocol != ipv4::PROTOCOL_UDP || r.is_fragment {
                return Ok(None);
            }
            (
                r.src_addr.into(),
                r.dst_addr.into(),
                l3 + p.header_len(),
                r.payload_len,
            )
        }
        ethertype::IPV6 => {
            let r = ipv6::Repr::parse(&ipv6::Packet::new_unchecked(&frame[l3..]))?;
            if r.next_header != ipv4::PROTOCOL_UDP {
                return Ok(None);
            }
            (
                r.src_addr.into(),
                r.dst_addr.into(),
                l3 + ipv6::HEADER_LEN,
                r.payload_len,
            )
        }
        _ => return Ok(None),
    };
    let u = udp::Repr::parse(&udp::Packet::new_unchecked(&frame[l4..l4 + l4_len]))?;
    let start = l4 + udp::HEADER_LEN;
    Ok(Some(Datagram {
        src_mac: eth.src_addr(),
        dst_mac: eth.dst_addr(),
        vlan_tci,
        src: SocketAddr::new(src_ip, u.src_port),
        dst: SocketAddr::new(dst_ip, u.dst_port),
        payload: start..start + u.payload_len,
    }))
}

/// What a received frame is, from the pipeline's point of view.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified {
    /// A valid fragment of our protocol.
    Fragment {
        /// The sender's address and UDP port (the rest of the addresses stay in the frame:
        /// [`parse_udp`] reads them when a reply is built).
        source: Source,
        /// The fragment header (and descriptor, for fragment 0).
        header: fragment::Repr,
        /// Byte range of the tensor payload within the frame.
        payload: Range<usize>,
    },
    /// Not addressed to one of our UDP ports (or not UDP at all): the NF chain's business.
    Other,
    /// Addressed to us (or unparseable as IP/UDP) but invalid; the error says why.
    Invalid(Error),
}

/// What classifying a datagram needs of it: far smaller than a [`Datagram`], so that the
/// per-packet path moves a few registers, not a hundred bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UdpSummary {
    src: Source,
    dst_port: u16,
    payload: Range<usize>,
}

impl From<Datagram> for UdpSummary {
    fn from(d: Datagram) -> Self {
        UdpSummary {
            src: d.src.into(),
            dst_port: d.dst.port(),
            payload: d.payload,
        }
    }
}

/// Why a frame is no fragment of ours: [`Classified`] without the fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFragment {
    /// Not addressed to one of our UDP ports (or not UDP at all).
    Other,
    /// Addressed to us (or unparseable as IP/UDP) but invalid; the error says why.
    Invalid(Error),
}

/// Classifies a frame: is it a fragment for one of `is_our_port`'s ports?
#[inline]
pub fn classify(frame: &[u8], is_our_port: impl Fn(u16) -> bool) -> Classified {
    let fragment = |source, header, payload| Classified::Fragment {
        source,
        header,
        payload,
    };
    match classify_into(frame, is_our_port, fragment) {
        Ok(c) => c,
        Err(NotFragment::Other) => Classified::Other,
        Err(NotFragment::Invalid(e)) => Classified::Invalid(e),
    }
}

/// [`classify`] for the per-packet path: a fragment's sender, header and payload range go
/// straight to `fragment`, whose result is returned. Inlined with it, they stay in
/// registers; moved through a [`Classified`] and the caller's own types, they would be
/// copied through memory two or three times per packet.
#[inline]
pub fn classify_into<R>(
    frame: &[u8],
    is_our_port: impl Fn(u16) -> bool,
    fragment: impl FnOnce(Source, fragment::Repr, Range<usize>) -> R,
) -> core::result::Result<R, NotFragment> {
    let udp = match untagged_ipv4_udp(frame) {
        Some(udp) => udp,
        None => locate_any(frame)?,
    };
    if !is_our_port(udp.dst_port) {
        return Err(NotFragment::Other);
    }
    let pkt = fragment::Packet::new_unchecked(&frame[udp.payload.clone()]);
    let header = fragment::Repr::parse(&pkt).map_err(NotFragment::Invalid)?;
    let payload = udp.payload.start + pkt.payload_offset()..udp.payload.end;
    Ok(fragment(udp.src, header, payload))
}

/// The per-packet fast path of [`classify_into`]: a fragment other than fragment 0 in an
/// untagged Ethernet frame with an option-less IPv4 header, read at fixed offsets, its
/// header parsed by [`fragment::Repr::parse_plain`] (sizes not checked against each other).
/// `None` for anything else, including every invalid frame: the caller then classifies the
/// frame with [`classify_into`], which gives the verdict and the counter.
#[inline(always)]
pub fn classify_plain(
    frame: &[u8],
    is_our_port: impl Fn(u16) -> bool,
) -> Option<(Source, fragment::Repr, Range<usize>)> {
    let udp = untagged_ipv4_udp(frame)?;
    if !is_our_port(udp.dst_port) {
        return None;
    }
    let h = frame[udp.payload.clone()].first_chunk::<{ fragment::HEADER_LEN }>()?;
    let header = fragment::Repr::parse_plain(h)?;
    Some((
        udp.src,
        header,
        udp.payload.start + fragment::HEADER_LEN..udp.payload.end,
    ))
}

/// The general path: VLAN tags, IPv6, and every error.
#[inline(never)]
fn locate_any(frame: &[u8]) -> core::result::Result<UdpSummary, NotFragment> {
    match parse_udp(frame) {
        Ok(Some(d)) => Ok(d.into()),
        Ok(None) => Err(NotFragment::Other),
        Err(e) => Err(NotFragment::Invalid(e)),
    }
}

/// Where the headers are in an untagged Ethernet frame with an option-less IPv4 header.
pub(crate) mod fast {
    pub const ETHERTYPE: usize = 12;
    pub const L3: usize = 14;
    pub const L4: usize = L3 + super::ipv4::HEADER_LEN;
    pub const PAYLOAD: usize = L4 + super::udp::HEADER_LEN;
}

/// The common case read at fixed offsets: an untagged Ethernet frame whose IPv4 header has
/// no options and a valid checksum, carrying a whole UDP datagram whose length fits. It
/// gives exactly what [`parse_udp`] gives for such a frame; anything else (VLAN, IPv6,
/// options, IP fragments, other protocols, any error) is `None` and left to it.
#[inline(always)]
fn untagged_ipv4_udp(frame: &[u8]) -> Option<UdpSummary> {
    let h: &[u8; fast::PAYLOAD] = frame.first_chunk()?;
    let ip: &[u8; ipv4::HEADER_LEN] = h[fast::L3..fast::L4].try_into().ok()?;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if u16::from_be_bytes([h[fast::ETHERTYPE], h[fast::ETHERTYPE + 1]]) != ethertype::IPV4
        || ip[0] != 0x45
        || ip[9] != ipv4::PROTOCOL_UDP
        // More-fragments flag or a fragment offset: an IP fragment.
        || frag & 0x3fff != 0
        || total < ipv4::HEADER_LEN + udp::HEADER_LEN
        || total > frame.len() - fast::L3
        || !crate::checksum::verifies(ip)
    {
        return None;
    }
    let udp_len = usize::from(u16::from_be_bytes([h[fast::L4 + 4], h[fast::L4 + 5]]));
    if udp_len < udp::HEADER_LEN || udp_len > total - ipv4::HEADER_LEN {
        return None;
    }
    let port = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    Some(UdpSummary {
        src: Source::v4([ip[12], ip[13], ip[14], ip[15]], port(fast::L4)),
        dst_port: port(fast::L4 + 2),
        payload: fast::PAYLOAD..fast::L4 + udp_len,
    })
}

/// Addresses for frames a sender builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Source MAC.
    pub src_mac: MacAddress,
    /// Destination MAC.
    pub dst_mac: MacAddress,
    /// 802.1Q tag to add, if any.
    pub vlan_tci: Option<u16>,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port (same IP family as `src`).
    pub dst: SocketAddr,
}

impl Endpoints {
    /// Length of Ethernet + IP + UDP headers for these endpoints.
    pub fn header_len(&self) -> usize {
        let eth = ethernet::HEADER_LEN + self.vlan_tci.map_or(0, |_| ethernet::VLAN_TAG_LEN);
        let ip = if self.src.is_ipv4() {
            ipv4::HEADER_LEN
        } else {
            ipv6::HEADER_LEN
        };
        eth + ip + udp::HEADER_LEN
    }

    /// Largest UDP payload these endpoints can carry in one (jumbo) datagram.
    pub fn max_udp_payload(&self) -> usize {
        let ip = if self.src.is_ipv4() {
            ipv4::HEADER_LEN
        } else {
            0
        };
        u16::MAX as usize - ip - udp::HEADER_LEN
    }

    /// Builds a complete frame around a UDP payload that `fill` writes into the slice it is
    /// given (`udp_payload_len` bytes), with IPv4 and UDP checksums filled in.
    ///
    /// Panics if the families of `src` and `dst` differ or the payload exceeds
    /// [`Endpoints::max_udp_payload`]: both are programming errors of the sender.
    pub fn build(&self, udp_payload_len: usize, fill: impl FnOnce(&mut [u8])) -> Vec<u8> {
        assert_eq!(self.src.is_ipv4(), self.dst.is_ipv4(), "mixed IP families");
        assert!(
            udp_payload_len <= self.max_udp_payload(),
            "UDP payload too long for one datagram"
        );
        let hl = self.header_len();
        let mut f = vec![0u8; hl + udp_payload_len];
        let ethertype = if self.src.is_ipv4() {
            ethertype::IPV4
        } else {
            ethertype::IPV6
        };
        let eth = ethernet::Repr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            vlan_tci: self.vlan_tci,
            ethertype,
        };
        eth.emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
        let l3 = eth.header_len();
        let udp_len = udp::HEADER_LEN + udp_payload_len;
        let l4 = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let r = ipv4::Repr {
                    src_addr: s,
                    dst_addr: d,
                    protocol: ipv4::PROTOCOL_UDP,
                    payload_len: udp_len,
                    ttl: 64,
                    is_fragment: false,
                };
                r.emit(&mut ipv4::Packet::new_unchecked(&mut f[l3..]));
                l3 + ipv4::HEADER_LEN
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let r = ipv6::Repr {
                    src_addr: s,
                    dst_addr: d,
                    next_header: ipv4::PROTOCOL_UDP,
                    payload_len: udp_len,
                    hop_limit: 64,
                };
                r.emit(&mut ipv6::Packet::new_unchecked(&mut f[l3..]));
                l3 + ipv6::HEADER_LEN
            }
            _ => unreachable!("families checked above"),
        };
        let u = udp::Repr {
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            payload_len: udp_payload_len,
        };
        u.emit(&mut udp::Packet::new_unchecked(&mut f[l4..]));
        fill(&mut f[hl..]);
        udp::Packet::new_unchecked(&mut f[l4..]).fill_checksum(self.src.ip(), self.dst.ip());
        f
    }

    /// The endpoints of a reply: addresses and ports swapped.
    pub fn reversed(&self) -> Endpoints {
        Endpoints {
            src_mac: self.dst_mac,
            dst_mac: self.src_mac,
            vlan_tci: self.vlan_tci,
            src: self.dst,
            dst: self.src,
        }
    }
}

impl From<&Datagram> for Endpoints {
    fn from(d: &Datagram) -> Self {
        Endpoints {
            src_mac: d.src_mac,
            dst_mac: d.dst_mac,
            vlan_tci: d.vlan_tci,
            src: d.src,
            dst: d.dst,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fragment::{DescriptorRepr, Dtype, Layout};

    fn endpoints(v6: bool, vlan: Option<u16>) -> Endpoints {
        let (s, d): (IpAddr, IpAddr) = if v6 {
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
        } else {
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())
        };
        Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            vlan_tci: vlan,
            src: SocketAddr::new(s, 40000),
            dst: SocketAddr::new(d, 9000),
        }
    }

    fn first_fragment(ep: &Endpoints) -> Vec<u8> {
        let d = DescriptorRepr::new(Dtype::F32, Layout::Plain, &[300], 5, 7);
        let h = fragment::Repr {
            model: 1,
            image: 9,
            index: 0,
            count: 2,
            frag_size: 1024,
            total_bytes: 1200,
            descriptor: Some(d),
        };
        ep.build(h.header_len() + 1024, |b| {
            h.emit(&mut fragment::Packet::new_unchecked(&mut b[..]));
            b[h.header_len()..].fill(0xab);
        })
    }

    #[test]
    fn untagged_ipv4_payload_starts_at_128_for_fragment_0_and_64_otherwise() {
        let ep = endpoints(false, None);
        assert_eq!(ep.header_len() + fragment::HEADER_LEN, 64);
        let f = first_fragment(&ep);
        match classify(&f, |p| p == 9000) {
            Classified::Fragment {
                header,
                payload,
                source,
            } => {
                assert_eq!(payload, 128..128 + 1024);
                assert_eq!(header.index, 0);
                assert_eq!(source, ep.src);
                assert!(f[payload].iter().all(|&x| x == 0xab));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(classify(&f, |p| p == 9001), Classified::Other);
    }

    /// A fragment after fragment 0, as the sender builds it.
    fn second_fragment(ep: &Endpoints) -> Vec<u8> {
        let h = fragment::Repr {
            model: 1,
            image: 9,
            index: 1,
            count: 2,
            frag_size: 1024,
            total_bytes: 1200,
            descriptor: None,
        };
        ep.build(h.header_len() + 176, |b| {
            h.emit(&mut fragment::Packet::new_unchecked(&mut b[..]))
        })
    }

    #[test]
    fn the_fast_path_takes_untagged_ipv4_fragments_after_fragment_0_only() {
        let ep = endpoints(false, None);
        let f = second_fragment(&ep);
        let (source, header, payload) = classify_plain(&f, |p| p == 9000).expect("fast path");
        assert_eq!(payload, 64..64 + 176);
        assert_eq!(
            classify(&f, |p| p == 9000),
            Classified::Fragment {
                source,
                header,
                payload
            }
        );
        assert_eq!(classify_plain(&f, |p| p == 9001), None);
        assert_eq!(classify_plain(&first_fragment(&ep), |_| true), None);
        for (v6, vlan) in [(true, None), (false, Some(100))] {
            let other = second_fragment(&endpoints(v6, vlan));
            assert!(matches!(
                classify(&other, |_| true),
                Classified::Fragment { .. }
            ));
            assert_eq!(
                classify_plain(&other, |_| true),
                None,
                "v6 {v6} vlan {vlan:?}"
            );
        }
        // Any damage to the checksummed headers leaves it to the general path.
        for at in [14, 20, 25, 42, 44, 50, 61] {
            let mut bad = f.clone();
            bad[at] ^= 0x10;
            assert_eq!(classify_plain(&bad, |_| true), None, "byte {at}");
        }
    }

    #[test]
    fn vlan_and_ipv6_frames_parse() {
        for (v6, vlan) in [(true, None), (false, Some(100)), (true, Some(7))] {
            let ep = endpoints(v6, vlan);
            let f = first_fragment(&ep);
            let d = parse_udp(&f).unwrap().unwrap();
            assert_eq!((d.src, d.dst, d.vlan_tci), (ep.src, ep.dst, vlan));
            assert!(matches!(
                classify(&f, |p| p == 9000),
                Classified::Fragment { .. }
            ));
            let u = udp::Packet::new_unchecked(&f[d.payload.start - 8..]);
            assert!(u.verify_checksum(d.src.ip(), d.dst.ip()));
        }
    }

    #[test]
    fn invalid_and_other_frames() {
        let ep = endpoints(false, None);
        let mut f = first_fragment(&ep);
        f[64 + 10] ^= 1; // corrupt the fragment header, not the UDP or IP headers
        assert_eq!(classify(&f, |_| true), Classified::Invalid(Error::Checksum));
        let f = first_fragment(&ep);
        assert_eq!(
            classify(&f[..40], |_| true),
            Classified::Invalid(Error::Truncated)
        );
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(classify(&arp, |_| true), Classified::Other);
    }

    /// Fragment 0 and a later fragment of one image, untagged IPv4.
    fn untagged_v4_frames() -> [Vec<u8>; 2] {
        let ep = endpoints(false, None);
        let f1 = second_fragment(&ep);
        [first_fragment(&ep), f1]
    }

    proptest::proptest! {
        /// Whatever the untagged-IPv4 fast path accepts, the general path locates the same
        /// way, for any frame near a valid one: bytes of the headers changed (flags,
        /// options, protocol, lengths, checksums, ethertype) and frames cut short. (What it
        /// does not accept goes to the general path.)
        #[test]
        fn fast_path_agrees_with_the_general_path(
            which in 0usize..2,
            edits in proptest::collection::vec((0usize..160, proptest::prelude::any::<u8>()), 0..4),
            cut in proptest::option::of(0usize..1300),
            fix_ip_checksum in proptest::prelude::any::<bool>(),
        ) {
            let mut f = untagged_v4_frames()[which].clone();
            for (at, v) in edits {
                if at < f.len() {
                    f[at] = v;
                }
            }
            // So that edits of the IPv4 header reach the checks behind its checksum.
            if fix_ip_checksum && f[fast::L3] & 0x0f == 5 {
                ipv4::Packet::new_unchecked(&mut f[fast::L3..]).fill_checksum();
            }
            if let Some(n) = cut {
                f.truncate(n);
            }
            if let Some(fast) = untagged_ipv4_udp(&f) {
                proptest::prop_assert_eq!(Ok(fast), locate_any(&f));
            }
            // The whole-frame fast path: what it takes, `classify` takes the same way, or
            // finds malformed (the sizes, which it leaves to its caller).
            if let Some((source, header, payload)) = classify_plain(&f, |_| true) {
                match classify(&f, |_| true) {
                    Classified::Fragment { source: s, header: h, payload: p } => {
                        proptest::prop_assert_eq!((s, h, p), (source, header, payload));
                    }
                    other => proptest::prop_assert_eq!(other, Classified::Invalid(Error::Malformed)),
                }
            }
        }
    }

    #[test]
    fn fast_path_takes_only_untagged_option_less_ipv4() {
        let [f0, f1] = untagged_v4_frames();
        assert!(untagged_ipv4_udp(&f0).is_some() && untagged_ipv4_udp(&f1).is_some());
        for ep in [endpoints(true, None), endpoints(false, Some(3))] {
            assert_eq!(untagged_ipv4_udp(&first_fragment(&ep)), None);
        }
        let mut frag = f1.clone();
        frag[fast::L3 + 6] |= 0x20; // more fragments
        ipv4::Packet::new_unchecked(&mut frag[fast::L3..]).fill_checksum();
        assert_eq!(untagged_ipv4_udp(&frag), None);
        assert_eq!(classify(&frag, |_| true), Classified::Other);
    }
}
