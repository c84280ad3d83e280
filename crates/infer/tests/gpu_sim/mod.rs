//! A CPU interpreter of a [`GpuPlan`]: every call executed literally as the library or kernel
//! would, from nothing but the call's own parameters (descriptor dims and strides, byte
//! offsets, cuBLAS transposes and leading dimensions, kernel arguments in declaration order),
//! in an arena of the plan's size that starts NaN-filled. Agreement with the reference
//! executor proves the translation (not cuDNN, cuBLAS or the CUDA kernels themselves, which
//! only a GPU can run); the kernel bodies here mirror `cuda-kernels/infer_ops.cu` line by line.
//! Convolutions run either fused (the executor's normal path) or as its fallback.

use netml_infer::gpu::{
    Call, ConvCall, DType, GemmCall, GpuPlan, KArg, KernelCall, PoolCall, PoolMode, TensorDesc,
};
use netml_infer::plan::{Plan, WeightId};

mod host;

#[derive(Clone, Copy, Debug)]
enum Ptr {
    Arena(usize),
    Weight(WeightId),
    Scratch,
    Input,
    Output,
    Null,
}

pub struct Sim<'a> {
    gp: &'a GpuPlan,
    plan: &'a Plan,
    arena: Vec<f32>,
    scratch: Vec<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
    /// Run convolutions as the executor's fallback does: cudnnConvolutionForward into y
    /// (rounded), then the call's epilogue kernel.
    unfused: bool,
    /// Run kernel calls through the host build of `infer_ops.cu` (the real kernel source)
    /// instead of the Rust mirror below.
    host_kernels: bool,
}

