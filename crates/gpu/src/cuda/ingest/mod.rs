//! The three ingest modes on a GPU ([`Target::Gpu`](crate::Target::Gpu)), behind
//! [`Ingest`]: see docs/gpu-ingest.md ("The GPU side").
//!
//! * `netml` ([`resident`]): `gather_resident` launched once, polling a doorbell ring in mapped
//!   pinned memory; completion read from the ring's state words.
//! * `launch` ([`launch`]): one `gather_launch` per ring entry, an event after each batch.
//! * `cpu-copy` ([`cpu_copy`]): the calling thread copies into pinned staging, one
//!   `cuMemcpyHtoDAsync` per batch (conversions read the staging with `gather_launch`).
//!
//! Fragment sources are used as they are (UVA): they must lie in host memory registered with
//! [`Registered`](crate::cuda::Registered) (the pipeline registers its DPDK memory segments once
//! at start); the ingest registers nothing per job. A source outside registered memory makes
//! the kernel fault, which ends the CUDA context (every later call reports
//! [`IngestError::Device`]).

mod cpu_copy;
mod events;
mod launch;
mod ledger;
mod plan;
mod pool;
mod producer;
mod resident;
mod slots;
mod streamed;
#[cfg(test)]
mod twins_tests;
mod watchdog;

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{result, sys, CudaContext, CudaFunction, DriverError};

use crate::cuda::nvrtc::{GATHER, GATHER_ENTRIES};
use crate::host_modes::check_config;
use crate::ring::RawEntryHead;
use crate::{Ingest, IngestConfig, IngestError, IngestMode};
use slots::dev;

/// Threads per block of both gather kernels (8 warps; a multiple of 32 as the kernel requires).
pub const THREADS_PER_BLOCK: u32 = 256;

/// GPU-only settings of an ingest (the shape common to all targets is [`IngestConfig`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuIngestOptions {
    /// SMs of the green-context partition the resident kernel runs in (`netml` mode; the
    /// driver rounds up to its granularity). 0: no partition, an ordinary stream.
    pub green_sms: u32,
    /// Watchdog: the oldest pending batch may take this long before `poll` reports
    /// [`IngestError::Stalled`].
    pub stall_ms: u64,
    /// Most descriptors one ring entry carries (size of each entry's device-visible descriptor
    /// array). Copies are split over several entries; a converted image with more fragments is
    /// refused with `SubmitError::TooLarge`.
    pub max_frags_per_entry: usize,
    /// How long dropping an ingest waits for the GPU to finish before it leaks the memory the
    /// GPU may still use (and logs an error) instead of hanging.
    pub shutdown_ms: u64,
}

impl Default for GpuIngestOptions {
    fn default() -> Self {
        Self {
            green_sms: 8,
            stall_ms: 1000,
            // 32 images of 588 fragments (3 x 224 x 224 f32 in 1 KiB payloads) in one entry.
            max_frags_per_entry: 32 * 588,
            shutdown_ms: 2000,
        }
    }
}

/// Starts `cfg.mode` on GPU `ordinal` (primary context) with the default options.
///
/// Without a CUDA driver this is an [`IngestError::Device`] (never a panic).
pub fn open(cfg: &IngestConfig, ordinal: usize) -> Result<Box<dyn Ingest>, IngestError> {
    // SAFETY: only tries to dlopen libcuda's candidate names (cudarc panics on the first
    // driver call when it is absent).
    if !unsafe { sys::is_culib_present() } {
        return Err(IngestError::Device(
            "no CUDA driver (libcuda.so.1 not found)".into(),
        ));
    }
    let ctx = crate::cuda::context(ordinal).map_err(dev("opening the GPU"))?;
    open_in(&ctx, cfg, &GpuIngestOptions::default())
}

/// Starts `cfg.mode` in `ctx` (the context inference uses, so slots are shared in place).
///
/// Turns cudarc's event tracking off on `ctx` ([`untracked`](crate::cuda::untracked)): with it
/// on, a first `new_stream` on the wrapper would synchronise the context, forever once a
/// resident kernel runs.
pub fn open_in(
    ctx: &Arc<CudaContext>,
    cfg: &IngestConfig,
    opts: &GpuIngestOptions,
) -> Result<Box<dyn Ingest>, IngestError> {
    check(cfg, opts)?;
    crate::cuda::untracked(ctx);
    ctx.bind_to_thread().map_err(dev("binding the context"))?;
    let kernels = Kernels::load(ctx)?;
    Ok(match cfg.mode {
        IngestMode::Netml => Box::new(resident::ResidentIngest::start(ctx, cfg, opts, kernels)?),
        IngestMode::Launch | IngestMode::CpuCopy => {
            Box::new(streamed::StreamIngest::new(ctx, cfg, opts, kernels)?)
        }
    })
}

fn check(cfg: &IngestConfig, opts: &GpuIngestOptions) -> Result<(), IngestError> {
    check_config(cfg)?;
    if opts.max_frags_per_entry == 0 {
        return Err(IngestError::Device(
            "invalid ingest config: max_frags_per_entry must be at least 1".into(),
        ));
    }
    Ok(())
}

