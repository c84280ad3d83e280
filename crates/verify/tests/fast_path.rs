//! The fast path (`receive_plain`, then `Plain::accept`) and the general path (`receive`,
//! then `Verifier::push`) agree on every frame: two verifiers fed the same stream of
//! frames, one always through the general path and one through the fast path first, give
//! the same outcome for every frame and the same counters at the end. The streams mix
//! images of IPv4, VLAN-tagged and IPv6 flows, interleaved, and damage frames on the way:
//! duplicates, losses, flipped bytes, truncation, and header fields rewritten with their
//! checksums fixed (so that they reach the verifier's own checks), under a short timeout
//! with the late window in play.

use netml_verify::{receive, receive_plain, Config, Push, Rx, RxCounters, Verifier};
use netml_wire::checksum;
use netml_wire::fragment::{self, DescriptorRepr, Dtype, Layout};
use netml_wire::frame::Endpoints;
use proptest::prelude::*;
use std::net::SocketAddr;

const PORT: u16 = 9000;

/// The flows of a stream: untagged IPv4 (the fast path's), VLAN-tagged IPv4 and IPv6 (the
/// general path's).
fn endpoints(flow: u8) -> Endpoints {
    let (src, dst, vlan_tci): (SocketAddr, SocketAddr, _) = match flow % 5 {
        0..=2 => (
            SocketAddr::from(([10, 0, 0, 1 + flow], 40000 + u16::from(flow))),
            SocketAddr::from(([10, 0, 0, 100], PORT)),
            None,
        ),
        3 => (
            SocketAddr::from(([10, 0, 0, 9], 40003)),
            SocketAddr::from(([10, 0, 0, 100], PORT)),
            Some(7),
        ),
        _ => (
            "[fd00::1]:40004".parse().unwrap(),
            "[fd00::2]:9000".parse().unwrap(),
            None,
        ),
    };
    Endpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlan_tci,
        src,
        dst,
    }
}

/// One image's frames, in fragment order.
fn image_frames(flow: u8, image: u32, total: u32, frag_size: u16) -> Vec<Vec<u8>> {
    let ep = endpoints(flow);
    let count = fragment::fragment_count(u64::from(total), frag_size) as u16;
    let d = DescriptorRepr::new(Dtype::U8, Layout::Plain, &[total], 5, 6);
    (0..count)
        .map(|index| {
            let h = fragment::Repr {
                model: flow % 2,
                image,
                index,
                count,
                frag_size,
                total_bytes: total,
                descriptor: (index == 0).then_some(d),
            };
            let len = h.header_len() + h.expected_payload_len().unwrap();
            ep.build(len, |b| h.emit(&mut fragment::Packet::new_unchecked(b)))
        })
        .collect()
}

/// What may happen to a frame on the way.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Lost,
    Duplicated,
    /// Byte `at` (within the headers) set to `to`.
    Flip {
        at: usize,
        to: u8,
    },
    Truncated {
        to: usize,
    },
    /// A 16-bit field of the fragment header (at `at`, even, before the checksum) set to
    /// `to`, the checksum fixed.
    Field {
        at: usize,
        to: u16,
    },
    /// The IPv4 total length made shorter by `by`, the IP checksum fixed.
    ShorterIp {
        by: u16,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        60 => Just(Damage::None),
        1 => Just(Damage::Lost),
        1 => Just(Damage::Duplicated),
        1 => (0usize..90, any::<u8>()).prop_map(|(at, to)| Damage::Flip { at, to }),
        1 => (0usize..100).prop_map(|to| Damage::Truncated { to }),
        2 => (prop::sample::select(vec![2usize, 4, 6, 8, 10, 12, 14, 16]), any::<u16>())
            .prop_map(|(at, to)| Damage::Field { at, to }),
        1 => (1u16..40).prop_map(|by| Damage::ShorterIp { by }),
    ]
}

/// Where the fragment header starts in a frame of `flow`.
fn fragment_offset(flow: u8) -> usize {
    endpoints(flow).header_len()
}

/// Sets a header field and fixes the fragment header checksum over its header (and
/// descriptor).
fn rewrite_field(frame: &mut [u8], at_header: usize, at: usize, to: u16) {
    let h = &mut frame[at_header..];
    h[at..at + 2].copy_from_slice(&to.to_be_bytes());
    let len = fragment::Packet::new_unchecked(&*h)
        .payload_offset()
        .min(h.len());
    h[18..20].fill(0);
    let sum = checksum::internet(&h[..len]);
    h[18..20].copy_from_slice(&sum.to_be_bytes());
}

/// Shortens an untagged IPv4 frame's total length and fixes the IP header checksum.
fn shorten_ip(frame: &mut [u8], by: u16) {
    let ip = &mut frame[14..34];
    let total = u16::from_be_bytes([ip[2], ip[3]]).saturating_sub(by);
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[10..12].fill(0);
    let sum = checksum::internet(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
}

#[derive(Debug, Clone)]
struct Stream {
    /// Per image: flow, total bytes, fragment size.
    images: Vec<(u8, u32, u16)>,
    /// Seeds the interleaving.
    order: Vec<u32>,
    damage: Vec<Damage>,
    /// Clock step per frame, and the verifier's timeout.
    step: u64,
    timeout: u64,
    /// The verifier's table size: small (evictions under pressure) or larger than the 8
    /// latest slots it caches (more images in flight than that: the index's turn).
    max_in_flight: usize,
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        prop::collection::vec(
            (
                0u8..5,
                1u32..2500,
                prop::sample::select(vec![16u16, 64, 100]),
            ),
            1..14,
        ),
        prop::collection::vec(any::<u32>(), 64),
        prop::collection::vec(damage(), 256),
        0u64..20,
        prop::sample::select(vec![200u64, 5_000, 1_000_000]),
        prop::sample::select(vec![3usize, 16]),
    )
        .prop_map(
            |(images, order, damage, step, timeout, max_in_flight)| Stream {
                images,
                order,
                damage,
                step,
                timeout,
                max_in_flight,
            },
        )
}

