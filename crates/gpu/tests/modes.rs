//! The three ingest modes on the host, through [`netml_gpu::open`]: the target-agnostic
//! self-check under concurrency (4 blocks, every slot in flight, a ring smaller than the
//! batches in flight so that it wraps and pushes back), refused jobs, and drop in flight.

use std::sync::mpsc;
use std::time::Duration;

use netml_gpu::selfcheck::{self, Intercept, Intercepted, SelfCheckOptions};
use netml_gpu::{
    open, wait, ImageJob, Ingest, IngestConfig, IngestError, IngestMode, Normalize, RawFragment,
    Sources, SrcPtrs, SubmitError, Target,
};

fn config(mode: IngestMode) -> IngestConfig {
    IngestConfig {
        mode,
        slots: 4,
        slot_bytes: 96 * 1024,
        blocks: 4,
        ring_entries: 3,
    }
}

fn start(mode: IngestMode) -> Box<dyn Ingest> {
    open(&config(mode), Target::Host).expect("open host ingest")
}

#[test]
fn selfcheck_passes_in_every_mode() {
    for mode in IngestMode::ALL {
        let mut ingest = start(mode);
        assert_eq!((ingest.mode(), ingest.target()), (mode, Target::Host));
        let opts = SelfCheckOptions {
            rounds: 20,
            ..SelfCheckOptions::default()
        };
        let rep = selfcheck::run(ingest.as_mut(), &opts).expect("self-check ran");
        assert!(rep.passed(), "{mode}: {rep}");
        assert_eq!(rep.cases, 20 * 4);
        eprintln!("{mode}: {rep}");
        assert!(
            rep.converted_images > 0 && rep.converted_images < rep.images,
            "{rep}"
        );
        assert!(
            rep.strided_images > 0 && rep.strided_images < rep.images,
            "{rep}"
        );
        let c = ingest.counters();
        // One poison batch and one real batch per case.
        assert_eq!(c.batches_submitted, 2 * rep.cases as u64, "{mode}");
        assert_eq!(c.batches_completed, c.batches_submitted, "{mode}");
        assert_eq!(c.images, (rep.cases + rep.images) as u64, "{mode}");
    }
}

#[test]
fn selfcheck_with_one_block_and_a_one_entry_ring() {
    for mode in IngestMode::ALL {
        let cfg = IngestConfig {
            blocks: 1,
            ring_entries: 1,
            ..config(mode)
        };
        let mut ingest = open(&cfg, Target::Host).unwrap();
        let opts = SelfCheckOptions {
            rounds: 2,
            seed: 7,
            ..SelfCheckOptions::default()
        };
        let rep = selfcheck::run(ingest.as_mut(), &opts).unwrap();
        assert!(rep.passed(), "{mode}: {rep}");
        assert!(ingest.counters().backpressure_waits > 0, "{mode}");
    }
}

fn norm(h: u32, w: u32) -> Normalize {
    Normalize {
        channels: 3,
        height: h,
        width: w,
        mean: [0.5; 4],
        std: [0.25; 4],
    }
}

/// Refused batches left `ingest` as it was: counters at `before`, the first `len` bytes of
/// slot 0 still zero.
fn assert_untouched(ingest: &mut dyn Ingest, before: &netml_gpu::IngestCounters, len: usize) {
    let mode = ingest.mode();
    assert_eq!(
        ingest.counters(),
        *before,
        "{mode}: a refused batch was counted"
    );
    let mut slot = vec![1u8; len];
    ingest.read_slot(0, &mut slot).unwrap();
    assert!(
        slot.iter().all(|&b| b == 0),
        "{mode}: a refused batch wrote the slot"
    );
}

