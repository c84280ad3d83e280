//! The reference executor: runs a [`Plan`] step by step on the CPU, inside
//! the plan's own arena, exactly as a GPU executor would (same offsets, same
//! layouts, same fused operands), with plain loops that are easy to check.
//!
//! * The arena is a byte buffer of [`Plan::arena_bytes`]; each tensor lives
//!   at its planned offset, stored as f32 (fp32 plans) or IEEE half (fp16
//!   plans). Storing an fp16 activation rounds it, so fp16 plans compute in
//!   f32 but round weights (at plan time) and activations (after every
//!   step) to f16, like cuDNN with fp16 I/O and f32 accumulation.
//! * Every step reads its inputs through their planned layout (NCHW, NHWC,
//!   row-major, flattened NHWC) into logical order, computes, and writes its
//!   output through the output's layout. Gemm reads its input as the raw
//!   row-major matrix, with the plan's (possibly column-permuted) weights.
//! * The arena is filled with NaN before each run, and a step whose input
//!   holds a NaN fails with [`Error::Internal`] naming the step and the
//!   tensor: reading bytes no earlier step wrote cannot pass silently (a
//!   clobbered-but-finite tensor shows up as a mismatch against tract).

use crate::engine::{Engine, Output};
use crate::error::{Error, Result};
use crate::gpu::DType;
use crate::plan::{
    Activation, Layout, Op, Plan, PoolKind, PoolStep, Precision, TensorId, WeightId, WeightLayout,
};

/// Callback of [`Reference::execute_traced`].
type StepTrace<'a> = &'a mut dyn FnMut(usize, TensorId, &[f32]);

/// CPU executor over a plan and its arena.
#[derive(Debug, Clone)]
pub struct Reference {
    plan: Plan,
    arena: Vec<u8>,
    /// Weights converted to canonical order (filters KCRS), by weight id.
    weights: Vec<Vec<f32>>,
}

impl Reference {
    /// Wraps a compiled plan.
    pub fn new(plan: Plan) -> Reference {
        let weights = plan
            .weights
            .iter()
            .map(|w| match w.layout {
                // KRSC is the NHWC order of the logical [K, C, R, S] filter.
                WeightLayout::Krsc => Layout::Nhwc.to_logical(&w.shape, w.data.clone()),
                _ => w.data.clone(),
            })
            .collect();
        let arena = vec![0xffu8; plan.arena_bytes];
        Reference {
            plan,
            arena,
            weights,
        }
    }

    /// Loads an ONNX file, compiles it and wraps the plan.
    pub fn load(
        path: impl AsRef<std::path::Path>,
        batch: usize,
        precision: Precision,
    ) -> Result<Reference> {
        Ok(Reference::new(Plan::load(path, batch, precision)?))
    }

    /// The plan being executed.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Runs the plan on a full batch: `input` holds `plan.batch` images in
    /// logical (NCHW) order; returns the output tensor in logical order.
    pub fn execute(&mut self, input: &[f32]) -> Result<Vec<f32>> {
        self.execute_inner(input, None)
    }

    /// Like [`execute`](Reference::execute), calling `after_step(i, y,
    /// values)` after step `i` with its output tensor `y` in logical order:
    /// the per-step oracle for checking another executor of the same plan.
    pub fn execute_traced(
        &mut self,
        input: &[f32],
        mut after_step: impl FnMut(usize, TensorId, &[f32]),
    ) -> Result<Vec<f32>> {
        self.execute_inner(input, Some(&mut after_step))
    }

    fn execute_inner(
        &mut self,
        input: &[f32],
        mut trace: Option<StepTrace<'_>>,
    ) -> Result<Vec<f32>> {
        let want = self.plan.tensor(self.plan.input).numel();
        if input.len() != want {
            return Err(Error::BadInputShape {
                expected: format!(
                    "{want} values {:?}",
                    self.plan.tensor(self.plan.input).shape
                ),
                got: format!("{} values", input.len()),
            });
        }
        self.arena.fill(0xff); // NaN in both f32 and f16
        self.write(self.plan.input, input.to_vec());
        for i in 0..self.plan.steps.len() {
            self.check_inputs(i)?;
            self.step(i);
            if let Some(f) = trace.as_mut() {
                let y = self.plan.steps[i].output();
                f(i, y, &self.read(y));
            }
        }
        Ok(self.read(self.plan.output))
    }

