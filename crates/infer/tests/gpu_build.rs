//! The GPU executor as far as it can be proven without a GPU:
//! * every small seed model translates into a [`GpuPlan`] (every step mapped, descriptors
//!   equal to the plan's shapes and layouts, every region inside the arena), and that
//!   GpuPlan, interpreted call by call on the CPU (`gpu_sim`), reproduces the reference
//!   executor in both precisions;
//! * `cuda-kernels/infer_ops.cu` compiles with NVRTC 13 for sm_80 and sm_90 and exports every
//!   kernel a GpuPlan names (skipped when libnvrtc is not found, unless
//!   `NETML_REQUIRE_NVRTC=1`);
//! * without a CUDA driver, the `gpu` backend fails with one clear line.
//!
//! cuDNN, cuBLAS, the graph capture and the kernels' execution need a GPU: `netml gpu-check`.

mod common;
mod gpu_sim;

use netml_infer::gpu::{self, Call, GpuPlan, KArg};
use netml_infer::metrics::rel_l2;
use netml_infer::plan::{Layout, Op};
use netml_infer::{open, Backend, Plan, Precision, Reference};
use tract_onnx::pb;

/// The simulator accumulates in the reference's order and rounds to f16 at the same points,
/// so the two agree bit for bit (measured: rel-L2 0 for every model, batch and precision);
/// the bound only leaves room for a libm `exp` that differs in the last bit.
const MAX_REL_L2: f64 = 1e-6;
/// The fallback adds the bias after the convolution sum (another f32 order) ...
const UNFUSED_FP32_MAX_REL_L2: f64 = 1e-5;
/// ... and in fp16 rounds y once more before the epilogue (about 2^-11 per conv).
const UNFUSED_FP16_MAX_REL_L2: f64 = 5e-3;

fn translate_checked(plan: &Plan) -> GpuPlan {
    let gp = gpu::translate(plan).unwrap_or_else(|e| panic!("{}: {e}", plan.model));
    // Equal unless some input needed explicit (asymmetric) padding past the plan's arena.
    assert!(gp.arena_bytes >= plan.arena_bytes);
    // Every step has at least one call, in order.
    let mut steps: Vec<usize> = gp.calls.iter().map(|c| c.step).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]));
    steps.dedup();
    assert_eq!(
        steps,
        (0..plan.steps.len()).collect::<Vec<_>>(),
        "{}",
        plan.model
    );
    for c in &gp.calls {
        let step = &plan.steps[c.step];
        match (&c.call, &step.op) {
            (Call::Conv(v), Op::Conv(s)) => {
                let (x, y) = (plan.tensor(s.x), plan.tensor(s.y));
                if v.x.offset == x.offset {
                    assert_eq!(v.x.dims.to_vec(), x.shape);
                } else {
                    // An explicitly padded copy, past the plan's arena, with zero cuDNN pads.
                    assert!(v.x.offset >= plan.arena_bytes && v.pad == [0, 0]);
                    assert_eq!(v.x.dims[..2], x.shape[..2]);
                }
                assert_eq!(v.y.dims.to_vec(), y.shape);
                assert_eq!(v.y.offset, y.offset);
                assert_eq!(v.w.dims.to_vec(), plan.weight(s.w).shape);
                let nhwc = plan.precision == Precision::Fp16;
                assert_eq!(v.w.nhwc, nhwc);
                let [n, ch, h, w] = v.y.dims;
                let want = if nhwc {
                    [h * w * ch, 1, w * ch, ch]
                } else {
                    [ch * h * w, h * w, w, 1]
                };
                assert_eq!(v.y.strides, want);
                assert_eq!(v.y.numel(), n * ch * h * w);
                assert_eq!(
                    v.z.map(|z| z.offset),
                    s.residual.map(|r| plan.tensor(r).offset)
                );
            }
            (Call::Pool(p), Op::Pool(s)) => {
                if p.x.offset == plan.tensor(s.x).offset {
                    assert_eq!(p.x.dims.to_vec(), plan.tensor(s.x).shape);
                }
                assert_eq!(p.y.dims.to_vec(), plan.tensor(s.y).shape);
            }
            (Call::Gemm(g), Op::Gemm(s)) => {
                assert_eq!((g.m, g.n, g.k), (s.m, s.n, s.k));
                assert!(g.m * g.n * 4 <= gp.scratch_bytes);
            }
            (Call::Kernel(k), _) => {
                assert!(k.name.starts_with("infer_") && k.block % 32 == 0 && k.grid >= 1);
                assert!(k.name.ends_with(gp.dtype.suffix()), "{}", k.name);
                for a in &k.args {
                    if let KArg::Arena(o) = a {
                        assert!(*o < gp.arena_bytes);
                    }
                }
            }
            (call, op) => panic!("step {} ({op:?}) became {call:?}", c.step),
        }
    }
    gp.check(plan).unwrap();
    gp
}

