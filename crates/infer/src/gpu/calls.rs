//! [`GpuPlan`]: a [`Plan`](crate::plan::Plan) translated into the exact library calls and
//! kernel launches the GPU executor records into its CUDA graph. Pure data, no CUDA: every
//! descriptor dimension, stride, arena offset, kernel name and launch configuration is decided
//! here (by `translate`) and checked on machines without a GPU; the executor only turns
//! each [`Call`] into one cuDNN / cuBLAS / driver call.

use crate::error::{Error, Result};
use crate::plan::{Plan, Precision, WeightId};

/// Element type of activations and weights on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// `float` (cuDNN `CUDNN_DATA_FLOAT`, CUDA `CUDA_R_32F`).
    F32,
    /// IEEE half (cuDNN `CUDNN_DATA_HALF`, CUDA `CUDA_R_16F`).
    F16,
}

impl DType {
    /// The storage type of a plan's precision.
    pub fn of(precision: Precision) -> DType {
        match precision {
            Precision::Fp32 => DType::F32,
            Precision::Fp16 => DType::F16,
        }
    }

    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }

    /// Suffix of the typed kernels in `cuda-kernels/infer_ops.cu`.
    pub fn suffix(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        }
    }

    /// `values` as little-endian device bytes of this type (for f16, each value rounded to
    /// nearest-even; fp16 plans hold values that are already exact).
    pub fn pack(self, values: &[f32]) -> Vec<u8> {
        match self {
            DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        }
    }

    /// Little-endian bytes of this type as f32 (a trailing partial element is ignored).
    pub fn unpack(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        }
    }
}

/// A 4-D cuDNN tensor descriptor (`cudnnSetTensor4dDescriptorEx`): logical `[n, c, h, w]`
/// dimensions with element strides (NCHW or NHWC memory) at a byte offset in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorDesc {
    /// `[n, c, h, w]`.
    pub dims: [usize; 4],
    /// Element strides of `n, c, h, w`.
    pub strides: [usize; 4],
    /// Byte offset in the arena.
    pub offset: usize,
}

impl TensorDesc {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// One past the last byte, for the bounds check (the strides are those of a dense
    /// layout, so the extent is the element count).
    pub fn end(&self, dtype: DType) -> usize {
        self.offset + self.numel() * dtype.bytes()
    }
}

/// A cuDNN filter descriptor (`cudnnSetFilter4dDescriptor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterDesc {
    /// `[k, c / groups, r, s]`.
    pub dims: [usize; 4],
    /// `CUDNN_TENSOR_NHWC` (KRSC) rather than `CUDNN_TENSOR_NCHW` (KCRS).
    pub nhwc: bool,
    /// The uploaded filter.
    pub weight: WeightId,
}

/// Which forward algorithms a convolution may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgoRule {
    /// The fastest `cudnnFindConvolutionForwardAlgorithmEx` result that fits the workspace.
    Fastest,
    /// Only `CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM`: the fused call with an
    /// identity activation accepts no other.
    ImplicitPrecompGemm,
}

/// `cudnnConvolutionBiasActivationForward`: `y = act(conv(x, w) + alpha2*z + bias)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvCall {
    /// Input.
    pub x: TensorDesc,
    /// Filter.
    pub w: FilterDesc,
    /// Bias `[k]`; `None` uses the executor's zero vector (the fused call needs one).
    pub bias: Option<WeightId>,
    /// Residual; `None` passes `y` as `z` with `alpha2 = 0` (cuDNN allows z to alias y).
    pub z: Option<TensorDesc>,
    /// Output.
    pub y: TensorDesc,
    /// Symmetric zero padding `[h, w]`.
    pub pad: [usize; 2],
    /// Strides `[h, w]`.
    pub stride: [usize; 2],
    /// Dilations `[h, w]`.
    pub dilation: [usize; 2],
    /// `cudnnSetConvolutionGroupCount`.
    pub groups: usize,
    /// `CUDNN_ACTIVATION_RELU` (else `IDENTITY`; a Clip follows as an [`Call::Kernel`]).
    pub relu: bool,
    /// Algorithm restriction.
    pub algo: AlgoRule,
    /// `CUDNN_TENSOR_OP_MATH` (fp16) rather than `CUDNN_FMA_MATH` (fp32: no TF32, so the
    /// result stays within the fp32 tolerance of the reference).
    pub tensor_ops: bool,
    /// Fallback where cuDNN refuses the fused call for every algorithm: the executor runs
    /// `cudnnConvolutionForward` into `y` and then this `infer_bias_res_act_*` launch (bias,
    /// residual and activation in place on `y`).
    pub epilogue: KernelCall,
}

/// cuDNN pooling mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// `CUDNN_POOLING_MAX`.
    Max,
    /// `CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING`.
    AvgIncludePad,
    /// `CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING`.
    AvgExcludePad,
}

/// `cudnnPoolingForward` with a 2-D pooling descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolCall {
    /// Input.
    pub x: TensorDesc,
    /// Output.
    pub y: TensorDesc,
    /// Mode.
    pub mode: PoolMode,
    /// Window `[h, w]`.
    pub window: [usize; 2],
    /// Symmetric padding `[h, w]`.
    pub pad: [usize; 2],
    /// Strides `[h, w]`.
    pub stride: [usize; 2],
}