    fn prec(&self) -> Precision {
        self.plan.precision
    }

    /// Reads a tensor's elements in memory order.
    fn load_physical(&self, t: TensorId) -> Vec<f32> {
        let info = self.plan.tensor(t);
        DType::of(self.prec()).unpack(&self.arena[info.offset..info.offset + info.bytes])
    }

    /// Writes a tensor's elements in memory order (rounding in fp16 plans).
    fn store_physical(&mut self, t: TensorId, values: &[f32]) {
        let info = self.plan.tensor(t);
        assert_eq!(values.len(), info.numel());
        let range = info.offset..info.offset + info.bytes;
        let bytes = DType::of(self.prec()).pack(values);
        self.arena[range].copy_from_slice(&bytes);
    }

    /// Reads a tensor in logical (ONNX, row-major) order.
    fn read(&self, t: TensorId) -> Vec<f32> {
        let info = self.plan.tensor(t);
        info.layout.to_logical(&info.shape, self.load_physical(t))
    }

    /// Writes a tensor given in logical order.
    fn write(&mut self, t: TensorId, logical: Vec<f32>) {
        let info = self.plan.tensor(t);
        let phys = info.layout.to_physical(&info.shape, logical);
        self.store_physical(t, &phys);
    }

    fn weight(&self, w: WeightId) -> &[f32] {
        &self.weights[w.0]
    }

    fn shape(&self, t: TensorId) -> Vec<usize> {
        self.plan.tensor(t).shape.clone()
    }

    /// Fails if a step is about to read NaN: the arena is NaN-filled before
    /// each run, so that means uninitialised or clobbered memory (an arena
    /// or liveness bug), which ReLU or max-pooling could otherwise hide.
    fn check_inputs(&self, i: usize) -> Result<()> {
        let step = &self.plan.steps[i];
        for t in step.inputs() {
            if self.load_physical(t).iter().any(|v| v.is_nan()) {
                return Err(Error::Internal(format!(
                    "step {i} ({}, nodes {:?}) reads NaN from '{}' at arena offset {}: \
                     uninitialised or clobbered arena memory (or NaN in the input)",
                    step.kind(),
                    step.nodes,
                    self.plan.tensor(t).name,
                    self.plan.tensor(t).offset
                )));
            }
        }
        Ok(())
    }

