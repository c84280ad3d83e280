//! A GPU instance: one engine (plan + CUDA graph) per batch size in the pipeline's context,
//! run on the instance's own stream straight from the ingest's device slot; the scores come
//! back by one async copy into mapped pinned memory, and completion is an event polled by
//! the serving loop.
//!
//! Build every instance before a resident gather kernel starts in the context and drop it
//! after the kernel stopped (docs/gpu-ingest.md): stream and handle creation and teardown may
//! wait for the whole device.

use super::{top_k_rows, Answers, Input};
use cudarc::driver::{result, CudaContext, CudaEvent, CudaStream};
use netml_gpu::cuda::green::{GreenPartition, GreenStream};
use netml_gpu::cuda::memory::MappedPinned;
use netml_infer::gpu::GpuEngine;
use netml_infer::Engine;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The batch on the stream.
struct Running {
    images: usize,
}

/// A GPU instance of one function.
pub struct GpuInstance {
    engines: BTreeMap<usize, GpuEngine>,
    /// Scores of the running batch, `max_batch x classes` f32, written by the async copy.
    scores: MappedPinned,
    classes: usize,
    per_image: usize,
    top_k: usize,
    running: Option<Running>,
    done: CudaEvent,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    /// The green-context stream `stream` borrows, on a partition; declared after `stream` so
    /// that the borrowing wrapper is dropped first.
    _green: Option<GreenStream>,
    /// SMs the instance runs on: the partition's grant, or `None` for the whole device.
    sms: Option<u32>,
}

impl GpuInstance {
    /// An instance over `engines` (one per batch size, built with
    /// [`GpuEngine::with_context`] in `ctx`, so each plan is captured as a CUDA graph), with a
    /// stream, an event and the pinned score buffer of its own.
    pub fn new(
        ctx: &Arc<CudaContext>,
        engines: BTreeMap<usize, GpuEngine>,
        top_k: usize,
    ) -> Result<GpuInstance, String> {
        let stream = ctx
            .new_stream()
            .map_err(|e| format!("cuStreamCreate: {e:?}"))?;
        GpuInstance::with_stream(ctx, stream, None, engines, top_k)
    }

    /// An instance on `partition`'s SMs: as [`new`](Self::new), its batches (the engines'
    /// CUDA graphs, captured again on a stream of the green context
    /// ([`GpuEngine::capture_on`]), and the scores' copy) on that stream, so that they run on
    /// the partition's SMs only. A resize builds a new instance on a new partition
    /// ([`super::shadow`]). Replaying graphs captured on the primary context's stream did not
    /// confine them (H200, 2026-12-04); that the recapture does is not yet measured.
    pub fn on_partition(
        ctx: &Arc<CudaContext>,
        partition: &GreenPartition,
        mut engines: BTreeMap<usize, GpuEngine>,
        top_k: usize,
    ) -> Result<GpuInstance, String> {
        netml_gpu::cuda::untracked(ctx);
        let green = partition
            .new_stream()
            .map_err(|e| format!("cuGreenCtxStreamCreate: {e:?}"))?;
        // SAFETY: the wrapper lives in the instance's `stream` field, which is dropped before
        // its `green` field (declaration order), and is never handed out.
        let stream = unsafe { green.as_cuda_stream() };
        for (b, engine) in engines.iter_mut() {
            // SAFETY: a live, idle stream of a green context of the engines' context; the
            // engines are this instance's alone and idle (nothing enqueued yet).
            unsafe { engine.capture_on(Some(stream.cu_stream())) }
                .map_err(|e| format!("capturing batch {b} on the partition: {e}"))?;
        }
        let mut instance = GpuInstance::with_stream(ctx, stream, Some(green), engines, top_k)?;
        instance.sms = Some(partition.sm_count());
        Ok(instance)
    }

    /// SMs of the partition it runs on (`None`: the whole device).
    pub fn sms(&self) -> Option<u32> {
        self.sms
    }

    fn with_stream(
        ctx: &Arc<CudaContext>,
        stream: Arc<CudaStream>,
        green: Option<GreenStream>,
        engines: BTreeMap<usize, GpuEngine>,
        top_k: usize,
    ) -> Result<GpuInstance, String> {
        netml_gpu::cuda::untracked(ctx);
        let (per_image, classes, max_batch) = {
            let (&b, e) = engines.iter().next_back().ok_or("no batch size")?;
            (
                e.input_shape().iter().product::<usize>(),
                e.output_shape().iter().product::<usize>(),
                b,
            )
        };
        let done = ctx
            .new_event(None)
            .map_err(|e| format!("cuEventCreate: {e:?}"))?;
        let scores = MappedPinned::new(ctx, max_batch * classes * 4)
            .map_err(|e| format!("pinned score buffer: {e:?}"))?;
        Ok(GpuInstance {
            engines,
            scores,
            classes,
            per_image,
            top_k,
            running: None,
            done,
            stream,
            ctx: ctx.clone(),
            _green: green,
            sms: None,
        })
    }

    /// f32 values per image the engines take.
    pub fn per_image(&self) -> usize {
        self.per_image
    }

    /// Enqueues a batch: the engine of `input.engine_batch` on the instance's stream, the
    /// scores' copy back, the completion event.
    ///
    /// # Safety
    /// `input.ptr` must be device memory of the instance's context holding `input.images *
    /// per_image()` f32 values, written before this call (the gather completed) and left
    /// alone until [`poll`](Self::poll) returned this batch's result.
    pub unsafe fn start(&mut self, input: Input) -> Result<(), String> {
        if self.running.is_some() {
            return Err("instance busy".into());
        }
        let engine = self
            .engines
            .get_mut(&input.engine_batch)
            .ok_or_else(|| format!("no engine plan for batch {}", input.engine_batch))?;
        let raw = self.stream.cu_stream();
        // SAFETY: the caller's contract covers the input; the stream is this context's.
        unsafe { engine.enqueue(raw, input.ptr, input.images) }.map_err(|e| e.to_string())?;
        let n = input.images * self.classes;
        // SAFETY: the pinned buffer holds max_batch x classes f32 and nothing reads it until
        // the event below has completed; the source is the engine's output on this stream.
        let dst = unsafe { std::slice::from_raw_parts_mut(self.scores.host_ptr() as *mut f32, n) };
        unsafe { result::memcpy_dtoh_async(dst, engine.output_device_ptr(), raw) }
            .map_err(|e| format!("cuMemcpyDtoHAsync: {e:?}"))?;
        self.done
            .record(&self.stream)
            .map_err(|e| format!("cuEventRecord: {e:?}"))?;
        self.running = Some(Running {
            images: input.images,
        });
        Ok(())
    }

    /// The running batch's result, once its event completed.
    pub fn poll(&mut self) -> Option<Result<Answers, String>> {
        let images = self.running.as_ref()?.images;
        if let Err(e) = self.ctx.bind_to_thread() {
            return Some(Err(format!("cuCtxSetCurrent: {e:?}")));
        }
        match self.done.try_is_complete() {
            Ok(false) => None,
            Ok(true) => {
                self.running = None;
                // SAFETY: the copy into the buffer completed (its event did) and nothing
                // writes it until the next `start`.
                let scores = unsafe {
                    std::slice::from_raw_parts(
                        self.scores.host_ptr() as *const f32,
                        images * self.classes,
                    )
                };
                Some(Ok(top_k_rows(scores, images, self.classes, self.top_k)))
            }
            Err(e) => {
                self.running = None;
                Some(Err(format!("batch on the GPU failed: {e:?}")))
            }
        }
    }
}
