//! The public description of what each step does: one [`Op`] per cuDNN /
//! cuBLAS call or small kernel, with its fused [`Activation`]. Executors
//! (the reference executor, later the GPU one) match on these; the
//! compiler only ever builds them in `emit`.

use super::{TensorId, WeightId};

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
    /// Padding `[top, left, bottom, right]`, `ceil_pads` included.
    pub pads: [usize; 4],
    /// The part of `pads[2]` / `pads[3]` that `ceil_mode = 1` added so the last window
    /// fits. It pads like the rest, but an average that counts padding does not count
    /// it (ONNX and PyTorch: the divisor is the window clipped to the padded input).
    pub ceil_pads: [usize; 2],
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