    fn step(&mut self, i: usize) {
        let op = self.plan.steps[i].op.clone();
        match op {
            Op::Conv(c) => {
                let x = self.read(c.x);
                let xs = self.shape(c.x);
                let ys = self.shape(c.y);
                let w = self.weight(c.w);
                let bias = c.bias.map(|b| self.weight(b));
                let mut y = conv2d(
                    &x,
                    [xs[0], xs[1], xs[2], xs[3]],
                    w,
                    [ys[1], xs[1] / c.groups, c.kernel[0], c.kernel[1]],
                    bias,
                    c.stride,
                    c.pads,
                    c.dilation,
                    c.groups,
                    [ys[2], ys[3]],
                );
                if let Some(z) = c.residual {
                    let z = self.read(z);
                    for (a, b) in y.iter_mut().zip(&z) {
                        *a += b;
                    }
                }
                apply(&mut y, c.act);
                self.write(c.y, y);
            }
            Op::Gemm(g) => {
                let x = self.load_physical(g.x); // the row-major [m, k] matrix
                let w = self.weight(g.w);
                let mut y = vec![0f32; g.m * g.n];
                for m in 0..g.m {
                    let row = &x[m * g.k..(m + 1) * g.k];
                    for n in 0..g.n {
                        let wr = &w[n * g.k..(n + 1) * g.k];
                        let mut acc = 0f32;
                        for (a, b) in row.iter().zip(wr) {
                            acc += a * b;
                        }
                        y[m * g.n + n] = acc;
                    }
                }
                if let Some(b) = g.bias {
                    let b = self.weight(b);
                    for row in y.chunks_exact_mut(g.n) {
                        for (v, bb) in row.iter_mut().zip(b) {
                            *v += bb;
                        }
                    }
                }
                apply(&mut y, g.act);
                self.write(g.y, y);
            }
            Op::Pool(p) => {
                let x = self.read(p.x);
                let xs = self.shape(p.x);
                let ys = self.shape(p.y);
                let y = pool2d(&x, &xs, &ys, &p);
                self.write(p.y, y);
            }
            Op::ScaleShift(s) => {
                let mut x = self.read(s.x);
                let xs = self.shape(s.x);
                let (scale, shift) = (self.weight(s.scale), self.weight(s.shift));
                let c = xs[1];
                let inner: usize = xs[2..].iter().product();
                for (i, v) in x.iter_mut().enumerate() {
                    let ch = (i / inner) % c;
                    *v = s.act.apply(*v * scale[ch] + shift[ch]);
                }
                self.write(s.y, x);
            }
            Op::Add(a) => {
                let mut x = self.read(a.a);
                let z = self.read(a.b);
                for (v, w) in x.iter_mut().zip(&z) {
                    *v = a.act.apply(*v + w);
                }
                self.write(a.y, x);
            }
            Op::Activation(a) => {
                let mut x = self.read(a.x);
                apply(&mut x, a.act);
                self.write(a.y, x);
            }
            Op::Concat(c) => {
                let ys = self.shape(c.y);
                let outer: usize = ys[..c.axis].iter().product();
                let inner: usize = ys[c.axis + 1..].iter().product();
                let mut y = vec![0f32; ys.iter().product()];
                let out_row = ys[c.axis] * inner;
                let mut col = 0usize;
                for &t in &c.inputs {
                    let x = self.read(t);
                    let row = self.shape(t)[c.axis] * inner;
                    for o in 0..outer {
                        y[o * out_row + col..o * out_row + col + row]
                            .copy_from_slice(&x[o * row..(o + 1) * row]);
                    }
                    col += row;
                }
                self.write(c.y, y);
            }
            Op::Softmax(s) => {
                let mut x = self.read(s.x);
                let xs = self.shape(s.x);
                let (len, inner) = if s.coerce_2d {
                    (xs[s.axis..].iter().product::<usize>(), 1)
                } else {
                    (xs[s.axis], xs[s.axis + 1..].iter().product::<usize>())
                };
                let outer = x.len() / (len * inner);
                for o in 0..outer {
                    for i in 0..inner {
                        let idx = |j: usize| (o * len + j) * inner + i;
                        let max = (0..len)
                            .map(|j| x[idx(j)])
                            .fold(f32::NEG_INFINITY, f32::max);
                        let mut sum = 0f32;
                        for j in 0..len {
                            let e = (x[idx(j)] - max).exp();
                            x[idx(j)] = e;
                            sum += e;
                        }
                        for j in 0..len {
                            x[idx(j)] /= sum;
                        }
                    }
                }
                self.write(s.y, x);
            }
            Op::Reorder(r) => {
                let x = self.read(r.x);
                self.write(r.y, x);
            }
        }
    }
}

fn apply(v: &mut [f32], act: Activation) {
    if act != Activation::None {
        for x in v {
            *x = act.apply(*x);
        }
    }
}

