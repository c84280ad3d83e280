//! ns per fragment through the verifier for 588-fragment images (3x224x224 f32, 1 KiB
//! fragments), in order, reordered within a 64-fragment window, and with every fragment
//! duplicated; single-fragment images at 250k images/s, where every fragment opens, completes
//! and remembers an image (the memory of finished images nearly full); classification +
//! verification of real frames, through the general path and through the rx worker's fast
//! path (one flow, and four flows interleaved packet by packet); and a hand-written bound for
//! the fast path. Each criterion iteration is one fragment, so the reported time is
//! ns/fragment.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use netml_verify::{receive, receive_plain, Config, Fragment, Push, Rx, RxCounters, Verifier};
use netml_wire::checksum;
use netml_wire::fragment::{self, DescriptorRepr, Dtype, Layout};
use netml_wire::frame::{self, Classified, Endpoints};
use std::net::SocketAddr;

const TOTAL: u32 = 3 * 224 * 224 * 4;
const FRAG: u16 = 1024;
const IMAGES: u32 = 8;

fn image_fragments(image: u32, source: SocketAddr) -> Vec<Fragment<u32>> {
    let count = fragment::fragment_count(TOTAL as u64, FRAG) as u16;
    let d = DescriptorRepr::new(Dtype::F32, Layout::Nchw, &[1, 3, 224, 224], 1, 2);
    (0..count)
        .map(|index| {
            let header = fragment::Repr {
                model: 0,
                image,
                index,
                count,
                frag_size: FRAG,
                total_bytes: TOTAL,
                descriptor: (index == 0).then_some(d),
            };
            let payload_len = header.expected_payload_len().unwrap();
            Fragment {
                source: source.into(),
                header,
                payload_len,
                handle: index as u32,
            }
        })
        .collect()
}

fn stream(kind: &str) -> Vec<Fragment<u32>> {
    let src = SocketAddr::from(([10, 0, 0, 1], 40000));
    let mut s: Vec<_> = (0..IMAGES).flat_map(|i| image_fragments(i, src)).collect();
    match kind {
        "in_order" => {}
        "reordered" => {
            // A fixed pseudo-random shuffle inside each 64-fragment window.
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for w in s.chunks_mut(64) {
                for i in (1..w.len()).rev() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    w.swap(i, (x % (i as u64 + 1)) as usize);
                }
            }
        }
        "duplicate_heavy" => s = s.into_iter().flat_map(|f| [f, f]).collect(),
        _ => unreachable!(),
    }
    s
}

fn bench_verify(c: &mut Criterion) {
    eprintln!(
        "limit: 100 GbE budget 88 ns/packet (11.34 Mpps of 1 KiB fragments); target <= 20 ns/fragment in order"
    );
    let mut g = c.benchmark_group("verify_ns_per_fragment");
    for kind in ["in_order", "reordered", "duplicate_heavy"] {
        let s = stream(kind);
        g.bench_function(kind, |b| {
            let mut v = Verifier::new(Config::default());
            let (mut i, mut epoch, mut now) = (0usize, 0u32, 0u64);
            b.iter(|| {
                let mut f = s[i];
                f.header.image += epoch * IMAGES;
                i += 1;
                if i == s.len() {
                    i = 0;
                    epoch += 1;
                }
                now += 1;
                keep(v.push(f, now));
            });
        });
    }
    // One image per fragment, 4 us apart: the late window (500 ms) spans 125k finished
    // images, just under the default bound (131,072), so none is forgotten early and every
    // look-up goes to a table of that size (a cache miss, not an L2 hit).
    g.bench_function("one_fragment_images", |b| {
        let src = SocketAddr::from(([10, 0, 0, 1], 40000));
        let d = DescriptorRepr::new(Dtype::U8, Layout::Plain, &[64], 1, 2);
        let mut v = Verifier::new(Config::default());
        let (mut image, mut now) = (0u32, 0u64);
        b.iter(|| {
            let header = fragment::Repr {
                model: 0,
                image,
                index: 0,
                count: 1,
                frag_size: 64,
                total_bytes: 64,
                descriptor: Some(d),
            };
            image = image.wrapping_add(1);
            now += 4_000;
            let f = Fragment {
                source: src.into(),
                header,
                payload_len: 64,
                handle: 0u32,
            };
            keep(v.push(f, now));
        });
    });
    g.finish();
}

