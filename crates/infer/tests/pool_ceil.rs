//! `ceil_mode = 1` pooling: the planner turns it into extra end padding (`PoolStep::ceil_pads`).
//! Max pools and averages that exclude padding are checked against tract; averages that count
//! padding against values from the ONNX reference evaluator (tract divides those by the full
//! window, ONNX and PyTorch by the window clipped to the padded input). The GPU translation is
//! interpreted by `gpu_sim` against the reference executor, and the combinations cuDNN cannot
//! compute exactly are refused with the step named.

mod common;
mod gpu_sim;

use common::{attr_int, attr_ints, G};
use netml_infer::metrics::rel_l2;
use netml_infer::onnx::pb;
use netml_infer::plan::Op;
use netml_infer::{gpu, Engine, Model, Plan, Precision, Reference, Tract};

/// A pool over `input` `[N, 3, h, w]`.
fn pool_model(
    op: &str,
    hw: [usize; 2],
    k: i64,
    s: i64,
    pads: [i64; 4],
    include: i64,
) -> pb::ModelProto {
    let mut g = G::new(7);
    let mut attrs = vec![
        attr_ints("kernel_shape", &[k, k]),
        attr_ints("strides", &[s, s]),
        attr_ints("pads", &pads),
        attr_int("ceil_mode", 1),
    ];
    if op == "AveragePool" {
        attrs.push(attr_int("count_include_pad", include));
    }
    let y = g.node(op, &["input"], attrs);
    g.finish(&[3, hw[0], hw[1]], &y, 4)
}

fn compile(proto: &pb::ModelProto, batch: usize, precision: Precision) -> Plan {
    let model = Model::from_proto(proto).unwrap();
    let plan = Plan::compile(&model, batch, precision).unwrap_or_else(|e| panic!("{e}"));
    plan.check_arena().unwrap();
    plan
}

/// The plan's only step, a pool: its output `[h, w]` and `ceil_pads`.
fn pool_geometry(plan: &Plan) -> ([usize; 2], [usize; 2]) {
    let [step] = &plan.steps[..] else {
        panic!("{} steps", plan.steps.len())
    };
    let Op::Pool(p) = &step.op else {
        panic!("{}", step.kind())
    };
    let y = &plan.tensor(p.y).shape;
    ([y[2], y[3]], p.ceil_pads)
}

/// Reference (both precisions) against tract at batch 2; returns the fp32 rel-L2.
fn against_tract(proto: &pb::ModelProto) -> f64 {
    let mut tract = Tract::from_proto(proto, 2).unwrap();
    let per: usize = tract.input_shape().iter().product();
    let input = common::Rng::new(41).normals(2 * per);
    let want = tract.run(&input, 2).unwrap();
    let mut fp32 = 0.0;
    for (precision, bound) in [(Precision::Fp32, 1e-5), (Precision::Fp16, 1e-2)] {
        let got = Reference::new(compile(proto, 2, precision))
            .run(&input, 2)
            .unwrap();
        assert_eq!(got.shape, want.shape);
        let err = rel_l2(&got.data, &want.data);
        assert!(err <= bound, "{precision}: rel-L2 {err:e}");
        if precision == Precision::Fp32 {
            fp32 = err;
        }
    }
    fp32
}

/// The GPU translation, interpreted on the CPU, against the reference in both precisions.
fn gpu_sim_against_reference(proto: &pb::ModelProto) {
    for precision in [Precision::Fp32, Precision::Fp16] {
        let plan = compile(proto, 2, precision);
        let gp = gpu::translate(&plan).unwrap_or_else(|e| panic!("{e}"));
        let per: usize = plan.input_shape().iter().product();
        let input = common::Rng::new(43).normals(2 * per);
        let want = Reference::new(plan.clone()).execute(&input).unwrap();
        for host in [false, true] {
            let got = gpu_sim::Sim::new(&gp, &plan, false, host).run(&input);
            let err = rel_l2(&got, &want);
            assert!(
                err <= 1e-6,
                "{precision} (host kernels {host}): rel-L2 {err:e}"
            );
        }
    }
}

fn gpu_refusal(proto: &pb::ModelProto) -> String {
    let plan = compile(proto, 1, Precision::Fp32);
    let e = gpu::translate(&plan).unwrap_err().to_string();
    assert!(e.contains("step 0 (pool"), "{e}");
    e
}

