//! A fragment's header line as the template of the next fragments of its image.
//!
//! In the common frame (untagged Ethernet, IPv4 without options, UDP, fragment header) the
//! headers fill exactly the first 64 bytes, and two fragments of one image with the same
//! payload length differ there in five fields only: the IPv4 identification and header
//! checksum, the UDP checksum, the fragment index and the fragment header checksum. Every
//! other byte, so every check [`frame::classify_plain`] makes on it, is the same. So once
//! one fragment of an image passed those checks, the next one needs a masked compare of
//! its line with that fragment's, and the two checksums reduce to one congruence each:
//! a header whose checksum verified and a header that differs from it only in the words
//! `a` and `b` verifies exactly when `a + b` is congruent modulo 0xffff to the same two
//! words of the first (the one's complement sum is the sum modulo 0xffff, RFC 1071, and
//! the congruence holds for words read in either byte order, 2.B).
//!
//! [`Template::matches`] accepts a frame exactly when `classify_plain` would give the
//! template's source, a header equal to the template's except for its index, and the
//! template's payload range, and that index carries a payload of that length
//! ([`fragment::Repr::expected_payload_len`]).

use crate::frame::{self, fast};
use crate::source::Source;
use crate::{be16, be32, fragment, ipv4, udp};
use core::ops::Range;

/// Bytes of the header line.
pub const LINE: usize = fast::PAYLOAD + fragment::HEADER_LEN;

const IP_IDENT: usize = fast::L3 + ipv4::field::IDENT;
const IP_CHECKSUM: usize = fast::L3 + ipv4::field::CHECKSUM;
const UDP_CHECKSUM: usize = fast::L4 + udp::field::CHECKSUM;
const FRAG_INDEX: usize = fast::PAYLOAD + fragment::field::INDEX;
const FRAG_CHECKSUM: usize = fast::PAYLOAD + fragment::field::CHECKSUM;

/// The 16-bit fields that may differ between fragments of one image, by frame offset.
const VARYING: [usize; 5] = [
    IP_IDENT,
    IP_CHECKSUM,
    UDP_CHECKSUM,
    FRAG_INDEX,
    FRAG_CHECKSUM,
];

/// Per 64-bit word of the line (native byte order), the bits that must equal the template's.
const MASK: [u64; LINE / 8] = {
    let mut bytes = [0xffu8; LINE];
    let mut k = 0;
    while k < VARYING.len() {
        bytes[VARYING[k]] = 0;
        bytes[VARYING[k] + 1] = 0;
        k += 1;
    }
    let mut words = [0u64; LINE / 8];
    let mut w = 0;
    while w < words.len() {
        let mut b = [0u8; 8];
        let mut i = 0;
        while i < 8 {
            b[i] = bytes[w * 8 + i];
            i += 1;
        }
        words[w] = u64::from_ne_bytes(b);
        w += 1;
    }
    words
};

/// The header line of one fragment that [`frame::classify_plain`] accepted, carrying a
/// full payload (`frag_size` bytes), kept to accept the next fragments of its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    words: [u64; LINE / 8],
    /// The IPv4 identification plus header checksum, as native-endian words.
    ip_words: u32,
    /// The fragment index plus header checksum, as native-endian words.
    frag_words: u32,
    /// The shortest frame that holds the IPv4 total length.
    min_frame_len: u32,
    /// Fragments `1..full_below` carry exactly `frag_size` bytes.
    full_below: u16,
    dst_port: u16,
    payload: (u16, u16),
}

impl Template {
    /// The template of `frame` if [`frame::classify_plain`] accepts it and its payload is a
    /// full fragment; `None` otherwise.
    pub fn of(frame: &[u8], is_our_port: impl Fn(u16) -> bool) -> Option<Template> {
        let (_, h, payload) = frame::classify_plain(frame, is_our_port)?;
        if payload.len() != usize::from(h.frag_size)
            || h.expected_payload_len() != Some(payload.len())
        {
            return None;
        }
        let line: &[u8; LINE] = frame.first_chunk()?;
        let last = fragment::Repr {
            index: h.count - 1,
            ..h
        };
        let last_is_full = last.expected_payload_len() == Some(payload.len());
        let total = usize::from(be16(line, fast::L3 + ipv4::field::LENGTH));
        Some(Template {
            words: words(line),
            ip_words: ne16(line, IP_IDENT) + ne16(line, IP_CHECKSUM),
            frag_words: ne16(line, FRAG_INDEX) + ne16(line, FRAG_CHECKSUM),
            min_frame_len: (fast::L3 + total) as u32,
            full_below: if last_is_full { h.count } else { h.count - 1 },
            dst_port: be16(line, fast::L4 + udp::field::DST_PORT),
            payload: (payload.start as u16, payload.end as u16),
        })
    }

