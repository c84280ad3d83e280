//! The plan: an ONNX graph compiled for one batch size and precision into a
//! flat list of [`Step`]s over one activation arena. No GPU code here.
//!
//! Compilation ([`Plan::compile`]) runs these passes:
//!
//! 1. **IR + shape inference.** Every node is converted into a typed op
//!    with its constant operands read (weights, BN statistics, Reshape
//!    targets, Clip bounds, Gemm alpha/beta) and its output shape computed
//!    for the fixed batch. Dropout is removed here (its output aliases its
//!    input); BatchNormalization and `Add(x, constant)` become a per-channel
//!    `ScaleShift`. Unresolvable shapes and unsupported attribute values are
//!    errors naming the node.
//! 2. **Dead-code elimination** of everything the output does not need.
//! 3. **Fusion**, to a fixed point, in priority order:
//!    * Conv/Gemm followed by ScaleShift (folded BatchNorm, bias Add):
//!      folded into the weights and bias (`w' = w*s`, `b' = b*s + t`);
//!    * Conv followed by `Add` of another activation: the Add becomes the
//!      conv's residual input (`y = act(conv(x) + b + z)`, cuDNN's
//!      ConvolutionBiasActivation form);
//!    * Relu/Clip following Conv, Gemm, ScaleShift or Add: becomes that
//!      step's activation.
//!
//!    A producer is only fused when its output has exactly one consumer;
//!    the fused step takes the position of the last node it absorbs.
//! 4. **Layout.** 4-D activations are NCHW in fp32 plans and NHWC in fp16
//!    plans (tensor-core friendly); other ranks are row-major. Conv filters
//!    are KCRS / KRSC to match. Flatten/Reshape is a free view when the
//!    physical element order is unchanged; a flatten of a genuinely NHWC
//!    tensor feeding only Gemms is also a view, with those Gemms' weight
//!    columns permuted to HWC order; anything else becomes a `Reorder` copy.
//! 5. **Arena.** Each buffer (a tensor and its views) lives from the step
//!    that writes it to the last step that reads it (the input from step 0,
//!    the output to the end). Buffers are placed greedily, largest first,
//!    at the lowest [`ARENA_ALIGN`]-aligned offset that does not collide
//!    with any already-placed buffer whose lifetime overlaps; the result is
//!    verified by [`Plan::check_arena`] (no two simultaneously live buffers
//!    share a byte) before the plan is returned.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::onnx::{Constant, Dim, Model, Node};

/// Alignment of every buffer offset in the arena, in bytes (cudaMalloc's
/// guarantee, enough for cuDNN/cuBLAS vectorised access).
pub const ARENA_ALIGN: usize = 256;

/// Numeric precision of a plan's weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// 32-bit floats, NCHW activations.
    Fp32,
    /// 16-bit floats (computed with f32 accumulation), NHWC activations.
    Fp16,
}

impl Precision {
    /// Bytes per activation element in the arena.
    pub fn elem_bytes(self) -> usize {
        match self {
            Precision::Fp32 => 4,
            Precision::Fp16 => 2,
        }
    }

    /// Layout of 4-D activations for this precision.
    pub fn activation_layout(self) -> Layout {
        match self {
            Precision::Fp32 => Layout::Nchw,
            Precision::Fp16 => Layout::Nhwc,
        }
    }

    /// Rounds a value to what this precision can store.
    pub fn round(self, x: f32) -> f32 {
        match self {
            Precision::Fp32 => x,
            Precision::Fp16 => half::f16::from_f32(x).to_f32(),
        }
    }

    /// `"fp32"` or `"fp16"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Ok(Precision::Fp32),
            "fp16" | "f16" | "float16" | "half" => Ok(Precision::Fp16),
            _ => Err(format!("unknown precision '{s}' (expected fp32 or fp16)")),
        }
    }
}

/// Physical layout of an activation tensor in the arena. Shapes in the plan
/// are always logical (ONNX order, NCHW for 4-D); the layout says how the
/// logical elements are ordered in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 4-D, channels-first (memory order equals logical order).
    Nchw,
    /// 4-D, channels-last: logical `[n,c,h,w]` is stored at
    /// `((n*H + h)*W + w)*C + c`.
    Nhwc,
    /// Any rank other than 4; memory order equals logical order.
    RowMajor,
    /// A 2-D `[N, C*H*W]` view of an NHWC tensor: logical column
    /// `c*H*W + h*W + w` is stored at column `(h*W + w)*C + c`. Only Gemms
    /// whose weight columns were permuted to match read such a tensor.
    FlatNhwc {
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
    },
}

impl Layout {
    /// True when memory order equals logical order for `shape`.
    pub fn is_logical_order(self, shape: &[usize]) -> bool {
        match self {
            Layout::Nchw | Layout::RowMajor => true,
            Layout::Nhwc => shape[1] == 1 || shape[2] * shape[3] == 1,
            Layout::FlatNhwc { c, h, w } => c == 1 || h * w == 1,
        }
    }

    /// Physical index of the element whose logical (row-major) index is
    /// `i`, for a tensor of logical `shape`.
    pub fn physical_index(self, shape: &[usize], i: usize) -> usize {
        match self {
            Layout::Nchw | Layout::RowMajor => i,
            Layout::Nhwc => {
                let (c, h, w) = (shape[1], shape[2], shape[3]);
                let (n, rest) = (i / (c * h * w), i % (c * h * w));
                let (ci, hw) = (rest / (h * w), rest % (h * w));
                n * c * h * w + hw * c + ci
            }
            Layout::FlatNhwc { c, h, w } => {
                let row = shape[1];
                let (n, col) = (i / row, i % row);
                let (ci, hw) = (col / (h * w), col % (h * w));
                n * row + hw * c + ci
            }
        }
    }
}

/// Index of a tensor in [`Plan::tensors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

/// Index of a weight in [`Plan::weights`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeightId(pub usize);

/// Index of a buffer in [`Plan::buffers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(pub usize);

/// An activation tensor of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The ONNX value name.
    pub name: String,
    /// Logical shape (ONNX order), batch included.
    pub shape: Vec<usize>,
    /// Memory layout.
    pub layout: Layout,
    /// The buffer holding it; views (Flatten/Reshape/Dropout) share their
    /// source's buffer.
    pub buffer: BufferId,
    /// Byte offset in the arena (the buffer's offset).
    pub offset: usize,
    /// Size in bytes.
    pub bytes: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A region of the arena and the steps during which it is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffer {
    /// Byte offset in the arena (multiple of [`ARENA_ALIGN`]).
    pub offset: usize,
    /// Size in bytes.
    pub bytes: usize,
    /// First step that needs it (0 for the input, which is written before
    /// step 0).
    pub first_step: usize,
    /// Last step that needs it (`steps.len()` for the output, which is read
    /// after the last step). Live interval is inclusive at both ends.
    pub last_step: usize,
}

impl Buffer {
    /// True if the two live intervals share a step.
    pub fn lifetime_overlaps(&self, other: &Buffer) -> bool {
        self.first_step <= other.last_step && other.first_step <= self.last_step
    }

    /// True if the two byte ranges share a byte.
    pub fn bytes_overlap(&self, other: &Buffer) -> bool {
        self.offset < other.offset + other.bytes && other.offset < self.offset + self.bytes
    }
}

/// An activation function fused into a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)`; ReLU6 is `Clip { min: 0, max: 6 }`.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
}

impl Activation {
    /// Applies the activation.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Activation::Clip { min, max } => x.max(min).min(max),
        }
    }
}