#[test]
fn refused_jobs_submit_nothing() {
    let src = vec![7u8; 4096];
    let frag = |len: usize, dst_offset: usize| RawFragment {
        src: src.as_ptr(),
        len,
        dst_offset,
    };
    fn copy(frags: &[RawFragment]) -> ImageJob<'_> {
        ImageJob {
            slot_offset: 0,
            fragments: Sources::Listed(frags),
            convert: None,
        }
    }
    for mode in IngestMode::ALL {
        let mut ingest = start(mode);
        let slot_bytes = ingest.slot_bytes();
        let before = ingest.counters();
        let oob = [frag(64, slot_bytes - 32)];
        let overlap = [frag(100, 0), frag(100, 50)];
        let ok = [frag(100, 0)];
        // `ok`, then `ok` again at `at`.
        let ok_twice = |at: usize| {
            vec![
                copy(&ok),
                ImageJob {
                    slot_offset: at,
                    ..copy(&ok)
                },
            ]
        };
        let converted_at = |at: usize, n: Normalize| {
            vec![ImageJob {
                slot_offset: at,
                fragments: Sources::Listed(&ok),
                convert: Some(n),
            }]
        };
        let overlap_01 = || {
            IngestError::from(SubmitError::Overlap {
                first: 0,
                second: 1,
            })
        };
        let cases: Vec<(Vec<ImageJob<'_>>, usize, IngestError)> = vec![
            (
                vec![copy(&oob)],
                0,
                SubmitError::OutOfBounds { fragment: 0 }.into(),
            ),
            (vec![copy(&overlap)], 0, overlap_01()),
            // Two images writing the same bytes (fragment indices across the batch).
            (ok_twice(40), 0, overlap_01()),
            // A valid image behind a bad one: the batch is refused whole.
            (
                ok_twice(slot_bytes - 10),
                0,
                SubmitError::OutOfBounds { fragment: 1 }.into(),
            ),
            (vec![copy(&ok)], 4, IngestError::NoSuchSlot(4)),
            // f32 tensor at an offset that is not 4-byte aligned.
            (
                converted_at(2, norm(10, 10)),
                0,
                SubmitError::BadNormalize.into(),
            ),
            // Tensor larger than the slot.
            (
                converted_at(0, norm(128, 128)),
                0,
                SubmitError::BadNormalize.into(),
            ),
        ];
        for (jobs, slot, want) in &cases {
            // SAFETY: `src` outlives the ingest; a refused batch reads nothing.
            let got = unsafe { ingest.submit(*slot, jobs) };
            assert_eq!(got.unwrap_err(), *want, "{mode}");
        }
        assert_untouched(ingest.as_mut(), &before, 256);
        let mut slot = vec![1u8; 256];
        // The ingest still works afterwards, and an empty batch completes too.
        // SAFETY: `src` outlives the ingest.
        let t = unsafe { ingest.submit(0, &[copy(&ok)]) }.unwrap();
        wait(ingest.as_mut(), t).unwrap();
        // SAFETY: no sources.
        let e = unsafe { ingest.submit(1, &[]) }.unwrap();
        assert!(e > t);
        wait(ingest.as_mut(), e).unwrap();
        ingest.read_slot(0, &mut slot).unwrap();
        assert!(slot[..100].iter().all(|&b| b == 7) && slot[100..].iter().all(|&b| b == 0));
        let c = ingest.counters();
        assert_eq!(
            (c.batches_submitted, c.batches_completed, c.bytes),
            (2, 2, 100),
            "{mode}"
        );
    }
}