    /// The fragment index of `frame` if it is a fragment of the template's image that
    /// [`frame::classify_plain`] accepts with the template's source, sizes and payload
    /// range, and whose index carries a full payload; `None` for anything else (which may
    /// still be a valid frame).
    #[inline(always)]
    pub fn matches(&self, frame: &[u8], is_our_port: impl Fn(u16) -> bool) -> Option<u16> {
        let line: &[u8; LINE] = frame.first_chunk()?;
        if frame.len() < self.min_frame_len as usize {
            return None;
        }
        let line_words = words(line);
        let mut differ = 0u64;
        for k in 0..MASK.len() {
            differ |= (line_words[k] ^ self.words[k]) & MASK[k];
        }
        let index = be16(line, FRAG_INDEX);
        // 1 <= index < full_below, in one compare (full_below is at least 1).
        if differ != 0
            || index.wrapping_sub(1) >= self.full_below.wrapping_sub(1)
            || !congruent(
                ne16(line, IP_IDENT) + ne16(line, IP_CHECKSUM),
                self.ip_words,
            )
            || !congruent(
                ne16(line, FRAG_INDEX) + ne16(line, FRAG_CHECKSUM),
                self.frag_words,
            )
            || !is_our_port(self.dst_port)
        {
            return None;
        }
        Some(index)
    }

    /// The payload's byte range within every frame this template matches.
    pub fn payload(&self) -> Range<usize> {
        usize::from(self.payload.0)..usize::from(self.payload.1)
    }
}

/// Who sent `frame` and which image it belongs to, read where the common frame has them,
/// without any check: a key to look a template up by, which [`Template::matches`] then
/// checks. `None` if the frame is shorter than a header line, not untagged IPv4, or
/// without the fragment magic where the common frame has it.
#[inline(always)]
pub fn image_of(frame: &[u8]) -> Option<(Source, u8, u32)> {
    let line: &[u8; LINE] = frame.first_chunk()?;
    if be16(line, fast::ETHERTYPE) != crate::ethernet::ethertype::IPV4
        || be16(line, fast::PAYLOAD + fragment::field::MAGIC) != fragment::MAGIC
    {
        return None;
    }
    let src = fast::L3 + ipv4::field::SRC.start;
    let ip = [line[src], line[src + 1], line[src + 2], line[src + 3]];
    let port = be16(line, fast::L4 + udp::field::SRC_PORT);
    let model = line[fast::PAYLOAD + fragment::field::MODEL];
    let image = be32(line, fast::PAYLOAD + fragment::field::IMAGE);
    Some((Source::v4(ip, port), model, image))
}