/// Convolution with optional bias, residual input and activation:
/// `y = act(conv(x, w) + bias + residual)`. 2-D, grouped (depthwise when
/// `groups == channels`). GPU: `cudnnConvolutionBiasActivationForward`
/// (z = residual), or ConvolutionForward + AddTensor + ActivationForward.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvStep {
    /// Input, `[N, C, H, W]` logical.
    pub x: TensorId,
    /// Filter, `[K, C/groups, R, S]` logical, stored KCRS (fp32) or KRSC (fp16).
    pub w: WeightId,
    /// Per-output-channel bias `[K]` (conv bias and folded BatchNorm).
    pub bias: Option<WeightId>,
    /// Residual added before the activation, same shape as `y`.
    pub residual: Option<TensorId>,
    /// Output, `[N, K, OH, OW]` logical.
    pub y: TensorId,
    /// Kernel `[R, S]`.
    pub kernel: [usize; 2],
    /// Strides `[h, w]`.
    pub stride: [usize; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Dilations `[h, w]`.
    pub dilation: [usize; 2],
    /// Groups.
    pub groups: usize,
    /// Fused activation.
    pub act: Activation,
}

/// Fully connected layer `y = act(x · wᵀ + bias)`, `x: [M, K]` read as a
/// row-major matrix, `w: [N, K]` (same K order as x's memory), `y: [M, N]`.
/// GPU: `cublasGemmEx`/cublasLt with a bias(+ReLU) epilogue.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmStep {
    /// Input matrix.
    pub x: TensorId,
    /// Weight matrix `[N, K]` row-major (alpha folded in).
    pub w: WeightId,
    /// Bias `[N]` (beta·C folded in, plus any folded ScaleShift).
    pub bias: Option<WeightId>,
    /// Output matrix.
    pub y: TensorId,
    /// Rows (the batch).
    pub m: usize,
    /// Output features.
    pub n: usize,
    /// Input features.
    pub k: usize,
    /// Fused activation.
    pub act: Activation,
}

/// Pooling flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Max pooling (padding never wins).
    Max,
    /// Average pooling.
    Average {
        /// Divide by the full window (true) or by the in-bounds count (false).
        count_include_pad: bool,
    },
}

/// 2-D pooling; GlobalAveragePool is an average pool with the whole
/// spatial extent as window. GPU: `cudnnPoolingForward`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStep {
    /// Input `[N, C, H, W]`.
    pub x: TensorId,
    /// Output `[N, C, OH, OW]`.
    pub y: TensorId,
    /// Max or average.
    pub kind: PoolKind,
    /// Window `[h, w]`.
    pub kernel: [usize; 2],
    /// Strides `[h, w]`.
    pub stride: [usize; 2],
    /// Padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

/// Per-channel affine map on axis 1, `y = act(x*scale[c] + shift[c])`: a
/// BatchNormalization that had no conv to fold into, or an Add of a
/// per-channel constant. GPU: `cudnnBatchNormalizationForwardInference`
/// (mean 0, var 1) + activation, or one small kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleShiftStep {
    /// Input.
    pub x: TensorId,
    /// Output (same shape).
    pub y: TensorId,
    /// `[C]` scale.
    pub scale: WeightId,
    /// `[C]` shift.
    pub shift: WeightId,
    /// Fused activation.
    pub act: Activation,
}

/// Element-wise sum of two same-shape activations (not fused into a conv),
/// `y = act(a + b)`. GPU: `cudnnOpTensor` / `cudnnAddTensor`.
#[derive(Debug, Clone, PartialEq)]
pub struct AddStep {
    /// First operand.
    pub a: TensorId,
    /// Second operand.
    pub b: TensorId,
    /// Output.
    pub y: TensorId,
    /// Fused activation.
    pub act: Activation,
}

/// A standalone activation. GPU: `cudnnActivationForward`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationStep {
    /// Input.
    pub x: TensorId,
    /// Output.
    pub y: TensorId,
    /// The activation.
    pub act: Activation,
}

/// Concatenation along a logical axis (1 = channels for 4-D).
/// GPU: one strided copy (`cudaMemcpy2DAsync`) per input.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcatStep {
    /// Inputs in order.
    pub inputs: Vec<TensorId>,
    /// Output.
    pub y: TensorId,
    /// Logical axis.
    pub axis: usize,
}

/// Softmax over a logical axis. GPU: `cudnnSoftmaxForward` (ACCURATE).
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxStep {
    /// Input.
    pub x: TensorId,
    /// Output.
    pub y: TensorId,
    /// Logical axis.
    pub axis: usize,
    /// Opset < 13 semantics: normalise over all axes from `axis` on
    /// (the input coerced to 2-D) rather than over `axis` alone.
    pub coerce_2d: bool,
}

/// A copy that changes layout, same logical content (a Reshape/Flatten
/// that cannot be a view). GPU: `cudnnTransformTensor`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReorderStep {
    /// Input.
    pub x: TensorId,
    /// Output.
    pub y: TensorId,
}

/// What one step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Convolution (+bias +residual +activation).
    Conv(ConvStep),
    /// Fully connected (+bias +activation).
    Gemm(GemmStep),
    /// Max / average pooling.
    Pool(PoolStep),
    /// Per-channel scale and shift (+activation).
    ScaleShift(ScaleShiftStep),
    /// Element-wise add (+activation).
    Add(AddStep),
    /// Standalone activation.
    Activation(ActivationStep),
    /// Concatenation.
    Concat(ConcatStep),
    /// Softmax.
    Softmax(SoftmaxStep),
    /// Layout-changing copy.
    Reorder(ReorderStep),
}

/// One step of the plan: one cuDNN/cuBLAS call or one small kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The operation.
    pub op: Op,
    /// Names of the ONNX nodes this step implements (several when fused).
    pub nodes: Vec<String>,
}

impl Step {
    /// The activation tensors the step reads.
    pub fn inputs(&self) -> Vec<TensorId> {
        match &self.op {
            Op::Conv(s) => std::iter::once(s.x).chain(s.residual).collect(),
            Op::Gemm(s) => vec![s.x],
            Op::Pool(s) => vec![s.x],
            Op::ScaleShift(s) => vec![s.x],
            Op::Add(s) => vec![s.a, s.b],
            Op::Activation(s) => vec![s.x],
            Op::Concat(s) => s.inputs.clone(),
            Op::Softmax(s) => vec![s.x],
            Op::Reorder(s) => vec![s.x],
        }
    }

    /// The tensor the step writes.
    pub fn output(&self) -> TensorId {
        match &self.op {
            Op::Conv(s) => s.y,
            Op::Gemm(s) => s.y,
            Op::Pool(s) => s.y,
            Op::ScaleShift(s) => s.y,
            Op::Add(s) => s.y,
            Op::Activation(s) => s.y,
            Op::Concat(s) => s.y,
            Op::Softmax(s) => s.y,
            Op::Reorder(s) => s.y,
        }
    }

    /// Short name of the step kind, e.g. `"conv"`.
    pub fn kind(&self) -> &'static str {
        match &self.op {
            Op::Conv(_) => "conv",
            Op::Gemm(_) => "gemm",
            Op::Pool(_) => "pool",
            Op::ScaleShift(_) => "scale_shift",
            Op::Add(_) => "add",
            Op::Activation(_) => "activation",
            Op::Concat(_) => "concat",
            Op::Softmax(_) => "softmax",
            Op::Reorder(_) => "reorder",
        }
    }
}

/// Memory order of a weight tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// Conv filter `[K, C, R, S]` (cuDNN `CUDNN_TENSOR_NCHW` filter).
    Kcrs,
    /// Conv filter stored `[K, R, S, C]` (cuDNN `CUDNN_TENSOR_NHWC` filter).
    Krsc,
    /// Row-major matrix `[N, K]`.
    Matrix,
    /// 1-D vector.
    Vector,
}

/// A constant operand, already folded and laid out for its step. In fp16
/// plans every value is exactly representable in f16 (uploading to a GPU
/// converts without further rounding).
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    /// Descriptive name (source initializer / node).
    pub name: String,
    /// Logical shape (`[K, C, R, S]` for filters whatever the layout).
    pub shape: Vec<usize>,
    /// Memory order of `data`.
    pub layout: WeightLayout,
    /// Values in `layout` order.
    pub data: Vec<f32>,
}

