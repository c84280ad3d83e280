//! The host build of the resident gather kernel against plain Rust oracles, under real
//! concurrency: 4 host blocks, producer threads ringing the doorbell, ring wrap-around.

use std::time::{Duration, Instant};

use netml_gpu::selfcheck::Rng;
use netml_gpu::{gather_launch, Fragment, HostIngest, Normalize, SubmitError};

const POISON: u8 = 0xA5;
const GUARD: usize = 64;

/// A byte buffer whose element `base` is 64-byte aligned.
struct Aligned {
    buf: Vec<u8>,
    base: usize,
}
impl Aligned {
    fn new(len: usize, fill: u8) -> Self {
        let buf = vec![fill; len + 64];
        let base = buf.as_ptr().align_offset(64);
        Self { buf, base }
    }
    fn slice(&self, off: usize, len: usize) -> &[u8] {
        &self.buf[self.base + off..self.base + off + len]
    }
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// 1 KiB fragments, 16-byte aligned everywhere, last one short.
    Aligned1K,
    /// Random sizes (zeros included), random src/dst misalignment.
    Random,
    /// Many 1..8-byte fragments.
    Tiny,
    /// src and dst agree modulo 4 but not 16.
    Mod4,
    /// Fragments leave gaps in the slot (which must stay poisoned).
    Gaps,
}

/// A job: fragment (src offset in the arena, len, dst offset); slot length; slot misalignment.
struct Job {
    frags: Vec<(usize, usize, usize)>,
    slot_len: usize,
    slot_mis: usize,
}

fn make_job(rng: &mut Rng, shape: Shape, arena_len: usize) -> Job {
    let slot_mis = match shape {
        Shape::Aligned1K => 0,
        Shape::Mod4 => 4 * (1 + rng.below(3)),
        _ => rng.below(16),
    };
    let slot_len = match shape {
        Shape::Aligned1K => 1024 * (1 + rng.below(12)) - 16 * rng.below(40),
        Shape::Tiny => 1 + rng.below(600),
        _ => rng.below(6000),
    };
    // Partition [0, slot_len) into pieces.
    let mut pieces = Vec::new();
    let mut pos = 0;
    while pos < slot_len {
        let want = match shape {
            Shape::Aligned1K => 1024,
            Shape::Tiny => 1 + rng.below(8),
            _ => rng.below(400),
        };
        let len = want.min(slot_len - pos);
        let gap = matches!(shape, Shape::Gaps) && rng.below(3) == 0;
        if !gap {
            pieces.push((pos, len));
        }
        pos += len;
        if matches!(shape, Shape::Random) && rng.below(10) == 0 {
            pieces.push((pos, 0)); // zero-length fragment
        }
    }
    rng.shuffle(&mut pieces);
    let frags = pieces
        .into_iter()
        .map(|(dst_off, len)| {
            let max_src = arena_len - len - 64;
            let src = match shape {
                Shape::Aligned1K => 16 * rng.below(max_src / 16),
                // src - dst == 0 mod 4, != 0 mod 16
                Shape::Mod4 => {
                    let s = 16 * rng.below(max_src / 16 - 1) + (slot_mis + dst_off) % 16;
                    s + 4 * (1 + rng.below(3)) % 16
                }
                _ => rng.below(max_src),
            };
            (src, len, dst_off)
        })
        .collect();
    Job {
        frags,
        slot_len,
        slot_mis,
    }
}

fn arena(rng: &mut Rng, len: usize) -> Aligned {
    let mut a = Aligned::new(len, 0);
    for b in a.buf.iter_mut() {
        let v = rng.next_u64() as u8;
        *b = if v == POISON { 0x5A } else { v };
    }
    a
}

/// Destination buffer: GUARD poisoned bytes, the slot (poisoned), GUARD poisoned bytes.
fn dst_buffer(job: &Job) -> Aligned {
    Aligned::new(job.slot_mis + job.slot_len + 2 * GUARD, POISON)
}

fn oracle(job: &Job, src: &Aligned) -> Vec<u8> {
    let mut out = vec![POISON; job.slot_len];
    for &(s, len, d) in &job.frags {
        out[d..d + len].copy_from_slice(src.slice(s, len));
    }
    out
}

fn check(job: &Job, src: &Aligned, dst: &Aligned, what: &str) {
    let slot_start = dst.base + GUARD + job.slot_mis;
    let buf = &dst.buf;
    assert!(
        buf[..slot_start].iter().all(|&b| b == POISON),
        "{what}: guard before slot written"
    );
    assert!(
        buf[slot_start + job.slot_len..]
            .iter()
            .all(|&b| b == POISON),
        "{what}: guard after slot written"
    );
    let got = &buf[slot_start..slot_start + job.slot_len];
    let want = oracle(job, src);
    if let Some(i) = (0..job.slot_len).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: byte {i} of {} differs: got {:#x} want {:#x}",
            job.slot_len, got[i], want[i]
        );
    }
}