/// Direct 2-D convolution in NCHW / KCRS, f32 accumulation.
#[allow(clippy::too_many_arguments)]
fn conv2d(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    wt: &[f32],
    [k, cg, r, s]: [usize; 4],
    bias: Option<&[f32]>,
    stride: [usize; 2],
    pads: [usize; 4],
    dil: [usize; 2],
    groups: usize,
    [oh, ow]: [usize; 2],
) -> Vec<f32> {
    let kg = k / groups;
    let mut y = vec![0f32; n * k * oh * ow];
    for ni in 0..n {
        for ko in 0..k {
            let g = ko / kg;
            let plane = &mut y[(ni * k + ko) * oh * ow..(ni * k + ko + 1) * oh * ow];
            if let Some(b) = bias {
                plane.fill(b[ko]);
            }
            for ci in 0..cg {
                let ch = g * cg + ci;
                let xin = &x[(ni * c + ch) * h * w..(ni * c + ch + 1) * h * w];
                for ri in 0..r {
                    for si in 0..s {
                        let wv = wt[((ko * cg + ci) * r + ri) * s + si];
                        // Output columns whose input column is in bounds:
                        // iw = ow*sw + si*dw - pl in [0, w).
                        let off = (si * dil[1]) as isize - pads[1] as isize;
                        let lo = if off >= 0 {
                            0
                        } else {
                            ((-off) as usize).div_ceil(stride[1])
                        };
                        let hi = if (w as isize) - off <= 0 {
                            0
                        } else {
                            (((w as isize - off) as usize).div_ceil(stride[1])).min(ow)
                        };
                        if lo >= hi {
                            continue;
                        }
                        for oy in 0..oh {
                            let iy = (oy * stride[0] + ri * dil[0]) as isize - pads[0] as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let row = &xin[iy as usize * w..(iy as usize + 1) * w];
                            let out = &mut plane[oy * ow..(oy + 1) * ow];
                            let start = (lo as isize * stride[1] as isize + off) as usize;
                            if stride[1] == 1 {
                                for (o, v) in out[lo..hi].iter_mut().zip(&row[start..]) {
                                    *o += wv * v;
                                }
                            } else {
                                for (o, v) in out[lo..hi]
                                    .iter_mut()
                                    .zip(row[start..].iter().step_by(stride[1]))
                                {
                                    *o += wv * v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// 2-D max / average pooling in NCHW.
fn pool2d(x: &[f32], xs: &[usize], ys: &[usize], p: &PoolStep) -> Vec<f32> {
    let PoolStep {
        kind,
        kernel,
        stride,
        pads,
        ceil_pads,
        ..
    } = *p;
    // Where an average counting padding stops counting: the end of the real padding.
    let (end_h, end_w) = (
        (xs[2] + pads[2] - ceil_pads[0]) as isize,
        (xs[3] + pads[3] - ceil_pads[1]) as isize,
    );
    let (h, w) = (xs[2], xs[3]);
    let (oh, ow) = (ys[2], ys[3]);
    let planes = xs[0] * xs[1];
    let mut y = vec![0f32; planes * oh * ow];
    for p in 0..planes {
        let xin = &x[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * stride[0]) as isize - pads[0] as isize;
                let x0 = (ox * stride[1]) as isize - pads[1] as isize;
                let mut max = f32::NEG_INFINITY;
                let mut sum = 0f32;
                let mut count = 0usize;
                for dy in 0..kernel[0] as isize {
                    for dx in 0..kernel[1] as isize {
                        let (iy, ix) = (y0 + dy, x0 + dx);
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = xin[iy as usize * w + ix as usize];
                        max = max.max(v);
                        sum += v;
                        count += 1;
                    }
                }
                y[(p * oh + oy) * ow + ox] = match kind {
                    PoolKind::Max => max,
                    PoolKind::Average { count_include_pad } => {
                        let div = if count_include_pad {
                            // The window clipped to the padded input.
                            let hy =
                                (y0 + kernel[0] as isize).min(end_h) - y0.max(-(pads[0] as isize));
                            let hx =
                                (x0 + kernel[1] as isize).min(end_w) - x0.max(-(pads[1] as isize));
                            (hy * hx) as usize
                        } else {
                            count
                        };
                        sum / div.max(1) as f32
                    }
                };
            }
        }
    }
    y
}

impl Engine for Reference {
    fn name(&self) -> &str {
        "reference"
    }

    crate::engine::plan_engine_accessors!();

    fn run(&mut self, input: &[f32], batch: usize) -> Result<Output> {
        crate::engine::check_input(self, input, batch)?;
        let per_in: usize = self.input_shape().iter().product();
        let out_shape = self.output_shape().to_vec();
        let per_out: usize = out_shape.iter().product();
        let mut data = self.execute(&crate::engine::pad_batch(input, self.plan.batch * per_in))?;
        data.truncate(batch * per_out);
        let mut shape = vec![batch];
        shape.extend(out_shape);
        Ok(Output { shape, data })
    }
}