impl<'a> Sim<'a> {
    pub fn new(gp: &'a GpuPlan, plan: &'a Plan, unfused: bool, host_kernels: bool) -> Sim<'a> {
        Sim {
            gp,
            plan,
            arena: vec![f32::NAN; gp.arena_bytes / gp.dtype.bytes()],
            scratch: vec![f32::NAN; gp.scratch_bytes / 4],
            input: Vec::new(),
            output: vec![f32::NAN; gp.output_elems],
            unfused,
            host_kernels,
        }
    }

    /// Upload, every call in order, download; returns the f32 logical output.
    pub fn run(&mut self, input: &[f32]) -> Vec<f32> {
        self.input = input.to_vec();
        let gp = self.gp;
        self.kernel(&gp.upload);
        for c in &gp.calls {
            match &c.call {
                Call::Conv(v) => {
                    self.conv(v);
                    if self.unfused {
                        self.kernel(&v.epilogue);
                    }
                }
                Call::Pool(p) => self.pool(p),
                Call::Gemm(g) => self.gemm(g),
                Call::Kernel(k) => self.kernel(k),
            }
        }
        self.kernel(&gp.download);
        self.output.clone()
    }

    fn elem(&self, byte_offset: usize) -> usize {
        assert_eq!(
            byte_offset % self.gp.dtype.bytes(),
            0,
            "misaligned arena offset"
        );
        byte_offset / self.gp.dtype.bytes()
    }

    fn ld(&self, p: Ptr, i: usize) -> f32 {
        match p {
            Ptr::Arena(o) => self.arena[o + i],
            Ptr::Weight(w) => self.plan.weight(w).data[i],
            Ptr::Scratch => self.scratch[i],
            Ptr::Input => self.input[i],
            Ptr::Output => self.output[i],
            Ptr::Null => panic!("load through a null pointer"),
        }
    }

    fn st(&mut self, p: Ptr, i: usize, v: f32) {
        match p {
            Ptr::Arena(o) => {
                self.arena[o + i] = match self.gp.dtype {
                    DType::F32 => v,
                    DType::F16 => half::f16::from_f32(v).to_f32(),
                }
            }
            Ptr::Scratch => self.scratch[i] = v,
            Ptr::Output => self.output[i] = v,
            other => panic!("store into {other:?}"),
        }
    }

    fn at(&self, d: &TensorDesc, n: usize, c: usize, h: usize, w: usize) -> usize {
        self.elem(d.offset)
            + n * d.strides[0]
            + c * d.strides[1]
            + h * d.strides[2]
            + w * d.strides[3]
    }

    /// cudnnConvolutionBiasActivationForward, cross-correlation, f32 accumulation.
    fn conv(&mut self, v: &ConvCall) {
        let [n, c, h, w] = v.x.dims;
        let [k, cg, r, s] = v.w.dims;
        let [_, _, oh, ow] = v.y.dims;
        let kg = k / v.groups;
        let wt = &self.plan.weight(v.w.weight).data;
        let widx = |ko: usize, ci: usize, ri: usize, si: usize| {
            if v.w.nhwc {
                ((ko * r + ri) * s + si) * cg + ci
            } else {
                ((ko * cg + ci) * r + ri) * s + si
            }
        };
        for ni in 0..n {
            for ko in 0..k {
                let g = ko / kg;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let bias = v.bias.filter(|_| !self.unfused);
                        let mut acc = bias.map_or(0.0, |b| self.plan.weight(b).data[ko]);
                        for ci in 0..cg {
                            for ri in 0..r {
                                let iy = (oy * v.stride[0] + ri * v.dilation[0]) as isize
                                    - v.pad[0] as isize;
                                if iy < 0 || iy >= h as isize {
                                    continue;
                                }
                                for si in 0..s {
                                    let ix = (ox * v.stride[1] + si * v.dilation[1]) as isize
                                        - v.pad[1] as isize;
                                    if ix < 0 || ix >= w as isize {
                                        continue;
                                    }
                                    assert!(g * cg + ci < c);
                                    let xv = self.arena
                                        [self.at(&v.x, ni, g * cg + ci, iy as usize, ix as usize)];
                                    acc += xv * wt[widx(ko, ci, ri, si)];
                                }
                            }
                        }
                        if !self.unfused {
                            if let Some(z) = &v.z {
                                acc += self.arena[self.at(z, ni, ko, oy, ox)];
                            }
                            if v.relu {
                                acc = acc.max(0.0);
                            }
                        }
                        let yi = self.at(&v.y, ni, ko, oy, ox);
                        self.st(Ptr::Arena(0), yi, acc);
                    }
                }
            }
        }
    }

    /// cudnnPoolingForward.
    fn pool(&mut self, p: &PoolCall) {
        let [n, c, h, w] = p.x.dims;
        let [_, _, oh, ow] = p.y.dims;
        for (ni, ci, oy, ox) in (0..n).flat_map(|a| {
            (0..c).flat_map(move |b| (0..oh).flat_map(move |y| (0..ow).map(move |x| (a, b, y, x))))
        }) {
            let (mut max, mut sum, mut count) = (f32::NEG_INFINITY, 0f32, 0usize);
            for dy in 0..p.window[0] {
                for dx in 0..p.window[1] {
                    let iy = (oy * p.stride[0] + dy) as isize - p.pad[0] as isize;
                    let ix = (ox * p.stride[1] + dx) as isize - p.pad[1] as isize;
                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                        continue;
                    }
                    let v = self.arena[self.at(&p.x, ni, ci, iy as usize, ix as usize)];
                    max = max.max(v);
                    sum += v;
                    count += 1;
                }
            }
            let out = match p.mode {
                PoolMode::Max => max,
                PoolMode::AvgIncludePad => sum / (p.window[0] * p.window[1]) as f32,
                PoolMode::AvgExcludePad => sum / count.max(1) as f32,
            };
            let yi = self.at(&p.y, ni, ci, oy, ox);
            self.st(Ptr::Arena(0), yi, out);
        }
    }

    /// cublasGemmEx exactly as documented on GemmCall: column-major C(n×m) = op_T(A) · B with
    /// A = w (lda = k), B = x (ldb = k), C = scratch (ldc = n).
    fn gemm(&mut self, g: &GemmCall) {
        let (cm, cn, k) = (g.n, g.m, g.k);
        let (lda, ldb, ldc) = (g.k, g.k, g.n);
        let x0 = self.elem(g.x_offset);
        let a = &self.plan.weight(g.w).data;
        for j in 0..cn {
            for i in 0..cm {
                let mut acc = 0f32;
                for l in 0..k {
                    acc += a[l + i * lda] * self.arena[x0 + l + j * ldb];
                }
                self.scratch[i + j * ldc] = acc;
            }
        }
    }

    fn kernel(&mut self, k: &KernelCall) {
        if self.host_kernels {
            return self.kernel_host(k);
        }
        let eb = self.gp.dtype.bytes();
        let p = |i: usize| match k.args[i] {
            KArg::Arena(o) => {
                assert_eq!(o % eb, 0, "{}: misaligned arena offset", k.name);
                Ptr::Arena(o / eb)
            }
            KArg::Weight(w) => Ptr::Weight(w),
            KArg::Scratch => Ptr::Scratch,
            KArg::Input => Ptr::Input,
            KArg::Output => Ptr::Output,
            KArg::Null => Ptr::Null,
            ref other => panic!("{}: argument {i} is {other:?}, not a pointer", k.name),
        };
        let u = |i: usize| match k.args[i] {
            KArg::U32(v) => v as usize,
            KArg::I32(v) => v as usize,
            ref other => panic!("{}: argument {i} is {other:?}, not an integer", k.name),
        };
        let f = |i: usize| match k.args[i] {
            KArg::F32(v) => v,
            ref other => panic!("{}: argument {i} is {other:?}, not a float", k.name),
        };
        let clamp = |v: f32, lo: f32, hi: f32| v.max(lo).min(hi);
        let base = k.name.trim_start_matches("infer_");
        let op = base.rsplit_once('_').map_or(base, |(a, _)| a);
        let op = op
            .strip_suffix("_f32")
            .or_else(|| op.strip_suffix("_f16"))
            .unwrap_or(op);
        match op {
            "act" => {
                assert_eq!(k.args.len(), 5);
                for i in 0..u(2) {
                    let v = clamp(self.ld(p(0), i), f(3), f(4));
                    self.st(p(1), i, v);
                }
            }
            "scale_shift" => {
                assert_eq!(k.args.len(), 9);
                for i in 0..u(4) {
                    let c = (i / u(6)) % u(5);
                    let v = clamp(
                        self.ld(p(0), i) * self.ld(p(2), c) + self.ld(p(3), c),
                        f(7),
                        f(8),
                    );
                    self.st(p(1), i, v);
                }
            }
            "add" => {
                assert_eq!(k.args.len(), 6);
                for i in 0..u(3) {
                    let v = clamp(self.ld(p(0), i) + self.ld(p(1), i), f(4), f(5));
                    self.st(p(2), i, v);
                }
            }
            "bias_act" => {
                assert_eq!(k.args.len(), 7);
                for i in 0..u(3) {
                    let mut v = self.ld(p(0), i);
                    if !matches!(p(1), Ptr::Null) {
                        v += self.ld(p(1), i % u(4));
                    }
                    self.st(p(2), i, clamp(v, f(5), f(6)));
                }
            }
            "bias_res_act" => {
                assert_eq!(k.args.len(), 8);
                for i in 0..u(3) {
                    let mut v = self.ld(p(0), i);
                    if !matches!(p(1), Ptr::Null) {
                        v += self.ld(p(1), (i / u(5)) % u(4));
                    }
                    if !matches!(p(2), Ptr::Null) {
                        v += self.ld(p(2), i);
                    }
                    self.st(p(0), i, clamp(v, f(6), f(7)));
                }
            }
            "pad" => {
                assert_eq!(k.args.len(), 12);
                let nhwc = u(3) != 0;
                let (c, h, w, oh, ow, top, left) = (u(4), u(5), u(6), u(7), u(8), u(9), u(10));
                for i in 0..u(2) {
                    let (b, ch, y, x) = if nhwc {
                        (i / (c * ow * oh), i % c, (i / (c * ow)) % oh, (i / c) % ow)
                    } else {
                        (
                            i / (c * oh * ow),
                            (i / (oh * ow)) % c,
                            (i / ow) % oh,
                            i % ow,
                        )
                    };
                    let (sy, sx) = (y as isize - top as isize, x as isize - left as isize);
                    let inside = sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w;
                    let v = if inside {
                        let (sy, sx) = (sy as usize, sx as usize);
                        let src = if nhwc {
                            ((b * h + sy) * w + sx) * c + ch
                        } else {
                            ((b * c + ch) * h + sy) * w + sx
                        };
                        self.ld(p(0), src)
                    } else {
                        f(11)
                    };
                    self.st(p(1), i, v);
                }
            }
            "concat_copy" => {
                assert_eq!(k.args.len(), 6);
                let (outer, in_row, out_row, col) = (u(2), u(3), u(4), u(5));
                for i in 0..outer * in_row {
                    let o = i / in_row;
                    let v = self.ld(p(0), i);
                    self.st(p(1), o * out_row + col + (i - o * in_row), v);
                }
            }
            "softmax" => {
                assert_eq!(k.args.len(), 8);
                let (rows, len, inner, so, sj, si) = (u(2), u(3), u(4), u(5), u(6), u(7));
                for r in 0..rows {
                    let (o, i) = (r / inner, r % inner);
                    let at = |j: usize| o * so + i * si + j * sj;
                    let m = (0..len)
                        .map(|j| self.ld(p(0), at(j)))
                        .fold(f32::NEG_INFINITY, f32::max);
                    let s: f32 = (0..len).map(|j| (self.ld(p(0), at(j)) - m).exp()).sum();
                    for j in 0..len {
                        let v = (self.ld(p(0), at(j)) - m).exp() / s;
                        self.st(p(1), at(j), v);
                    }
                }
            }
            "convert" => {
                assert_eq!(k.args.len(), 9);
                let phys = |i: usize, nhwc: usize, c: usize, hw: usize| {
                    if nhwc == 0 {
                        return i;
                    }
                    let img = c * hw;
                    let (n, rest) = (i / img, i % img);
                    n * img + (rest % hw) * c + rest / hw
                };
                for i in 0..u(2) {
                    let v = self.ld(p(0), phys(i, u(3), u(4), u(5)));
                    self.st(p(1), phys(i, u(6), u(7), u(8)), v);
                }
            }
            other => panic!("unknown kernel {} ({other})", k.name),
        }
    }
}
