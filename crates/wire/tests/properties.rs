//! Property tests of the wire crate (docs/protocol.md is the normative text):
//!
//! - no parser panics, whatever the bytes;
//! - emit → parse round trips for fragments (with and without descriptor), result messages
//!   and whole frames (IPv4, IPv6, VLAN);
//! - every single-bit flip in a fragment's header or descriptor is detected;
//! - a truncated frame is never a fragment, and any fragment `classify` reports lies inside
//!   the frame.
//!
//! Case counts are kept small enough that the file runs in a few seconds in the debug
//! profile; `PROPTEST_CASES=20000 cargo test --release -p netml-wire --test properties`
//! overrides them all for a longer soak.

use netml_wire::fragment::{self, DescriptorRepr, Dtype, Layout, MAX_RANK};
use netml_wire::frame::{self, Classified, Endpoints};
use netml_wire::{ethernet, ipv4, ipv6, pcap, result, udp, Error};
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const PORT: u16 = 9000;

/// `n` cases, unless PROPTEST_CASES is set.
fn cases(n: u32) -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = n;
    }
    c
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Largest tensor whose fragment count fits in 16 bits at the largest fragment size.
const MAX_TOTAL: u64 = 65_535 * 65_535;

fn dtype() -> impl Strategy<Value = Dtype> {
    prop_oneof![Just(Dtype::U8), Just(Dtype::F16), Just(Dtype::F32)]
}

/// A valid descriptor: layout and rank agree, and the tensor is 1..=MAX_TOTAL bytes.
fn descriptor() -> impl Strategy<Value = DescriptorRepr> {
    let layout_rank = prop_oneof![
        (Just(Layout::Plain), 1..=MAX_RANK),
        (
            prop_oneof![Just(Layout::Nchw), Just(Layout::Nhwc)],
            Just(4usize)
        ),
    ];
    (dtype(), layout_rank, any::<u64>(), any::<u32>()).prop_flat_map(
        |(dt, (layout, rank), ts, crc)| {
            // All but the first dimension are small; the first one is bounded so that the
            // byte length stays within MAX_TOTAL (and so can be large for low ranks).
            (prop::collection::vec(1u32..=16, rank - 1), any::<u64>()).prop_map(
                move |(rest, pick)| {
                    let rest_bytes = rest.iter().fold(dt.size() as u64, |acc, &d| acc * d as u64);
                    let max_first = (MAX_TOTAL / rest_bytes).min(u32::MAX as u64);
                    // Mostly small first dims, sometimes anywhere up to the bound.
                    let first = if pick & 1 == 0 {
                        1 + (pick >> 1) % max_first.min(64)
                    } else {
                        1 + (pick >> 1) % max_first
                    };
                    let mut shape = vec![first as u32];
                    shape.extend_from_slice(&rest);
                    DescriptorRepr::new(dt, layout, &shape, ts, crc)
                },
            )
        },
    )
}

/// Fragment geometry (frag_size, count, total_bytes) with count == ceil(total / frag_size).
fn geometry_for_total(total: u32) -> impl Strategy<Value = (u16, u16, u32)> {
    let min_fs = (total as u64).div_ceil(65_535).max(1) as u16;
    prop_oneof![
        // Small fragment sizes (many fragments) where the total allows it, and
        // "realistic" ones around the recommended 1024.
        min_fs..=min_fs.saturating_add(64),
        min_fs.max(960)..=min_fs.max(1400),
        min_fs..=u16::MAX,
    ]
    .prop_map(move |fs| {
        let count = fragment::fragment_count(total as u64, fs) as u16;
        (fs, count, total)
    })
}

/// Geometry of an image with no descriptor constraint: any frag_size and count, and a total
/// in the range that gives exactly that count.
fn geometry() -> impl Strategy<Value = (u16, u16, u32)> {
    (1u16..=u16::MAX, prop_oneof![1u16..=8, 1u16..=u16::MAX]).prop_flat_map(|(fs, count)| {
        let lo = (count as u64 - 1) * fs as u64 + 1;
        let hi = (count as u64 * fs as u64).min(u32::MAX as u64);
        ((lo as u32)..=(hi as u32)).prop_map(move |total| (fs, count, total))
    })
}

