//! CPU shares and shadow resize, live: real CPU instances running a real small model.
//!
//! - A share of 2 threads (the batch split across them) answers exactly what one thread does.
//! - Under load from a feeder thread (real clock, `Server` + `Function` deciding batches that
//!   run on the instance), the instance is resized 1 -> 2 -> 1 threads several times: every
//!   image is answered exactly once, with the answer of a reference run, and each resize's
//!   downtime (old share's last completion -> new share's first start) is printed
//!   (`cargo test -p netml-serve --test shadow_resize -- --nocapture`).
//!
//! The model comes from `scripts/models/export.py --small`; without python3 + onnx the tests
//! are skipped, unless NETML_REQUIRE_MODELS is set (CI), where that fails.

use netml_infer::fixtures::Rng;
use netml_infer::Backend;
use netml_serve::exec::{
    Answers, BuildEngine, CpuInstance, CpuShare, Input, Parallel, Prepared, Shadowed,
};
use netml_serve::{Event, Function, FunctionSpec, LatencyModel, Policy, Server};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MODEL: &str = "resnet50";
const SIZES: [usize; 3] = [1, 2, 4];
const TOP_K: usize = 3;

/// Writes `MODEL`'s small variant into `dir` (`None`: skipped).
fn small_model(dir: &Path) -> Option<PathBuf> {
    netml_infer::fixtures::small_model(dir, MODEL)
}

fn model_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netml-shadow-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn builder(path: &Path) -> BuildEngine {
    let path = path.to_path_buf();
    Arc::new(move |batch, threads| {
        netml_infer::open_threads(
            &path,
            Backend::Cpu,
            batch,
            netml_infer::Precision::Fp32,
            threads,
        )
        .map_err(|e| e.to_string())
    })
}

/// A share of `threads` pinned to the first cores (pinning fails harmlessly beyond them).
fn share(threads: usize, parallel: Parallel) -> CpuShare {
    CpuShare {
        threads,
        cores: (0..threads).collect(),
        parallel,
    }
}

/// A CPU instance on `threads` threads (the batch split across them), with each plan's
/// latency measured on it.
fn prepare(path: &Path, threads: usize) -> Result<Prepared<CpuInstance>, String> {
    prepare_as(path, threads, Parallel::Split)
}

fn prepare_as(
    path: &Path,
    threads: usize,
    parallel: Parallel,
) -> Result<Prepared<CpuInstance>, String> {
    let mut instance = CpuInstance::spawn(
        &format!("netml-test-{threads}t"),
        share(threads, parallel),
        &SIZES,
        TOP_K,
        builder(path),
    )?;
    let latency = instance.measure_all(&SIZES)?;
    Ok(Prepared { instance, latency })
}

