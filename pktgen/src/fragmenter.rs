//! Cutting a tensor into fragment frames (header layout lives in `netml_wire`; this only
//! decides what goes where).

use crate::tensor::Tensor;
use crate::{bail, Result};
use netml_wire::ethernet;
use netml_wire::fragment::{self, DescriptorRepr, DESCRIPTOR_LEN, HEADER_LEN};
use netml_wire::frame::Endpoints;

/// Standard Ethernet IP MTU.
pub const DEFAULT_MTU: usize = 1500;
/// Default nominal payload bytes per fragment.
pub const DEFAULT_FRAG_SIZE: u16 = 1024;
/// First byte of the fragment header a corruption may touch (the model id).
pub const CORRUPT_FIRST: usize = 3;
/// One past the last byte a corruption may touch (the end of total_bytes).
pub const CORRUPT_END: usize = 18;

/// How a fragment frame is damaged on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Sent as built.
    None,
    /// Bit `bit` of fragment-header byte `byte` (in `CORRUPT_FIRST..CORRUPT_END`) is
    /// flipped after the header checksum is computed but before the UDP checksum, so the
    /// frame is fine up to UDP and only the fragment header checksum fails.
    Corrupt {
        /// Byte offset in the fragment header.
        byte: usize,
        /// Bit number, 0..8.
        bit: u8,
    },
    /// The frame is cut to `keep` bytes, which ends inside the fragment header or payload,
    /// so the IP and UDP lengths promise more than the frame holds.
    Truncate {
        /// Bytes of the frame that remain.
        keep: usize,
    },
}

/// Largest `frag_size` whose fragment 0 (header + descriptor + payload) fits in `mtu`
/// bytes of IP packet for these endpoints.
pub fn max_frag_size(ep: &Endpoints, mtu: usize) -> usize {
    let eth = ethernet::HEADER_LEN + ep.vlan_tci.map_or(0, |_| ethernet::VLAN_TAG_LEN);
    let ip_udp = ep.header_len() - eth;
    mtu.saturating_sub(ip_udp + HEADER_LEN + DESCRIPTOR_LEN)
}

/// Checks `frag_size` against the MTU; a clear error names the maximum.
pub fn check_frag_size(frag_size: u16, ep: &Endpoints, mtu: usize) -> Result<()> {
    let max = max_frag_size(ep, mtu);
    if frag_size == 0 {
        bail!("--frag-size must be at least 1");
    }
    if frag_size as usize > max {
        let family = if ep.src.is_ipv4() { "IPv4" } else { "IPv6" };
        bail!(
            "--frag-size {frag_size} is too large: fragment 0 would exceed the {mtu}-byte IP MTU; \
             the maximum for {family} is {max}"
        );
    }
    Ok(())
}

/// Number of fragments of `tensor`, or an error if it needs more than 65535.
pub fn fragment_count(tensor: &Tensor, frag_size: u16) -> Result<u16> {
    let n = fragment::fragment_count(tensor.len() as u64, frag_size);
    match u16::try_from(n) {
        Ok(n) => Ok(n),
        Err(_) => bail!(
            "{}: {} bytes need {n} fragments of {frag_size} bytes; the protocol allows 65535 \
             (raise --frag-size)",
            tensor.name,
            tensor.len()
        ),
    }
}

/// What identifies one fragment of one image on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentId {
    /// Model id.
    pub model: u8,
    /// Image id.
    pub image: u32,
    /// Fragment index.
    pub index: u16,
    /// Fragments in the image.
    pub count: u16,
    /// Nominal payload bytes per fragment.
    pub frag_size: u16,
}

