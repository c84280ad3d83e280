//! The plan: an ONNX graph compiled for one batch size and precision into a
//! flat list of [`Step`]s over one activation arena. No GPU code here.
//!
//! [`Plan::compile`] is a pipeline of passes, one module each:
//!
//! 1. **IR + shape inference** (`lower`, with `shapes` and `fold`). Every
//!    node is converted into a typed op with its constant operands read
//!    (weights, BN statistics, Reshape targets, Clip bounds, Gemm
//!    alpha/beta) and its output shape computed for the fixed batch.
//!    Dropout is removed here (its output aliases its input);
//!    BatchNormalization and `Add(x, constant)` become a per-channel
//!    `ScaleShift`. Unresolvable shapes and unsupported attribute values are
//!    errors naming the node.
//! 2. **Dead-code elimination** (`ir`) of everything the output does not
//!    need.
//! 3. **Fusion** (`fuse`), to a fixed point, in priority order:
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
//! 4. **Layout and steps** (`emit`, with `layout` and `weights`). 4-D
//!    activations are NCHW in fp32 plans and NHWC in fp16 plans
//!    (tensor-core friendly); other ranks are row-major. Conv filters are
//!    KCRS / KRSC to match. Flatten/Reshape is a free view when the physical
//!    element order is unchanged; a flatten of a genuinely NHWC tensor
//!    feeding only Gemms is also a view, with those Gemms' weight columns
//!    permuted to HWC order; anything else becomes a `Reorder` copy.
//!    Weights are stored in their step's layout, rounded once to the plan's
//!    precision.
//! 5. **Arena** (`arena`). Each buffer (a tensor and its views) lives from
//!    the step that writes it to the last step that reads it (the input
//!    from step 0, the output to the end). Buffers are placed greedily,
//!    largest first, at the lowest [`ARENA_ALIGN`]-aligned offset that does
//!    not collide with any already-placed buffer whose lifetime overlaps;
//!    the result is verified by [`Plan::check_arena`] (no two
//!    simultaneously live buffers share a byte) before the plan is
//!    returned.
//!
//! The public types live next to the pass that produces them ([`Step`] and
//! its ops in `step`, [`Layout`] in `layout`, [`Weight`] in `weights`,
//! [`Buffer`] in `arena`) and are all re-exported here; `summary` prints a
//! plan.

mod arena;
mod emit;
mod fold;
mod fuse;
mod ir;
mod layout;
mod lower;
mod shapes;
mod step;
mod summary;
mod weights;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::onnx::Model;

pub use arena::{Buffer, BufferId, ARENA_ALIGN};
pub use layout::Layout;
pub use step::{
    Activation, ActivationStep, AddStep, ConcatStep, ConvStep, GemmStep, Op, PoolKind, PoolStep,
    ReorderStep, ScaleShiftStep, SoftmaxStep, Step,
};
pub use weights::{Weight, WeightId, WeightLayout};

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

/// Index of a tensor in [`Plan::tensors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

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
        // 1-3: the graph as typed ops with shapes, pruned and fused.
        let mut ir = lower::build_ir(model, batch)?;
        ir.eliminate_dead_code();
        ir.fuse();
        // 4: layouts, weights in their step's layout, and the steps.
        let emit::Emitted {
            steps,
            mut tensors,
            weights,
            nbuffers,
            input,
            output,
        } = emit::emit(&ir, precision)?;
        // 5: lifetimes and offsets, then an independent check of both.
        let (buffers, arena_bytes) = arena::place(&steps, &mut tensors, nbuffers, input, output);
        let plan = Plan {
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
        };
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
}