/// A compiled model: steps over one arena, for a fixed batch and precision.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Graph name.
    pub model: String,
    /// Precision of weights and activations.
    pub precision: Precision,
    /// Batch size the plan was compiled for.
    pub batch: usize,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Every activation tensor the steps touch.
    pub tensors: Vec<TensorInfo>,
    /// Arena regions with their live intervals.
    pub buffers: Vec<Buffer>,
    /// Constant operands.
    pub weights: Vec<Weight>,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// The graph input (written into the arena before step 0).
    pub input: TensorId,
    /// The graph output (read from the arena after the last step).
    pub output: TensorId,
}

impl Plan {
    /// Loads an ONNX file and compiles it.
    pub fn load(path: impl AsRef<Path>, batch: usize, precision: Precision) -> Result<Plan> {
        let model = Model::load(path)?;
        Plan::compile(&model, batch, precision)
    }

    /// Compiles a model for `batch` images at `precision`.
    pub fn compile(model: &Model, batch: usize, precision: Precision) -> Result<Plan> {
        model.check_supported()?;
        if batch == 0 {
            return Err(Error::BadInputShape {
                expected: "a batch size of at least 1".into(),
                got: "0".into(),
            });
        }
        let mut ir = build_ir(model, batch)?;
        ir.eliminate_dead_code();
        ir.fuse();
        let plan = emit(ir, model, batch, precision)?;
        plan.check_arena()?;
        Ok(plan)
    }

    /// The tensor with this id.
    pub fn tensor(&self, id: TensorId) -> &TensorInfo {
        &self.tensors[id.0]
    }

    /// The weight with this id.
    pub fn weight(&self, id: WeightId) -> &Weight {
        &self.weights[id.0]
    }

    /// Per-image input shape (the input's logical shape without the batch).
    pub fn input_shape(&self) -> &[usize] {
        &self.tensor(self.input).shape[1..]
    }

    /// Per-image output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.tensor(self.output).shape[1..]
    }

    /// Total weight bytes at the plan's precision.
    pub fn weight_bytes(&self) -> usize {
        self.weights.iter().map(|w| w.data.len()).sum::<usize>() * self.precision.elem_bytes()
    }

    /// Verifies the arena invariants: every buffer is aligned and inside
    /// the arena, every tensor lies inside its buffer, each step's tensors
    /// are live during the step, and no two buffers with overlapping
    /// lifetimes share a byte.
    pub fn check_arena(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Internal(m));
        for (i, b) in self.buffers.iter().enumerate() {
            if b.offset % ARENA_ALIGN != 0 || b.offset + b.bytes > self.arena_bytes {
                return bad(format!("buffer {i} {b:?} misaligned or outside the arena"));
            }
            if b.first_step > b.last_step {
                return bad(format!("buffer {i} has an empty lifetime {b:?}"));
            }
        }
        for (i, t) in self.tensors.iter().enumerate() {
            let b = &self.buffers[t.buffer.0];
            if t.offset != b.offset || t.bytes > b.bytes {
                return bad(format!("tensor {i} ('{}') does not fit its buffer", t.name));
            }
        }
        for (s, step) in self.steps.iter().enumerate() {
            for t in step.inputs().into_iter().chain([step.output()]) {
                let b = &self.buffers[self.tensor(t).buffer.0];
                if s < b.first_step || s > b.last_step {
                    return bad(format!(
                        "step {s} uses '{}' outside its live interval {}..={}",
                        self.tensor(t).name,
                        b.first_step,
                        b.last_step
                    ));
                }
            }
        }
        for (i, a) in self.buffers.iter().enumerate() {
            for (j, b) in self.buffers.iter().enumerate().skip(i + 1) {
                if a.lifetime_overlaps(b) && a.bytes_overlap(b) {
                    return bad(format!(
                        "buffers {i} {a:?} and {j} {b:?} are live at the same time and overlap"
                    ));
                }
            }
        }
        Ok(())
    }

    /// A human-readable listing of the plan, one line per step.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "plan '{}': batch {}, {}, {} steps, arena {} bytes, weights {} bytes",
            self.model,
            self.batch,
            self.precision,
            self.steps.len(),
            self.arena_bytes,
            self.weight_bytes()
        );
        let desc = |t: TensorId| {
            let t = self.tensor(t);
            format!("{:?}{:?}@{}", t.shape, t.layout, t.offset)
        };
        for (i, st) in self.steps.iter().enumerate() {
            let extra = match &st.op {
                Op::Conv(c) => format!(
                    " k{:?} s{:?} p{:?} g{} {:?}{}{}",
                    c.kernel,
                    c.stride,
                    c.pads,
                    c.groups,
                    c.act,
                    if c.bias.is_some() { " +bias" } else { "" },
                    if c.residual.is_some() {
                        " +residual"
                    } else {
                        ""
                    }
                ),
                Op::Gemm(g) => format!(" {}x{}x{} {:?}", g.m, g.n, g.k, g.act),
                Op::ScaleShift(x) => format!(" {:?}", x.act),
                Op::Add(x) => format!(" {:?}", x.act),
                Op::Pool(p) => format!(
                    " {:?} k{:?} s{:?} p{:?}",
                    p.kind, p.kernel, p.stride, p.pads
                ),
                _ => String::new(),
            };
            let ins: Vec<String> = st.inputs().into_iter().map(desc).collect();
            let _ = writeln!(
                s,
                "{i:4} {:<11} {} -> {}{extra}   [{}]",
                st.kind(),
                ins.join(", "),
                desc(st.output()),
                st.nodes.join(", ")
            );
        }
        s
    }
}

// ---------------------------------------------------------------------------
// IR

#[derive(Debug, Clone)]
enum IrOp {
    Conv {
        /// `[K, C/g, R, S]` KCRS.
        w: Vec<f32>,
        wshape: [usize; 4],
        bias: Option<Vec<f32>>,
        stride: [usize; 2],
        pads: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
        act: Activation,
        /// inputs[1] is the residual.
        residual: bool,
    },
    Gemm {
        /// `[N, K]`.
        w: Vec<f32>,
        n: usize,
        k: usize,
        bias: Option<Vec<f32>>,
        act: Activation,
    },
    ScaleShift {
        scale: Vec<f32>,
        shift: Vec<f32>,
        act: Activation,
    },
    Add {
        act: Activation,
    },
    Act(Activation),
    Pool {
        kind: PoolKind,
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
    },
    Concat {
        axis: usize,
    },
    Softmax {
        axis: usize,
        coerce_2d: bool,
    },
    Reshape,
}

impl IrOp {
    /// The fused activation slot, if the op has one and it is still free.
    fn free_act(&mut self) -> Option<&mut Activation> {
        let slot = match self {
            IrOp::Conv { act, .. }
            | IrOp::Gemm { act, .. }
            | IrOp::ScaleShift { act, .. }
            | IrOp::Add { act } => act,
            _ => return None,
        };
        (*slot == Activation::None).then_some(slot)
    }
}

#[derive(Debug, Clone)]
struct IrNode {
    op: IrOp,
    inputs: Vec<usize>,
    output: usize,
    sources: Vec<String>,
}

#[derive(Debug, Clone)]
struct IrTensor {
    name: String,
    shape: Vec<usize>,
}

struct Ir {
    tensors: Vec<IrTensor>,
    nodes: Vec<Option<IrNode>>,
    input: usize,
    output: usize,
}

enum Val<'a> {
    Tensor(usize),
    Const(&'a Constant),
}

fn unsupported(n: &Node, detail: impl Into<String>) -> Error {
    Error::Unsupported {
        node: n.name.clone(),
        op_type: n.op_type.clone(),
        detail: detail.into(),
    }
}

fn invalid(n: &Node, detail: impl fmt::Display) -> Error {
    Error::InvalidModel(format!("node '{}' ({}): {detail}", n.name, n.op_type))
}