fn simulate_model(name: &str) {
    let Some(dir) = common::small_models() else {
        return;
    };
    let path = dir.join(format!("{name}_small.onnx"));
    for (batch, precision) in [
        (1, Precision::Fp32),
        (3, Precision::Fp32),
        (1, Precision::Fp16),
        (3, Precision::Fp16),
    ] {
        let plan = Plan::load(&path, batch, precision).unwrap();
        let gp = translate_checked(&plan);
        let per: usize = plan.input_shape().iter().product();
        let input = common::Rng::new(77 + batch as u64).normals(batch * per);
        let want = Reference::new(plan.clone()).execute(&input).unwrap();
        // (unfused convs, kernels from the host build of infer_ops.cu)
        for (unfused, host) in [(false, false), (true, false), (false, true)] {
            let got = gpu_sim::Sim::new(&gp, &plan, unfused, host).run(&input);
            assert!(
                got.iter().all(|v| v.is_finite()),
                "{name} b{batch} {precision}: NaN in the output"
            );
            let err = rel_l2(&got, &want);
            let max = match (unfused, precision) {
                (false, _) => MAX_REL_L2,
                (true, Precision::Fp32) => UNFUSED_FP32_MAX_REL_L2,
                (true, Precision::Fp16) => UNFUSED_FP16_MAX_REL_L2,
            };
            let mode = match (unfused, host) {
                (true, _) => "unfused",
                (false, true) => "host-kernels",
                (false, false) => "fused",
            };
            eprintln!(
                "{name:>13} b{batch} {precision} {mode:>12}: {} calls for {} steps, rel-L2 {err:.2e}",
                gp.calls.len(),
                plan.steps.len()
            );
            assert!(
                err <= max,
                "{name} b{batch} {precision} {mode}: rel-L2 {err:.3e} > {max:e}"
            );
        }
    }
}

macro_rules! sim_tests {
    ($($test:ident => $model:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            simulate_model($model);
        }
    )*};
}

sim_tests! {
    alexnet_gpu_plan_matches_reference => "alexnet",
    mobilenet_v2_gpu_plan_matches_reference => "mobilenet_v2",
    resnet50_gpu_plan_matches_reference => "resnet50",
    vgg19_gpu_plan_matches_reference => "vgg19",
    resnext50_gpu_plan_matches_reference => "resnext50",
    densenet121_gpu_plan_matches_reference => "densenet121",
}

#[test]
fn identity_convs_are_restricted_to_implicit_precomp_gemm_and_clip_follows() {
    let Some(dir) = common::small_models() else {
        return;
    };
    // MobileNetV2: ReLU6 (Clip) after convs, identity projection convs with residuals.
    let plan = Plan::load(dir.join("mobilenet_v2_small.onnx"), 2, Precision::Fp16).unwrap();
    let gp = translate_checked(&plan);
    let (mut clipped, mut identity) = (0, 0);
    for (i, c) in gp.calls.iter().enumerate() {
        if let Call::Conv(v) = &c.call {
            assert!(v.tensor_ops);
            if !v.relu {
                assert_eq!(v.algo, gpu::AlgoRule::ImplicitPrecompGemm);
                identity += 1;
            }
            if let Op::Conv(s) = &plan.steps[c.step].op {
                if let netml_infer::plan::Activation::Clip { .. } = s.act {
                    let Call::Kernel(k) = &gp.calls[i + 1].call else {
                        panic!("no clip after a ReLU6 conv")
                    };
                    assert_eq!(k.name, "infer_act_f16");
                    assert_eq!(k.args[0], KArg::Arena(v.y.offset));
                    clipped += 1;
                }
            }
        }
    }
    assert!(
        clipped > 0 && identity > 0,
        "{clipped} clipped, {identity} identity"
    );
}

