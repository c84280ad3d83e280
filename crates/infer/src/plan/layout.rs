//! Memory order of activations: the [`Layout`] type, the choice of layout
//! per tensor, and when a Flatten/Reshape can be a view instead of a
//! `Reorder` copy.
//!
//! Shapes in the plan stay logical (ONNX order) everywhere; only the layout
//! says where an element sits. That keeps shape inference, fusion and the
//! executors' index arithmetic independent of the precision's layout.

use super::{Precision, TensorInfo};

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

    /// `logical` (row-major in the logical `shape`) rearranged into this
    /// layout's memory order. Also packs weights: a KRSC filter is the NHWC
    /// order of its logical `[K, C, R, S]` shape, and a Gemm reading a
    /// [`Layout::FlatNhwc`] input needs its `[N, K]` weight columns in that
    /// input's column order.
    pub(crate) fn to_physical(self, shape: &[usize], logical: Vec<f32>) -> Vec<f32> {
        if self.is_logical_order(shape) {
            return logical;
        }
        let mut phys = vec![0f32; logical.len()];
        for (i, v) in logical.into_iter().enumerate() {
            phys[self.physical_index(shape, i)] = v;
        }
        phys
    }

    /// The inverse of [`to_physical`](Layout::to_physical): memory order
    /// back to logical order.
    pub(crate) fn to_logical(self, shape: &[usize], phys: Vec<f32>) -> Vec<f32> {
        if self.is_logical_order(shape) {
            return phys;
        }
        (0..phys.len())
            .map(|i| phys[self.physical_index(shape, i)])
            .collect()
    }
}

/// Layout of a freshly written activation of logical `shape`: the
/// precision's 4-D layout (NCHW for fp32, NHWC for fp16 tensor cores), and
/// row-major for every other rank.
pub(super) fn activation_layout(precision: Precision, shape: &[usize]) -> Layout {
    if shape.len() == 4 {
        precision.activation_layout()
    } else {
        Layout::RowMajor
    }
}

/// The layout under which a Flatten/Reshape of `x` to `shape` can share
/// `x`'s bytes, or `None` when it needs a `Reorder` copy into `out_layout`
/// (the layout a fresh tensor of `shape` would get).
///
/// * When both sides keep memory order equal to logical order, the bytes
///   already are the reshaped tensor.
/// * A real NHWC map flattened to `[N, C*H*W]` is not in logical order,
///   but a Gemm reads its input as a raw matrix, so if only Gemms read it
///   (`gemm_only`) their weight columns are permuted instead
///   ([`Layout::FlatNhwc`]). The graph output is never such a view: callers
///   read it in logical order.
pub(super) fn reshape_view(
    x: &TensorInfo,
    shape: &[usize],
    out_layout: Layout,
    gemm_only: bool,
) -> Option<Layout> {
    if x.layout.is_logical_order(&x.shape) && out_layout.is_logical_order(shape) {
        Some(out_layout)
    } else if x.layout == Layout::Nhwc
        && shape.len() == 2
        && shape[0] == x.shape[0]
        && shape[1] == x.shape[1] * x.shape[2] * x.shape[3]
        && gemm_only
    {
        Some(Layout::FlatNhwc {
            c: x.shape[1],
            h: x.shape[2],
            w: x.shape[3],
        })
    } else {
        None
    }
}