fn slot_of<'a>(job: &Job, dst: &'a mut Aligned) -> &'a mut [u8] {
    let start = dst.base + GUARD + job.slot_mis;
    &mut dst.buf[start..start + job.slot_len]
}

fn frags_of<'a>(job: &Job, src: &'a Aligned) -> Vec<Fragment<'a>> {
    job.frags
        .iter()
        .map(|&(s, len, d)| Fragment {
            src: src.slice(s, len),
            dst_offset: d,
        })
        .collect()
}

const SHAPES: [Shape; 5] = [
    Shape::Aligned1K,
    Shape::Random,
    Shape::Tiny,
    Shape::Mod4,
    Shape::Gaps,
];

#[test]
fn concurrent_gather_matches_oracle_with_wraparound() {
    const ARENA: usize = 1 << 16;
    const JOBS_PER_PRODUCER: usize = 300;
    let mut rng = Rng(0x5EED_0001);
    let src = arena(&mut rng, ARENA);
    // Two producers, each with its own jobs and destinations.
    let mut work: Vec<(Vec<Job>, Vec<Aligned>)> = (0..2)
        .map(|p| {
            let jobs: Vec<Job> = (0..JOBS_PER_PRODUCER)
                .map(|i| make_job(&mut rng, SHAPES[(i + p) % SHAPES.len()], ARENA))
                .collect();
            let dsts = jobs.iter().map(dst_buffer).collect();
            (jobs, dsts)
        })
        .collect();
    let ingest = HostIngest::start(4, 8);
    let src = &src;
    ingest.scope(|s| {
        std::thread::scope(|ts| {
            for (jobs, dsts) in work.iter_mut() {
                ts.spawn(move || {
                    let mut tickets = Vec::new();
                    for (job, dst) in jobs.iter().zip(dsts.iter_mut()) {
                        let frags = frags_of(job, src);
                        let t = s.submit(&frags, slot_of(job, dst)).expect("submit");
                        tickets.push(t);
                    }
                    for w in tickets.windows(2) {
                        assert!(w[0] < w[1]);
                    }
                    s.wait(*tickets.last().unwrap());
                    assert!(tickets.iter().all(|&t| s.poll(t)));
                });
            }
        });
    });
    for (p, (jobs, dsts)) in work.iter().enumerate() {
        for (i, (job, dst)) in jobs.iter().zip(dsts).enumerate() {
            check(
                job,
                src,
                dst,
                &format!("producer {p} job {i} ({} frags)", job.frags.len()),
            );
        }
    }
    let stats = ingest.stop();
    assert_eq!(stats.entries_done, 2 * JOBS_PER_PRODUCER as u64);
    assert_eq!(stats.seq_errors, 0);
}

#[test]
fn single_block_and_inline_edge_cases() {
    let ingest = HostIngest::start(1, 2);
    let data: Vec<u8> = (0..=255u8).cycle().take(100).collect();
    // Empty job, job with only zero-length fragments, inline (<= 8) and out-of-line (9) lists.
    let mut empty: [u8; 0] = [];
    ingest.gather(&[], &mut empty).unwrap();
    let mut one = [POISON; 4];
    ingest
        .gather(
            &[Fragment {
                src: &data[..0],
                dst_offset: 4,
            }],
            &mut one,
        )
        .unwrap();
    assert_eq!(one, [POISON; 4]);
    for n in [8usize, 9] {
        let mut dst = vec![POISON; n * 3];
        let frags: Vec<Fragment> = (0..n)
            .rev()
            .map(|i| Fragment {
                src: &data[i * 7..i * 7 + 3],
                dst_offset: i * 3,
            })
            .collect();
        ingest.gather(&frags, &mut dst).unwrap();
        let want: Vec<u8> = (0..n)
            .flat_map(|i| data[i * 7..i * 7 + 3].to_vec())
            .collect();
        assert_eq!(dst, want);
    }
    let stats = ingest.stop();
    assert_eq!(stats.entries_done, 4);
    assert_eq!(stats.seq_errors, 0);
}