fn build_ir(model: &Model, batch: usize) -> Result<Ir> {
    if model.inputs.len() != 1 {
        return Err(Error::InvalidModel(format!(
            "the engine serves models with exactly one runtime input; this one has {} ({:?})",
            model.inputs.len(),
            model.inputs.iter().map(|v| &v.name).collect::<Vec<_>>()
        )));
    }
    if model.outputs.len() != 1 {
        return Err(Error::InvalidModel(format!(
            "the engine serves models with exactly one output; this one has {}",
            model.outputs.len()
        )));
    }
    let input = &model.inputs[0];
    let dims = input.dims.as_ref().ok_or_else(|| Error::DynamicShape {
        tensor: input.name.clone(),
        detail: "the graph input declares no shape".into(),
    })?;
    if dims.is_empty() {
        return Err(Error::DynamicShape {
            tensor: input.name.clone(),
            detail: "the graph input is a scalar; expected [N, ...]".into(),
        });
    }
    let mut shape = vec![batch];
    match &dims[0] {
        Dim::Fixed(b) if *b != batch => {
            return Err(Error::BadInputShape {
                expected: format!("batch {b} (fixed by the model's input '{}')", input.name),
                got: format!("a plan for batch {batch}"),
            })
        }
        _ => {}
    }
    for (i, d) in dims.iter().enumerate().skip(1) {
        match d {
            Dim::Fixed(v) => shape.push(*v),
            other => {
                return Err(Error::DynamicShape {
                    tensor: input.name.clone(),
                    detail: format!(
                    "dimension {i} is '{other}'; only the first (batch) dimension may be symbolic"
                ),
                })
            }
        }
    }

    let mut ir = Ir {
        tensors: vec![IrTensor {
            name: input.name.clone(),
            shape,
        }],
        nodes: Vec::new(),
        input: 0,
        output: 0,
    };
    let mut env: HashMap<&str, Val> = HashMap::new();
    for (name, c) in &model.constants {
        env.insert(name.as_str(), Val::Const(c));
    }
    env.insert(input.name.as_str(), Val::Tensor(0));

    for n in &model.nodes {
        let get = |i: usize| -> Option<&Val> {
            n.inputs
                .get(i)
                .filter(|s| !s.is_empty())
                .and_then(|s| env.get(s.as_str()))
        };
        let tensor = |i: usize| -> Result<usize> {
            match get(i) {
                Some(Val::Tensor(t)) => Ok(*t),
                Some(Val::Const(_)) => Err(unsupported(
                    n,
                    format!("input {i} is a constant; the engine expects an activation there"),
                )),
                None => Err(invalid(n, format!("input {i} is missing or undefined"))),
            }
        };
        let constant = |i: usize, what: &str| -> Result<&Constant> {
            match get(i) {
                Some(Val::Const(c)) => Ok(*c),
                Some(Val::Tensor(_)) => Err(unsupported(
                    n,
                    format!("{what} (input {i}) must be a constant initializer"),
                )),
                None => Err(invalid(n, format!("{what} (input {i}) is missing"))),
            }
        };
        let out_name = n
            .outputs
            .first()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(n, "no output"))?
            .clone();
        let shape_of = |t: usize| ir.tensors[t].shape.clone();

        let (op, inputs, out_shape): (IrOp, Vec<usize>, Vec<usize>) = match n.op_type.as_str() {
            "Dropout" => {
                if let Some(Val::Const(c)) = get(2) {
                    if c.to_f32().first().copied().unwrap_or(0.0) != 0.0 {
                        return Err(unsupported(n, "training_mode = true"));
                    }
                }
                let x = tensor(0)?;
                env.insert(n.outputs[0].as_str(), Val::Tensor(x));
                continue;
            }
            "Conv" => {
                let x = tensor(0)?;
                let xs = shape_of(x);
                let w = constant(1, "the filter")?;
                if xs.len() != 4 || w.dims.len() != 4 {
                    return Err(unsupported(
                        n,
                        format!(
                            "only 2-D convolution is supported (input rank {}, filter rank {})",
                            xs.len(),
                            w.dims.len()
                        ),
                    ));
                }
                let groups = n.int("group", 1);
                let groups = usize::try_from(groups)
                    .ok()
                    .filter(|g| *g >= 1)
                    .ok_or_else(|| invalid(n, format!("group = {groups}")))?;
                let [k, cg, r, s] = [w.dims[0], w.dims[1], w.dims[2], w.dims[3]];
                if cg * groups != xs[1] || k % groups != 0 {
                    return Err(invalid(
                        n,
                        format!(
                            "filter {:?} with group {groups} does not match input channels {}",
                            w.dims, xs[1]
                        ),
                    ));
                }
                if let Some(ks) = n.ints("kernel_shape") {
                    if ks != [r as i64, s as i64] {
                        return Err(invalid(
                            n,
                            format!("kernel_shape {ks:?} != filter {:?}", w.dims),
                        ));
                    }
                }
                let stride = pair(n, "strides", 1)?;
                let dilation = pair(n, "dilations", 1)?;
                let (pads, oh, ow) = window(n, [xs[2], xs[3]], [r, s], stride, dilation, false)?;
                let bias = match get(2) {
                    None => None,
                    Some(_) => {
                        let b = constant(2, "the bias")?;
                        if b.len() != k {
                            return Err(invalid(
                                n,
                                format!("bias has {} values for {k} channels", b.len()),
                            ));
                        }
                        Some(b.to_f32())
                    }
                };
                (
                    IrOp::Conv {
                        w: w.to_f32(),
                        wshape: [k, cg, r, s],
                        bias,
                        stride,
                        pads,
                        dilation,
                        groups,
                        act: Activation::None,
                        residual: false,
                    },
                    vec![x],
                    vec![xs[0], k, oh, ow],
                )
            }
            "BatchNormalization" => {
                let x = tensor(0)?;
                let xs = shape_of(x);
                if xs.len() < 2 {
                    return Err(unsupported(n, "input of rank < 2"));
                }
                if n.int("training_mode", 0) != 0 {
                    return Err(unsupported(n, "training_mode = 1"));
                }
                let c = xs[1];
                let eps = n.float("epsilon", 1e-5) as f64;
                let gamma = constant(1, "scale")?.to_f32();
                let beta = constant(2, "B")?.to_f32();
                let mean = constant(3, "mean")?.to_f32();
                let var = constant(4, "var")?.to_f32();
                if [gamma.len(), beta.len(), mean.len(), var.len()] != [c; 4] {
                    return Err(invalid(n, format!("statistics do not have {c} channels")));
                }
                let mut scale = vec![0f32; c];
                let mut shift = vec![0f32; c];
                for i in 0..c {
                    let s = gamma[i] as f64 / (var[i] as f64 + eps).sqrt();
                    scale[i] = s as f32;
                    shift[i] = (beta[i] as f64 - mean[i] as f64 * s) as f32;
                }
                (
                    IrOp::ScaleShift {
                        scale,
                        shift,
                        act: Activation::None,
                    },
                    vec![x],
                    xs,
                )
            }
            "Relu" => {
                let x = tensor(0)?;
                (IrOp::Act(Activation::Relu), vec![x], shape_of(x))
            }
            "Clip" => {
                let x = tensor(0)?;
                let (mut min, mut max) = (f32::NEG_INFINITY, f32::INFINITY);
                if model.opset < 11 {
                    min = n.float("min", min);
                    max = n.float("max", max);
                } else {
                    if get(1).is_some() {
                        min = scalar(n, constant(1, "min")?)?;
                    }
                    if get(2).is_some() {
                        max = scalar(n, constant(2, "max")?)?;
                    }
                }
                let act = if min == 0.0 && max == f32::INFINITY {
                    Activation::Relu
                } else {
                    Activation::Clip { min, max }
                };
                (IrOp::Act(act), vec![x], shape_of(x))
            }
            "MaxPool" | "AveragePool" => {
                let x = tensor(0)?;
                let xs = shape_of(x);
                if xs.len() != 4 {
                    return Err(unsupported(n, "only 2-D pooling is supported"));
                }
                if n.outputs.len() > 1 && !n.outputs[1].is_empty() {
                    return Err(unsupported(n, "the Indices output"));
                }
                if n.int("ceil_mode", 0) != 0 {
                    return Err(unsupported(n, "ceil_mode = 1"));
                }
                if pair(n, "dilations", 1)? != [1, 1] {
                    return Err(unsupported(n, "dilated pooling"));
                }
                let kernel = match n.ints("kernel_shape") {
                    Some([a, b]) if *a > 0 && *b > 0 => [*a as usize, *b as usize],
                    other => return Err(invalid(n, format!("kernel_shape {other:?}"))),
                };
                let stride = pair(n, "strides", 1)?;
                let (pads, oh, ow) = window(n, [xs[2], xs[3]], kernel, stride, [1, 1], true)?;
                let kind = if n.op_type == "MaxPool" {
                    PoolKind::Max
                } else {
                    PoolKind::Average {
                        count_include_pad: n.int("count_include_pad", 0) != 0,
                    }
                };
                (
                    IrOp::Pool {
                        kind,
                        kernel,
                        stride,
                        pads,
                    },
                    vec![x],
                    vec![xs[0], xs[1], oh, ow],
                )
            }
            "GlobalAveragePool" => {
                let x = tensor(0)?;
                let xs = shape_of(x);
                if xs.len() != 4 {
                    return Err(unsupported(n, "only 4-D input is supported"));
                }
                (
                    IrOp::Pool {
                        kind: PoolKind::Average {
                            count_include_pad: false,
                        },
                        kernel: [xs[2], xs[3]],
                        stride: [1, 1],
                        pads: [0; 4],
                    },
                    vec![x],
                    vec![xs[0], xs[1], 1, 1],
                )
            }
            "Add" => match (get(0), get(1)) {
                (Some(Val::Tensor(a)), Some(Val::Tensor(b))) => {
                    let (sa, sb) = (shape_of(*a), shape_of(*b));
                    if sa != sb {
                        return Err(unsupported(
                            n,
                            format!("broadcasting between two activations ({sa:?} + {sb:?})"),
                        ));
                    }
                    (
                        IrOp::Add {
                            act: Activation::None,
                        },
                        vec![*a, *b],
                        sa,
                    )
                }
                (Some(Val::Tensor(x)), Some(Val::Const(c)))
                | (Some(Val::Const(c)), Some(Val::Tensor(x))) => {
                    let xs = shape_of(*x);
                    let shift = per_channel(n, &xs, c)?;
                    (
                        IrOp::ScaleShift {
                            scale: vec![1.0; shift.len()],
                            shift,
                            act: Activation::None,
                        },
                        vec![*x],
                        xs,
                    )
                }
                (Some(Val::Const(_)), Some(Val::Const(_))) => {
                    return Err(unsupported(n, "an Add of two constants (constant folding)"))
                }
                _ => return Err(invalid(n, "needs two inputs")),
            },
            "Gemm" => {
                let x = tensor(0)?;
                let xs = shape_of(x);
                if xs.len() != 2 {
                    return Err(invalid(
                        n,
                        format!("input A has shape {xs:?}, expected 2-D"),
                    ));
                }
                if n.int("transA", 0) != 0 {
                    return Err(unsupported(n, "transA = 1"));
                }
                let b = constant(1, "B")?;
                if b.dims.len() != 2 {
                    return Err(invalid(n, format!("B has shape {:?}", b.dims)));
                }
                let trans_b = n.int("transB", 0) != 0;
                let (nn, kk) = if trans_b {
                    (b.dims[0], b.dims[1])
                } else {
                    (b.dims[1], b.dims[0])
                };
                if kk != xs[1] {
                    return Err(invalid(
                        n,
                        format!("A {xs:?} and B {:?} do not multiply", b.dims),
                    ));
                }
                let alpha = n.float("alpha", 1.0);
                let beta = n.float("beta", 1.0);
                let bv = b.to_f32();
                let mut w = if trans_b { bv } else { transpose(&bv, kk, nn) };
                if alpha != 1.0 {
                    w.iter_mut().for_each(|v| *v *= alpha);
                }
                let bias = match get(2) {
                    None => None,
                    Some(_) => {
                        let c = constant(2, "C")?;
                        let cv = c.to_f32();
                        let row: Vec<f32> = match c.dims.as_slice() {
                            [] | [1] | [1, 1] => vec![cv[0]; nn],
                            [m] | [1, m] if *m == nn => cv,
                            d => {
                                return Err(unsupported(
                                    n,
                                    format!("C of shape {d:?} (only [N], [1, N] or a scalar)"),
                                ))
                            }
                        };
                        Some(row.into_iter().map(|v| v * beta).collect())
                    }
                };
                (
                    IrOp::Gemm {
                        w,
                        n: nn,
                        k: kk,
                        bias,
                        act: Activation::None,
                    },
                    vec![x],
                    vec![xs[0], nn],
                )
            }
            "MatMul" => {
                let x = tensor(0)?;
                let xs = shape_of(x);
                let b = constant(1, "B")?;
                if xs.len() != 2 || b.dims.len() != 2 {
                    return Err(unsupported(
                        n,
                        format!(
                            "only a 2-D activation times a constant 2-D matrix ({xs:?} x {:?})",
                            b.dims
                        ),
                    ));
                }
                let (kk, nn) = (b.dims[0], b.dims[1]);
                if kk != xs[1] {
                    return Err(invalid(
                        n,
                        format!("{xs:?} and {:?} do not multiply", b.dims),
                    ));
                }
                (
                    IrOp::Gemm {
                        w: transpose(&b.to_f32(), kk, nn),
                        n: nn,
                        k: kk,
                        bias: None,
                        act: Activation::None,
                    },
                    vec![x],
                    vec![xs[0], nn],
                )
            }
            "Flatten" => {
                let x = tensor(0)?;
                let xs = shape_of(x);
                let r = xs.len() as i64;
                let axis = n.int("axis", 1);
                let axis = if axis < 0 { axis + r } else { axis };
                if !(0..=r).contains(&axis) {
                    return Err(invalid(n, format!("axis {axis} for rank {r}")));
                }
                let a = axis as usize;
                let out = vec![xs[..a].iter().product(), xs[a..].iter().product()];
                (IrOp::Reshape, vec![x], out)
            }
            "Reshape" => {
                let x = tensor(0)?;
                let xs = shape_of(x);
                let target = match get(1) {
                    Some(Val::Const(c)) => c.to_i64(),
                    Some(Val::Tensor(_)) => {
                        return Err(Error::DynamicShape {
                            tensor: out_name.clone(),
                            detail: format!(
                                "the target shape of Reshape node '{}' is computed at run time, not a constant",
                                n.name
                            ),
                        })
                    }
                    None if model.opset < 5 => n.ints("shape").map(|s| s.to_vec()).unwrap_or_default(),
                    None => return Err(invalid(n, "no shape input")),
                };
                let allow_zero = n.int("allowzero", 0) != 0;
                let out = reshape_target(n, &xs, &target, allow_zero)?;
                (IrOp::Reshape, vec![x], out)
            }
            "Concat" => {
                let k = n.inputs.len();
                if k == 0 {
                    return Err(invalid(n, "no inputs"));
                }
                let ins: Vec<usize> = (0..k).map(tensor).collect::<Result<_>>()?;
                let s0 = shape_of(ins[0]);
                let r = s0.len() as i64;
                let axis = n.int("axis", 1);
                let axis = if axis < 0 { axis + r } else { axis };
                if !(0..r).contains(&axis) {
                    return Err(invalid(n, format!("axis {axis} for rank {r}")));
                }
                let a = axis as usize;
                let mut out = s0.clone();
                out[a] = 0;
                for &t in &ins {
                    let s = shape_of(t);
                    let same_rest =
                        s.len() == s0.len() && (0..s.len()).all(|d| d == a || s[d] == s0[d]);
                    if !same_rest {
                        return Err(invalid(
                            n,
                            format!("input shapes {s0:?} and {s:?} do not concatenate"),
                        ));
                    }
                    out[a] += s[a];
                }
                (IrOp::Concat { axis: a }, ins, out)
            }
            "Softmax" => {
                let x = tensor(0)?;
                let xs = shape_of(x);
                let r = xs.len() as i64;
                let default = if model.opset < 13 { 1 } else { -1 };
                let axis = n.int("axis", default);
                let axis = if axis < 0 { axis + r } else { axis };
                if !(0..r).contains(&axis) {
                    return Err(invalid(n, format!("axis {axis} for rank {r}")));
                }
                (
                    IrOp::Softmax {
                        axis: axis as usize,
                        coerce_2d: model.opset < 13,
                    },
                    vec![x],
                    xs,
                )
            }
            other => {
                return Err(Error::UnsupportedOp {
                    node: n.name.clone(),
                    op_type: other.to_string(),
                })
            }
        };
        let numel: usize = out_shape.iter().product();
        if numel == 0 {
            return Err(Error::DynamicShape {
                tensor: out_name,
                detail: format!("node '{}' produces an empty tensor {out_shape:?}", n.name),
            });
        }
        let id = ir.tensors.len();
        ir.tensors.push(IrTensor {
            name: out_name,
            shape: out_shape,
        });
        ir.nodes.push(Some(IrNode {
            op,
            inputs,
            output: id,
            sources: vec![n.name.clone()],
        }));
        env.insert(n.outputs[0].as_str(), Val::Tensor(id));
    }

    let out = &model.outputs[0].name;
    ir.output = match env.get(out.as_str()) {
        Some(Val::Tensor(t)) => *t,
        Some(Val::Const(_)) => {
            return Err(Error::InvalidModel(format!(
                "the graph output '{out}' is a constant"
            )))
        }
        None => {
            return Err(Error::InvalidModel(format!(
                "the graph output '{out}' is not produced by any node"
            )))
        }
    };
    Ok(ir)
}

