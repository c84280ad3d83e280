//! The cuDNN calls of a plan (convolution, pooling) as pure descriptors: layouts become
//! strides, ONNX pads become cuDNN's symmetric pads, and every output size is recomputed
//! with cuDNN's formula and compared with the plan's shape.

use super::calls::{
    AlgoRule, ConvCall, DType, FilterDesc, KernelCall, PoolCall, PoolMode, TensorDesc,
};
use crate::error::{Error, Result};
use crate::plan::{
    Activation, ConvStep, Layout, Plan, PoolKind, PoolStep, TensorInfo, WeightLayout,
};

/// The descriptor of a dense `dims` tensor in NHWC or NCHW order at `offset`.
pub(super) fn dense(dims: [usize; 4], nhwc: bool, offset: usize) -> TensorDesc {
    let [_, c, h, w] = dims;
    let strides = if nhwc {
        [h * w * c, 1, w * c, c]
    } else {
        [c * h * w, h * w, w, 1]
    };
    TensorDesc {
        dims,
        strides,
        offset,
    }
}

/// The 4-D descriptor of an activation in its planned layout.
pub(super) fn desc(t: &TensorInfo) -> Result<TensorDesc> {
    let dims = <[usize; 4]>::try_from(t.shape.as_slice())
        .map_err(|_| Error::Backend(format!("'{}' is not 4-D: {:?}", t.name, t.shape)))?;
    match t.layout {
        Layout::Nchw => Ok(dense(dims, false, t.offset)),
        Layout::Nhwc => Ok(dense(dims, true, t.offset)),
        other => Err(Error::Backend(format!(
            "'{}' has layout {other:?}, not NCHW/NHWC",
            t.name
        ))),
    }
}

/// Symmetric padding `[h, w]` from `[t, l, b, r]` (the translator pads asymmetric inputs
/// explicitly first and passes zeros here).
fn symmetric(pads: [usize; 4]) -> Result<[usize; 2]> {
    if pads[0] != pads[2] || pads[1] != pads[3] {
        return Err(Error::Backend(format!(
            "asymmetric padding {pads:?} (cuDNN pads symmetrically)"
        )));
    }
    Ok([pads[0], pads[1]])
}

/// cuDNN's output size `(in + 2·pad − span) / stride + 1`, or `None` when the window does
/// not fit the padded input.
fn out_dim(input: usize, pad: usize, span: usize, stride: usize) -> Option<usize> {
    (input + 2 * pad).checked_sub(span).map(|d| d / stride + 1)
}

/// The fused convolution of a Conv step reading `x` (the step's input, or its explicitly
/// padded copy) with `pads`.
pub(super) fn conv(
    plan: &Plan,
    c: &ConvStep,
    dtype: DType,
    (x, pads): (TensorDesc, [usize; 4]),
    epilogue: KernelCall,
) -> Result<ConvCall> {
    let y = desc(plan.tensor(c.y))?;
    let z = c.residual.map(|r| desc(plan.tensor(r))).transpose()?;
    if let Some(z) = &z {
        if z.dims != y.dims || z.strides != y.strides {
            return Err(Error::Backend(format!(
                "residual {z:?} does not match the output {y:?}"
            )));
        }
    }
    let pad = symmetric(pads)?;
    for (a, &pa) in pad.iter().enumerate() {
        let span = c.dilation[a] * (c.kernel[a] - 1) + 1;
        let out = out_dim(x.dims[2 + a], pa, span, c.stride[a]);
        if out != Some(y.dims[2 + a]) {
            return Err(Error::Internal(format!(
                "conv output dim {a}: cuDNN gives {out:?}, the plan {}",
                y.dims[2 + a]
            )));
        }
    }
    let relu = c.act == Activation::Relu;
    Ok(ConvCall {
        x,
        y,
        z,
        pad,
        w: FilterDesc {
            dims: [y.dims[1], x.dims[1] / c.groups, c.kernel[0], c.kernel[1]],
            nhwc: plan.weight(c.w).layout == WeightLayout::Krsc,
            weight: c.w,
        },
        bias: c.bias,
        stride: c.stride,
        dilation: c.dilation,
        groups: c.groups,
        relu,
        // The fused call with an identity activation (also the Clip case, clamped after)
        // accepts only this algorithm.
        algo: if relu {
            AlgoRule::Fastest
        } else {
            AlgoRule::ImplicitPrecompGemm
        },
        tensor_ops: dtype == DType::F16,
        epilogue,
    })
}

/// The pooling call of a Pool step reading `x` (the step's input, or its explicitly padded
/// copy) with `pads`.
pub(super) fn pool(
    plan: &Plan,
    p: &PoolStep,
    (x, pads): (TensorDesc, [usize; 4]),
) -> Result<PoolCall> {
    let y = desc(plan.tensor(p.y))?;
    let pad = symmetric(pads)?;
    for (a, &pa) in pad.iter().enumerate() {
        let out = out_dim(x.dims[2 + a], pa, p.kernel[a], p.stride[a]);
        if out != Some(y.dims[2 + a]) || pa >= p.kernel[a] {
            return Err(Error::Internal(format!(
                "pool dim {a}: cuDNN gives {out:?} (pad {pa}), the plan {}",
                y.dims[2 + a]
            )));
        }
    }
    let mode = match p.kind {
        PoolKind::Max => PoolMode::Max,
        // Every window lies inside the padded input (the translator refuses ceil_mode
        // windows that overhang it), so "include padding" divides by the full window,
        // as the reference does.
        PoolKind::Average {
            count_include_pad: true,
        } => PoolMode::AvgIncludePad,
        PoolKind::Average {
            count_include_pad: false,
        } => PoolMode::AvgExcludePad,
    };
    Ok(PoolCall {
        x,
        y,
        mode,
        window: p.kernel,
        pad,
        stride: p.stride,
    })
}
