//! [`GpuEngine`]: loads a [`Plan`] onto a GPU (weights, arena, descriptors, algorithms,
//! kernels), records its [`GpuPlan`] once into a CUDA graph and replays it per batch.

use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext, CudaStream};

use super::blas::Blas;
use super::calls::{Call, DType, GpuPlan};
use super::device::{err, load_libraries, DevBuf};
use super::dnn::Dnn;
use super::kernels::{Kernels, Ptrs};
use super::prepare::{conv_ptrs, partial, prepare, Prepared};
use super::translate::translate;
use crate::engine::{check_input, Engine, Output};
use crate::error::{Error, Result};
use crate::plan::{Plan, Precision, ARENA_ALIGN};

/// An instantiated CUDA graph.
struct Graph {
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
}

impl Drop for Graph {
    fn drop(&mut self) {
        if self.exec.is_null() {
            return; // never captured (load failed before)
        }
        // SAFETY: both come from a successful capture + instantiate and are destroyed once.
        unsafe {
            let _ = result::graph::exec_destroy(self.exec);
            let _ = result::graph::destroy(self.graph);
        }
    }
}

/// The plan on cuDNN + cuBLAS + NVRTC kernels, replayed as one CUDA graph per batch.
///
/// Create it before the pipeline launches its resident gather kernel and drop it after that
/// kernel stops: cuDNN's and cuBLAS's handle teardown synchronises the whole device
/// (docs/inference.md, "GPU executor").
///
/// Fields drop in declaration order: the graph and library handles before the memory they
/// address, the stream and context last (`Drop` binds the context and drains the stream).
pub struct GpuEngine {
    graph: Graph,
    prepared: Vec<Prepared>,
    dnn: Dnn,
    blas: Blas,
    kernels: Kernels,
    ptrs: Ptrs,
    _arena: DevBuf,
    _weights: DevBuf,
    zero_bias: Option<DevBuf>,
    _scratch: DevBuf,
    workspace: DevBuf,
    staging: DevBuf,
    out: DevBuf,
    host_out: Vec<f32>,
    plan: Plan,
    gp: GpuPlan,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
}

// SAFETY: the raw handles (cuDNN, cuBLAS, graph, device pointers) are used only through
// `&mut self` or `&self` methods that bind the engine's context first; cuDNN and cuBLAS
// handles may move between threads as long as they are not used concurrently, which `&mut`
// and the absence of `Sync` guarantee.
unsafe impl Send for GpuEngine {}

impl GpuEngine {
    /// Loads an ONNX file onto GPU `ordinal` (compiled for `batch`, `precision`).
    pub fn load(
        path: impl AsRef<std::path::Path>,
        batch: usize,
        precision: Precision,
        ordinal: usize,
    ) -> Result<GpuEngine> {
        let plan = Plan::load(path, batch, precision)?;
        GpuEngine::new(plan, ordinal)
    }

    /// Wraps `plan` on GPU `ordinal`; fails with one clear line when there is no driver, no
    /// GPU, or no cuDNN / cuBLAS.
    pub fn new(plan: Plan, ordinal: usize) -> Result<GpuEngine> {
        // Translate first: an unsupported plan is reported the same way with or without a GPU.
        let gp = translate(&plan)?;
        let gpus = netml_gpu::cuda::discover().map_err(|e| Error::Backend(e.to_string()))?;
        if ordinal >= gpus.len() {
            return Err(Error::Backend(format!(
                "no GPU {ordinal} ({} found)",
                gpus.len()
            )));
        }
        let ctx = netml_gpu::cuda::context(ordinal).map_err(err("cuCtxCreate"))?;
        load_libraries()?;
        GpuEngine::build(&ctx, plan, gp)
    }