#[test]
fn refused_strided_jobs_submit_nothing() {
    let src = vec![9u8; 4096];
    let srcs = [src.as_ptr(), src[1024..].as_ptr(), src[2048..].as_ptr()];
    let strided = |n: usize, frag_size: usize, total: usize, slot_offset: usize| ImageJob {
        slot_offset,
        fragments: Sources::Strided {
            srcs: SrcPtrs::new(&srcs[..n]),
            frag_size,
            total,
        },
        convert: None,
    };
    for mode in IngestMode::ALL {
        let mut ingest = start(mode);
        let slot_bytes = ingest.slot_bytes();
        let before = ingest.counters();
        let bad = |image| IngestError::from(SubmitError::BadStride { image });
        let cases: Vec<(Vec<ImageJob<'_>>, IngestError)> = vec![
            // Total too big for 3 fragments of 1000, too small (last fragment empty), zero
            // fragment size, bytes without fragments.
            (vec![strided(3, 1000, 3001, 0)], bad(0)),
            (vec![strided(3, 1000, 2000, 0)], bad(0)),
            (vec![strided(2, 0, 0, 0)], bad(0)),
            (vec![strided(0, 1000, 1, 0)], bad(0)),
            // The image ends past the slot: its last fragment is out of bounds.
            (
                vec![
                    strided(2, 1000, 1500, 0),
                    strided(3, 1000, 2500, slot_bytes - 2000),
                ],
                SubmitError::OutOfBounds { fragment: 4 }.into(),
            ),
            // Starts past the slot.
            (
                vec![strided(1, 1000, 1, slot_bytes + 1)],
                SubmitError::OutOfBounds { fragment: 0 }.into(),
            ),
            // Two strided images writing the same bytes (a strided image is reported by its
            // first fragment).
            (
                vec![strided(2, 1000, 1500, 0), strided(1, 1000, 10, 1499)],
                SubmitError::Overlap {
                    first: 0,
                    second: 2,
                }
                .into(),
            ),
        ];
        for (jobs, want) in &cases {
            // SAFETY: `src` and `srcs` outlive the ingest; a refused batch reads nothing.
            let got = unsafe { ingest.submit(0, jobs) };
            assert_eq!(got.unwrap_err(), *want, "{mode}");
        }
        let listed = [RawFragment {
            src: src.as_ptr(),
            len: 10,
            dst_offset: 1995,
        }];
        let mixed = [
            strided(2, 1000, 2000, 0),
            ImageJob {
                slot_offset: 0,
                fragments: Sources::Listed(&listed),
                convert: None,
            },
        ];
        // SAFETY: as above.
        let got = unsafe { ingest.submit(0, &mixed) };
        let want = SubmitError::Overlap {
            first: 0,
            second: 2,
        };
        assert_eq!(got.unwrap_err(), want.into(), "{mode}");
        assert_untouched(ingest.as_mut(), &before, 4096);
        // A valid strided batch with a short last fragment, next to a listed image.
        let after = [RawFragment {
            dst_offset: 0,
            ..listed[0]
        }];
        let ok = [
            strided(3, 1000, 2001, 0),
            ImageJob {
                slot_offset: 2001,
                fragments: Sources::Listed(&after),
                convert: None,
            },
        ];
        // SAFETY: as above.
        let t = unsafe { ingest.submit(0, &ok) }.unwrap();
        wait(ingest.as_mut(), t).unwrap();
        let mut slot = vec![1u8; 4096];
        ingest.read_slot(0, &mut slot).unwrap();
        assert!(slot[..2011].iter().all(|&b| b == 9), "{mode}");
        assert!(slot[2011..].iter().all(|&b| b == 0), "{mode}");
        assert_eq!(ingest.counters().bytes, 2011, "{mode}");
    }
}

#[test]
fn drop_with_batches_in_flight_joins() {
    for mode in IngestMode::ALL {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let src: Vec<u8> = (0..64 * 1024).map(|i| i as u8).collect();
            let frags: Vec<RawFragment> = (0..64)
                .map(|i| RawFragment {
                    src: src[i * 1024..].as_ptr(),
                    len: 1024,
                    dst_offset: i * 1024,
                })
                .collect();
            let mut ingest = start(mode);
            for slot in 0..ingest.slots() {
                let job = ImageJob {
                    slot_offset: 0,
                    fragments: Sources::Listed(&frags),
                    convert: None,
                };
                // SAFETY: `src` outlives `ingest` (dropped first, below).
                unsafe { ingest.submit(slot, &[job]) }.unwrap();
            }
            drop(ingest);
            drop(src);
            tx.send(()).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{mode}: drop with batches in flight hung"));
    }
}

#[test]
fn gpu_target_without_a_gpu_is_an_error_not_a_panic() {
    if netml_gpu::cuda::discover().is_ok() {
        return; // a GPU machine: `netml gpu-check` covers the GPU target there
    }
    let got = open(&config(IngestMode::Netml), Target::Gpu(0));
    assert!(matches!(got, Err(IngestError::Device(_))));
}

#[test]
fn bad_configs_are_refused() {
    for cfg in [
        IngestConfig {
            slots: 0,
            ..config(IngestMode::Netml)
        },
        IngestConfig {
            blocks: 0,
            ..config(IngestMode::Launch)
        },
        IngestConfig {
            ring_entries: 0,
            ..config(IngestMode::CpuCopy)
        },
        IngestConfig {
            slot_bytes: 1 << 32,
            ..config(IngestMode::Netml)
        },
    ] {
        assert!(
            matches!(open(&cfg, Target::Host), Err(IngestError::Device(_))),
            "{cfg:?}"
        );
    }
}

/// Loses one fragment of every multi-fragment copied image (listed: the first, strided: the
/// last), or nudges conversions.
struct Faulty {
    nudge_convert: bool,
}