/// A SAME_UPPER conv (pads [0, 0, 1, 1]) and asymmetric max / average pools, NCHW and NHWC:
/// explicitly padded copies, then cuDNN without padding, against the reference.
#[test]
fn asymmetric_padding_goes_through_an_explicit_pad() {
    let mut g = common::G::new(3);
    let x = g.conv("input", 3, 4, 3, 1, 1, 1, true);
    let w = g.randn(&[4, 4, 2, 2], 0.3);
    let same_upper = common::attr_str("auto_pad", "SAME_UPPER");
    let x = g.node("Conv", &[&x, &w], vec![same_upper]);
    let pool = |k: i64, pads: &[i64]| {
        vec![
            common::attr_ints("kernel_shape", &[k, k]),
            common::attr_ints("pads", pads),
        ]
    };
    let x = g.node("MaxPool", &[&x], pool(3, &[1, 0, 0, 1]));
    let mut avg = pool(2, &[0, 1, 1, 0]);
    avg.push(common::attr_int("count_include_pad", 1));
    let y = g.node("AveragePool", &[&x], avg);
    let proto = g.finish(&[3, 7, 6], &y, 4);
    let model = netml_infer::Model::from_proto(&proto).unwrap();
    for precision in [Precision::Fp32, Precision::Fp16] {
        let plan = Plan::compile(&model, 2, precision).unwrap();
        let gp = translate_checked(&plan);
        let pads = gp
            .calls
            .iter()
            .filter(|c| matches!(&c.call, Call::Kernel(k) if k.name.starts_with("infer_pad_")))
            .count();
        assert_eq!(pads, 3, "{precision}");
        assert!(gp.arena_bytes > plan.arena_bytes);
        sim_against_reference(&gp, &plan, 5);
    }

    // Excluding padding from the average cannot be expressed by padding: refused, named.
    let mut g = common::G::new(4);
    let mut avg = pool(2, &[0, 1, 1, 0]);
    avg.push(common::attr_int("count_include_pad", 0));
    let y = g.node("AveragePool", &["input"], avg);
    let proto = g.finish(&[3, 7, 6], &y, 4);
    let model = netml_infer::Model::from_proto(&proto).unwrap();
    let plan = Plan::compile(&model, 1, Precision::Fp32).unwrap();
    let e = gpu::translate(&plan).unwrap_err().to_string();
    assert!(
        e.contains("asymmetric padding") && e.contains("pool"),
        "{e}"
    );
}

/// Translates a hand-built graph in both precisions and checks the GpuPlan, interpreted with
/// the Rust mirror and with the host-built kernels, against the reference at batch 2.
fn check_hand_built(proto: &pb::ModelProto) {
    let model = netml_infer::Model::from_proto(proto).unwrap();
    for precision in [Precision::Fp32, Precision::Fp16] {
        let plan = Plan::compile(&model, 2, precision).unwrap();
        sim_against_reference(&translate_checked(&plan), &plan, 9);
    }
}

/// `gp` interpreted with the Rust mirror and with the host-built kernels, from a seeded input
/// of the plan's batch, against the reference.
fn sim_against_reference(gp: &GpuPlan, plan: &Plan, seed: u64) {
    let per: usize = plan.input_shape().iter().product();
    let input = common::Rng::new(seed).normals(plan.batch * per);
    let want = Reference::new(plan.clone()).execute(&input).unwrap();
    for host in [false, true] {
        let got = gpu_sim::Sim::new(gp, plan, false, host).run(&input);
        let err = rel_l2(&got, &want);
        assert!(
            err <= MAX_REL_L2,
            "{} (host kernels {host}): rel-L2 {err:e}",
            plan.precision
        );
    }
}

