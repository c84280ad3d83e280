//! One measured point (a mode at a batch size), and the memcpy ceiling of one core.
//!
//! The submitting thread plays the pipeline thread: it keeps every slot busy (one batch in
//! flight per slot), polls the oldest batch, and submits into a slot as soon as it is free.
//! Its CPU time is read with `CLOCK_THREAD_CPUTIME_ID` around every `submit` (descriptor and
//! doorbell writes in netml mode, the launch in launch mode, the memcpy in cpu-copy mode); for
//! strided jobs also around building the batch's jobs, which the pipeline thread does per
//! batch (one per image: its held packets' payload addresses are read in place); listed jobs
//! come prebuilt (building them would be per-fragment work on top). The host threads standing
//! in for the GPU are not counted.

use std::collections::VecDeque;
use std::io::Write as _;
use std::time::Instant;

use netml_gpu::{Ingest, IngestError};

use super::source::Pool;
use super::Form;

/// CPU seconds used by the calling thread so far.
pub(super) fn thread_cpu_s() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec (x86-64/aarch64 Linux layout: two i64).
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

/// CPU seconds one `thread_cpu_s()` pair costs (the median of many back-to-back pairs; a
/// syscall on most kernels): subtracted from every reading around a `submit`.
pub(super) fn clock_overhead_s() -> f64 {
    let mut v: Vec<f64> = (0..2001)
        .map(|_| {
            let a = thread_cpu_s();
            thread_cpu_s() - a
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What one point measured.
pub(super) struct Point {
    pub batch: usize,
    /// Images completed inside the window, and the window's wall seconds.
    pub images: u64,
    pub wall_s: f64,
    /// CPU seconds the submitting thread spent in `submit` for those batches.
    pub cpu_s: f64,
    pub images_submitted: u64,
    /// CPU microseconds of every measured `submit`.
    pub submit_us: Vec<f64>,
    /// Submit -> completion seen, microseconds, one per batch.
    pub latency_us: Vec<f64>,
    pub wire_bytes: u64,
    pub backpressure_waits: u64,
}

impl Point {
    /// CPU microseconds per image of the median `submit`: the headline, robust to the
    /// other processes of a shared machine (an interrupted submit pays their cache misses).
    pub(super) fn cpu_us_per_image(&self) -> f64 {
        percentile(&self.submit_us, 0.5) / self.batch as f64
    }
    /// CPU microseconds per image over all submits of the window.
    pub(super) fn cpu_mean_us_per_image(&self) -> f64 {
        self.cpu_s * 1e6 / self.images_submitted.max(1) as f64
    }
    pub(super) fn images_per_s(&self) -> f64 {
        self.images as f64 / self.wall_s
    }
    pub(super) fn gb_per_s(&self) -> f64 {
        self.wire_bytes as f64 / self.wall_s / 1e9
    }
    /// Fraction of the submitting thread's wall time spent submitting.
    pub(super) fn cpu_share(&self) -> f64 {
        self.cpu_s / self.wall_s
    }
    /// Latency percentile `q` in [0, 1], microseconds.
    pub(super) fn latency(&self, q: f64) -> f64 {
        percentile(&self.latency_us, q)
    }
}

/// Percentile `q` in [0, 1] of `v` (NaN when empty).
fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Runs batches of `batch` images in `form` through `ingest` for `warmup` then `seconds`,
/// showing progress on stderr under `label`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_point(
    ingest: &mut dyn Ingest,
    pool: &Pool,
    form: Form,
    batch: usize,
    warmup: f64,
    seconds: f64,
    label: &str,
    clock_s: f64,
) -> Result<Point, IngestError> {
    let mut free: VecDeque<usize> = (0..ingest.slots()).collect();
    let mut inflight = VecDeque::new();
    let mut p = Point {
        batch,
        images: 0,
        wall_s: 0.0,
        cpu_s: 0.0,
        images_submitted: 0,
        submit_us: Vec::new(),
        latency_us: Vec::new(),
        wire_bytes: 0,
        backpressure_waits: 0,
    };
    let t0 = Instant::now();
    let (mut window_start, mut measuring) = (t0, false);
    let bp0 = ingest.counters().backpressure_waits;
    let mut bp_start = bp0;
    let mut next_print = 0.25;
    let mut k = 0usize;
    loop {
        let now = Instant::now();
        let t = now.duration_since(t0).as_secs_f64();
        if !measuring && t >= warmup {
            (measuring, window_start) = (true, now);
            bp_start = ingest.counters().backpressure_waits;
        }
        let in_window = now.duration_since(window_start).as_secs_f64();
        if measuring && in_window >= seconds {
            p.wall_s = in_window;
            break;
        }
        // Reap in order.
        while let Some(&(slot, ticket, at, counted)) = inflight.front() {
            if !ingest.poll(ticket)? {
                break;
            }
            inflight.pop_front();
            free.push_back(slot);
            if counted {
                p.images += batch as u64;
                p.latency_us
                    .push(Instant::now().duration_since(at).as_secs_f64() * 1e6);
            }
        }
        if let Some(slot) = free.pop_front() {
            let listed = match form {
                Form::Listed => pool.batch(k, batch),
                Form::Strided => Vec::new(),
            };
            let at = Instant::now();
            let c0 = thread_cpu_s();
            let ticket = match form {
                // SAFETY: the pool outlives the ingest's use of it (every batch is waited for
                // below before returning); a slot is reused only after its batch completed.
                Form::Listed => unsafe { ingest.submit(slot, &listed)? },
                Form::Strided => {
                    let jobs = pool.batch_strided(k, batch);
                    // SAFETY: as above (the pointers are read from the pool's records).
                    unsafe { ingest.submit(slot, &jobs)? }
                }
            };
            k += 1;
            let c1 = thread_cpu_s();
            if measuring {
                let cpu = (c1 - c0 - clock_s).max(0.0);
                p.cpu_s += cpu;
                p.submit_us.push(cpu * 1e6);
                p.images_submitted += batch as u64;
            }
            inflight.push_back((slot, ticket, at, measuring));
        } else {
            // Nothing to do until the GPU side frees a slot: give its threads the core.
            std::thread::yield_now();
        }
        if t >= next_print {
            next_print = t + 0.25;
            let shown = if measuring {
                format!(
                    "{in_window:4.1}/{seconds:.1} s, {:>9.0} images/s",
                    p.images as f64 / in_window.max(1e-9)
                )
            } else {
                "warming up".to_string()
            };
            eprint!("\r  {label:<22} {shown}      ");
            let _ = std::io::stderr().flush();
        }
    }
    for (_, ticket, _, _) in inflight.drain(..) {
        netml_gpu::wait(ingest, ticket)?;
    }
    p.backpressure_waits = ingest.counters().backpressure_waits - bp_start;
    p.wire_bytes = p.images * pool.wire_bytes as u64;
    Ok(p)
}

/// The ceiling of cpu-copy on one core: a plain memcpy of the same payloads (same mbuf
/// layout) into a destination as large as cpu-copy's staging (`places` image places of a
/// slot image's size: every slot's), CPU microseconds per image and GB/s per CPU second (one
/// core's bandwidth, whatever else runs).
pub(super) fn memcpy_ceiling(pool: &Pool, places: usize, seconds: f64) -> (f64, f64) {
    let places = places.max(1);
    let mut dst = vec![0u8; pool.slot_image_bytes * places];
    let (t0, c0) = (Instant::now(), thread_cpu_s());
    let mut images = 0usize;
    while images < 4 || t0.elapsed().as_secs_f64() < seconds {
        let at = (images % places) * pool.slot_image_bytes;
        for f in pool.image(images) {
            // SAFETY: the fragment is `len` readable bytes of the pool; the destination range
            // is inside `dst` (offsets + lengths cover one image).
            unsafe {
                std::ptr::copy_nonoverlapping(f.src, dst.as_mut_ptr().add(at + f.dst_offset), f.len)
            };
        }
        images += 1;
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), thread_cpu_s() - c0);
    std::hint::black_box(&dst);
    (
        cpu * 1e6 / images as f64,
        (images * pool.wire_bytes) as f64 / cpu.max(wall * 1e-3) / 1e9,
    )
}
