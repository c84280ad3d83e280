//! Kernel launch helpers of the translation: launch configuration, the kernels' 32-bit
//! counts, activation clamp ranges, and the `infer_convert_*` calls (layout and type
//! conversion) used for Reorder steps and the batch upload / download.

use super::calls::{KArg, KernelCall};
use crate::error::{Error, Result};
use crate::plan::{Activation, Layout, TensorInfo};

/// Threads per block of the element-wise kernels (8 warps).
pub const BLOCK: u32 = 256;
/// Grid cap of the grid-stride kernels (132 SMs x ~16 resident blocks on an H100).
pub const MAX_GRID: u32 = 2048;

/// Launch configuration of a grid-stride kernel over `n` elements.
pub fn grid_for(n: usize) -> u32 {
    (n.div_ceil(BLOCK as usize).clamp(1, MAX_GRID as usize)) as u32
}

/// A count or index as the kernels' `unsigned`, kept below 2^31 so that a grid-stride index
/// (`i + blockDim * gridDim`, at most 2^19 past the count) cannot wrap.
pub(super) fn u32_of(n: usize) -> Result<u32> {
    match u32::try_from(n) {
        Ok(v) if v <= i32::MAX as u32 => Ok(v),
        _ => Err(Error::Backend(format!(
            "{n} exceeds the kernels' 32-bit indexing"
        ))),
    }
}

/// The clamp range the kernels apply: identity, ReLU or Clip.
pub fn act_range(act: Activation) -> (f32, f32) {
    match act {
        Activation::None => (f32::NEG_INFINITY, f32::INFINITY),
        Activation::Relu => (0.0, f32::INFINITY),
        Activation::Clip { min, max } => (min, max),
    }
}

/// `(nhwc, c, h*w)` of a tensor for `infer_convert_*`'s physical indexing.
pub(super) fn side(t: &TensorInfo) -> (i32, usize, usize) {
    match t.layout {
        Layout::Nhwc => (1, t.shape[1], t.shape[2] * t.shape[3]),
        Layout::FlatNhwc { c, h, w } => (1, c, h * w),
        Layout::Nchw | Layout::RowMajor => (0, 0, 0),
    }
}

pub(super) fn convert_call(
    types: &str,
    x: KArg,
    y: KArg,
    n: usize,
    xs: (i32, usize, usize),
    ys: (i32, usize, usize),
) -> Result<KernelCall> {
    Ok(KernelCall {
        name: format!("infer_convert_{types}"),
        grid: grid_for(n),
        block: BLOCK,
        args: vec![
            x,
            y,
            KArg::U32(u32_of(n)?),
            KArg::I32(xs.0),
            KArg::U32(u32_of(xs.1)?),
            KArg::U32(u32_of(xs.2)?),
            KArg::I32(ys.0),
            KArg::U32(u32_of(ys.1)?),
            KArg::U32(u32_of(ys.2)?),
        ],
    })
}