/// Builds the frame of fragment `id.index` of `tensor`. `timestamp` goes into fragment 0's
/// descriptor (ignored for the others).
pub fn build(
    ep: &Endpoints,
    tensor: &Tensor,
    id: FragmentId,
    timestamp: u64,
    damage: Damage,
) -> Vec<u8> {
    let start = id.index as usize * id.frag_size as usize;
    let end = (start + id.frag_size as usize).min(tensor.len());
    let descriptor = (id.index == 0).then(|| {
        DescriptorRepr::new(
            tensor.dtype,
            tensor.layout,
            &tensor.shape,
            timestamp,
            tensor.crc32,
        )
    });
    let repr = fragment::Repr {
        model: id.model,
        image: id.image,
        index: id.index,
        count: id.count,
        frag_size: id.frag_size,
        total_bytes: tensor.len() as u32,
        descriptor,
    };
    let hl = repr.header_len();
    let mut frame = ep.build(hl + (end - start), |b| {
        repr.emit(&mut fragment::Packet::new_unchecked(&mut b[..]));
        b[hl..].copy_from_slice(&tensor.data[start..end]);
        if let Damage::Corrupt { byte, bit } = damage {
            debug_assert!((CORRUPT_FIRST..CORRUPT_END).contains(&byte) && bit < 8);
            b[byte] ^= 1 << bit;
        }
    });
    if let Damage::Truncate { keep } = damage {
        debug_assert!(keep > ep.header_len() && keep < frame.len());
        frame.truncate(keep);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use netml_wire::checksum::tensor_crc32;
    use netml_wire::fragment::{Dtype, Layout};
    use netml_wire::frame::{classify, Classified};
    use netml_wire::Error as WireError;
    use std::net::SocketAddr;

    fn ep(src: &str, dst: &str, vlan: Option<u16>) -> Endpoints {
        Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            vlan_tci: vlan,
            src: src.parse::<SocketAddr>().unwrap(),
            dst: dst.parse::<SocketAddr>().unwrap(),
        }
    }

    fn tensor(len: usize) -> Tensor {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 256) as u8).collect();
        Tensor::new("t", Dtype::U8, Layout::Plain, vec![len as u32], data).unwrap()
    }

    /// Fragments, classifies every frame and reassembles from the classified payloads.
    fn round_trip(ep: &Endpoints, t: &Tensor, frag_size: u16) {
        let count = fragment_count(t, frag_size).unwrap();
        let mut out = vec![0u8; t.len()];
        let mut seen = vec![false; count as usize];
        for index in 0..count {
            let id = FragmentId {
                model: 5,
                image: 77,
                index,
                count,
                frag_size,
            };
            let f = build(ep, t, id, 1234, Damage::None);
            match classify(&f, |p| p == ep.dst.port()) {
                Classified::Fragment {
                    header,
                    payload,
                    source,
                } => {
                    assert_eq!((header.model, header.image, header.index), (5, 77, index));
                    assert_eq!(source, ep.src);
                    assert_eq!(Some(payload.len()), header.expected_payload_len());
                    let at = header.tensor_offset();
                    out[at..at + payload.len()].copy_from_slice(&f[payload]);
                    seen[index as usize] = true;
                    if let Some(d) = header.descriptor {
                        assert_eq!((d.timestamp, d.crc32), (1234, t.crc32));
                        assert_eq!(d.shape(), &t.shape[..]);
                    }
                }
                other => panic!("fragment {index}: {other:?}"),
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(out, t.data);
        assert_eq!(tensor_crc32([out.as_slice()]), t.crc32);
    }

    #[test]
    fn fragments_reassemble_exactly() {
        let v4 = ep("10.0.0.1:40000", "10.0.0.2:9000", None);
        for (len, fs) in [
            (5000, 1024),
            (4096, 1024),
            (1, 1024),
            (1386 * 3 + 1, 1386),
            (100, 7),
        ] {
            round_trip(&v4, &tensor(len), fs);
        }
        round_trip(
            &ep("[fd00::1]:40000", "[fd00::2]:9000", Some(42)),
            &tensor(3000),
            1366,
        );
        round_trip(
            &ep("10.0.0.1:40000", "10.0.0.2:9000", Some(7)),
            &tensor(3000),
            1386,
        );
    }

    #[test]
    fn mtu_limits() {
        let v4 = ep("10.0.0.1:40000", "10.0.0.2:9000", None);
        assert_eq!(max_frag_size(&v4, DEFAULT_MTU), 1386);
        assert!(check_frag_size(1386, &v4, DEFAULT_MTU).is_ok());
        let e = check_frag_size(1387, &v4, DEFAULT_MTU).unwrap_err();
        assert!(e.0.contains("maximum for IPv4 is 1386"), "{e}");
        let v6 = ep("[fd00::1]:1", "[fd00::2]:2", Some(1));
        assert_eq!(max_frag_size(&v6, DEFAULT_MTU), 1366);
        assert!(check_frag_size(0, &v4, DEFAULT_MTU).is_err());
        // Fragment 0 at the maximum is a 1514-byte frame.
        let t = tensor(3000);
        let id = FragmentId {
            model: 0,
            image: 0,
            index: 0,
            count: 3,
            frag_size: 1386,
        };
        assert_eq!(build(&v4, &t, id, 0, Damage::None).len(), 1514);
        assert!(fragment_count(&tensor(70_000), 1).is_err());
    }

    #[test]
    fn damage_is_classified_as_intended() {
        let v4 = ep("10.0.0.1:40000", "10.0.0.2:9000", None);
        let t = tensor(3000);
        for index in [0u16, 1, 2] {
            let id = FragmentId {
                model: 1,
                image: 2,
                index,
                count: 3,
                frag_size: 1024,
            };
            let len = build(&v4, &t, id, 0, Damage::None).len();
            for byte in CORRUPT_FIRST..CORRUPT_END {
                for bit in 0..8 {
                    let f = build(&v4, &t, id, 0, Damage::Corrupt { byte, bit });
                    assert_eq!(
                        classify(&f, |_| true),
                        Classified::Invalid(WireError::Checksum)
                    );
                }
            }
            for keep in [43, 50, 63, 64, 100, len - 1] {
                let f = build(&v4, &t, id, 0, Damage::Truncate { keep });
                assert_eq!(
                    classify(&f, |_| true),
                    Classified::Invalid(WireError::Truncated)
                );
            }
        }
    }
}