/// The frames of `s` as they arrive: images interleaved, damage applied.
fn arrivals(s: &Stream) -> Vec<Vec<u8>> {
    let mut keyed = Vec::new();
    for (k, &(flow, total, frag_size)) in s.images.iter().enumerate() {
        // Image ids repeat across flows (their senders differ) and sometimes within one.
        let image = (k / 2) as u32;
        for (i, f) in image_frames(flow, image, total, frag_size)
            .into_iter()
            .enumerate()
        {
            let key = s.order[(k * 7 + i) % s.order.len()] % 8;
            keyed.push(((i as u32) * 8 + key, k, flow, f));
        }
    }
    keyed.sort_by_key(|&(key, k, _, _)| (key, k));
    let mut out = Vec::new();
    for (j, (_, _, flow, mut f)) in keyed.into_iter().enumerate() {
        let at_header = fragment_offset(flow);
        match &s.damage[j % s.damage.len()] {
            Damage::None => {}
            Damage::Lost => continue,
            Damage::Duplicated => out.push(f.clone()),
            Damage::Flip { at, to } => {
                let at = at % f.len();
                f[at] = *to;
            }
            Damage::Truncated { to } => f.truncate(*to),
            Damage::Field { at, to } => rewrite_field(&mut f, at_header, *at, *to),
            Damage::ShorterIp { by } if flow % 5 < 3 => shorten_ip(&mut f, *by),
            Damage::ShorterIp { .. } => {}
        }
        out.push(f);
    }
    out
}

/// The general path's outcome for one frame.
fn general(v: &mut Verifier<u32>, rx: &mut RxCounters, frame: &[u8], id: u32, now: u64) -> String {
    match receive(rx, frame, id, |p| p == PORT) {
        Rx::Fragment(f, _) => format!("{:?}", v.push(f, now)),
        Rx::Other(h) => format!("other {h}"),
        Rx::Invalid(e) => format!("invalid {e:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_fast_path_agrees_with_the_general_path(s in stream()) {
        let cfg = Config { max_in_flight: s.max_in_flight, max_fragments: 4096, timeout_ns: s.timeout, max_finished: 16 };
        let (mut slow, mut fast) = (Verifier::new(cfg), Verifier::new(cfg));
        let (mut slow_rx, mut fast_rx) = (RxCounters::default(), RxCounters::default());
        let mut now = 1;
        for (id, frame) in arrivals(&s).iter().enumerate() {
            let id = id as u32;
            slow.expire(now);
            fast.expire(now);
            let expected = general(&mut slow, &mut slow_rx, frame, id, now);
            let got = match receive_plain(&mut fast, frame, |p| p == PORT) {
                Some(plain) => {
                    let payload = plain.payload();
                    let pushed = plain.accept(&mut fast_rx, id, now);
                    prop_assert!(matches!(pushed, Push::Accepted | Push::Complete(_)));
                    // The range `receive` gives for the same frame.
                    let mut probe = RxCounters::default();
                    match receive(&mut probe, frame, (), |p| p == PORT) {
                        Rx::Fragment(_, range) => prop_assert_eq!(range, payload),
                        other => prop_assert!(false, "fast path took {:?}", other),
                    }
                    format!("{pushed:?}")
                }
                None => general(&mut fast, &mut fast_rx, frame, id, now),
            };
            prop_assert_eq!(got, expected, "frame {} ({} bytes)", id, frame.len());
            now += s.step;
        }
        prop_assert_eq!(fast_rx, slow_rx);
        prop_assert_eq!(fast.counters(), slow.counters());
        prop_assert_eq!(fast.held_fragments(), slow.held_fragments());
        prop_assert_eq!(fast.in_flight(), slow.in_flight());
    }
}

/// The fast path takes the common case: every fragment but fragment 0 of undamaged images
/// from untagged IPv4 flows, interleaved; nothing of a VLAN-tagged or IPv6 flow.
#[test]
fn the_fast_path_takes_the_common_case() {
    let mut v: Verifier<u32> = Verifier::new(Config::default());
    let mut rx = RxCounters::default();
    let flows = [0u8, 1, 3, 4];
    let images: Vec<Vec<Vec<u8>>> = flows
        .iter()
        .map(|&f| image_frames(f, 1, 1000, 100))
        .collect();
    let (mut fast, mut completed) = (0, 0);
    for i in 0..10 {
        for (k, frames) in images.iter().enumerate() {
            let pushed = match receive_plain(&mut v, &frames[i], |p| p == PORT) {
                Some(plain) => {
                    fast += 1;
                    assert!(flows[k] < 3, "flow {} took the fast path", flows[k]);
                    plain.accept(&mut rx, 0, 1)
                }
                None => match receive(&mut rx, &frames[i], 0, |p| p == PORT) {
                    Rx::Fragment(f, _) => v.push(f, 1),
                    other => panic!("{other:?}"),
                },
            };
            completed += usize::from(matches!(pushed, Push::Complete(_)));
        }
    }
    assert_eq!(
        fast,
        2 * 9,
        "fragments 1..10 of the two untagged IPv4 flows"
    );
    assert_eq!(completed, 4);
    assert_eq!(rx.frames, 40);
    assert_eq!(rx.fragments, 40);
    assert_eq!(v.counters().accepted, 40);
}