    /// Wraps `plan` in an existing context (the pipeline's), on a new stream of its own.
    ///
    /// Build every engine before a resident gather kernel starts in the context, and drop it
    /// after the kernel stopped: loading (stream creation, cuDNN / cuBLAS handles and their
    /// lazily loaded kernels, the warm-up run) and handle teardown may wait for the whole
    /// device. Turns cudarc's event tracking off on `ctx` (`netml_gpu::cuda::untracked`), so
    /// that the stream created here never synchronises the context.
    pub fn with_context(ctx: &Arc<CudaContext>, plan: Plan) -> Result<GpuEngine> {
        netml_gpu::cuda::untracked(ctx);
        load_libraries()?;
        let gp = translate(&plan)?;
        GpuEngine::build(ctx, plan, gp)
    }

    /// Loads `plan`, translated to `gp`, in `ctx`. The caller has loaded the libraries first:
    /// cudarc panics on a cuDNN/cuBLAS call into a library it cannot load.
    fn build(ctx: &Arc<CudaContext>, plan: Plan, gp: GpuPlan) -> Result<GpuEngine> {
        ctx.bind_to_thread().map_err(err("cuCtxSetCurrent"))?;
        let stream = ctx.new_stream().map_err(err("cuStreamCreate"))?;
        let elem = plan.precision.elem_bytes();
        let raw = stream.cu_stream();
        let arena = DevBuf::zeroed(gp.arena_bytes, raw)?;
        // All weights in one allocation, each at an aligned offset.
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(plan.weights.len());
        for w in &plan.weights {
            offsets.push(bytes.len());
            bytes.extend(DType::of(plan.precision).pack(&w.data));
            bytes.resize(bytes.len().next_multiple_of(ARENA_ALIGN), 0);
        }
        let weights = DevBuf::from_bytes(&bytes, raw)?;
        let zero_bias = (gp.zero_bias_elems > 0)
            .then(|| DevBuf::zeroed(gp.zero_bias_elems * elem, raw))
            .transpose()?;
        let scratch = DevBuf::zeroed(gp.scratch_bytes, raw)?;
        let staging = DevBuf::zeroed(gp.input_elems * 4, raw)?;
        let out = DevBuf::zeroed(gp.output_elems * 4, raw)?;
        let ptrs = Ptrs {
            arena: arena.ptr(),
            weights: offsets.iter().map(|&o| weights.ptr() + o as u64).collect(),
            scratch: scratch.ptr(),
            input: staging.ptr(),
            output: out.ptr(),
        };
        let dnn = Dnn::new(raw as _)?;
        let blas = Blas::new(raw)?;
        let kernels = Kernels::load(ctx, gp.kernel_names().into_iter())?;
        let (prepared, ws_bytes) = prepare(&gp, &dnn, &ptrs, zero_bias.as_ref(), raw)?;
        let workspace = DevBuf::zeroed(ws_bytes, raw)?;
        let mut engine = GpuEngine {
            graph: Graph {
                graph: std::ptr::null_mut(),
                exec: std::ptr::null_mut(),
            },
            prepared,
            dnn,
            blas,
            kernels,
            ptrs,
            _arena: arena,
            _weights: weights,
            zero_bias,
            _scratch: scratch,
            workspace,
            staging,
            out,
            host_out: vec![0f32; gp.output_elems],
            plan,
            gp,
            stream,
            ctx: ctx.clone(),
        };
        let own = engine.stream.cu_stream();
        engine.capture_with(own)?;
        engine
            .stream
            .synchronize()
            .map_err(err("cuStreamSynchronize"))?;
        Ok(engine)
    }

    /// The translated plan the graph was recorded from.
    pub fn gpu_plan(&self) -> &GpuPlan {
        &self.gp
    }

    /// The compiled plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Device address of the f32 output, `[max_batch, output_shape()...]` in logical order,
    /// valid once the work [`enqueue`](GpuEngine::enqueue)d on a stream has completed.
    pub fn output_device_ptr(&self) -> u64 {
        self.out.ptr()
    }