/// Softmax over every axis of an NHWC map (40 channels: more than a warp's lanes), in both
/// opset semantics, channel concat of NHWC maps, and a Reorder of a flattened NHWC output
/// softmaxed over 2400 values.
#[test]
fn softmax_on_every_axis_concat_and_reorder() {
    for opset in [13, 11] {
        let mut g = common::G::new(21);
        g.opset = opset;
        let x = g.conv("input", 3, 40, 1, 1, 0, 1, true);
        let a = g.node("Softmax", &[&x], vec![common::attr_int("axis", 1)]);
        let b = g.node("Softmax", &[&a], vec![common::attr_int("axis", 2)]);
        let c = g.node("Softmax", &[&b], vec![common::attr_int("axis", 3)]);
        let d = g.conv(&x, 40, 40, 3, 1, 1, 40, false);
        let cat = g.node("Concat", &[&c, &d], vec![common::attr_int("axis", 1)]);
        let f = g.node("Flatten", &[&cat], vec![]);
        let y = g.node("Softmax", &[&f], vec![common::attr_int("axis", 1)]);
        check_hand_built(&g.finish(&[3, 5, 6], &y, 2));
    }
}

#[test]
fn kernels_compile_with_nvrtc_and_export_every_named_entry() {
    if netml_gpu::cuda::nvrtc::load_library().is_err() {
        assert!(
            std::env::var("NETML_REQUIRE_NVRTC").map_or(true, |v| v != "1"),
            "NETML_REQUIRE_NVRTC=1 but libnvrtc was not found"
        );
        eprintln!("SKIPPED: libnvrtc not found (run scripts/check-kernels once to fetch it into target/cuda-tools)");
        return;
    }
    let mut names: Vec<String> = Vec::new();
    if let Some(dir) = common::small_models() {
        for m in common::SMALL_MODELS {
            for p in [Precision::Fp32, Precision::Fp16] {
                let plan = Plan::load(dir.join(format!("{m}_small.onnx")), 2, p).unwrap();
                let gp = translate_checked(&plan);
                names.extend(gp.kernel_names().into_iter().map(String::from));
            }
        }
    }
    names.sort();
    names.dedup();
    for arch in [80, 90] {
        let ptx = gpu::compile_ptx(arch).unwrap_or_else(|e| panic!("sm_{arch}: {e}"));
        let text = ptx.to_src();
        for n in &names {
            assert!(
                text.contains(&format!(".entry {n}(")),
                "sm_{arch}: no entry {n}"
            );
        }
    }
    eprintln!(
        "infer_ops.cu: sm_80 + sm_90, {} entries used by the seed models all present",
        names.len()
    );
}

#[test]
fn gpu_backend_without_a_driver_is_one_clear_line() {
    let Err(why) = netml_gpu::cuda::discover() else {
        eprintln!("a GPU is present: the no-driver path is not exercised here");
        return;
    };
    let Some(dir) = common::small_models() else {
        return;
    };
    let e = open(
        dir.join("alexnet_small.onnx"),
        Backend::Gpu,
        2,
        Precision::Fp32,
    )
    .err()
    .expect("no GPU, yet gpu opened")
    .to_string();
    assert!(
        e.contains(&why.to_string()) && e.lines().count() == 1,
        "{e}"
    );
    // The FlatNhwc view must not confuse the translation of fp16 AlexNet either.
    let plan = Plan::load(dir.join("alexnet_small.onnx"), 2, Precision::Fp16).unwrap();
    assert!(plan
        .tensors
        .iter()
        .any(|t| matches!(t.layout, Layout::FlatNhwc { .. })));
    translate_checked(&plan);
}