/// A hash of the sender's port and the fragment header's model and image id, read where
/// the common frame has them, without any check: where to look for the template of the
/// frame's image in a direct-mapped table (a wrong guess fails [`Template::matches`]).
/// `None` if the frame is shorter than a header line.
#[inline(always)]
pub fn image_hash(frame: &[u8]) -> Option<u64> {
    let line: &[u8; LINE] = frame.first_chunk()?;
    // Magic, version and flags, model, image id: one native-endian word.
    let id = u64::from_ne_bytes(line[fast::PAYLOAD..fast::PAYLOAD + 8].try_into().ok()?);
    let port = u64::from(u16::from_ne_bytes([line[fast::L4], line[fast::L4 + 1]]));
    Some((id ^ port).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[inline(always)]
fn words(line: &[u8; LINE]) -> [u64; LINE / 8] {
    core::array::from_fn(|k| {
        u64::from_ne_bytes(line[k * 8..k * 8 + 8].try_into().expect("8 bytes"))
    })
}

#[inline(always)]
fn ne16(line: &[u8; LINE], at: usize) -> u32 {
    u32::from(u16::from_ne_bytes([line[at], line[at + 1]]))
}

/// Whether two sums of two 16-bit words are congruent modulo 0xffff.
#[inline(always)]
fn congruent(a: u32, b: u32) -> bool {
    // Both are below 2 * 0xffff: shifted so that the difference is never negative.
    (a + 2 * 0xffff - b).is_multiple_of(0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Endpoints;
    use std::net::SocketAddr;

    const PORT: u16 = 9000;

    fn endpoints(sport: u16) -> Endpoints {
        Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            vlan_tci: None,
            src: SocketAddr::new([10, 0, 0, 1].into(), sport),
            dst: SocketAddr::new([10, 0, 0, 2].into(), PORT),
        }
    }

    /// Fragment `index` (not 0) of image 9: 4 fragments of 64 bytes, the last one 44, sent
    /// with IPv4 identification `ident`.
    fn fragment(index: u16, ident: u16, sport: u16, image: u32) -> Vec<u8> {
        let h = fragment::Repr {
            model: 1,
            image,
            index,
            count: 4,
            frag_size: 64,
            total_bytes: 236,
            descriptor: None,
        };
        let payload = h.expected_payload_len().unwrap();
        let mut f = endpoints(sport).build(h.header_len() + payload, |b| {
            h.emit(&mut fragment::Packet::new_unchecked(&mut b[..]));
            b[h.header_len()..].fill(index as u8);
        });
        f[IP_IDENT..IP_IDENT + 2].copy_from_slice(&ident.to_be_bytes());
        crate::ipv4::Packet::new_unchecked(&mut f[fast::L3..]).fill_checksum();
        f
    }

    fn ours(p: u16) -> bool {
        p == PORT
    }

    #[test]
    fn a_template_takes_the_next_full_fragments_of_its_image() {
        let t = Template::of(&fragment(1, 7, 40000, 9), ours).expect("a full fragment");
        assert_eq!(t.payload(), 64..128);
        for (index, ident) in [(1, 7), (2, 8), (2, 0xffff), (1, 0)] {
            assert_eq!(
                t.matches(&fragment(index, ident, 40000, 9), ours),
                Some(index)
            );
        }
        // The short last fragment, another image, another sender, not our port.
        assert_eq!(t.matches(&fragment(3, 9, 40000, 9), ours), None);
        assert_eq!(t.matches(&fragment(2, 9, 40000, 10), ours), None);
        assert_eq!(t.matches(&fragment(2, 9, 40001, 9), ours), None);
        assert_eq!(t.matches(&fragment(2, 9, 40000, 9), |_| false), None);
        // Cut short of the IPv4 total length, or of the line.
        let f = fragment(2, 8, 40000, 9);
        assert_eq!(t.matches(&f[..f.len() - 1], ours), None);
        assert_eq!(t.matches(&f[..LINE - 1], ours), None);
        // The last fragment is not full: it makes no template.
        assert_eq!(Template::of(&fragment(3, 9, 40000, 9), ours), None);
        assert_eq!(Template::of(&fragment(2, 9, 40000, 9), |_| false), None);
    }

    #[test]
    fn every_flipped_bit_of_the_line_is_refused_but_the_udp_checksums() {
        let t = Template::of(&fragment(1, 7, 40000, 9), ours).unwrap();
        let good = fragment(2, 8, 40000, 9);
        for bit in 0..LINE * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let got = t.matches(&bad, ours);
            if (UDP_CHECKSUM..UDP_CHECKSUM + 2).contains(&(bit / 8)) {
                // Receivers need not verify it (docs/protocol.md), and classify does not.
                assert_eq!(got, Some(2), "bit {bit}");
            } else {
                assert_eq!(got, None, "bit {bit}");
            }
        }
    }

    #[test]
    fn image_of_reads_the_key_where_the_common_frame_has_it() {
        let f = fragment(2, 8, 40000, 9);
        assert_eq!(image_of(&f), Some((Source::v4([10, 0, 0, 1], 40000), 1, 9)));
        let mut vlan = f.clone();
        vlan[fast::ETHERTYPE] = 0x81;
        assert_eq!(image_of(&vlan), None);
        assert_eq!(image_of(&f[..LINE - 1]), None);
    }

    proptest::proptest! {
        /// Whatever a template matches, `classify_plain` takes as the template's fragment
        /// with that index, with a full payload expected for it: for frames near the
        /// template's siblings (any index, identification, header bytes changed, with or
        /// without both checksums fixed afterwards, cut short).
        #[test]
        fn a_match_is_what_classify_plain_gives(
            from in 1u16..3,
            index in 0u16..6,
            ident in proptest::prelude::any::<u16>(),
            edits in proptest::collection::vec((0usize..LINE, proptest::prelude::any::<u8>()), 0..3),
            fix_ip in proptest::prelude::any::<bool>(),
            fix_fragment in proptest::prelude::any::<bool>(),
            cut in proptest::option::of(0usize..140),
        ) {
            let model = fragment(from, 1, 40000, 9);
            let t = Template::of(&model, ours).unwrap();
            let (source, header, payload) = frame::classify_plain(&model, ours).unwrap();
            let mut f = fragment(2, ident, 40000, 9);
            f[FRAG_INDEX..FRAG_INDEX + 2].copy_from_slice(&index.to_be_bytes());
            let untouched = edits.is_empty() && cut.is_none();
            for (at, v) in edits {
                f[at] = v;
            }
            if fix_fragment || untouched {
                fragment::Packet::new_unchecked(&mut f[fast::PAYLOAD..]).fill_checksum();
            }
            if fix_ip {
                crate::ipv4::Packet::new_unchecked(&mut f[fast::L3..]).fill_checksum();
            }
            if let Some(n) = cut {
                f.truncate(n);
            }
            let got = t.matches(&f, ours);
            if let Some(i) = got {
                let want = fragment::Repr { index: i, ..header };
                proptest::prop_assert_eq!(
                    frame::classify_plain(&f, ours),
                    Some((source, want, payload.clone()))
                );
                proptest::prop_assert_eq!(want.expected_payload_len(), Some(payload.len()));
            }
            // Not vacuous: an intact sibling with a full payload is matched.
            if untouched {
                proptest::prop_assert_eq!(got, (1..3).contains(&index).then_some(index));
            }
        }
    }
}