    /// Runs one batch on `stream` without synchronising: converts `batch` images of f32
    /// logical NCHW at `input` into the arena, replays the graph, and converts the output to
    /// f32 at [`output_device_ptr`](GpuEngine::output_device_ptr). Images past `batch`
    /// keep the previous contents (finite; their outputs are meaningless).
    ///
    /// # Safety
    /// `input` must be device memory of this engine's context holding `batch ×
    /// input_shape()` f32 values that stays valid and unmodified until the stream reaches
    /// this work; `stream` must belong to the same context. Two enqueues that may overlap
    /// (different streams) race on the engine's arena: order them.
    pub unsafe fn enqueue(
        &mut self,
        stream: sys::CUstream,
        input: u64,
        batch: usize,
    ) -> Result<()> {
        if batch == 0 || batch > self.plan.batch {
            return Err(Error::BadInputShape {
                expected: format!("a batch of 1..={} images", self.plan.batch),
                got: format!("batch {batch}"),
            });
        }
        self.ctx.bind_to_thread().map_err(err("cuCtxSetCurrent"))?;
        let per = self.gp.input_elems / self.plan.batch;
        let upload = partial(&self.gp.upload, batch * per);
        self.ptrs.input = input;
        self.kernels.launch(&upload, &self.ptrs, stream)?;
        result::graph::launch(self.graph.exec, stream).map_err(err("cuGraphLaunch"))?;
        self.kernels.launch(&self.gp.download, &self.ptrs, stream)
    }

    /// Records the graph again on `stream`, with cuDNN and cuBLAS bound to it while it
    /// records, so that the graph's kernel nodes are `stream`'s: on a stream of a green
    /// context, they run on the partition's SMs. Replayed on a green stream, a graph captured
    /// on the engine's own stream (the primary context) ran as fast on 8 SMs as on 132 (H200,
    /// 2026-12-04, docs/benchmarks.md "GPU verification on the H200"): its work was not
    /// confined. That this confines it is not yet measured on a GPU. `None` captures on the
    /// engine's own stream again (as it was built).
    ///
    /// # Safety
    /// `stream` must be a live stream of this engine's device, of its context or one of that
    /// context's green contexts, with nothing of this engine in flight on any stream.
    pub unsafe fn capture_on(&mut self, stream: Option<sys::CUstream>) -> Result<()> {
        let stream = stream.unwrap_or_else(|| self.stream.cu_stream());
        self.ctx.bind_to_thread().map_err(err("cuCtxSetCurrent"))?;
        // SAFETY: the caller's contract: a live stream, no call of the handles in flight.
        unsafe { self.bind_libraries(stream) }?;
        let captured = self.capture_with(stream);
        // SAFETY: the engine's own stream, live as long as the engine.
        let restored = unsafe { self.bind_libraries(self.stream.cu_stream()) };
        captured.and(restored)
    }

    /// Binds cuDNN and cuBLAS to `stream`.
    ///
    /// # Safety
    /// As [`capture_on`](GpuEngine::capture_on).
    unsafe fn bind_libraries(&self, stream: sys::CUstream) -> Result<()> {
        // SAFETY: the caller's contract.
        unsafe {
            self.dnn.set_stream(stream as _)?;
            self.blas.set_stream(stream)
        }
    }