/// A valid fragment 0 (descriptor present, shape consistent with total_bytes).
fn first_fragment() -> impl Strategy<Value = fragment::Repr> {
    (descriptor(), any::<u8>(), any::<u32>()).prop_flat_map(|(d, model, image)| {
        let total = d.byte_len().unwrap() as u32;
        geometry_for_total(total).prop_map(move |(frag_size, count, total_bytes)| fragment::Repr {
            model,
            image,
            index: 0,
            count,
            frag_size,
            total_bytes,
            descriptor: Some(d),
        })
    })
}

/// A valid fragment with index 1..count (no descriptor).
fn later_fragment() -> impl Strategy<Value = fragment::Repr> {
    (geometry(), any::<u8>(), any::<u32>())
        .prop_filter("needs at least two fragments", |((_, count, _), _, _)| {
            *count >= 2
        })
        .prop_flat_map(|((frag_size, count, total_bytes), model, image)| {
            (1..count).prop_map(move |index| fragment::Repr {
                model,
                image,
                index,
                count,
                frag_size,
                total_bytes,
                descriptor: None,
            })
        })
}

/// Any valid fragment header.
fn valid_fragment() -> impl Strategy<Value = fragment::Repr> {
    prop_oneof![first_fragment(), later_fragment()]
}

/// Header, descriptor and (capped, pattern-filled) payload of a fragment.
fn fragment_bytes(r: &fragment::Repr, payload_cap: usize, fill: u8) -> Vec<u8> {
    let plen = r.expected_payload_len().unwrap().min(payload_cap);
    let mut b = vec![0u8; r.header_len() + plen];
    r.emit(&mut fragment::Packet::new_unchecked(&mut b[..]));
    for (i, x) in b[r.header_len()..].iter_mut().enumerate() {
        *x = fill.wrapping_add(i as u8);
    }
    b
}

/// Sender endpoints: IPv4 or IPv6, with or without a VLAN tag, destination port PORT.
fn endpoints() -> impl Strategy<Value = Endpoints> {
    let addrs = prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| (
            IpAddr::from(Ipv4Addr::from(s)),
            IpAddr::from(Ipv4Addr::from(d))
        )),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| (
            IpAddr::from(Ipv6Addr::from(s)),
            IpAddr::from(Ipv6Addr::from(d))
        )),
    ];
    (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        proptest::option::of(any::<u16>()),
        addrs,
        any::<u16>(),
    )
        .prop_map(|(src_mac, dst_mac, vlan_tci, (s, d), sport)| Endpoints {
            src_mac,
            dst_mac,
            vlan_tci,
            src: SocketAddr::new(s, sport),
            dst: SocketAddr::new(d, PORT),
        })
}

/// A complete frame carrying a valid fragment (payload capped at 256 bytes, which keeps the
/// frames small; the payload length is then wrong for the index, which only the verifier
/// checks).
fn fragment_frame() -> impl Strategy<Value = (Endpoints, fragment::Repr, Vec<u8>)> {
    (endpoints(), valid_fragment(), any::<u8>()).prop_map(|(ep, r, fill)| {
        let udp_payload = fragment_bytes(&r, 256, fill);
        let f = ep.build(udp_payload.len(), |b| b.copy_from_slice(&udp_payload));
        (ep, r, f)
    })
}

fn result_repr() -> impl Strategy<Value = result::Repr> {
    let status = prop::sample::select(result::Status::ALL.to_vec());
    (
        (any::<u8>(), any::<u16>()),
        any::<u32>(),
        status,
        any::<u32>(),
        any::<u64>(),
        any::<[u64; result::STAGES]>(),
        // Scores as raw bits: every f32 including NaNs and infinities.
        prop::collection::vec((any::<u32>(), any::<u32>()), 0..=result::MAX_TOP_K + 8),
    )
        .prop_map(
            |((model, arrived), image, status, crc32, sender_timestamp, stages, top_k)| {
                result::Repr {
                    model,
                    image,
                    status,
                    arrived,
                    crc32,
                    sender_timestamp,
                    stages,
                    top_k: top_k
                        .into_iter()
                        .map(|(c, s)| (c, f32::from_bits(s)))
                        .collect(),
                }
            },
        )
}