fn scalar(n: &Node, c: &Constant) -> Result<f32> {
    if c.len() != 1 {
        return Err(invalid(
            n,
            format!("expected a scalar, got shape {:?}", c.dims),
        ));
    }
    Ok(c.to_f32()[0])
}

fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// A 2-element attribute (strides, dilations), defaulting to `[d, d]`.
fn pair(n: &Node, name: &str, d: usize) -> Result<[usize; 2]> {
    match n.ints(name) {
        None => Ok([d, d]),
        Some([a, b]) if *a >= 1 && *b >= 1 => Ok([*a as usize, *b as usize]),
        Some(v) => Err(invalid(n, format!("{name} = {v:?}"))),
    }
}

/// Resolves padding (explicit or auto_pad) and the output size of a 2-D
/// sliding window.
fn window(
    n: &Node,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pool: bool,
) -> Result<([usize; 4], usize, usize)> {
    let eff = [
        dilation[0] * (kernel[0] - 1) + 1,
        dilation[1] * (kernel[1] - 1) + 1,
    ];
    let auto = n.string("auto_pad").unwrap_or("NOTSET");
    let pads: [usize; 4] = match auto {
        "NOTSET" | "" => match n.ints("pads") {
            None => [0; 4],
            Some(p) if p.len() == 4 && p.iter().all(|v| *v >= 0) => {
                // ONNX order: [h_begin, w_begin, h_end, w_end]
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            Some(p) => return Err(invalid(n, format!("pads = {p:?}"))),
        },
        "VALID" => [0; 4],
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = [0usize; 4];
            for d in 0..2 {
                let out = input[d].div_ceil(stride[d]);
                let total = ((out - 1) * stride[d] + eff[d]).saturating_sub(input[d]);
                let (small, big) = (total / 2, total - total / 2);
                if auto == "SAME_UPPER" {
                    p[d] = small;
                    p[d + 2] = big;
                } else {
                    p[d] = big;
                    p[d + 2] = small;
                }
            }
            p
        }
        other => return Err(unsupported(n, format!("auto_pad = {other}"))),
    };
    let mut out = [0usize; 2];
    for d in 0..2 {
        let padded = input[d] + pads[d] + pads[d + 2];
        if padded < eff[d] {
            return Err(invalid(
                n,
                format!("window {} larger than padded input {}", eff[d], padded),
            ));
        }
        out[d] = (padded - eff[d]) / stride[d] + 1;
        if pool && (pads[d] >= eff[d] || pads[d + 2] >= eff[d]) {
            return Err(unsupported(n, "padding as large as the pooling window"));
        }
    }
    Ok((pads, out[0], out[1]))
}