/// Runs `images` (contiguous) as `engine_batch` on `instance` and waits for the answers.
fn run_blocking(
    instance: &mut CpuInstance,
    images: &[f32],
    n: usize,
    engine_batch: usize,
) -> Answers {
    // SAFETY: `images` holds n images and outlives the batch (we wait for its result).
    unsafe {
        instance
            .start(Input {
                ptr: images.as_ptr() as u64,
                images: n,
                engine_batch,
            })
            .expect("start");
    }
    loop {
        if let Some(r) = instance.poll() {
            return r.expect("batch ran");
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

#[test]
fn a_share_answers_what_one_thread_does() {
    let dir = model_dir("split");
    let Some(path) = small_model(&dir) else {
        return;
    };
    let mut one = prepare(&path, 1).expect("1 thread").instance;
    let mut two = prepare(&path, 2).expect("2 threads").instance;
    let mut engine = prepare_as(&path, 2, Parallel::Engine)
        .expect("one engine on 2 threads")
        .instance;
    assert_eq!(two.share().threads, 2);
    eprintln!("2-thread share pinned: {}", two.pinned());
    let per = one.per_image();
    let images = Rng::new(7).normals(4 * per);
    for engine_batch in SIZES {
        for n in 1..=engine_batch {
            let a = run_blocking(&mut one, &images[..n * per], n, engine_batch);
            let b = run_blocking(&mut two, &images[..n * per], n, engine_batch);
            assert_eq!(a.len(), n);
            // Split: each image goes through the same single-threaded kernels.
            assert_eq!(a, b, "{n} images as engine batch {engine_batch}");
            // One engine on 2 threads may sum in another order.
            let c = run_blocking(&mut engine, &images[..n * per], n, engine_batch);
            assert_eq!(c.len(), n);
            for (x, y) in a.iter().zip(&c) {
                assert!(same_answer(x, y), "{x:?} vs {y:?} (engine on 2 threads)");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Top-k answers of each distinct image, run alone on one thread.
fn reference(path: &Path, images: &[f32], distinct: usize) -> Vec<Vec<(u32, f32)>> {
    let mut one = prepare(path, 1).expect("reference instance").instance;
    let per = one.per_image();
    (0..distinct)
        .map(|i| {
            run_blocking(&mut one, &images[i * per..(i + 1) * per], 1, 1)
                .pop()
                .expect("one answer")
        })
        .collect()
}

/// Same classes in the same order, scores equal up to the float reassociation of another
/// plan's batch size.
fn same_answer(a: &[(u32, f32)], b: &[(u32, f32)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() <= 1e-4 * x.1.abs().max(1e-3))
}

#[test]
fn resizing_under_load_loses_and_repeats_nothing() {
    let dir = model_dir("live");
    let Some(path) = small_model(&dir) else {
        return;
    };
    const DISTINCT: usize = 32;
    const IMAGES: usize = 2400;
    let mut first = prepare(&path, 1).expect("1-thread instance");
    let per = first.instance.per_image();
    // The fastest of a few runs: one noisy measurement would make the load too light.
    let batch4_ns = (0..5)
        .map(|_| first.instance.measure(4, 4).expect("batch 4"))
        .fold(f64::INFINITY, f64::min);
    let pixels = Arc::new(Rng::new(11).normals(DISTINCT * per));
    let expected = reference(&path, &pixels, DISTINCT);
    // Offered a little above what one thread sustains in batches of 4 at best: one thread
    // is kept busy (batches wait at completions), two have room.
    let gap = Duration::from_nanos((batch4_ns / 4.0 * 0.9) as u64);
    eprintln!(
        "{MODEL}_small on 1 thread: batch 4 in {:.2} ms at best; one image offered every {gap:?}",
        batch4_ns / 1e6
    );
    let spec = FunctionSpec {
        name: MODEL.into(),
        model: 1,
        slo_ns: 10_000_000_000,
        batch_sizes: SIZES.to_vec(),
        policy: Policy::MaxDelay {
            max: 4,
            delay_ns: 0,
        },
        admission: false,
        queue_limit: IMAGES,
    };
    let seeded = LatencyModel::seeded(&SIZES, &first.latency);
    let mut server: Server<usize> =
        Server::new(vec![Function::new(spec, vec![seeded])]).expect("server");
    let mut shadow = Shadowed::new(first, 1);

    let (tx, arrivals) = crossbeam_channel::unbounded::<usize>();
    let feeder = std::thread::spawn(move || {
        let t0 = Instant::now();
        for id in 0..IMAGES {
            let due = t0 + gap * id as u32;
            while Instant::now() < due {
                std::thread::sleep(Duration::from_micros(100));
            }
            tx.send(id).expect("serving loop alive");
        }
    });

    let clock = Instant::now();
    let ns = |t: Instant| t.duration_since(clock).as_nanos() as u64;
    let mut answered: Vec<Option<Vec<(u32, f32)>>> = vec![None; IMAGES];
    let mut duplicates = 0;
    let mut running: Option<(Vec<usize>, Vec<f32>)> = None;
    let mut last_done = 0u64;
    let mut events = Vec::new();
    let mut next_resize = 1;
    let plan = [2usize, 1, 2, 1, 2, 1];
    let mut fed_all = false;
    let resized_all = |shadow: &Shadowed<CpuInstance>, next: usize| {
        next > plan.len() && shadow.pending().is_none()
    };
    while !(fed_all && running.is_none() && server.idle() && resized_all(&shadow, next_resize)) {
        let now = ns(Instant::now());
        if let Some(result) = shadow.poll() {
            let (ids, _input) = running.take().expect("a batch ran");
            let tops = result.expect("batch ran");
            assert_eq!(tops.len(), ids.len());
            server.complete(now, 0, 0);
            last_done = now;
            for (id, top) in ids.into_iter().zip(tops) {
                if answered[id].replace(top).is_some() {
                    duplicates += 1;
                }
            }
        }
        if let Some(reshare) = shadow.switch() {
            server.function_mut(0).reshare(0, |b| reshare.factor(b));
        }
        // Resize every 1/8 of the run, each once the previous one switched.
        let progress = answered.iter().filter(|a| a.is_some()).count();
        if next_resize <= plan.len()
            && progress >= IMAGES * next_resize / 8
            && shadow.pending().is_none()
        {
            let threads = plan[next_resize - 1];
            let p = path.clone();
            shadow
                .resize(threads as u32, move || prepare(&p, threads))
                .expect("resize");
            next_resize += 1;
        }
        loop {
            match arrivals.try_recv() {
                Ok(id) => server.offer(now, 1, id).map(|_| ()).expect("admitted"),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    fed_all = true;
                    break;
                }
            }
        }
        server.poll(now, &mut events);
        for e in events.drain(..) {
            let Event::Batch { batch, .. } = e else {
                panic!("nothing expires without admission control");
            };
            let ids: Vec<usize> = batch.items.iter().map(|q| q.item).collect();
            let mut input = Vec::with_capacity(ids.len() * per);
            for &id in &ids {
                let i = id % DISTINCT;
                input.extend_from_slice(&pixels[i * per..(i + 1) * per]);
            }
            let waiting = batch.items[0].arrival <= last_done;
            // SAFETY: `input` holds the batch's images and stays in `running` (its heap
            // buffer unmoved) until the batch's result is polled.
            unsafe {
                shadow
                    .start(
                        Input {
                            ptr: input.as_ptr() as u64,
                            images: ids.len(),
                            engine_batch: batch.engine_batch,
                        },
                        waiting,
                    )
                    .expect("start");
            }
            running = Some((ids, input));
        }
        std::thread::yield_now();
    }
    feeder.join().expect("feeder");

    let stats = shadow.stats().clone();
    for r in &stats.resizes {
        eprintln!(
            "resize {} -> {} threads: prepared in {:.1} ms, downtime {}",
            r.from,
            r.to,
            r.prepare_ns as f64 / 1e6,
            r.downtime_ns
                .map_or("none (no batch waiting)".into(), |d| format!(
                    "{:.1} us",
                    d as f64 / 1e3
                ))
        );
    }
    eprintln!(
        "batch-boundary gap without a resize: mean {:.1} us, max {:.1} us over {} batches",
        stats.gaps.mean_ns() / 1e3,
        stats.gaps.max_ns as f64 / 1e3,
        stats.gaps.count
    );
    assert_eq!(duplicates, 0, "images answered twice");
    let missing = answered.iter().filter(|a| a.is_none()).count();
    assert_eq!(missing, 0, "images never answered");
    for (id, a) in answered.iter().enumerate() {
        let a = a.as_ref().expect("answered");
        assert!(
            same_answer(a, &expected[id % DISTINCT]),
            "image {id}: {a:?} vs reference {:?}",
            expected[id % DISTINCT]
        );
    }
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.resizes.len(), plan.len(), "every resize switched");
    let threads: Vec<u32> = stats.resizes.iter().map(|r| r.to).collect();
    assert_eq!(threads, vec![2, 1, 2, 1, 2, 1]);
    assert_eq!(shadow.units(), 1);
    for r in &stats.resizes {
        if let Some(d) = r.downtime_ns {
            assert!(d < 10_000_000_000, "downtime {d} ns is not a sane number");
        }
    }
    let f = &server.functions()[0];
    assert_eq!(f.stats().answered, IMAGES as u64);
    let _ = std::fs::remove_dir_all(&dir);
}