/// `result::Repr` with scores compared by bit pattern (NaN != NaN otherwise).
fn result_key(r: &result::Repr) -> impl PartialEq + std::fmt::Debug {
    (
        r.model,
        r.image,
        r.status,
        r.arrived,
        r.crc32,
        r.sender_timestamp,
        r.stages,
        r.top_k
            .iter()
            .map(|&(c, s)| (c, s.to_bits()))
            .collect::<Vec<_>>(),
    )
}

/// Byte soup biased towards our formats: arbitrary bytes, or a valid frame / fragment /
/// result / pcap prefix followed by arbitrary bytes, or a valid frame with a few bytes
/// overwritten.
fn nasty_bytes() -> impl Strategy<Value = Vec<u8>> {
    let soup = prop::collection::vec(any::<u8>(), 0..=300);
    let edits = prop::collection::vec((any::<usize>(), any::<u8>()), 1..6);
    prop_oneof![
        3 => soup.clone(),
        2 => (fragment_frame(), 0usize..200, soup.clone()).prop_map(|((_, _, f), cut, tail)| {
            let mut v = f[..f.len().min(cut.max(14))].to_vec();
            v.extend_from_slice(&tail);
            v
        }),
        2 => (fragment_frame(), edits.clone())
            .prop_map(|((_, _, mut f), edits)| {
                for (at, x) in edits {
                    let n = f.len();
                    f[at % n] = x;
                }
                f
            }),
        1 => soup.clone().prop_map(|mut v| {
            // A fragment header with valid magic/version and a fixed-up checksum, so that
            // parsing reaches the field and descriptor checks.
            if v.len() >= fragment::HEADER_LEN {
                v[0] = 0x4e;
                v[1] = 0x4d;
                v[2] = 0x10 | (v[2] & 1);
                let p = fragment::Packet::new_unchecked(&v[..]);
                if p.check_len().is_ok() {
                    fragment::Packet::new_unchecked(&mut v[..]).fill_checksum();
                }
            }
            v
        }),
        // A valid fragment with a few bytes overwritten and the checksum fixed up, so
        // that parsing reaches the consistency and descriptor checks.
        2 => (valid_fragment(), any::<u8>(), edits.clone()).prop_map(|(r, fill, edits)| {
            let mut v = fragment_bytes(&r, 32, fill);
            for (at, x) in edits {
                let n = v.len();
                v[at % n] = x;
            }
            if fragment::Packet::new_unchecked(&v[..]).check_len().is_ok() {
                fragment::Packet::new_unchecked(&mut v[..]).fill_checksum();
            }
            v
        }),
        // A valid result message with a few bytes overwritten, or cut.
        1 => (result_repr(), edits, any::<usize>()).prop_map(|(r, edits, cut)| {
            let mut v = vec![0u8; r.buffer_len()];
            r.emit(&mut v);
            for (at, x) in edits {
                let n = v.len();
                v[at % n] = x;
            }
            if cut % 4 == 0 {
                v.truncate(cut % (v.len() + 1));
            }
            v
        }),
        1 => (prop_oneof![
            Just(0xa1b2_c3d4u32.to_le_bytes()),
            Just(0xa1b2_c3d4u32.to_be_bytes()),
            Just(0xa1b2_3c4du32.to_le_bytes()),
            Just(0xa1b2_3c4du32.to_be_bytes()),
        ], soup)
            .prop_map(|(magic, rest)| {
                let mut v = magic.to_vec();
                v.extend_from_slice(&rest);
                v
            }),
    ]
}

// ---------------------------------------------------------------------------------------
// Checks shared by several properties
// ---------------------------------------------------------------------------------------

