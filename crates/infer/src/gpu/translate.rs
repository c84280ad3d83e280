//! Plan -> [`GpuPlan`]: which cuDNN / cuBLAS call or `infer_ops.cu` kernel implements each
//! step, with its descriptors and launch configuration. Pure; see `calls` for the types.
//!
//! Element-wise kernels work in physical order, so they need their operands in the same
//! layout (the planner gives same-shape activations the same layout; anything else is
//! refused here rather than computed wrongly). Asymmetric padding has no cuDNN equivalent:
//! such inputs are first copied, padded, past the end of the plan's arena (`infer_pad_*`);
//! only an average pool that excludes padding cannot be expressed that way and is refused,
//! as is an average pool counting padding whose `ceil_mode` windows overhang the padding.

use super::axis;
use super::calls::*;
use super::dnn_calls;
use super::launch::{act_range, convert_call, grid_for, side, u32_of, BLOCK, MAX_GRID};
use crate::error::{Error, Result};
use crate::plan::{
    Activation, Layout, Op, Plan, PoolKind, Step, TensorId, TensorInfo, ARENA_ALIGN,
};

/// Translates every step of `plan`, in order, and checks the result against the arena.
pub fn translate(plan: &Plan) -> Result<GpuPlan> {
    let dtype = DType::of(plan.precision);
    let mut t = Translator {
        plan,
        dtype,
        calls: Vec::new(),
        zero_bias: 0,
        scratch: 0,
        pad_offset: plan.arena_bytes.next_multiple_of(ARENA_ALIGN),
        pad_bytes: 0,
    };
    for (i, step) in plan.steps.iter().enumerate() {
        t.step(i, step).map_err(|e| {
            Error::Backend(format!(
                "gpu: step {i} ({}, nodes {:?}): {e}",
                step.kind(),
                step.nodes
            ))
        })?;
    }
    let input = plan.tensor(plan.input);
    let output = plan.tensor(plan.output);
    let sfx = dtype.suffix();
    let (in_n, out_n) = (input.numel(), output.numel());
    let gp = GpuPlan {
        dtype,
        batch: plan.batch,
        arena_bytes: if t.pad_bytes > 0 {
            t.pad_offset + t.pad_bytes
        } else {
            plan.arena_bytes
        },
        zero_bias_elems: t.zero_bias,
        scratch_bytes: t.scratch * 4,
        upload: convert_call(
            &format!("f32_{sfx}"),
            KArg::Input,
            KArg::Arena(input.offset),
            in_n,
            (0, 0, 0),
            side(input),
        )?,
        download: convert_call(
            &format!("{sfx}_f32"),
            KArg::Arena(output.offset),
            KArg::Output,
            out_n,
            side(output),
            (0, 0, 0),
        )?,
        calls: t.calls,
        output_elems: out_n,
        input_elems: in_n,
    };
    gp.check(plan)?;
    Ok(gp)
}

struct Translator<'a> {
    plan: &'a Plan,
    dtype: DType,
    calls: Vec<StepCall>,
    zero_bias: usize,
    scratch: usize,
    /// Where explicitly padded inputs go: past the plan's arena, so no planned buffer is
    /// touched (a padded copy lives only from its pad kernel to the next call).
    pad_offset: usize,
    /// The largest padded copy.
    pad_bytes: usize,
}

fn is_logical(t: &TensorInfo) -> bool {
    t.layout.is_logical_order(&t.shape)
}