/// The per-channel (axis 1) vector of a constant added to `xs`.
fn per_channel(n: &Node, xs: &[usize], c: &Constant) -> Result<Vec<f32>> {
    let v = c.to_f32();
    if c.len() == 1 {
        let ch = if xs.len() >= 2 { xs[1] } else { 1 };
        return Ok(vec![v[0]; ch]);
    }
    // Right-align the constant's dims against the activation's.
    let bad = || {
        unsupported(
            n,
            format!(
                "Add of a constant of shape {:?} to {xs:?}: only per-channel (axis 1) or scalar constants are supported",
                c.dims
            ),
        )
    };
    if c.dims.len() > xs.len() || xs.len() < 2 {
        return Err(bad());
    }
    let off = xs.len() - c.dims.len();
    for (i, &d) in c.dims.iter().enumerate() {
        let axis = off + i;
        let ok = if axis == 1 {
            d == xs[1] || d == 1
        } else {
            d == 1
        };
        if !ok {
            return Err(bad());
        }
    }
    if v.len() != xs[1] {
        return Err(bad());
    }
    Ok(v)
}

fn reshape_target(n: &Node, xs: &[usize], target: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let total: usize = xs.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 => {
                if infer.replace(i).is_some() {
                    return Err(invalid(n, format!("more than one -1 in shape {target:?}")));
                }
                out.push(1);
            }
            0 if !allow_zero => out.push(*xs.get(i).ok_or_else(|| {
                invalid(
                    n,
                    format!("shape {target:?} copies a dimension the input {xs:?} lacks"),
                )
            })?),
            t if t >= 0 => out.push(t as usize),
            _ => return Err(invalid(n, format!("shape {target:?}"))),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return Err(invalid(n, format!("cannot reshape {xs:?} to {target:?}")));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(invalid(
            n,
            format!("cannot reshape {xs:?} ({total} elements) to {target:?}"),
        ));
    }
    Ok(out)
}

impl Ir {
    /// Number of readers of each tensor among live nodes (+1 for the graph
    /// output).
    fn uses(&self) -> Vec<usize> {
        let mut u = vec![0usize; self.tensors.len()];
        for n in self.nodes.iter().flatten() {
            for &i in &n.inputs {
                u[i] += 1;
            }
        }
        u[self.output] += 1;
        u
    }