/// Whatever `classify` says about `f`, its ranges lie inside `f` and agree with each other.
fn check_classified(f: &[u8], c: &Classified) -> Result<(), TestCaseError> {
    if let Classified::Fragment {
        source,
        header,
        payload,
    } = c
    {
        // A fragment is always a UDP datagram the general parser locates too.
        let datagram = frame::parse_udp(f);
        prop_assert!(matches!(datagram, Ok(Some(_))), "{:?}", datagram);
        let datagram = datagram.unwrap().unwrap();
        prop_assert_eq!(&datagram.src, source);
        prop_assert!(datagram.payload.start <= datagram.payload.end);
        prop_assert!(datagram.payload.end <= f.len());
        prop_assert!(payload.start <= payload.end && payload.end <= f.len());
        prop_assert_eq!(payload.start, datagram.payload.start + header.header_len());
        prop_assert_eq!(payload.end, datagram.payload.end);
        // The header re-parses from the bytes the ranges point at.
        let udp_payload = &f[datagram.payload.clone()];
        let reparsed = fragment::Repr::parse(&fragment::Packet::new_unchecked(udp_payload));
        prop_assert_eq!(reparsed, Ok(*header));
        check_fragment_invariants(header)?;
    }
    Ok(())
}

/// What a successfully parsed fragment header guarantees.
fn check_fragment_invariants(r: &fragment::Repr) -> Result<(), TestCaseError> {
    prop_assert!(r.count > 0 && r.frag_size > 0 && r.total_bytes > 0);
    prop_assert_eq!(
        fragment::fragment_count(r.total_bytes as u64, r.frag_size),
        r.count as u64
    );
    prop_assert_eq!(r.descriptor.is_some(), r.index == 0);
    if let Some(d) = r.descriptor {
        prop_assert!(d.rank >= 1 && d.rank as usize <= MAX_RANK);
        prop_assert_eq!(d.byte_len(), Some(r.total_bytes as u64));
    }
    // In-range fragments have a sane expected length; the sum over all fragments is total.
    if let Some(n) = r.expected_payload_len() {
        prop_assert!(n >= 1 && n <= r.frag_size as usize);
        prop_assert_eq!(
            r.tensor_offset() as u64 + n as u64 <= r.total_bytes as u64,
            true
        );
    } else {
        prop_assert!(r.index >= r.count);
    }
    Ok(())
}

fn parse_fragment(b: &[u8]) -> netml_wire::Result<fragment::Repr> {
    fragment::Repr::parse(&fragment::Packet::new_unchecked(b))
}