impl Intercept for Faulty {
    unsafe fn submit(
        &mut self,
        inner: &mut dyn Ingest,
        slot: usize,
        jobs: &[ImageJob<'_>],
    ) -> Result<netml_gpu::Ticket, IngestError> {
        let mut jobs = jobs.to_vec();
        for j in jobs.iter_mut() {
            match (&mut j.convert, self.nudge_convert) {
                (Some(n), true) => n.mean[0] += 1e-3,
                (None, false) if j.fragments.len() > 1 => {
                    j.fragments = match j.fragments {
                        Sources::Listed(f) => Sources::Listed(&f[1..]),
                        // The last fragment (the job stays consistent: n - 1 whole ones).
                        Sources::Strided {
                            srcs, frag_size, ..
                        } => Sources::Strided {
                            srcs: srcs.slice(0..srcs.len() - 1),
                            frag_size,
                            total: (srcs.len() - 1) * frag_size,
                        },
                    }
                }
                _ => {}
            }
        }
        // SAFETY: forwarded contract.
        unsafe { inner.submit(slot, &jobs) }
    }
}

#[test]
fn selfcheck_catches_a_lost_fragment_and_a_wrong_conversion() {
    for nudge_convert in [false, true] {
        let mut inner = start(IngestMode::Netml);
        let mut faulty = Intercepted {
            inner: inner.as_mut(),
            hook: Faulty { nudge_convert },
        };
        let rep = selfcheck::run(&mut faulty, &SelfCheckOptions::default()).unwrap();
        assert!(!rep.passed() && rep.mismatches > 0, "{rep}");
        let m = rep.first_mismatch.expect("a first mismatch");
        let is_f32 = matches!(m.found, selfcheck::Found::F32 { .. });
        assert_eq!(is_f32, nudge_convert, "{m}");
    }
}

#[test]
fn interleaved_images_that_do_not_overlap_are_accepted() {
    // Image A writes [0, 100) and [200, 300), image B [100, 200): extents interleave, bytes
    // do not; the same layout shifted by one byte is refused.
    let (a, b) = (vec![1u8; 200], vec![2u8; 100]);
    let fa = [
        RawFragment {
            src: a.as_ptr(),
            len: 100,
            dst_offset: 0,
        },
        RawFragment {
            src: a[100..].as_ptr(),
            len: 100,
            dst_offset: 200,
        },
    ];
    for mode in IngestMode::ALL {
        let mut ingest = start(mode);
        for (b_at, ok) in [(100, true), (101, false)] {
            let fb = [RawFragment {
                src: b.as_ptr(),
                len: 100,
                dst_offset: b_at,
            }];
            let jobs = [
                ImageJob {
                    slot_offset: 0,
                    fragments: Sources::Listed(&fa),
                    convert: None,
                },
                ImageJob {
                    slot_offset: 0,
                    fragments: Sources::Listed(&fb),
                    convert: None,
                },
            ];
            // SAFETY: `a` and `b` outlive the ingest.
            let r = unsafe { ingest.submit(0, &jobs) };
            if !ok {
                let want = SubmitError::Overlap {
                    first: 1,
                    second: 2,
                };
                assert_eq!(r.unwrap_err(), want.into(), "{mode}");
                continue;
            }
            wait(ingest.as_mut(), r.unwrap()).unwrap();
            let mut got = vec![0u8; 300];
            ingest.read_slot(0, &mut got).unwrap();
            let want: Vec<u8> = [[1u8; 100], [2; 100], [1; 100]].concat();
            assert_eq!(got, want, "{mode}");
        }
    }
}

/// `host_slot` shows, in place, the same bytes `read_slot` copies out, once the batch is done.
#[test]
fn host_slot_is_the_slot_read_back() {
    for mode in IngestMode::ALL {
        let mut ingest = start(mode);
        let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        let srcs: Vec<*const u8> = payload.chunks(1024).map(|c| c.as_ptr()).collect();
        let job = ImageJob {
            slot_offset: 64,
            fragments: Sources::Strided {
                srcs: SrcPtrs::new(&srcs),
                frag_size: 1024,
                total: payload.len(),
            },
            convert: None,
        };
        // SAFETY: `payload` and `srcs` outlive the wait below.
        let t = unsafe { ingest.submit(2, &[job]) }.expect("submit");
        wait(ingest.as_mut(), t).expect("wait");
        let mut copy = vec![0u8; 64 + payload.len()];
        ingest.read_slot(2, &mut copy).expect("read_slot");
        let view = ingest
            .host_slot(2)
            .expect("host_slot")
            .expect("host target");
        assert_eq!(view.len(), config(mode).slot_bytes, "{mode}");
        assert_eq!(&view[..copy.len()], &copy[..], "{mode}");
        assert_eq!(&view[64..64 + payload.len()], &payload[..], "{mode}");
        assert!(
            matches!(ingest.host_slot(9), Err(IngestError::NoSuchSlot(9))),
            "{mode}"
        );
    }
}
