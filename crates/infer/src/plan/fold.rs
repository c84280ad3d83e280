//! Constant folding: the ops whose lowering is arithmetic on constant
//! operands, and the folding of a per-channel affine map into a producer's
//! weights (used by fusion).
//!
//! BatchNormalization and `Add(x, constant)` become a per-channel
//! `ScaleShift`; Gemm's `alpha`, `beta` and `transB` and MatMul's layout
//! are folded into one `[N, K]` weight and a bias. So the rest of the
//! compiler knows just two linear forms (conv/gemm weights + bias, and
//! scale/shift) and fusion can merge them with [`fold_affine`].

use super::ir::IrOp;
use super::lower::{invalid, unsupported, Lowered, NodeCx, Val};
use super::Activation;
use crate::error::Result;
use crate::onnx::{Constant, Node};

/// BatchNormalization (inference) as a per-channel affine map.
pub(super) fn batch_norm(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let x = cx.tensor(0)?;
    let xs = cx.shape(x);
    if xs.len() < 2 {
        return Err(unsupported(n, "input of rank < 2"));
    }
    if n.int("training_mode", 0) != 0 {
        return Err(unsupported(n, "training_mode = 1"));
    }
    let c = xs[1];
    let eps = n.float("epsilon", 1e-5) as f64;
    let gamma = cx.constant(1, "scale")?.to_f32();
    let beta = cx.constant(2, "B")?.to_f32();
    let mean = cx.constant(3, "mean")?.to_f32();
    let var = cx.constant(4, "var")?.to_f32();
    if [gamma.len(), beta.len(), mean.len(), var.len()] != [c; 4] {
        return Err(invalid(n, format!("statistics do not have {c} channels")));
    }
    // s = γ/√(σ²+ε), t = β − μ·s, in f64 and rounded to f32 once, so the
    // map adds no rounding of its own before it is folded into a conv.
    let mut scale = vec![0f32; c];
    let mut shift = vec![0f32; c];
    for i in 0..c {
        let s = gamma[i] as f64 / (var[i] as f64 + eps).sqrt();
        scale[i] = s as f32;
        shift[i] = (beta[i] as f64 - mean[i] as f64 * s) as f32;
    }
    Ok((
        IrOp::ScaleShift {
            scale,
            shift,
            act: Activation::None,
        },
        vec![x],
        xs,
    ))
}

/// Add: of two same-shape activations (a real `Add` step, or a conv's
/// residual after fusion), or of an activation and a per-channel or scalar
/// constant (a `ScaleShift` with unit scale, so it can fold into a conv's
/// bias).
pub(super) fn add(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    match (cx.get(0), cx.get(1)) {
        (Some(Val::Tensor(a)), Some(Val::Tensor(b))) => {
            let (sa, sb) = (cx.shape(*a), cx.shape(*b));
            if sa != sb {
                return Err(unsupported(
                    n,
                    format!("broadcasting between two activations ({sa:?} + {sb:?})"),
                ));
            }
            Ok((
                IrOp::Add {
                    act: Activation::None,
                },
                vec![*a, *b],
                sa,
            ))
        }
        (Some(Val::Tensor(x)), Some(Val::Const(c)))
        | (Some(Val::Const(c)), Some(Val::Tensor(x))) => {
            let xs = cx.shape(*x);
            let shift = per_channel(n, &xs, c)?;
            Ok((
                IrOp::ScaleShift {
                    scale: vec![1.0; shift.len()],
                    shift,
                    act: Activation::None,
                },
                vec![*x],
                xs,
            ))
        }
        (Some(Val::Const(_)), Some(Val::Const(_))) => {
            Err(unsupported(n, "an Add of two constants (constant folding)"))
        }
        _ => Err(invalid(n, "needs two inputs")),
    }
}

/// Gemm with a constant B: `alpha` and `transB` go into the `[N, K]`
/// weight, `beta * C` into the bias.
pub(super) fn gemm(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let x = cx.tensor(0)?;
    let xs = cx.shape(x);
    if xs.len() != 2 {
        return Err(invalid(
            n,
            format!("input A has shape {xs:?}, expected 2-D"),
        ));
    }
    if n.int("transA", 0) != 0 {
        return Err(unsupported(n, "transA = 1"));
    }
    let b = cx.constant(1, "B")?;
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
    let bias = match cx.get(2) {
        None => None,
        Some(_) => {
            let c = cx.constant(2, "C")?;
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
    Ok((
        IrOp::Gemm {
            w,
            n: nn,
            k: kk,
            bias,
            act: Activation::None,
        },
        vec![x],
        vec![xs[0], nn],
    ))
}

/// MatMul of a 2-D activation by a constant matrix: a Gemm with the
/// matrix transposed to `[N, K]`.
pub(super) fn matmul(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let x = cx.tensor(0)?;
    let xs = cx.shape(x);
    let b = cx.constant(1, "B")?;
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
    Ok((
        IrOp::Gemm {
            w: transpose(&b.to_f32(), kk, nn),
            n: nn,
            k: kk,
            bias: None,
            act: Activation::None,
        },
        vec![x],
        vec![xs[0], nn],
    ))
}

/// Row-major `[rows, cols]` to row-major `[cols, rows]`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
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

/// Folds `y = (w·x + b)*s + t` (per output channel) into the producer:
/// scales each output channel's `per_out` weights in place and returns the
/// new bias `b*s + t`. This is BatchNorm folding, and it also absorbs bias
/// Adds after a conv or MatMul.
pub(super) fn fold_affine(
    w: &mut [f32],
    per_out: usize,
    bias: Option<&[f32]>,
    scale: &[f32],
    shift: &[f32],
) -> Vec<f32> {
    let outs = scale.len();
    let mut nb = vec![0f32; outs];
    for o in 0..outs {
        for v in &mut w[o * per_out..(o + 1) * per_out] {
            *v *= scale[o];
        }
        let b = bias.map_or(0.0, |b| b[o]);
        nb[o] = b * scale[o] + shift[o];
    }
    nb
}