// ---------------------------------------------------------------------------------------
// (a) No panics on arbitrary input
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn parsers_never_panic(b in nasty_bytes()) {
        for ours in [true, false] {
            let c = frame::classify(&b, |p| ours || p == PORT);
            check_classified(&b, &c)?;
        }
        if let Ok(Some(d)) = frame::parse_udp(&b) {
            prop_assert!(d.payload.start <= d.payload.end && d.payload.end <= b.len());
        }

        let _ = ethernet::Repr::parse(&ethernet::Frame::new_unchecked(&b[..]));
        let _ = ethernet::Frame::new_checked(&b[..]).map(|f| f.inner());
        let _ = ipv4::Repr::parse(&ipv4::Packet::new_unchecked(&b[..]));
        let _ = ipv6::Repr::parse(&ipv6::Packet::new_unchecked(&b[..]));
        if let Ok(r) = udp::Repr::parse(&udp::Packet::new_unchecked(&b[..])) {
            prop_assert!(udp::HEADER_LEN + r.payload_len <= b.len());
        }
        if let Ok(r) = parse_fragment(&b) {
            check_fragment_invariants(&r)?;
            prop_assert!(r.header_len() <= b.len());
        }
        if let Ok(r) = result::Repr::parse(&result::Packet::new_unchecked(&b[..])) {
            prop_assert!(r.top_k.len() <= result::MAX_TOP_K);
            prop_assert!(result::HEADER_LEN + result::ENTRY_LEN * r.top_k.len() <= b.len());
        }

        // pcap: the reader consumes at least one record header per item, so this ends.
        if let Ok(reader) = pcap::Reader::new(&b[..]) {
            let mut n = 0;
            for rec in reader {
                match rec {
                    Ok(rec) => prop_assert!(rec.data.len() <= b.len()),
                    Err(_) => break,
                }
                n += 1;
                prop_assert!(n <= b.len() / 16);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// (b) Round trips
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn fragment_emit_parse_round_trips(r in valid_fragment(), fill in any::<u8>()) {
        let b = fragment_bytes(&r, 2048, fill);
        let p = fragment::Packet::new_unchecked(&b[..]);
        prop_assert_eq!(parse_fragment(&b), Ok(r));
        prop_assert_eq!(p.payload_offset(), r.header_len());
        prop_assert_eq!(p.has_descriptor(), r.index == 0);
        prop_assert_eq!(p.reserved(), 0);
        prop_assert!(p.verify_checksum());
        check_fragment_invariants(&r)?;
        // Emitting the parsed value reproduces the header bytes exactly.
        let mut again = vec![0u8; r.header_len()];
        r.emit(&mut fragment::Packet::new_unchecked(&mut again[..]));
        prop_assert_eq!(&again[..], &b[..r.header_len()]);
    }

    #[test]
    fn fragments_of_one_image_tile_the_tensor(
        (fs, count, total) in (1u16..=300, 1u16..=40).prop_flat_map(|(fs, count)| {
            let lo = (count as u32 - 1) * fs as u32 + 1;
            (Just(fs), Just(count), lo..=count as u32 * fs as u32)
        })
    ) {
        // Every byte of the tensor is carried by exactly one fragment, in order.
        let mut next = 0usize;
        for index in 0..count {
            let r = fragment::Repr {
                model: 0, image: 0, index, count, frag_size: fs, total_bytes: total,
                descriptor: None,
            };
            let n = r.expected_payload_len().unwrap();
            prop_assert_eq!(r.tensor_offset(), next);
            prop_assert!(n == fs as usize || index + 1 == count);
            next += n;
        }
        prop_assert_eq!(next, total as usize);
        let past = fragment::Repr {
            model: 0, image: 0, index: count, count, frag_size: fs, total_bytes: total,
            descriptor: None,
        };
        prop_assert_eq!(past.expected_payload_len(), None);
    }

    #[test]
    fn result_emit_parse_round_trips(r in result_repr(), slack in 0usize..16) {
        let mut b = vec![0u8; r.buffer_len() + slack];
        r.emit(&mut b);
        prop_assert_eq!(r.buffer_len(), result::HEADER_LEN
            + result::ENTRY_LEN * r.top_k.len().min(result::MAX_TOP_K));
        let parsed = result::Repr::parse(&result::Packet::new_unchecked(&b[..])).unwrap();
        // Entries past MAX_TOP_K are not sent.
        let mut want = r.clone();
        want.top_k.truncate(result::MAX_TOP_K);
        prop_assert_eq!(result_key(&parsed), result_key(&want));
        // One byte short of the declared entries is truncated.
        let short = &b[..r.buffer_len() - 1];
        prop_assert_eq!(
            result::Repr::parse(&result::Packet::new_unchecked(short)).map(|_| ()),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn frame_build_classify_round_trips(
        (ep, r, f) in fragment_frame(),
        trailer in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let d = frame::parse_udp(&f).unwrap().unwrap();
        prop_assert_eq!(d.src, ep.src);
        prop_assert_eq!(d.dst, ep.dst);
        prop_assert_eq!(d.src_mac, ep.src_mac);
        prop_assert_eq!(d.dst_mac, ep.dst_mac);
        prop_assert_eq!(d.vlan_tci, ep.vlan_tci);
        prop_assert_eq!(d.payload.start, ep.header_len());
        prop_assert_eq!(d.payload.end, f.len());
        prop_assert_eq!(Endpoints::from(&d), ep);
        prop_assert_eq!(Endpoints::from(&d).reversed().reversed(), ep);
        // The UDP checksum the builder filled in verifies.
        let u = udp::Packet::new_unchecked(&f[d.payload.start - udp::HEADER_LEN..]);
        prop_assert!(u.verify_checksum(d.src.ip(), d.dst.ip()));
        prop_assert_ne!(u.checksum(), 0);

        let c = frame::classify(&f, |p| p == PORT);
        check_classified(&f, &c)?;
        match &c {
            Classified::Fragment { source, header, payload } => {
                prop_assert_eq!(source, &d.src);
                prop_assert_eq!(header, &r);
                prop_assert_eq!(payload.start, ep.header_len() + r.header_len());
                prop_assert_eq!(payload.end, f.len());
            }
            other => prop_assert!(false, "not a fragment: {:?}", other),
        }
        prop_assert_eq!(frame::classify(&f, |p| p != PORT), Classified::Other);

        // Bytes after the IP datagram (Ethernet padding, a trailer) change nothing.
        let mut padded = f.clone();
        padded.extend_from_slice(&trailer);
        prop_assert_eq!(frame::classify(&padded, |p| p == PORT), c);
    }

    #[test]
    fn untagged_ipv4_payloads_are_64_byte_aligned(r in valid_fragment(), fill in any::<u8>()) {
        let ep = Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            vlan_tci: None,
            src: "10.0.0.1:40000".parse().unwrap(),
            dst: "10.0.0.2:9000".parse().unwrap(),
        };
        let udp_payload = fragment_bytes(&r, 64, fill);
        let f = ep.build(udp_payload.len(), |b| b.copy_from_slice(&udp_payload));
        match frame::classify(&f, |p| p == PORT) {
            Classified::Fragment { payload, .. } => {
                prop_assert_eq!(payload.start, if r.index == 0 { 128 } else { 64 });
            }
            other => prop_assert!(false, "not a fragment: {:?}", other),
        }
    }
}

// ---------------------------------------------------------------------------------------
// (c) Single-bit flips in header and descriptor are detected
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn header_bit_flips_are_detected(r in valid_fragment(), fill in any::<u8>(), bit in any::<usize>()) {
        let good = fragment_bytes(&r, 96, fill);
        let covered = r.header_len(); // 22, or 86 with the descriptor
        let bit = bit % (covered * 8);
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        let mut bad = good.clone();
        bad[byte] ^= mask;
        let got = parse_fragment(&bad);
        // Never a valid header, let alone a different one.
        prop_assert!(got.is_err(), "flip of byte {} mask {:#04x} parsed: {:?}", byte, mask, got);
        let want = match (byte, mask) {
            // magic
            (0 | 1, _) => Some(Error::Unrecognized),
            // version nibble and unknown flag bits
            (2, m) if m != fragment::flags::DESCRIPTOR => Some(Error::Unrecognized),
            // the descriptor flag changes what the checksum covers: some error, whichever
            (2, _) => None,
            // everything else (including the checksum field itself) fails the checksum
            _ => Some(Error::Checksum),
        };
        if let Some(e) = want {
            prop_assert_eq!(got, Err(e));
        }
    }

    #[test]
    fn exhaustive_flips_of_one_fragment(r in valid_fragment(), fill in any::<u8>()) {
        // Every bit of the header and descriptor, for a handful of fragments.
        let good = fragment_bytes(&r, 96, fill);
        for bit in 0..r.header_len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(parse_fragment(&bad).is_err(), "bit {}", bit);
        }
    }

    #[test]
    fn flips_in_a_frame_are_invalid(
        (ep, r, f) in fragment_frame(),
        bit in any::<usize>(),
    ) {
        // A flip in the fragment header inside a whole frame: the UDP checksum is not what
        // catches it (receivers need not verify it); the fragment checksum is.
        let at = ep.header_len();
        let bit = bit % (r.header_len() * 8);
        let mut bad = f.clone();
        bad[at + bit / 8] ^= 1 << (bit % 8);
        let c = frame::classify(&bad, |p| p == PORT);
        check_classified(&bad, &c)?;
        prop_assert!(matches!(c, Classified::Invalid(_)), "{:?}", c);
    }
}

// ---------------------------------------------------------------------------------------
// (d) Truncation
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn truncated_frames_are_never_fragments((_, r, f) in fragment_frame()) {
        // Every proper prefix of a frame without padding is truncated at some layer.
        for len in 0..f.len() {
            let cut = &f[..len];
            let c = frame::classify(cut, |p| p == PORT);
            check_classified(cut, &c)?;
            prop_assert_eq!(&c, &Classified::Invalid(Error::Truncated), "len {}", len);
            prop_assert!(!matches!(frame::parse_udp(cut), Ok(Some(_))));
        }
        // A fragment cut inside its header or descriptor is truncated. (Cut inside the
        // payload, the header still parses: the payload length is the verifier's check.)
        let frag = fragment_bytes(&r, 256, 0);
        for len in 0..r.header_len() {
            prop_assert_eq!(parse_fragment(&frag[..len]), Err(Error::Truncated), "len {}", len);
        }
    }
}
