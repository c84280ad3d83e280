//! Shape inference for the ops whose lowering is mostly shape work:
//! convolution and pooling windows (padding, `auto_pad`, output sizes),
//! Flatten/Reshape targets, Concat and Softmax axes.
//!
//! Every shape is resolved at plan time for the fixed batch: the steps and
//! the arena need concrete sizes, and a shape that cannot be resolved
//! (a runtime Reshape target, a window larger than its input) fails here
//! naming the node.

use super::ir::IrOp;
use super::lower::{invalid, unsupported, Lowered, NodeCx, Val};
use super::{Activation, PoolKind};
use crate::error::{Error, Result};
use crate::onnx::Node;

/// 2-D Conv, grouped and dilated, with a constant filter and bias.
pub(super) fn conv(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let x = cx.tensor(0)?;
    let xs = cx.shape(x);
    let w = cx.constant(1, "the filter")?;
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
    let bias = match cx.get(2) {
        None => None,
        Some(_) => {
            let b = cx.constant(2, "the bias")?;
            if b.len() != k {
                return Err(invalid(
                    n,
                    format!("bias has {} values for {k} channels", b.len()),
                ));
            }
            Some(b.to_f32())
        }
    };
    Ok((
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
    ))
}

/// MaxPool / AveragePool (no dilation, no Indices). `ceil_mode = 1` becomes extra end
/// padding, recorded in `ceil_pads` so an average counting padding does not count it.
pub(super) fn pool(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let x = cx.tensor(0)?;
    let xs = cx.shape(x);
    if xs.len() != 4 {
        return Err(unsupported(n, "only 2-D pooling is supported"));
    }
    if n.outputs.len() > 1 && !n.outputs[1].is_empty() {
        return Err(unsupported(n, "the Indices output"));
    }
    let ceil = match n.int("ceil_mode", 0) {
        0 => false,
        1 => true,
        v => return Err(invalid(n, format!("ceil_mode = {v}"))),
    };
    if pair(n, "dilations", 1)? != [1, 1] {
        return Err(unsupported(n, "dilated pooling"));
    }
    let kernel = match n.ints("kernel_shape") {
        Some([a, b]) if *a > 0 && *b > 0 => [*a as usize, *b as usize],
        other => return Err(invalid(n, format!("kernel_shape {other:?}"))),
    };
    let stride = pair(n, "strides", 1)?;
    let (mut pads, oh, ow) = window(n, [xs[2], xs[3]], kernel, stride, [1, 1], true)?;
    let mut out = [oh, ow];
    let mut ceil_pads = [0; 2];
    // ceil_mode only changes explicit padding (tract and the ONNX spec: VALID and SAME
    // sizes are fixed by their own formulas).
    if ceil && matches!(n.string("auto_pad").unwrap_or("NOTSET"), "NOTSET" | "") {
        for d in 0..2 {
            let (len, k, s) = (xs[2 + d], kernel[d], stride[d]);
            let padded = len + pads[d] + pads[d + 2];
            let mut o = (padded - k).div_ceil(s) + 1;
            // ONNX: a last window that would start in the end padding is dropped.
            if (o - 1) * s >= len + pads[d] {
                o -= 1;
            }
            ceil_pads[d] = ((o - 1) * s + k).saturating_sub(padded);
            pads[d + 2] += ceil_pads[d];
            out[d] = o;
        }
    }
    let kind = if n.op_type == "MaxPool" {
        PoolKind::Max
    } else {
        PoolKind::Average {
            count_include_pad: n.int("count_include_pad", 0) != 0,
        }
    };
    Ok((
        IrOp::Pool {
            kind,
            kernel,
            stride,
            pads,
            ceil_pads,
        },
        vec![x],
        vec![xs[0], xs[1], out[0], out[1]],
    ))
}