/// The frames of image 0 from `src` to 10.0.0.2:9000 (untagged IPv4), in fragment order.
fn image_frames(src: SocketAddr) -> Vec<Vec<u8>> {
    let ep = Endpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlan_tci: None,
        src,
        dst: SocketAddr::from(([10, 0, 0, 2], 9000)),
    };
    image_fragments(0, src)
        .iter()
        .map(|f| {
            let h = &f.header;
            ep.build(h.header_len() + f.payload_len, |b| {
                h.emit(&mut fragment::Packet::new_unchecked(b));
            })
        })
        .collect()
}

fn bench_classify_and_verify(c: &mut Criterion) {
    let frames = image_frames(SocketAddr::from(([10, 0, 0, 1], 40000)));
    let mut g = c.benchmark_group("classify_ns_per_frame");
    g.bench_function("in_order", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % frames.len();
            black_box(frame::classify(black_box(&frames[i]), |p| p == 9000));
        });
    });
    g.finish();
    let mut g = c.benchmark_group("classify_and_verify_ns_per_frame");
    g.bench_function("in_order", |b| {
        let mut v: Verifier<u32> = Verifier::new(Config::default());
        let (mut i, mut epoch, mut now) = (0usize, 0u32, 0u64);
        b.iter(|| {
            let (fr, image) = (&frames[i], epoch);
            i += 1;
            if i == frames.len() {
                i = 0;
                epoch += 1;
            }
            now += 1;
            if let Classified::Fragment {
                source,
                mut header,
                payload,
            } = frame::classify(black_box(fr), |p| p == 9000)
            {
                header.image += image;
                let f = Fragment {
                    source,
                    header,
                    payload_len: payload.len(),
                    handle: 0,
                };
                keep(v.push(f, now));
            }
        });
    });
    g.bench_function("in_order_fast_path", |b| fast_path(b, &frames));
    // Flows interleaved packet by packet, as `netml bench rx` sends them: 4 (the verifier's
    // cache of its 8 latest slots finds them) and 16 (its index does).
    for n in [4u16, 16] {
        let flows: Vec<Vec<Vec<u8>>> = (0..n)
            .map(|f| image_frames(SocketAddr::from(([10, 0, 0, 1], 40000 + f))))
            .collect();
        let interleaved: Vec<Vec<u8>> = (0..frames.len())
            .flat_map(|i| flows.iter().map(move |f| f[i].clone()))
            .collect();
        g.bench_function(format!("{n}_flows_interleaved_fast_path"), |b| {
            fast_path(b, &interleaved)
        });
    }
    g.finish();
}

/// The rx worker's per-frame path over `frames` (valid fragments of whole images), again
/// and again: the fast path first, `receive` and `push` for what it leaves.
fn fast_path(b: &mut criterion::Bencher, frames: &[Vec<u8>]) {
    let mut v: Verifier<u32> = Verifier::new(Config::default());
    let (mut i, mut now) = (0usize, 0u64);
    let mut rx = RxCounters::default();
    b.iter(|| {
        if i == frames.len() {
            // The same images again, once the late window of the last ones has passed.
            i = 0;
            now += 2 * Config::default().timeout_ns;
        }
        let fr = black_box(&frames[i]);
        i += 1;
        now += 1;
        let pushed = match receive_plain(&mut v, fr, |p| p == 9000) {
            Some(plain) => plain.accept(&mut rx, 0, now),
            None => match receive(&mut rx, fr, 0, |p| p == 9000) {
                Rx::Fragment(f, _) => v.push(f, now),
                _ => unreachable!("valid frames"),
            },
        };
        keep(pushed);
    });
    assert_eq!(rx.invalid(), 0);
    assert_eq!(v.counters().dropped(), 0, "{:?}", v.counters());
}