/// `cublasGemmEx` computing `acc[m, n] = x[m, k] · w[n, k]ᵀ` in f32 (CUBLAS_COMPUTE_32F) into
/// the executor's accumulator scratch; column-major: `op(A) = wᵀ` (transa = T, lda = k),
/// `B = x` (transb = N, ldb = k), `C = acc` (ldc = n), cuBLAS dims `(n, m, k)`. The bias and
/// activation follow as a `bias_act` [`Call::Kernel`] that rounds once into `y`.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmCall {
    /// Rows.
    pub m: usize,
    /// Output features.
    pub n: usize,
    /// Input features.
    pub k: usize,
    /// Byte offset of `x` in the arena.
    pub x_offset: usize,
    /// The `[n, k]` row-major matrix.
    pub w: WeightId,
}

/// One kernel argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KArg {
    /// Pointer into the arena at this byte offset.
    Arena(usize),
    /// Pointer to an uploaded weight.
    Weight(WeightId),
    /// Null pointer.
    Null,
    /// Pointer to the GEMM accumulator scratch (f32).
    Scratch,
    /// The batch input (f32, logical NCHW): the caller's device pointer.
    Input,
    /// The f32 logical output buffer.
    Output,
    /// `unsigned`.
    U32(u32),
    /// `int`.
    I32(i32),
    /// `float`.
    F32(f32),
}

/// A launch of one `extern "C"` kernel of `cuda-kernels/infer_ops.cu`.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelCall {
    /// Entry point, e.g. `infer_add_f16`.
    pub name: String,
    /// Blocks (1-D).
    pub grid: u32,
    /// Threads per block (1-D).
    pub block: u32,
    /// Arguments in declaration order.
    pub args: Vec<KArg>,
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// Fused convolution (boxed: by far the largest call).
    Conv(Box<ConvCall>),
    /// Pooling.
    Pool(PoolCall),
    /// Matrix product into the accumulator scratch.
    Gemm(GemmCall),
    /// A small kernel.
    Kernel(KernelCall),
}

/// A call and the plan step it implements (a step may need several calls).
#[derive(Debug, Clone, PartialEq)]
pub struct StepCall {
    /// Index in [`Plan::steps`](crate::plan::Plan::steps).
    pub step: usize,
    /// The call.
    pub call: Call,
}

/// Everything the executor does for one (model, batch, precision).
#[derive(Debug, Clone, PartialEq)]
pub struct GpuPlan {
    /// Storage type.
    pub dtype: DType,
    /// Compiled batch.
    pub batch: usize,
    /// Arena bytes (one device allocation).
    pub arena_bytes: usize,
    /// The graph, in recording order.
    pub calls: Vec<StepCall>,
    /// Elements of the zero bias vector (the largest `k` of a conv without bias; 0: none).
    pub zero_bias_elems: usize,
    /// Bytes of the f32 GEMM accumulator (the largest `m·n`).
    pub scratch_bytes: usize,
    /// Before each replay (outside the graph): f32 logical input -> arena input.
    pub upload: KernelCall,
    /// After each replay (outside the graph): arena output -> f32 logical output.
    pub download: KernelCall,
    /// f32 elements of the logical output buffer.
    pub output_elems: usize,
    /// f32 elements of the logical input (batch included).
    pub input_elems: usize,
}

impl GpuPlan {
    /// Every kernel entry the plan may launch (calls, convolution fallbacks, upload,
    /// download), sorted, without duplicates.
    pub fn kernel_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .calls
            .iter()
            .filter_map(|c| match &c.call {
                Call::Kernel(k) => Some(k.name.as_str()),
                Call::Conv(v) => Some(v.epilogue.name.as_str()),
                _ => None,
            })
            .chain([self.upload.name.as_str(), self.download.name.as_str()])
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Verifies that every arena region a call touches lies inside the arena, that every weight
    /// exists, and that calls are in step order: the invariants the executor relies on when it
    /// turns offsets into raw device pointers.
    pub fn check(&self, plan: &Plan) -> Result<()> {
        let gp = self;
        let bad = |what: String| Err(Error::Internal(format!("gpu plan: {what}")));
        let in_arena = |end: usize| end <= gp.arena_bytes;
        let weight_ok = |w: &crate::plan::WeightId| w.0 < plan.weights.len();
        let kernel_ok = |k: &KernelCall| {
            k.args.iter().all(|a| match a {
                KArg::Arena(o) => *o < gp.arena_bytes,
                KArg::Weight(w) => weight_ok(w),
                _ => true,
            })
        };
        let mut last = 0;
        for c in &gp.calls {
            if c.step < last || c.step >= plan.steps.len() {
                return bad(format!("call for step {} out of order", c.step));
            }
            last = c.step;
            let ok = match &c.call {
                Call::Conv(v) => {
                    [v.x, v.y]
                        .iter()
                        .chain(v.z.iter())
                        .all(|d| in_arena(d.end(gp.dtype)))
                        && weight_ok(&v.w.weight)
                        && v.bias.as_ref().is_none_or(weight_ok)
                        && kernel_ok(&v.epilogue)
                }
                Call::Pool(p) => in_arena(p.x.end(gp.dtype)) && in_arena(p.y.end(gp.dtype)),
                Call::Gemm(g) => {
                    in_arena(g.x_offset + g.m * g.k * gp.dtype.bytes())
                        && weight_ok(&g.w)
                        && g.m * g.n * 4 <= gp.scratch_bytes
                }
                Call::Kernel(k) => kernel_ok(k),
            };
            if !ok {
                return bad(format!(
                    "step {} call {:?} reaches outside the arena or weights",
                    c.step, c.call
                ));
            }
        }
        Ok(())
    }
}