#[test]
fn max_pool_ceil_mode_matches_tract_and_the_gpu_plan() {
    // W: ceil((6 - 3) / 2) + 1 = 3 windows (floor: 2), the last one overhanging by 1.
    let p = pool_model("MaxPool", [7, 6], 3, 2, [0; 4], 0);
    assert_eq!(
        pool_geometry(&compile(&p, 1, Precision::Fp32)),
        ([3, 3], [0, 1])
    );
    against_tract(&p);
    gpu_sim_against_reference(&p);

    // Padded, both dims overhang.
    let p = pool_model("MaxPool", [6, 8], 3, 2, [1, 1, 1, 1], 0);
    assert_eq!(
        pool_geometry(&compile(&p, 1, Precision::Fp32)),
        ([4, 5], [1, 1])
    );
    against_tract(&p);
    gpu_sim_against_reference(&p);
}

#[test]
fn a_last_window_starting_in_the_end_padding_is_dropped() {
    // W = 5, k = 2, s = 2, pads 1: ceil gives 4 windows, but the 4th would start at
    // padded position 6 = 5 + 1, inside the end padding: 3 windows, no extra padding.
    let p = pool_model("MaxPool", [5, 5], 2, 2, [1, 1, 1, 1], 0);
    assert_eq!(
        pool_geometry(&compile(&p, 1, Precision::Fp32)),
        ([3, 3], [0, 0])
    );
    against_tract(&p);
    gpu_sim_against_reference(&p);
    // Nothing overhangs, so counting padding is exact on cuDNN too.
    let p = pool_model("AveragePool", [5, 5], 2, 2, [1, 1, 1, 1], 1);
    against_tract(&p);
    gpu_sim_against_reference(&p);
}

#[test]
fn average_pool_ceil_mode_excluding_padding() {
    // Pads [1, 1, 0, 0] + ceil padding [1, 1] are symmetric: cuDNN excludes them all.
    let p = pool_model("AveragePool", [6, 6], 2, 2, [1, 1, 0, 0], 0);
    let plan = compile(&p, 1, Precision::Fp32);
    assert_eq!(pool_geometry(&plan), ([4, 4], [1, 1]));
    let Op::Pool(step) = &plan.steps[0].op else {
        unreachable!()
    };
    assert_eq!(step.pads, [1, 1, 1, 1]);
    against_tract(&p);
    gpu_sim_against_reference(&p);

    // Asymmetric once ceil padding is added: the reference agrees with tract, the GPU
    // translation refuses (cuDNN pads symmetrically; padding cannot be excluded by a copy).
    let p = pool_model("AveragePool", [7, 6], 3, 2, [0; 4], 0);
    against_tract(&p);
    let e = gpu_refusal(&p);
    assert!(
        e.contains("asymmetric padding") && e.contains("count_include_pad = 0"),
        "{e}"
    );
}

/// 1×1×6×6 input `0..36`, k 3, s 2, pads 1, ceil_mode 1, count_include_pad 1, from
/// `onnx.reference.ReferenceEvaluator` (onnx 1.19.1). The last row and column of windows
/// cover 2 positions of the padded input and 1 of ceil padding: divided by 6, not 9.
const ONNX_AVG_INCLUDE_PAD: [f32; 16] = [
    1.5555556, 3.3333333, 4.6666665, 2.6666667, 8.333333, 14.0, 16.0, 8.5, 16.333334, 26.0, 28.0,
    14.5, 10.166667, 16.0, 17.0, 8.75,
];

#[test]
fn average_pool_ceil_mode_counting_padding_follows_onnx() {
    let mut g = G::new(8);
    let attrs = vec![
        attr_ints("kernel_shape", &[3, 3]),
        attr_ints("strides", &[2, 2]),
        attr_ints("pads", &[1, 1, 1, 1]),
        attr_int("ceil_mode", 1),
        attr_int("count_include_pad", 1),
    ];
    let y = g.node("AveragePool", &["input"], attrs);
    let p = g.finish(&[1, 6, 6], &y, 4);
    let input: Vec<f32> = (0..36).map(|v| v as f32).collect();
    let plan = compile(&p, 1, Precision::Fp32);
    assert_eq!(pool_geometry(&plan), ([4, 4], [1, 1]));
    let got = Reference::new(plan).execute(&input).unwrap();
    assert!(rel_l2(&got, &ONNX_AVG_INCLUDE_PAD) <= 1e-7, "{got:?}");
    assert!((got[3] - 16.0 / 6.0).abs() < 1e-5);
    // tract 0.21 divided the overhanging windows by 9 (top-right: 16 / 9); 0.23 follows ONNX.
    let tract = Tract::from_proto(&p, 1).unwrap().run(&input, 1).unwrap();
    assert!(
        rel_l2(&tract.data, &ONNX_AVG_INCLUDE_PAD) <= 1e-6,
        "{:?}",
        tract.data
    );

    // cuDNN would divide the overhanging windows by the full window: refused.
    let e = gpu_refusal(&p);
    assert!(
        e.contains("ceil_mode") && e.contains("counting padding"),
        "{e}"
    );
}