/// Keeps the verifier's work from being optimized away through its verdict alone: a
/// `black_box` of the whole `Push` (an image is ~120 bytes) stores and reloads it on every
/// iteration, which cost more than the verifier itself.
fn keep(pushed: Push<u32>) {
    black_box(matches!(pushed, Push::Accepted));
}

/// A bound for the fast path, not a verifier: the same checks on the same frames written by
/// hand on the raw header line, for one image of one flow (no table, no completion, a key
/// compared as raw bytes), so that a change to the real path can be judged against how
/// little the work itself costs.
fn bench_hand_written_bound(c: &mut Criterion) {
    let frames = image_frames(SocketAddr::from(([10, 0, 0, 1], 40000)));
    struct Image {
        /// Source IP and port bytes, model and image bytes, sizes bytes, as on the wire.
        source: [u8; 6],
        id: [u8; 5],
        sizes: [u8; 8],
        count: usize,
        frag_size: usize,
        last_len: usize,
        bitmap: Vec<u64>,
        handles: Vec<usize>,
    }
    let line: &[u8; 64] = frames[1].first_chunk().unwrap();
    let count = frames.len();
    let mut image = Image {
        source: [line[26], line[27], line[28], line[29], line[34], line[35]],
        id: line[45..50].try_into().unwrap(),
        sizes: line[52..60].try_into().unwrap(),
        count,
        frag_size: FRAG as usize,
        last_len: TOTAL as usize - FRAG as usize * (count - 1),
        bitmap: vec![0; count.div_ceil(64)],
        handles: vec![0; count],
    };
    let mut g = c.benchmark_group("bound_ns_per_frame");
    g.bench_function("hand_written_one_image", |b| {
        let (mut i, mut accepted, mut rejected) = (1usize, 0u64, 0u64);
        image.bitmap.fill(0);
        b.iter(|| {
            let fr = black_box(&frames[i]);
            i += 1;
            if i == frames.len() {
                // Fragment 0 (the descriptor) is the general path's: start over at 1.
                i = 1;
                image.bitmap.iter_mut().for_each(|w| *w = 0);
            }
            let Some(h) = fr.first_chunk::<64>() else {
                rejected += 1;
                return;
            };
            let be16 = |at: usize| usize::from(u16::from_be_bytes([h[at], h[at + 1]]));
            let ip: &[u8; 20] = h[14..34].try_into().unwrap();
            let fh: &[u8; 22] = h[42..64].try_into().unwrap();
            let index = be16(50);
            let expected = if index + 1 < image.count {
                image.frag_size
            } else {
                image.last_len
            };
            let valid = be16(12) == 0x0800
                && ip[0] == 0x45
                && ip[9] == 17
                && be16(20) & 0x3fff == 0
                && be16(16) + 14 <= fr.len()
                && be16(36) == 9000
                && be16(38) == be16(16) - 20
                && be16(42) == 0x4e4d
                && h[44] == 0x10
                && h[26..30] == image.source[..4]
                && h[34..36] == image.source[4..]
                && h[45..50] == image.id
                && h[52..60] == image.sizes
                && index != 0
                && index < image.count
                && be16(38) - 30 == expected
                && checksum::verifies(ip)
                && checksum::verifies(fh);
            let (w, bit) = (index / 64, 1u64 << (index % 64));
            if !valid || image.bitmap[w] & bit != 0 {
                rejected += 1;
                return;
            }
            image.bitmap[w] |= bit;
            image.handles[index] = fr.as_ptr() as usize + 64;
            accepted += 1;
        });
        assert!(
            accepted > 0 && rejected == 0,
            "every frame passes the checks: {accepted} {rejected}"
        );
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench_verify, bench_classify_and_verify, bench_hand_written_bound
}
criterion_main!(benches);