/// GlobalAveragePool: an average pool whose window is the whole map.
pub(super) fn global_average_pool(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let x = cx.tensor(0)?;
    let xs = cx.shape(x);
    if xs.len() != 4 {
        return Err(unsupported(n, "only 4-D input is supported"));
    }
    Ok((
        IrOp::Pool {
            kind: PoolKind::Average {
                count_include_pad: false,
            },
            kernel: [xs[2], xs[3]],
            stride: [1, 1],
            pads: [0; 4],
            ceil_pads: [0; 2],
        },
        vec![x],
        vec![xs[0], xs[1], 1, 1],
    ))
}

/// Flatten to `[prod(dims[..axis]), prod(dims[axis..])]`.
pub(super) fn flatten(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let x = cx.tensor(0)?;
    let xs = cx.shape(x);
    // axis == rank is allowed (ONNX): the result is [numel, 1].
    let a = resolve_axis(n, n.int("axis", 1), xs.len(), true)?;
    let out = vec![xs[..a].iter().product(), xs[a..].iter().product()];
    Ok((IrOp::Reshape, vec![x], out))
}

/// Reshape to a constant target (attribute before opset 5).
pub(super) fn reshape(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let x = cx.tensor(0)?;
    let xs = cx.shape(x);
    let target = match cx.get(1) {
        Some(Val::Const(c)) => c.to_i64(),
        Some(Val::Tensor(_)) => {
            return Err(Error::DynamicShape {
                tensor: cx.out_name.to_string(),
                detail: format!(
                    "the target shape of Reshape node '{}' is computed at run time, not a constant",
                    n.name
                ),
            })
        }
        None if cx.opset < 5 => n.ints("shape").map(|s| s.to_vec()).unwrap_or_default(),
        None => return Err(invalid(n, "no shape input")),
    };
    let allow_zero = n.int("allowzero", 0) != 0;
    let out = reshape_target(n, &xs, &target, allow_zero)?;
    Ok((IrOp::Reshape, vec![x], out))
}

/// Concat: all dims but `axis` must match.
pub(super) fn concat(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let k = n.inputs.len();
    if k == 0 {
        return Err(invalid(n, "no inputs"));
    }
    let ins: Vec<usize> = (0..k).map(|i| cx.tensor(i)).collect::<Result<_>>()?;
    let s0 = cx.shape(ins[0]);
    let a = resolve_axis(n, n.int("axis", 1), s0.len(), false)?;
    let mut out = s0.clone();
    out[a] = 0;
    for &t in &ins {
        let s = cx.shape(t);
        let same_rest = s.len() == s0.len() && (0..s.len()).all(|d| d == a || s[d] == s0[d]);
        if !same_rest {
            return Err(invalid(
                n,
                format!("input shapes {s0:?} and {s:?} do not concatenate"),
            ));
        }
        out[a] += s[a];
    }
    Ok((IrOp::Concat { axis: a }, ins, out))
}

/// Softmax: the default axis and the coerce-to-2-D semantics changed in
/// opset 13.
pub(super) fn softmax(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let x = cx.tensor(0)?;
    let xs = cx.shape(x);
    let default = if cx.opset < 13 { 1 } else { -1 };
    let axis = resolve_axis(n, n.int("axis", default), xs.len(), false)?;
    Ok((
        IrOp::Softmax {
            axis,
            coerce_2d: cx.opset < 13,
        },
        vec![x],
        xs,
    ))
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

/// An `axis` attribute resolved against `rank` (negative counts from the
/// end). `rank` itself is a valid axis only when `end_ok` (Flatten).
fn resolve_axis(n: &Node, axis: i64, rank: usize, end_ok: bool) -> Result<usize> {
    let r = rank as i64;
    let axis = if axis < 0 { axis + r } else { axis };
    let max = if end_ok { r } else { r - 1 };
    if !(0..=max).contains(&axis) {
        return Err(invalid(n, format!("axis {axis} for rank {r}")));
    }
    Ok(axis as usize)
}

/// The output shape of a Reshape to `target` (`-1` inferred, `0` copies
/// the input's dimension unless `allow_zero`).
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
        if known == 0 || !total.is_multiple_of(known) {
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