    /// Index of the node producing each tensor.
    fn producers(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.tensors.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(n) = n {
                p[n.output] = Some(i);
            }
        }
        p
    }

    fn eliminate_dead_code(&mut self) {
        let mut needed = vec![false; self.tensors.len()];
        needed[self.output] = true;
        for slot in self.nodes.iter_mut().rev() {
            let keep = matches!(slot, Some(n) if needed[n.output]);
            if keep {
                for &i in &slot.as_ref().unwrap().inputs {
                    needed[i] = true;
                }
            } else {
                *slot = None;
            }
        }
    }

    /// Runs the fusion rules to a fixed point, higher-priority rules first.
    fn fuse(&mut self) {
        while self.fuse_scale_shift() || self.fuse_residual() || self.fuse_activation() {}
    }

    /// Moves producer `p` into consumer `c`'s slot, taking over its output.
    fn absorb(&mut self, p: usize, c: usize, op: IrOp, extra_inputs: &[usize]) {
        let mut prod = self.nodes[p].take().unwrap();
        let cons = self.nodes[c].take().unwrap();
        prod.op = op;
        prod.output = cons.output;
        prod.inputs.extend_from_slice(extra_inputs);
        prod.sources.extend(cons.sources);
        self.nodes[c] = Some(prod);
    }

    /// Conv/Gemm -> ScaleShift: fold the affine map into weights and bias.
    fn fuse_scale_shift(&mut self) -> bool {
        let uses = self.uses();
        let prod = self.producers();
        for c in 0..self.nodes.len() {
            let Some(cn) = &self.nodes[c] else { continue };
            let IrOp::ScaleShift { scale, shift, act } = &cn.op else {
                continue;
            };
            let x = cn.inputs[0];
            let Some(p) = prod[x] else { continue };
            if uses[x] != 1 {
                continue;
            }
            let pn = self.nodes[p].as_ref().unwrap();
            let new_op = match &pn.op {
                IrOp::Conv {
                    w,
                    wshape,
                    bias,
                    stride,
                    pads,
                    dilation,
                    groups,
                    act: Activation::None,
                    residual: false,
                } => {
                    let per = wshape[1] * wshape[2] * wshape[3];
                    let (w, b) = fold_affine(w, per, bias.as_deref(), scale, shift);
                    IrOp::Conv {
                        w,
                        wshape: *wshape,
                        bias: Some(b),
                        stride: *stride,
                        pads: *pads,
                        dilation: *dilation,
                        groups: *groups,
                        act: *act,
                        residual: false,
                    }
                }
                IrOp::Gemm {
                    w,
                    n,
                    k,
                    bias,
                    act: Activation::None,
                } => {
                    let (w, b) = fold_affine(w, *k, bias.as_deref(), scale, shift);
                    IrOp::Gemm {
                        w,
                        n: *n,
                        k: *k,
                        bias: Some(b),
                        act: *act,
                    }
                }
                _ => continue,
            };
            self.absorb(p, c, new_op, &[]);
            return true;
        }
        false
    }

    /// Add(conv(x), z) -> conv with residual z.
    fn fuse_residual(&mut self) -> bool {
        let uses = self.uses();
        let prod = self.producers();
        for c in 0..self.nodes.len() {
            let Some(cn) = &self.nodes[c] else { continue };
            let IrOp::Add { act } = cn.op else { continue };
            // Candidates: operands produced by a plain conv read only here;
            // prefer the one computed last.
            let mut best: Option<(usize, usize)> = None; // (producer, operand index)
            for (oi, &t) in cn.inputs.iter().enumerate() {
                let Some(p) = prod[t] else { continue };
                if uses[t] != 1 || cn.inputs[0] == cn.inputs[1] {
                    continue;
                }
                let ok = matches!(
                    self.nodes[p].as_ref().unwrap().op,
                    IrOp::Conv {
                        act: Activation::None,
                        residual: false,
                        ..
                    }
                );
                let later = match best {
                    None => true,
                    Some((bp, _)) => p > bp,
                };
                if ok && later {
                    best = Some((p, oi));
                }
            }
            let Some((p, oi)) = best else { continue };
            let z = cn.inputs[1 - oi];
            let mut op = self.nodes[p].as_ref().unwrap().op.clone();
            if let IrOp::Conv {
                act: a, residual, ..
            } = &mut op
            {
                *a = act;
                *residual = true;
            }
            self.absorb(p, c, op, &[z]);
            return true;
        }
        false
    }

    /// Relu/Clip after a step with a free activation slot.
    fn fuse_activation(&mut self) -> bool {
        let uses = self.uses();
        let prod = self.producers();
        for c in 0..self.nodes.len() {
            let Some(cn) = &self.nodes[c] else { continue };
            let IrOp::Act(act) = cn.op else { continue };
            let x = cn.inputs[0];
            let Some(p) = prod[x] else { continue };
            if uses[x] != 1 {
                continue;
            }
            let mut op = self.nodes[p].as_ref().unwrap().op.clone();
            let Some(slot) = op.free_act() else { continue };
            *slot = act;
            self.absorb(p, c, op, &[]);
            return true;
        }
        false
    }
}

/// `y = (w·x + b)*s + t` per output channel -> new weights and bias.
fn fold_affine(
    w: &[f32],
    per_out: usize,
    bias: Option<&[f32]>,
    scale: &[f32],
    shift: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let outs = scale.len();
    let mut nw = w.to_vec();
    let mut nb = vec![0f32; outs];
    for o in 0..outs {
        for v in &mut nw[o * per_out..(o + 1) * per_out] {
            *v *= scale[o];
        }
        let b = bias.map_or(0.0, |b| b[o]);
        nb[o] = b * scale[o] + shift[o];
    }
    (nw, nb)
}

// ---------------------------------------------------------------------------
// layout, steps, arena