#[test]
fn invalid_jobs_are_refused() {
    let ingest = HostIngest::start(2, 4);
    let data = [1u8; 16];
    let mut dst = [0u8; 16];
    let oob = [Fragment {
        src: &data[..8],
        dst_offset: 9,
    }];
    assert_eq!(
        ingest.gather(&oob, &mut dst),
        Err(SubmitError::OutOfBounds { fragment: 0 })
    );
    let overlap = [
        Fragment {
            src: &data[..8],
            dst_offset: 0,
        },
        Fragment {
            src: &data[..4],
            dst_offset: 12,
        },
        Fragment {
            src: &data[..8],
            dst_offset: 7,
        },
    ];
    assert_eq!(
        ingest.gather(&overlap, &mut dst),
        Err(SubmitError::Overlap {
            first: 0,
            second: 2
        })
    );
    assert_eq!(dst, [0u8; 16]);
    let norm = Normalize {
        channels: 5,
        height: 1,
        width: 1,
        mean: [0.0; 4],
        std: [1.0; 4],
    };
    let mut f = [0f32; 5];
    assert_eq!(
        ingest.convert(&[], &norm, &mut f),
        Err(SubmitError::BadNormalize)
    );
    assert_eq!(ingest.stop().entries_done, 0);
}

#[test]
fn convert_u8_hwc_to_f32_chw_matches_oracle() {
    let mut rng = Rng(0x5EED_0002);
    let ingest = HostIngest::start(4, 4);
    for (c, h, w) in [(3u32, 17u32, 13u32), (1, 8, 8), (4, 5, 31), (3, 64, 64)] {
        let n = (c * h * w) as usize;
        let mut src = Aligned::new(n + 64, 0);
        for b in src.buf.iter_mut() {
            *b = rng.next_u64() as u8;
        }
        let mis = rng.below(16);
        // Fragments of the u8 HWC image, shuffled, odd sizes.
        let mut pieces = Vec::new();
        let mut pos = 0;
        while pos < n {
            let len = (1 + rng.below(300)).min(n - pos);
            pieces.push((pos, len));
            pos += len;
        }
        rng.shuffle(&mut pieces);
        let frags: Vec<Fragment> = pieces
            .iter()
            .map(|&(off, len)| Fragment {
                src: src.slice(mis + off, len),
                dst_offset: off,
            })
            .collect();
        let norm = Normalize {
            channels: c,
            height: h,
            width: w,
            mean: [0.485, 0.456, 0.406, 0.5],
            std: [0.229, 0.224, 0.225, 0.25],
        };
        // Guard values around the tensor.
        let mut out = vec![f32::NAN; n + 32];
        ingest.convert(&frags, &norm, &mut out[16..16 + n]).unwrap();
        assert!(
            out[..16].iter().chain(&out[16 + n..]).all(|v| v.is_nan()),
            "guard written"
        );
        let img = src.slice(mis, n);
        let hw = (h * w) as usize;
        for p in 0..hw {
            for ch in 0..c as usize {
                let x = img[p * c as usize + ch] as f32;
                let want = (x / 255.0 - norm.mean[ch]) / norm.std[ch];
                let got = out[16 + ch * hw + p];
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "c{ch} p{p}: {got} vs {want}"
                );
            }
        }
    }
    assert_eq!(ingest.stop().seq_errors, 0);
}

#[test]
fn launch_mode_matches_oracle() {
    let mut rng = Rng(0x5EED_0003);
    let src = arena(&mut rng, 1 << 15);
    for (i, shape) in SHAPES.iter().cycle().take(20).enumerate() {
        let job = make_job(&mut rng, *shape, 1 << 15);
        let mut dst = dst_buffer(&job);
        let frags = frags_of(&job, &src);
        gather_launch(1 + (i as u32 % 4), &frags, slot_of(&job, &mut dst)).unwrap();
        check(&job, &src, &dst, &format!("launch job {i} {shape:?}"));
    }
}

#[test]
fn stop_is_prompt_idle_and_after_work() {
    let t0 = Instant::now();
    let ingest = HostIngest::start(4, 16);
    std::thread::sleep(Duration::from_millis(50)); // let the blocks reach their sleeping backoff
    let t = Instant::now();
    assert_eq!(ingest.stop().entries_done, 0);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "idle stop took {:?}",
        t.elapsed()
    );

    let ingest = HostIngest::start(4, 16);
    let data = vec![7u8; 4096];
    let mut dst = vec![0u8; 4096];
    let frags: Vec<Fragment> = data
        .chunks(1024)
        .enumerate()
        .map(|(i, c)| Fragment {
            src: c,
            dst_offset: i * 1024,
        })
        .collect();
    for _ in 0..50 {
        ingest.gather(&frags, &mut dst).unwrap();
    }
    assert_eq!(dst, data);
    let t = Instant::now();
    assert_eq!(ingest.stop().entries_done, 50);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "stop after work took {:?}",
        t.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn drop_without_stop_joins() {
    let ingest = HostIngest::start(3, 2);
    let data = [1u8, 2, 3];
    let mut dst = [0u8; 3];
    ingest
        .gather(
            &[Fragment {
                src: &data,
                dst_offset: 0,
            }],
            &mut dst,
        )
        .unwrap();
    assert_eq!(dst, data);
    drop(ingest);
}
