//! Measurements of the GPU ingest: gather bandwidth of the resident kernel and completion
//! latencies, with packets laid out like the pipeline's: 1 KiB payloads at a fixed offset of
//! 2 KiB "mbufs" in one registered buffer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{result, CudaContext, DriverError};
use netml_gpu::cuda::ingest::{open_in, GpuIngestOptions};
use netml_gpu::cuda::{MappedPinned, Registered};
use netml_gpu::{
    wait, GatherSms, ImageJob, Ingest, IngestConfig, IngestError, IngestMode, RawFragment, Sources,
    Ticket,
};

/// Fragments per image: 3 x 224 x 224 f32 = 602,112 B in 1 KiB payloads (the reference).
pub const FRAGS: usize = 588;
/// Payload bytes per fragment.
pub const PAYLOAD: usize = 1024;
/// Bytes per image.
pub const IMAGE: usize = FRAGS * PAYLOAD;
/// Images per batch.
pub const BATCH: usize = 32;
/// Bytes between consecutive mbufs.
const MBUF: usize = 2048;

/// One batch worth of mbufs (`BATCH * FRAGS`), filled with a pattern and registered.
pub struct Mbufs {
    /// First field: unregistered before `buf` is freed.
    _reg: Registered,
    buf: Vec<u8>,
    start: usize,
}

impl Mbufs {
    /// Allocates, fills and registers `BATCH * FRAGS` mbufs (page-aligned start).
    pub fn new(ctx: &Arc<CudaContext>) -> Result<Self, DriverError> {
        let len = MBUF_BYTES;
        let mut buf = pattern(len + 4096);
        let start = buf.as_ptr().align_offset(4096);
        // SAFETY: `buf[start..start + len]` is a live heap range registered by nobody else;
        // the registration is dropped before `buf` (field order) and `buf` never reallocates.
        let reg = unsafe { Registered::new(ctx, buf.as_mut_ptr().add(start), len)? };
        Ok(Self {
            _reg: reg,
            buf,
            start,
        })
    }

    /// The fragments of image `i` of a batch, payloads at byte `offset` of their mbufs.
    pub fn image(&self, i: usize, offset: usize) -> Vec<RawFragment> {
        (0..FRAGS)
            .map(|f| RawFragment {
                src: self.buf[self.start + (i * FRAGS + f) * MBUF + offset..].as_ptr(),
                len: PAYLOAD,
                dst_offset: f * PAYLOAD,
            })
            .collect()
    }

    /// The bytes image `i` should gather to.
    pub fn expected(&self, i: usize, offset: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(IMAGE);
        for f in 0..FRAGS {
            let at = self.start + (i * FRAGS + f) * MBUF + offset;
            out.extend_from_slice(&self.buf[at..at + PAYLOAD]);
        }
        out
    }
}

/// Bytes of all the mbufs of one batch.
pub const MBUF_BYTES: usize = BATCH * FRAGS * MBUF;

/// `len` bytes of a fixed pattern that no two nearby fragments share.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect()
}

/// One image per fragment list, image `i` at slot offset `i * IMAGE`.
pub fn jobs<'a>(frags: &'a [Vec<RawFragment>]) -> Vec<ImageJob<'a>> {
    frags
        .iter()
        .enumerate()
        .map(|(i, f)| ImageJob {
            slot_offset: i * IMAGE,
            fragments: Sources::Listed(f),
            convert: None,
        })
        .collect()
}