impl<'a> Translator<'a> {
    fn tensor(&self, t: TensorId) -> &'a TensorInfo {
        self.plan.tensor(t)
    }

    fn push(&mut self, step: usize, call: Call) {
        self.calls.push(StepCall { step, call });
    }

    fn kernel(&mut self, step: usize, op: &str, n: usize, args: Vec<KArg>) {
        let name = format!("infer_{op}_{}", self.dtype.suffix());
        self.push(
            step,
            Call::Kernel(KernelCall {
                name,
                grid: grid_for(n),
                block: BLOCK,
                args,
            }),
        );
    }

    /// The descriptor a cuDNN call reads `t` through, and the pads it applies: `t` itself
    /// when `pads` is symmetric; otherwise a copy grown by `pads` and filled with `fill`
    /// (written by an `infer_pad_*` launch recorded here) with zero pads.
    fn padded(
        &mut self,
        step: usize,
        t: TensorId,
        pads: [usize; 4],
        fill: f32,
    ) -> Result<(TensorDesc, [usize; 4])> {
        let x = self.tensor(t);
        let xd = dnn_calls::desc(x)?;
        if pads[0] == pads[2] && pads[1] == pads[3] {
            return Ok((xd, pads));
        }
        if fill.is_nan() {
            return Err(Error::Backend(format!(
                "asymmetric padding {pads:?} with count_include_pad = 0 (cuDNN pads symmetrically)"
            )));
        }
        let [n, c, h, w] = xd.dims;
        let (oh, ow) = (h + pads[0] + pads[2], w + pads[1] + pads[3]);
        let nhwc = x.layout == Layout::Nhwc;
        let padded = dnn_calls::dense([n, c, oh, ow], nhwc, self.pad_offset);
        let total = padded.numel();
        self.pad_bytes = self.pad_bytes.max(total * self.dtype.bytes());
        let mut args = vec![KArg::Arena(x.offset), KArg::Arena(self.pad_offset)];
        args.push(KArg::U32(u32_of(total)?));
        args.push(KArg::I32(nhwc as i32));
        for v in [c, h, w, oh, ow, pads[0], pads[1]] {
            args.push(KArg::U32(u32_of(v)?));
        }
        args.push(KArg::F32(fill));
        self.kernel(step, "pad", total, args);
        Ok((padded, [0; 4]))
    }

    /// An `infer_{op}` launch over same-order operands (inputs, then the output), followed
    /// by the element count and `act`'s clamp range: `add`, `act`.
    fn elementwise(
        &mut self,
        step: usize,
        op: &str,
        operands: &[TensorId],
        act: Activation,
    ) -> Result<()> {
        self.same_order(operands)?;
        let n = self.tensor(operands[operands.len() - 1]).numel();
        let (lo, hi) = act_range(act);
        let mut args: Vec<KArg> = operands
            .iter()
            .map(|&t| KArg::Arena(self.tensor(t).offset))
            .collect();
        args.extend([KArg::U32(u32_of(n)?), KArg::F32(lo), KArg::F32(hi)]);
        self.kernel(step, op, n, args);
        Ok(())
    }

    /// Element-wise operands must share one physical order.
    fn same_order(&self, ts: &[TensorId]) -> Result<()> {
        let first = self.tensor(ts[0]);
        for &t in &ts[1..] {
            let o = self.tensor(t);
            let same = o.shape == first.shape
                && (o.layout == first.layout || (is_logical(o) && is_logical(first)));
            if !same {
                return Err(Error::Backend(format!(
                    "'{}' {:?} {:?} and '{}' {:?} {:?} differ in physical order",
                    first.name, first.shape, first.layout, o.name, o.shape, o.layout
                )));
            }
        }
        Ok(())
    }

    fn step(&mut self, i: usize, step: &Step) -> Result<()> {
        match &step.op {
            Op::Conv(c) => {
                let y = self.tensor(c.y);
                let n = y.numel();
                let inner = if y.layout == Layout::Nhwc {
                    1
                } else {
                    y.shape[2] * y.shape[3]
                };
                let (lo, hi) = act_range(c.act);
                let z = c
                    .residual
                    .map_or(KArg::Null, |r| KArg::Arena(self.tensor(r).offset));
                let epilogue = KernelCall {
                    name: format!("infer_bias_res_act_{}", self.dtype.suffix()),
                    grid: grid_for(n),
                    block: BLOCK,
                    args: vec![
                        KArg::Arena(y.offset),
                        c.bias.map_or(KArg::Null, KArg::Weight),
                        z,
                        KArg::U32(u32_of(n)?),
                        KArg::U32(u32_of(y.shape[1])?),
                        KArg::U32(u32_of(inner)?),
                        KArg::F32(lo),
                        KArg::F32(hi),
                    ],
                };
                let x = self.padded(i, c.x, c.pads, 0.0)?;
                let call = dnn_calls::conv(self.plan, c, self.dtype, x, epilogue)?;
                if c.bias.is_none() {
                    self.zero_bias = self.zero_bias.max(call.y.dims[1]);
                }
                self.push(i, Call::Conv(Box::new(call)));
                if let Activation::Clip { .. } = c.act {
                    // No fused clipped ReLU in cuDNN: clamp y in place afterwards.
                    self.elementwise(i, "act", &[c.y, c.y], c.act)?;
                }
            }
            Op::Pool(p) => {
                let fill = match p.kind {
                    PoolKind::Max => f32::NEG_INFINITY,
                    PoolKind::Average {
                        count_include_pad: true,
                    } if p.ceil_pads != [0, 0] => {
                        // cuDNN would divide the last windows by the full window; ONNX
                        // does not count the padding ceil_mode added.
                        return Err(Error::Backend(format!(
                            "average pool counting padding with ceil_mode end padding {:?} \
                             (cuDNN would count it)",
                            p.ceil_pads
                        )));
                    }
                    PoolKind::Average {
                        count_include_pad: true,
                    } => 0.0,
                    PoolKind::Average {
                        count_include_pad: false,
                    } => f32::NAN, // refused below when padding is asymmetric
                };
                let x = self.padded(i, p.x, p.pads, fill)?;
                let call = dnn_calls::pool(self.plan, p, x)?;
                self.push(i, Call::Pool(call));
            }
            Op::Gemm(g) => {
                self.scratch = self.scratch.max(g.m * g.n);
                self.push(
                    i,
                    Call::Gemm(GemmCall {
                        m: g.m,
                        n: g.n,
                        k: g.k,
                        x_offset: self.tensor(g.x).offset,
                        w: g.w,
                    }),
                );
                let (lo, hi) = act_range(g.act);
                let bias = g.bias.map_or(KArg::Null, KArg::Weight);
                let y = self.tensor(g.y).offset;
                let n = g.m * g.n;
                self.kernel(
                    i,
                    "bias_act",
                    n,
                    vec![
                        KArg::Scratch,
                        bias,
                        KArg::Arena(y),
                        KArg::U32(u32_of(n)?),
                        KArg::U32(u32_of(g.n)?),
                        KArg::F32(lo),
                        KArg::F32(hi),
                    ],
                );
            }
            Op::ScaleShift(s) => {
                self.same_order(&[s.x, s.y])?;
                let x = self.tensor(s.x);
                let inner = if x.layout == Layout::Nhwc {
                    1
                } else {
                    x.shape[2..].iter().product()
                };
                let (n, ch) = (x.numel(), x.shape[1]);
                let (xo, yo) = (x.offset, self.tensor(s.y).offset);
                let (lo, hi) = act_range(s.act);
                self.kernel(
                    i,
                    "scale_shift",
                    n,
                    vec![
                        KArg::Arena(xo),
                        KArg::Arena(yo),
                        KArg::Weight(s.scale),
                        KArg::Weight(s.shift),
                        KArg::U32(u32_of(n)?),
                        KArg::U32(u32_of(ch)?),
                        KArg::U32(u32_of(inner)?),
                        KArg::F32(lo),
                        KArg::F32(hi),
                    ],
                );
            }
            Op::Add(a) => self.elementwise(i, "add", &[a.a, a.b, a.y], a.act)?,
            Op::Activation(a) => self.elementwise(i, "act", &[a.x, a.y], a.act)?,
            Op::Concat(c) => {
                let ts: Vec<&TensorInfo> = c.inputs.iter().map(|&t| self.tensor(t)).collect();
                let y = self.tensor(c.y);
                for (x, p) in ts.iter().zip(axis::concat(&ts, y, c.axis)?) {
                    let n = p.outer * p.in_row;
                    let args = vec![
                        KArg::Arena(x.offset),
                        KArg::Arena(y.offset),
                        KArg::U32(u32_of(p.outer)?),
                        KArg::U32(u32_of(p.in_row)?),
                        KArg::U32(u32_of(p.out_row)?),
                        KArg::U32(u32_of(p.col)?),
                    ];
                    self.kernel(i, "concat_copy", n, args);
                }
            }
            Op::Softmax(s) => {
                self.same_order(&[s.x, s.y])?;
                let (x, y) = (self.tensor(s.x), self.tensor(s.y));
                let p = axis::softmax(x, s.axis, s.coerce_2d)?;
                let mut args = vec![KArg::Arena(x.offset), KArg::Arena(y.offset)];
                for v in [p.rows, p.len, p.inner, p.so, p.sj, p.si] {
                    args.push(KArg::U32(u32_of(v)?));
                }
                // One warp per row.
                let grid = p
                    .rows
                    .div_ceil((BLOCK / 32) as usize)
                    .clamp(1, MAX_GRID as usize) as u32;
                let name = format!("infer_softmax_{}", self.dtype.suffix());
                self.push(
                    i,
                    Call::Kernel(KernelCall {
                        name,
                        grid,
                        block: BLOCK,
                        args,
                    }),
                );
            }
            Op::Reorder(r) => {
                let (x, y) = (self.tensor(r.x), self.tensor(r.y));
                if x.numel() != y.numel() {
                    return Err(Error::Internal("reorder changes the element count".into()));
                }
                let sfx = self.dtype.suffix();
                let call = convert_call(
                    &format!("{sfx}_{sfx}"),
                    KArg::Arena(x.offset),
                    KArg::Arena(y.offset),
                    x.numel(),
                    side(x),
                    side(y),
                )?;
                self.push(i, Call::Kernel(call));
            }
        }
        Ok(())
    }
}
