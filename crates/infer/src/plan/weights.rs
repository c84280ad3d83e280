//! Constant operands as the plan stores them: the public [`Weight`] types
//! and the packing of folded IR constants into their step's layout.
//!
//! Packing happens once, at plan time, so an executor uploads weights
//! verbatim: filters are KCRS or KRSC to match the activation layout, a
//! Gemm after a flattened NHWC map gets its columns permuted to that map's
//! memory order, and fp16 plans round every value to f16 here (after
//! folding, so folding itself runs in f32).

use super::{Layout, Precision};

/// Index of a weight in [`Plan::weights`](super::Plan::weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeightId(pub usize);

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

/// Builds a plan's weight list in the order steps ask for them.
pub(super) struct WeightPacker {
    precision: Precision,
    weights: Vec<Weight>,
}

impl WeightPacker {
    pub(super) fn new(precision: Precision) -> WeightPacker {
        WeightPacker {
            precision,
            weights: Vec::new(),
        }
    }

    /// The packed weights, indexed by the [`WeightId`]s handed out.
    pub(super) fn finish(self) -> Vec<Weight> {
        self.weights
    }

    /// Stores `data` (already in `layout` order), rounded to the precision.
    fn add(
        &mut self,
        name: String,
        shape: Vec<usize>,
        layout: WeightLayout,
        data: Vec<f32>,
    ) -> WeightId {
        let data = match self.precision {
            Precision::Fp32 => data,
            Precision::Fp16 => data.into_iter().map(|v| self.precision.round(v)).collect(),
        };
        self.weights.push(Weight {
            name,
            shape,
            layout,
            data,
        });
        WeightId(self.weights.len() - 1)
    }

    /// A conv filter given KCRS: KRSC (the NHWC order of `[K, C, R, S]`)
    /// when activations are NHWC, so cuDNN sees matching formats.
    pub(super) fn filter(&mut self, name: String, w: &[f32], wshape: [usize; 4]) -> WeightId {
        let (layout, data) = match self.precision.activation_layout() {
            Layout::Nhwc => (
                WeightLayout::Krsc,
                Layout::Nhwc.to_physical(&wshape, w.to_vec()),
            ),
            _ => (WeightLayout::Kcrs, w.to_vec()),
        };
        self.add(name, wshape.to_vec(), layout, data)
    }

    /// A Gemm matrix `[n, k]` given with logical columns. The Gemm reads
    /// its input `x` as the raw matrix in memory, so when `x` is a
    /// flattened NHWC view its columns are permuted to match: memory column
    /// `(h*W + w)*C + c` of `x` holds logical column `c*H*W + h*W + w`.
    pub(super) fn matrix(
        &mut self,
        name: String,
        w: &[f32],
        [n, k]: [usize; 2],
        x_layout: Layout,
    ) -> WeightId {
        let data = match x_layout {
            Layout::FlatNhwc { .. } => x_layout.to_physical(&[n, k], w.to_vec()),
            _ => w.to_vec(),
        };
        self.add(name, vec![n, k], WeightLayout::Matrix, data)
    }

    /// A per-channel vector (bias, scale, shift).
    pub(super) fn vector(&mut self, name: String, v: &[f32]) -> WeightId {
        self.add(name, vec![v.len()], WeightLayout::Vector, v.to_vec())
    }
}