/// Best-of-5 GB/s of one synchronous pinned `cuMemcpyHtoD` of `bytes` (the DMA ceiling the
/// gather is compared with, measured in the same run).
pub fn pinned_gbps(ctx: &Arc<CudaContext>, bytes: usize) -> Result<f64, DriverError> {
    let src = MappedPinned::new(ctx, bytes)?;
    ctx.bind_to_thread()?;
    // SAFETY: plain allocation, freed below after the synchronous copies.
    let dst = unsafe { result::malloc_sync(bytes) }?;
    let mut best = f64::INFINITY;
    let mut res = Ok(());
    for i in 0..6 {
        let t = Instant::now();
        // SAFETY: `bytes` readable pinned bytes and `bytes` of device memory, both alive.
        res = unsafe { cudarc::driver::sys::cuMemcpyHtoD_v2(dst, src.host_ptr().cast(), bytes) }
            .result();
        if res.is_err() {
            break;
        }
        if i > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    // SAFETY: allocated above; no copy is in flight (they were synchronous).
    unsafe { result::free_sync(dst) }?;
    res?;
    Ok(bytes as f64 / best / 1e9)
}

/// One bandwidth run of the `netml` mode.
pub struct Gathered {
    /// 10^9 payload bytes per second.
    pub gbps: f64,
    /// Whether image 0 of the last batch in slot 0 matched the mbufs byte for byte.
    pub matched: bool,
    /// Where the kernel ran (the green partition granted, or the whole GPU after a fallback).
    pub sms: Option<GatherSms>,
}

/// The `netml` mode gathering `batches` batches of [`BATCH`] images with `blocks` blocks in
/// the default green partition, payloads at `offset`.
pub fn gather_gbps(
    ctx: &Arc<CudaContext>,
    mbufs: &Mbufs,
    blocks: u32,
    offset: usize,
    batches: usize,
) -> Result<Gathered, IngestError> {
    let sms = GpuIngestOptions::default().green_sms;
    gather_gbps_on(ctx, mbufs, blocks, offset, batches, sms)
}

/// [`gather_gbps`] on a green partition of `green_sms` SMs (0: the whole GPU).
pub fn gather_gbps_on(
    ctx: &Arc<CudaContext>,
    mbufs: &Mbufs,
    blocks: u32,
    offset: usize,
    batches: usize,
    green_sms: u32,
) -> Result<Gathered, IngestError> {
    let cfg = IngestConfig {
        mode: IngestMode::Netml,
        slots: 2,
        slot_bytes: BATCH * IMAGE,
        blocks,
        ring_entries: 8,
    };
    let opts = GpuIngestOptions {
        green_sms,
        ..GpuIngestOptions::default()
    };
    let mut ing = open_in(ctx, &cfg, &opts)?;
    let frags: Vec<_> = (0..BATCH).map(|i| mbufs.image(i, offset)).collect();
    let jobs = jobs(&frags);
    // SAFETY: the mbufs outlive `ing`'s work (every ticket is waited for below).
    let warm = unsafe { ing.submit(0, &jobs)? };
    wait(ing.as_mut(), warm)?;
    let t0 = Instant::now();
    let mut last: [Option<Ticket>; 2] = [None; 2];
    for b in 0..batches {
        let s = b % 2;
        if let Some(t) = last[s] {
            wait(ing.as_mut(), t)?;
        }
        // SAFETY: as above; the slot's previous batch completed.
        last[s] = Some(unsafe { ing.submit(s, &jobs)? });
    }
    for t in last.into_iter().flatten() {
        wait(ing.as_mut(), t)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut got = vec![0u8; IMAGE];
    ing.read_slot(0, &mut got)?;
    Ok(Gathered {
        gbps: (batches * BATCH * IMAGE) as f64 / secs / 1e9,
        matched: got == mbufs.expected(0, offset),
        sms: ing.gather_sms(),
    })
}

/// Percentiles of a latency sample.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Submit-to-completion latency of `jobs` into slot 0, `iters` times (after 10 warm-ups).
pub fn latency(
    ing: &mut dyn Ingest,
    jobs: &[ImageJob<'_>],
    iters: usize,
) -> Result<Latency, IngestError> {
    let mut samples = Vec::with_capacity(iters);
    for i in 0..iters + 10 {
        let t = Instant::now();
        // SAFETY: the sources outlive the call (borrowed by `jobs`), and each batch completes
        // before the next one goes into the same slot.
        let ticket = unsafe { ing.submit(0, jobs)? };
        while !ing.poll(ticket)? {
            std::hint::spin_loop();
        }
        if i >= 10 {
            samples.push(t.elapsed());
        }
    }
    samples.sort_unstable();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    Ok(Latency {
        p50: at(50),
        p99: at(99),
        max: *samples.last().expect("iters > 0"),
    })
}