fn emit(ir: Ir, model: &Model, batch: usize, precision: Precision) -> Result<Plan> {
    let nodes: Vec<IrNode> = ir.nodes.iter().flatten().cloned().collect();
    // Readers of each tensor (by live node index in `nodes`).
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); ir.tensors.len()];
    for (i, n) in nodes.iter().enumerate() {
        for &t in &n.inputs {
            readers[t].push(i);
        }
    }
    let act_layout = |shape: &[usize]| {
        if shape.len() == 4 {
            precision.activation_layout()
        } else {
            Layout::RowMajor
        }
    };

    let mut tensors: Vec<TensorInfo> = Vec::new();
    let mut map: HashMap<usize, TensorId> = HashMap::new(); // ir tensor -> plan tensor
    let mut buffer_of: Vec<usize> = Vec::new(); // plan tensor -> buffer index
    let mut nbuffers = 0usize;
    let eb = precision.elem_bytes();
    let mut new_tensor = |tensors: &mut Vec<TensorInfo>,
                          buffer_of: &mut Vec<usize>,
                          t: &IrTensor,
                          layout: Layout,
                          buffer: Option<usize>|
     -> TensorId {
        let b = buffer.unwrap_or_else(|| {
            nbuffers += 1;
            nbuffers - 1
        });
        let numel: usize = t.shape.iter().product();
        tensors.push(TensorInfo {
            name: t.name.clone(),
            shape: t.shape.clone(),
            layout,
            buffer: BufferId(b),
            offset: 0,
            bytes: numel * eb,
        });
        buffer_of.push(b);
        TensorId(tensors.len() - 1)
    };

    let in_t = &ir.tensors[ir.input];
    let input = new_tensor(
        &mut tensors,
        &mut buffer_of,
        in_t,
        act_layout(&in_t.shape),
        None,
    );
    map.insert(ir.input, input);

    let mut weights: Vec<Weight> = Vec::new();
    let mut add_weight = |name: String, shape: Vec<usize>, layout: WeightLayout, data: Vec<f32>| {
        let data = match precision {
            Precision::Fp32 => data,
            Precision::Fp16 => data.into_iter().map(|v| precision.round(v)).collect(),
        };
        weights.push(Weight {
            name,
            shape,
            layout,
            data,
        });
        WeightId(weights.len() - 1)
    };

    let mut steps: Vec<Step> = Vec::new();
    for node in &nodes {
        let ins: Vec<TensorId> = node.inputs.iter().map(|i| map[i]).collect();
        let ot = &ir.tensors[node.output];
        let label = node.sources.join("+");

        if let IrOp::Reshape = node.op {
            let x = &tensors[ins[0].0];
            let out_default = act_layout(&ot.shape);
            let x_buf = buffer_of[ins[0].0];
            let view =
                if x.layout.is_logical_order(&x.shape) && out_default.is_logical_order(&ot.shape) {
                    Some(out_default)
                } else if x.layout == Layout::Nhwc
                    && ot.shape.len() == 2
                    && ot.shape[0] == x.shape[0]
                    && ot.shape[1] == x.shape[1] * x.shape[2] * x.shape[3]
                    && node.output != ir.output
                    && !readers[node.output].is_empty()
                    && readers[node.output]
                        .iter()
                        .all(|&r| matches!(nodes[r].op, IrOp::Gemm { .. }))
                {
                    Some(Layout::FlatNhwc {
                        c: x.shape[1],
                        h: x.shape[2],
                        w: x.shape[3],
                    })
                } else {
                    None
                };
            match view {
                Some(layout) => {
                    let y = new_tensor(&mut tensors, &mut buffer_of, ot, layout, Some(x_buf));
                    map.insert(node.output, y);
                }
                None => {
                    let y = new_tensor(&mut tensors, &mut buffer_of, ot, out_default, None);
                    map.insert(node.output, y);
                    steps.push(Step {
                        op: Op::Reorder(ReorderStep { x: ins[0], y }),
                        nodes: node.sources.clone(),
                    });
                }
            }
            continue;
        }

        let y = new_tensor(
            &mut tensors,
            &mut buffer_of,
            ot,
            act_layout(&ot.shape),
            None,
        );
        map.insert(node.output, y);
        let op = match &node.op {
            IrOp::Conv {
                w,
                wshape,
                bias,
                stride,
                pads,
                dilation,
                groups,
                act,
                residual,
            } => {
                let [k, c, r, s] = *wshape;
                let (layout, data) = match precision.activation_layout() {
                    Layout::Nhwc => {
                        let mut d = vec![0f32; w.len()];
                        for ki in 0..k {
                            for ci in 0..c {
                                for ri in 0..r {
                                    for si in 0..s {
                                        d[((ki * r + ri) * s + si) * c + ci] =
                                            w[((ki * c + ci) * r + ri) * s + si];
                                    }
                                }
                            }
                        }
                        (WeightLayout::Krsc, d)
                    }
                    _ => (WeightLayout::Kcrs, w.clone()),
                };
                let wid = add_weight(format!("{label}.weight"), wshape.to_vec(), layout, data);
                let bid = bias.as_ref().map(|b| {
                    add_weight(
                        format!("{label}.bias"),
                        vec![k],
                        WeightLayout::Vector,
                        b.clone(),
                    )
                });
                Op::Conv(ConvStep {
                    x: ins[0],
                    w: wid,
                    bias: bid,
                    residual: if *residual { Some(ins[1]) } else { None },
                    y,
                    kernel: [r, s],
                    stride: *stride,
                    pads: *pads,
                    dilation: *dilation,
                    groups: *groups,
                    act: *act,
                })
            }
            IrOp::Gemm { w, n, k, bias, act } => {
                let x = &tensors[ins[0].0];
                let data = match x.layout {
                    Layout::FlatNhwc { c, h, w: ww } => {
                        // Column j of x's memory holds logical column perm(j).
                        let mut d = vec![0f32; w.len()];
                        for o in 0..*n {
                            for ci in 0..c {
                                for hw in 0..h * ww {
                                    d[o * k + hw * c + ci] = w[o * k + ci * h * ww + hw];
                                }
                            }
                        }
                        d
                    }
                    _ => w.clone(),
                };
                let wid = add_weight(
                    format!("{label}.weight"),
                    vec![*n, *k],
                    WeightLayout::Matrix,
                    data,
                );
                let bid = bias.as_ref().map(|b| {
                    add_weight(
                        format!("{label}.bias"),
                        vec![*n],
                        WeightLayout::Vector,
                        b.clone(),
                    )
                });
                Op::Gemm(GemmStep {
                    x: ins[0],
                    w: wid,
                    bias: bid,
                    y,
                    m: x.shape[0],
                    n: *n,
                    k: *k,
                    act: *act,
                })
            }
            IrOp::ScaleShift { scale, shift, act } => {
                let c = scale.len();
                let sc = add_weight(
                    format!("{label}.scale"),
                    vec![c],
                    WeightLayout::Vector,
                    scale.clone(),
                );
                let sh = add_weight(
                    format!("{label}.shift"),
                    vec![c],
                    WeightLayout::Vector,
                    shift.clone(),
                );
                Op::ScaleShift(ScaleShiftStep {
                    x: ins[0],
                    y,
                    scale: sc,
                    shift: sh,
                    act: *act,
                })
            }
            IrOp::Add { act } => Op::Add(AddStep {
                a: ins[0],
                b: ins[1],
                y,
                act: *act,
            }),
            IrOp::Act(act) => Op::Activation(ActivationStep {
                x: ins[0],
                y,
                act: *act,
            }),
            IrOp::Pool {
                kind,
                kernel,
                stride,
                pads,
            } => Op::Pool(PoolStep {
                x: ins[0],
                y,
                kind: *kind,
                kernel: *kernel,
                stride: *stride,
                pads: *pads,
            }),
            IrOp::Concat { axis } => Op::Concat(ConcatStep {
                inputs: ins.clone(),
                y,
                axis: *axis,
            }),
            IrOp::Softmax { axis, coerce_2d } => Op::Softmax(SoftmaxStep {
                x: ins[0],
                y,
                axis: *axis,
                coerce_2d: *coerce_2d,
            }),
            IrOp::Reshape => unreachable!(),
        };
        steps.push(Step {
            op,
            nodes: node.sources.clone(),
        });
    }

    let output = *map
        .get(&ir.output)
        .ok_or_else(|| Error::Internal("the output tensor was never emitted".into()))?;

    // Liveness per buffer.
    let nsteps = steps.len();
    let mut first = vec![usize::MAX; nbuffers];
    let mut last = vec![0usize; nbuffers];
    let mut bytes = vec![0usize; nbuffers];
    for (i, t) in tensors.iter().enumerate() {
        bytes[buffer_of[i]] = bytes[buffer_of[i]].max(t.bytes);
    }
    let input_buf = buffer_of[input.0];
    first[input_buf] = 0;
    for (s, st) in steps.iter().enumerate() {
        let b = buffer_of[st.output().0];
        first[b] = first[b].min(s);
        last[b] = last[b].max(s);
        for t in st.inputs() {
            let b = buffer_of[t.0];
            first[b] = first[b].min(s);
            last[b] = last[b].max(s);
        }
    }
    let out_buf = buffer_of[output.0];
    first[out_buf] = first[out_buf].min(nsteps);
    last[out_buf] = nsteps;
    let mut buffers: Vec<Buffer> = (0..nbuffers)
        .map(|b| Buffer {
            offset: 0,
            bytes: bytes[b],
            first_step: if first[b] == usize::MAX { 0 } else { first[b] },
            last_step: last[b].max(if first[b] == usize::MAX { 0 } else { first[b] }),
        })
        .collect();
    let arena_bytes = allocate(&mut buffers);
    for t in tensors.iter_mut() {
        t.offset = buffers[t.buffer.0].offset;
    }

    Ok(Plan {
        model: if model.name.is_empty() {
            "model".into()
        } else {
            model.name.clone()
        },
        precision,
        batch,
        steps,
        tensors,
        buffers,
        weights,
        arena_bytes,
        input,
        output,
    })
}

fn align_up(x: usize) -> usize {
    x.div_ceil(ARENA_ALIGN) * ARENA_ALIGN
}

/// Greedy arena placement: largest buffers first, each at the lowest
/// aligned offset not overlapping any already-placed buffer that is live
/// at the same time. Returns the arena size.
pub(crate) fn allocate(buffers: &mut [Buffer]) -> usize {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by(|&a, &b| {
        buffers[b]
            .bytes
            .cmp(&buffers[a].bytes)
            .then(buffers[a].first_step.cmp(&buffers[b].first_step))
    });
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0usize;
    for &i in &order {
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].lifetime_overlaps(&buffers[i]))
            .map(|&j| (buffers[j].offset, buffers[j].offset + buffers[j].bytes))
            .collect();
        conflicts.sort_unstable();
        let size = buffers[i].bytes;
        let mut offset = 0usize;
        for (start, end) in conflicts {
            if offset + size <= start {
                break;
            }
            offset = offset.max(align_up(end));
        }
        buffers[i].offset = offset;
        arena = arena.max(align_up(offset + size));
        placed.push(i);
    }
    arena
}