/// The two gather kernels, compiled with NVRTC for this GPU and loaded eagerly into the
/// context ([`kernels::load`](crate::cuda::kernels::load)). (Each `CudaFunction` keeps the
/// module loaded.)
pub(crate) struct Kernels {
    resident: CudaFunction,
    launch: CudaFunction,
}

impl Kernels {
    fn load(ctx: &Arc<CudaContext>) -> Result<Self, IngestError> {
        let mut f = crate::cuda::kernels::load(ctx, &GATHER, &GATHER_ENTRIES)
            .map_err(IngestError::Device)?
            .functions
            .into_iter();
        match (f.next(), f.next()) {
            (Some(resident), Some(launch)) => Ok(Self { resident, launch }),
            _ => Err(IngestError::Device(
                "gather.cu: entry points missing".into(),
            )),
        }
    }

    /// Enqueues `gather_launch(entry, head)` with `blocks` blocks on `stream` (`head`: the
    /// entry's own fields, `RawEntry::head`).
    ///
    /// # Safety
    /// `entry` must be the device address of a fully written entry whose descriptors, sources
    /// and destination stay valid until the launch completed on `stream`.
    pub(crate) unsafe fn launch_entry(
        &self,
        blocks: u32,
        stream: sys::CUstream,
        entry: u64,
        head: &RawEntryHead,
    ) -> Result<(), DriverError> {
        let mut arg = entry;
        let mut head = *head;
        let mut params = [
            &mut arg as *mut u64 as *mut c_void,
            &mut head as *mut RawEntryHead as *mut c_void,
        ];
        // SAFETY: the parameters `gather_launch(const netml_entry*, netml_entry_head)` takes (a
        // pointer, then the 64-byte struct RawEntryHead mirrors); the driver copies them during
        // the call. Validity of what the pointer points at: caller.
        unsafe {
            result::launch_kernel(
                self.launch.cu_function(),
                (blocks, 1, 1),
                (THREADS_PER_BLOCK, 1, 1),
                0,
                stream,
                &mut params,
            )
        }
    }
}

/// True when every operation enqueued on `stream` has completed.
pub(crate) fn stream_idle(stream: sys::CUstream) -> Result<bool, DriverError> {
    // SAFETY: a live stream handle owned by the caller.
    match unsafe { sys::cuStreamQuery(stream) } {
        sys::CUresult::CUDA_SUCCESS => Ok(true),
        sys::CUresult::CUDA_ERROR_NOT_READY => Ok(false),
        e => Err(DriverError(e)),
    }
}

/// Waits up to `limit` for `stream` to go idle, without ever blocking in the driver (a hung
/// kernel must not hang the process). Ok(false): still busy after `limit`.
pub(crate) fn drain(stream: sys::CUstream, limit: Duration) -> Result<bool, DriverError> {
    let start = Instant::now();
    loop {
        if stream_idle(stream)? {
            return Ok(true);
        }
        if start.elapsed() >= limit {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// GPU resources leaked so far by ingests whose work did not finish at drop.
static LEAKED: AtomicUsize = AtomicUsize::new(0);

/// How many ingests of this process leaked their GPU resources at drop because the GPU did not
/// finish (a resident kernel that did not stop even on abort, a stream that did not drain).
///
/// After a leak the context is not safe to wait on: `cuMemFree`, `cuModuleUnload`,
/// `cudnnDestroy` and friends may wait for the stuck kernel forever. A process that sees this
/// above 0 should stop doing GPU work and exit (process exit ends the kernel).
pub fn leaked_kernels() -> usize {
    LEAKED.load(Ordering::Relaxed)
}

/// Forgets `what` (memory the GPU may still use) and counts it in [`leaked_kernels`].
pub(crate) fn leak<T>(what: T) {
    LEAKED.fetch_add(1, Ordering::Relaxed);
    std::mem::forget(what);
}

/// Spin, then yield: waiting for the GPU, which answers in microseconds.
pub(crate) fn backoff(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins < 256 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_answers_an_error_without_a_driver_and_an_ingest_with_one() {
        for mode in IngestMode::ALL {
            let cfg = IngestConfig {
                mode,
                slots: 2,
                slot_bytes: 1 << 20,
                ..IngestConfig::default()
            };
            // SAFETY: only tries to dlopen libcuda's candidate names.
            if unsafe { sys::is_culib_present() } {
                let ingest = open(&cfg, 0).expect("open on a machine with a driver");
                assert_eq!(ingest.mode(), mode);
                assert!(ingest.slot_device_ptr(1).is_some());
            } else {
                let err = open(&cfg, 0).err().expect("no driver, no ingest");
                assert!(err.to_string().contains("no CUDA driver"), "{err}");
            }
        }
        let bad = IngestConfig {
            blocks: 0,
            ..IngestConfig::default()
        };
        let opts = GpuIngestOptions::default();
        assert!(matches!(check(&bad, &opts), Err(IngestError::Device(_))));
        let huge = IngestConfig {
            slot_bytes: 1 << 33,
            ..IngestConfig::default()
        };
        assert!(matches!(check(&huge, &opts), Err(IngestError::Device(_))));
        assert!(check(&IngestConfig::default(), &opts).is_ok());
    }
}