    /// Records every call of the plan on `raw` (where cuDNN and cuBLAS are bound) into the
    /// graph, after one eager run of the same calls: that first run makes cuDNN, cuBLAS and
    /// the driver load every kernel module (lazy loading) and initialise, none of which may
    /// happen under capture.
    fn capture_with(&mut self, raw: sys::CUstream) -> Result<()> {
        self.record(raw)?;
        // SAFETY: a live stream (the caller's).
        unsafe { result::stream::synchronize(raw) }.map_err(err("warm-up run before capture"))?;
        // SAFETY: a live stream, idle (synchronised above); thread-local mode keeps other
        // threads' unrelated CUDA calls legal while we capture.
        unsafe {
            result::stream::begin_capture(
                raw,
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
            )
        }
        .map_err(err("cuStreamBeginCapture"))?;
        let recorded = self.record(raw);
        // SAFETY: ends the capture begun above, whatever happened in between.
        let graph = unsafe { result::stream::end_capture(raw) }.map_err(err("cuStreamEndCapture"));
        recorded?;
        let graph = graph?;
        // SAFETY: a graph fresh from a successful capture.
        let exec =
            match unsafe { result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) } {
                Ok(e) => e,
                Err(e) => {
                    // SAFETY: not instantiated, owned by nobody else.
                    let _ = unsafe { result::graph::destroy(graph) };
                    return Err(err("cuGraphInstantiate")(e));
                }
            };
        self.graph = Graph { graph, exec };
        Ok(())
    }

    /// Issues the calls in order on `stream` (the stream cuDNN and cuBLAS are bound to).
    fn record(&self, stream: sys::CUstream) -> Result<()> {
        let ws = self.workspace.ptr();
        for (c, prep) in self.gp.calls.iter().zip(&self.prepared) {
            // SAFETY: every address comes from `Ptrs` over allocations sized from the same
            // GpuPlan, which `translate` bounds-checked against them.
            unsafe {
                match (&c.call, prep) {
                    (Call::Conv(v), Prepared::Conv(p)) => {
                        let a = conv_ptrs(v, &self.ptrs, self.zero_bias.as_ref());
                        self.dnn.conv(p, v.z.is_some(), a, ws)?;
                        if !p.fused {
                            self.kernels.launch(&v.epilogue, &self.ptrs, stream)?
                        }
                    }
                    (Call::Pool(v), Prepared::Pool(p)) => self.dnn.pool(
                        p,
                        self.ptrs.arena + v.x.offset as u64,
                        self.ptrs.arena + v.y.offset as u64,
                    )?,
                    (Call::Gemm(g), _) => self.blas.gemm(
                        g,
                        self.gp.dtype,
                        self.ptrs.arena + g.x_offset as u64,
                        self.ptrs.weights[g.w.0],
                        self.ptrs.scratch,
                    )?,
                    (Call::Kernel(k), _) => self.kernels.launch(k, &self.ptrs, stream)?,
                    _ => {
                        return Err(Error::Internal(
                            "gpu: call and prepared state out of step".into(),
                        ))
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for GpuEngine {
    fn drop(&mut self) {
        // Bind so the fields' destructors act on our context, and let in-flight work finish
        // before the memory it uses is freed.
        let _ = self.ctx.bind_to_thread();
        let _ = self.stream.synchronize();
    }
}

impl Engine for GpuEngine {
    fn name(&self) -> &str {
        "gpu (cuDNN + cuBLAS)"
    }

    crate::engine::plan_engine_accessors!();

    fn run(&mut self, input: &[f32], batch: usize) -> Result<Output> {
        check_input(self, input, batch)?;
        self.ctx.bind_to_thread().map_err(err("cuCtxSetCurrent"))?;
        let raw = self.stream.cu_stream();
        let per_out = self.gp.output_elems / self.plan.batch;
        // SAFETY: the staging buffer holds max_batch images (input.len() ≤ that, checked);
        // everything runs on our stream, which is synchronised before `input` and `host_out`
        // are released or read.
        unsafe {
            result::memcpy_htod_async(self.staging.ptr(), input, raw)
                .map_err(err("cuMemcpyHtoDAsync"))?;
            self.enqueue(raw, self.staging.ptr(), batch)?;
            result::memcpy_dtoh_async(&mut self.host_out[..batch * per_out], self.out.ptr(), raw)
                .map_err(err("cuMemcpyDtoHAsync"))?;
        }
        self.stream
            .synchronize()
            .map_err(err("cuStreamSynchronize"))?;
        let mut shape = vec![batch];
        shape.extend_from_slice(self.plan.output_shape());
        Ok(Output {
            shape,
            data: self.host_out[..batch * per_out].to_vec(),
        })
    }
}
