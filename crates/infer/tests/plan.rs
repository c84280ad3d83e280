//! Planner unit tests on tiny hand-built graphs: BN folding, fusion rules,
//! Dropout removal, layouts and views, the arena invariant, and errors.
//! Numerical checks run the reference executor against tract-onnx on the
//! same (unfused) graph.

mod common;

use common::{attr_float, attr_int, attr_ints, attr_str, G};
use netml_infer::metrics::rel_l2;
use netml_infer::onnx::pb;
use netml_infer::plan::{Activation, Layout, Op, WeightLayout};
use netml_infer::{Engine, Error, Model, Plan, Precision, Reference, Tract};

fn compile(proto: &pb::ModelProto, batch: usize, precision: Precision) -> Plan {
    let model = Model::from_proto(proto).unwrap();
    let plan = Plan::compile(&model, batch, precision).unwrap_or_else(|e| panic!("{e}"));
    plan.check_arena().unwrap();
    independent_arena_check(&plan);
    plan
}

fn compile_err(proto: &pb::ModelProto) -> Error {
    let model = Model::from_proto(proto).unwrap();
    Plan::compile(&model, 1, Precision::Fp32).unwrap_err()
}

/// Re-derives liveness from the steps alone (not from `Plan::buffers`'
/// recorded intervals) and checks that at every step the buffers that are
/// live -- written at or before it and read at or after it -- are pairwise
/// disjoint in the arena.
fn independent_arena_check(plan: &Plan) {
    let n = plan.steps.len();
    let nb = plan.buffers.len();
    let mut def = vec![usize::MAX; nb];
    let mut last = vec![0usize; nb];
    let buf = |t: netml_infer::plan::TensorId| plan.tensor(t).buffer.0;
    def[buf(plan.input)] = 0;
    for (s, st) in plan.steps.iter().enumerate() {
        let b = buf(st.output());
        def[b] = def[b].min(s);
        last[b] = last[b].max(s);
        for t in st.inputs() {
            last[buf(t)] = last[buf(t)].max(s);
            assert!(
                def[buf(t)] <= s,
                "step {s} reads a buffer before it is written"
            );
        }
    }
    last[buf(plan.output)] = n;
    for s in 0..=n {
        let live: Vec<usize> = (0..nb).filter(|&b| def[b] <= s && s <= last[b]).collect();
        for (i, &a) in live.iter().enumerate() {
            for &b in &live[i + 1..] {
                let (ba, bb) = (&plan.buffers[a], &plan.buffers[b]);
                assert!(
                    ba.offset + ba.bytes <= bb.offset || bb.offset + bb.bytes <= ba.offset,
                    "step {s}: live buffers {a} {ba:?} and {b} {bb:?} overlap"
                );
            }
        }
    }
    for t in &plan.tensors {
        assert!(t.offset + t.bytes <= plan.arena_bytes);
        assert_eq!(t.offset % netml_infer::plan::ARENA_ALIGN, 0);
    }
}

/// Runs the plan (both precisions) and tract on the same random input;
/// returns (fp32 rel-L2, fp16 rel-L2).
fn against_tract(proto: &pb::ModelProto, batch: usize) -> (f64, f64) {
    let mut tract = Tract::from_proto(proto, batch).unwrap();
    let per: usize = tract.input_shape().iter().product();
    let input = common::Rng::new(99).normals(batch * per);
    let want = tract.run(&input, batch).unwrap();
    let mut errs = [0f64; 2];
    for (i, p) in [Precision::Fp32, Precision::Fp16].into_iter().enumerate() {
        let mut r = Reference::new(compile(proto, batch, p));
        let got = r.run(&input, batch).unwrap();
        assert_eq!(got.shape, want.shape);
        errs[i] = rel_l2(&got.data, &want.data);
    }
    assert!(errs[0] <= 1e-5, "fp32 rel-L2 {:e}", errs[0]);
    assert!(errs[1] <= 1e-2, "fp16 rel-L2 {:e}", errs[1]);
    (errs[0], errs[1])
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.steps.iter().map(|s| s.kind()).collect()
}

#[test]
fn bn_folds_into_conv_and_relu_fuses() {
    let mut g = G::new(1);
    let c = g.conv("input", 3, 8, 3, 1, 1, 1, true);
    let b = g.bn(&c, 8);
    let r = g.relu(&b);
    let proto = g.finish(&[3, 8, 8], &r, 4);
    let plan = compile(&proto, 2, Precision::Fp32);
    assert_eq!(kinds(&plan), ["conv"]);
    let Op::Conv(conv) = &plan.steps[0].op else {
        unreachable!()
    };
    assert_eq!(conv.act, Activation::Relu);
    assert!(conv.bias.is_some());
    assert_eq!(plan.steps[0].nodes.len(), 3, "{:?}", plan.steps[0].nodes);
    // folded weights differ from the file's
    let model = Model::from_proto(&proto).unwrap();
    let w_file = model
        .constants
        .values()
        .find(|c| c.dims == [8, 3, 3, 3])
        .unwrap()
        .to_f32();
    assert_ne!(plan.weight(conv.w).data, w_file);
    against_tract(&proto, 2);
}

#[test]
fn standalone_bn_becomes_scale_shift_with_activation() {
    // DenseNet's pre-activation: BN -> ReLU -> Conv, BN not after a conv.
    let mut g = G::new(2);
    let b = g.bn("input", 4);
    let r = g.relu(&b);
    let c = g.conv(&r, 4, 6, 1, 1, 0, 1, false);
    let proto = g.finish(&[4, 5, 5], &c, 4);
    let plan = compile(&proto, 1, Precision::Fp32);
    assert_eq!(kinds(&plan), ["scale_shift", "conv"]);
    let Op::ScaleShift(ss) = &plan.steps[0].op else {
        unreachable!()
    };
    assert_eq!(ss.act, Activation::Relu);
    against_tract(&proto, 3);
}

#[test]
fn residual_add_and_relu_fuse_into_conv() {
    let mut g = G::new(3);
    let c = g.conv("input", 8, 8, 3, 1, 1, 1, false);
    let b = g.bn(&c, 8);
    let a = g.node("Add", &[&b, "input"], vec![]);
    let r = g.relu(&a);
    let proto = g.finish(&[8, 6, 6], &r, 4);
    let plan = compile(&proto, 2, Precision::Fp32);
    assert_eq!(kinds(&plan), ["conv"]);
    let Op::Conv(conv) = &plan.steps[0].op else {
        unreachable!()
    };
    assert_eq!(conv.residual, Some(plan.input));
    assert_eq!(conv.act, Activation::Relu);
    assert_eq!(plan.steps[0].nodes.len(), 4);
    against_tract(&proto, 2);
}

#[test]
fn projection_shortcut_fuses_one_conv_and_keeps_the_other() {
    // ResNet's first block: both Add operands are conv+BN.
    let mut g = G::new(4);
    let main = g.conv("input", 4, 8, 3, 2, 1, 1, false);
    let main = g.bn(&main, 8);
    let short = g.conv("input", 4, 8, 1, 2, 0, 1, false);
    let short = g.bn(&short, 8);
    let a = g.node("Add", &[&main, &short], vec![]);
    let r = g.relu(&a);
    let proto = g.finish(&[4, 8, 8], &r, 4);
    let plan = compile(&proto, 1, Precision::Fp16);
    assert_eq!(kinds(&plan), ["conv", "conv"]);
    let Op::Conv(second) = &plan.steps[1].op else {
        unreachable!()
    };
    assert_eq!(second.residual, Some(plan.steps[0].output()));
    assert_eq!(second.act, Activation::Relu);
    against_tract(&proto, 2);
}

#[test]
fn no_fusion_through_a_tensor_with_two_readers() {
    // c feeds both the Relu and the Add: neither may be fused into the conv.
    let mut g = G::new(5);
    let c = g.conv("input", 4, 4, 3, 1, 1, 1, true);
    let r = g.relu(&c);
    let a = g.node("Add", &[&r, &c], vec![]);
    let proto = g.finish(&[4, 5, 5], &a, 4);
    let plan = compile(&proto, 1, Precision::Fp32);
    assert_eq!(kinds(&plan), ["conv", "activation", "add"]);
    let Op::Conv(conv) = &plan.steps[0].op else {
        unreachable!()
    };
    assert_eq!(conv.act, Activation::None);
    assert_eq!(conv.residual, None);
    against_tract(&proto, 1);
}

#[test]
fn dropout_is_removed_and_matmul_add_becomes_gemm_with_bias() {
    let mut g = G::new(6);
    let d = g.node("Dropout", &["input"], vec![]);
    let w = g.randn(&[12, 5], 0.3);
    let m = g.node("MatMul", &[&d, &w], vec![]);
    let b = g.randn(&[5], 0.1);
    let a = g.node("Add", &[&m, &b], vec![]);
    let r = g.relu(&a);
    let proto = g.finish(&[12], &r, 2);
    let plan = compile(&proto, 3, Precision::Fp32);
    assert_eq!(kinds(&plan), ["gemm"]);
    let Op::Gemm(gemm) = &plan.steps[0].op else {
        unreachable!()
    };
    assert_eq!(gemm.x, plan.input, "Dropout must alias its input");
    assert!(gemm.bias.is_some());
    assert_eq!(gemm.act, Activation::Relu);
    assert_eq!((gemm.m, gemm.n, gemm.k), (3, 5, 12));
    against_tract(&proto, 3);
}

#[test]
fn gemm_alpha_beta_and_untransposed_b() {
    let mut g = G::new(7);
    let w = g.randn(&[6, 4], 0.4); // [K, N], transB = 0
    let c = g.randn(&[1, 4], 0.5);
    let y = g.node(
        "Gemm",
        &["input", &w, &c],
        vec![attr_float("alpha", 0.5), attr_float("beta", 2.0)],
    );
    let proto = g.finish(&[6], &y, 2);
    against_tract(&proto, 2);
}

#[test]
fn layouts_follow_precision_and_filters_match() {
    let mut g = G::new(8);
    let c = g.conv("input", 3, 4, 3, 1, 1, 1, false);
    let proto = g.finish(&[3, 4, 4], &c, 4);
    let p32 = compile(&proto, 1, Precision::Fp32);
    let p16 = compile(&proto, 1, Precision::Fp16);
    assert_eq!(p32.tensor(p32.input).layout, Layout::Nchw);
    assert_eq!(p16.tensor(p16.input).layout, Layout::Nhwc);
    assert_eq!(p32.weights[0].layout, WeightLayout::Kcrs);
    assert_eq!(p16.weights[0].layout, WeightLayout::Krsc);
    assert_eq!(p16.tensor(p16.input).bytes * 2, p32.tensor(p32.input).bytes);
    // fp16 weights are exactly representable in half precision
    for v in &p16.weights[0].data {
        assert_eq!(half::f16::from_f32(*v).to_f32(), *v);
    }
    against_tract(&proto, 2);
}

#[test]
fn flatten_is_a_view_in_nchw_and_permutes_gemm_weights_in_nhwc() {
    let mut g = G::new(9);
    let c = g.conv("input", 3, 4, 3, 1, 1, 1, true);
    let f = g.node("Flatten", &[&c], vec![attr_int("axis", 1)]);
    let y = g.gemm(&f, 4 * 3 * 3, 5);
    let proto = g.finish(&[3, 3, 3], &y, 2);
    let p32 = compile(&proto, 2, Precision::Fp32);
    assert_eq!(kinds(&p32), ["conv", "gemm"]);
    let p16 = compile(&proto, 2, Precision::Fp16);
    assert_eq!(kinds(&p16), ["conv", "gemm"]);
    let Op::Gemm(gemm) = &p16.steps[1].op else {
        unreachable!()
    };
    assert_eq!(
        p16.tensor(gemm.x).layout,
        Layout::FlatNhwc { c: 4, h: 3, w: 3 }
    );
    assert_eq!(
        p16.tensor(gemm.x).offset,
        p16.tensor(p16.steps[0].output()).offset
    );
    against_tract(&proto, 2);
}

#[test]
fn flatten_of_nhwc_to_the_output_is_a_reorder() {
    // The flattened tensor is the graph output, so it must be in logical
    // order: the fp16 plan needs an explicit reorder.
    let mut g = G::new(10);
    let c = g.conv("input", 2, 3, 1, 1, 0, 1, true);
    let shape = g.init_i64(&[2], vec![0, -1]);
    let f = g.node("Reshape", &[&c, &shape], vec![]);
    let proto = g.finish(&[2, 2, 2], &f, 2);
    assert_eq!(kinds(&compile(&proto, 1, Precision::Fp32)), ["conv"]);
    assert_eq!(
        kinds(&compile(&proto, 1, Precision::Fp16)),
        ["conv", "reorder"]
    );
    against_tract(&proto, 2);
}

#[test]
fn grouped_depthwise_strided_dilated_and_asymmetric_convs() {
    let mut g = G::new(11);
    let x = g.conv("input", 6, 12, 3, 2, 1, 3, true); // grouped, stride 2
    let x = g.conv(&x, 12, 12, 3, 1, 1, 12, false); // depthwise
    let w = g.randn(&[4, 12, 3, 3], 0.2);
    let x = g.node(
        "Conv",
        &[&x, &w],
        vec![
            attr_ints("dilations", &[2, 2]),
            attr_ints("pads", &[2, 1, 1, 2]),
        ],
    );
    let w2 = g.randn(&[5, 4, 2, 3], 0.3);
    let x = g.node("Conv", &[&x, &w2], vec![attr_str("auto_pad", "SAME_UPPER")]);
    let proto = g.finish(&[6, 11, 9], &x, 4);
    against_tract(&proto, 2);
}

#[test]
fn pools_clip_concat_softmax() {
    let mut g = G::new(12);
    let a = g.pool("MaxPool", "input", 3, 2, 1);
    let b = g.pool("AveragePool", "input", 3, 2, 1);
    let c = g.node(
        "AveragePool",
        &["input"],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("strides", &[2, 2]),
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_int("count_include_pad", 1),
        ],
    );
    let lo = g.init(&[], vec![-0.5]);
    let hi = g.init(&[], vec![0.7]);
    let d = g.node("Clip", &[&c, &lo, &hi], vec![]);
    let e = g.relu6(&b);
    let cat = g.node("Concat", &[&a, &e, &d], vec![attr_int("axis", 1)]);
    let gap = g.node("GlobalAveragePool", &[&cat], vec![]);
    let f = g.node("Flatten", &[&gap], vec![]);
    let s = g.node("Softmax", &[&f], vec![attr_int("axis", -1)]);
    let proto = g.finish(&[3, 7, 6], &s, 2);
    let plan = compile(&proto, 2, Precision::Fp16);
    assert!(kinds(&plan).contains(&"concat"));
    against_tract(&proto, 2);
}

#[test]
fn opset_11_softmax_over_a_4d_tensor_coerces_to_2d() {
    let mut g = G::new(13);
    g.opset = 11;
    let s = g.node("Softmax", &["input"], vec![attr_int("axis", 1)]);
    let proto = g.finish(&[2, 3, 2], &s, 4);
    against_tract(&proto, 2);
}

#[test]
fn arena_reuses_memory_along_a_deep_chain() {
    let mut g = G::new(14);
    let mut x = "input".to_string();
    for _ in 0..12 {
        x = g.conv(&x, 4, 4, 3, 1, 1, 1, true);
        x = g.relu(&x);
    }
    let proto = g.finish(&[4, 16, 16], &x, 4);
    let plan = compile(&proto, 2, Precision::Fp32);
    assert_eq!(plan.steps.len(), 12);
    let one = plan.tensor(plan.input).bytes;
    // ping-pong: two activation buffers suffice for a chain
    assert_eq!(plan.arena_bytes, 2 * one, "{}", plan.summary());
}

#[test]
fn arena_checker_rejects_overlapping_live_buffers() {
    let mut g = G::new(15);
    let a = g.conv("input", 2, 2, 1, 1, 0, 1, false);
    let b = g.conv(&a, 2, 2, 1, 1, 0, 1, false);
    let proto = g.finish(&[2, 4, 4], &b, 4);
    let mut plan = compile(&proto, 1, Precision::Fp32);
    // Put the first conv's output on top of the input it is computed from.
    let t = plan.steps[0].output();
    let buf = plan.tensor(t).buffer;
    let input_offset = plan.tensor(plan.input).offset;
    plan.buffers[buf.0].offset = input_offset;
    plan.tensors[t.0].offset = input_offset;
    let err = plan.check_arena().unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err}");
}

#[test]
fn unsupported_operator_names_node_and_op() {
    for op in ["LRN", "Sigmoid"] {
        let mut g = G::new(16);
        let c = g.conv("input", 3, 4, 3, 1, 1, 1, false);
        let mut attrs = vec![];
        if op == "LRN" {
            attrs.push(attr_int("size", 3));
        }
        let y = g.node(op, &[&c], attrs);
        let proto = g.finish(&[3, 8, 8], &y, 4);
        let node = proto.graph.as_ref().unwrap().node[1].name.clone();

        // through a file, as the CLI loads it
        let dir = std::env::temp_dir().join(format!("netml-infer-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{op}.onnx"));
        std::fs::write(&path, prost::Message::encode_to_vec(&proto)).unwrap();
        let err = Plan::load(&path, 1, Precision::Fp32).unwrap_err();
        assert_eq!(
            err,
            Error::UnsupportedOp {
                node: node.clone(),
                op_type: op.into()
            }
        );
        let msg = err.to_string();
        assert!(msg.contains(&node) && msg.contains(op), "{msg}");
        assert!(matches!(
            Model::load(&path),
            Err(Error::UnsupportedOp { .. })
        ));
        // tract itself runs such models: the cpu backend is not limited
        let mut t = Tract::load(&path, 1).unwrap();
        t.run(&vec![0.5; 3 * 8 * 8], 1).unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn unresolvable_shapes_are_clear_errors() {
    // a symbolic spatial dimension
    let mut g = G::new(17);
    let c = g.conv("input", 3, 4, 3, 1, 1, 1, false);
    let proto = g.finish_with(&[None, Some(3), None, Some(8)], &c, &[None; 4]);
    let err = compile_err(&proto);
    assert!(
        matches!(&err, Error::DynamicShape { tensor, .. } if tensor == "input"),
        "{err}"
    );
    assert!(err.to_string().contains("dimension 2"), "{err}");

    // a Reshape whose target is computed at run time
    let mut g = G::new(18);
    let c = g.conv("input", 3, 4, 3, 1, 1, 1, false);
    let y = g.node("Reshape", &[&c, &c], vec![]);
    let proto = g.finish(&[3, 8, 8], &y, 2);
    assert!(matches!(compile_err(&proto), Error::DynamicShape { .. }));

    // a fixed batch of 1 compiled for batch 4
    let mut g = G::new(19);
    let c = g.conv("input", 3, 4, 3, 1, 1, 1, false);
    let proto = g.finish_with(&[Some(1), Some(3), Some(8), Some(8)], &c, &[Some(1); 4]);
    let model = Model::from_proto(&proto).unwrap();
    assert!(Plan::compile(&model, 1, Precision::Fp32).is_ok());
    assert!(matches!(
        Plan::compile(&model, 4, Precision::Fp32),
        Err(Error::BadInputShape { .. })
    ));
}

#[test]
fn unsupported_attributes_are_clear_errors() {
    let mut g = G::new(20);
    let p = g.node(
        "MaxPool",
        &["input"],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("dilations", &[2, 2]),
        ],
    );
    let proto = g.finish(&[3, 5, 5], &p, 4);
    let err = compile_err(&proto);
    assert!(
        matches!(&err, Error::Unsupported { op_type, detail, .. } if op_type == "MaxPool" && detail.contains("dilated")),
        "{err}"
    );

    let mut g = G::new(21);
    let w = g.randn(&[4, 3, 3, 3], 0.1);
    let y = g.node("Conv", &["input", &w], vec![]);
    let a = g.node("Add", &[&y, "input"], vec![]); // [N,4,..] + [N,3,..]
    let proto = g.finish(&[3, 5, 5], &a, 4);
    assert!(matches!(
        compile_err(&proto),
        Error::Unsupported { .. } | Error::InvalidModel(_)
    ));
}

#[test]
fn bad_input_shapes_are_rejected() {
    let mut g = G::new(22);
    let c = g.conv("input", 3, 4, 3, 1, 1, 1, false);
    let proto = g.finish(&[3, 4, 4], &c, 4);
    let mut r = Reference::new(compile(&proto, 2, Precision::Fp32));
    assert!(matches!(
        r.run(&[0.0; 10], 1),
        Err(Error::BadInputShape { .. })
    ));
    assert!(matches!(
        r.run(&vec![0.0; 3 * 48], 3),
        Err(Error::BadInputShape { .. })
    ));
    assert!(matches!(r.run(&[], 0), Err(Error::BadInputShape { .. })));
    // a partial batch is padded and the output trimmed
    let out = r.run(&[0.25; 48], 1).unwrap();
    assert_eq!(out.shape, vec![1, 4, 4, 4]);
    let mut t = Tract::from_proto(&proto, 2).unwrap();
    assert!(matches!(
        t.run(&[0.0; 10], 1),
        Err(Error::BadInputShape { .. })
    ));
    let want = t.run(&[0.25; 48], 1).unwrap();
    assert!(rel_l2(&out.data, &want.data) < 1e-5);
}

#[test]
fn fp16_rounds_activations_between_steps() {
    // A value that is exact in f32 but not in f16 must come out rounded.
    let mut g = G::new(23);
    let b = g.init(&[1], vec![1.0e-4]);
    let a = g.node("Add", &["input", &b], vec![]);
    let proto = g.finish(&[1], &a, 2);
    let mut r16 = Reference::new(compile(&proto, 1, Precision::Fp16));
    let mut r32 = Reference::new(compile(&proto, 1, Precision::Fp32));
    let y16 = r16.run(&[1.0], 1).unwrap().data[0];
    let y32 = r32.run(&[1.0], 1).unwrap().data[0];
    assert_eq!(y16, 1.0, "1 + 1e-4 rounds to 1 in f16");
    assert_eq!(y32, 1.0001);
}

#[test]
fn traced_execution_reports_every_step_output() {
    let mut g = G::new(24);
    let c = g.conv("input", 3, 4, 3, 1, 1, 1, true);
    let p = g.pool("MaxPool", &c, 2, 2, 0);
    let f = g.node("Flatten", &[&p], vec![]);
    let y = g.gemm(&f, 4 * 2 * 2, 3);
    let proto = g.finish(&[3, 4, 4], &y, 2);
    let mut r = Reference::new(compile(&proto, 2, Precision::Fp16));
    let input = common::Rng::new(5).normals(2 * 48);
    let mut seen = Vec::new();
    let out = r
        .execute_traced(&input, |i, t, v| seen.push((i, t, v.to_vec())))
        .unwrap();
    assert_eq!(seen.len(), r.plan().steps.len());
    let (_, t, last) = seen.last().unwrap();
    assert_eq!(*t, r.plan().output);
    assert_eq!(last, &out);
    assert_eq!(seen[1].2.len(), 2 * 4 * 2 * 2);
}

#[test]
fn open_selects_backends() {
    use netml_infer::{open, Backend};
    let mut g = G::new(25);
    let c = g.conv("input", 3, 4, 3, 1, 1, 1, true);
    let gap = g.node("GlobalAveragePool", &[&c], vec![]);
    let f = g.node("Flatten", &[&gap], vec![]);
    let proto = g.finish(&[3, 6, 6], &f, 2);
    let dir = std::env::temp_dir().join(format!("netml-infer-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.onnx");
    std::fs::write(&path, prost::Message::encode_to_vec(&proto)).unwrap();

    assert_eq!("cpu".parse::<Backend>(), Ok(Backend::Cpu));
    assert_eq!("reference".parse::<Backend>(), Ok(Backend::Reference));
    assert_eq!("gpu".parse::<Backend>(), Ok(Backend::Gpu));
    assert!("tpu".parse::<Backend>().is_err());
    assert_eq!("fp16".parse::<Precision>(), Ok(Precision::Fp16));
    assert!("int8".parse::<Precision>().is_err());

    let input = common::Rng::new(3).normals(2 * 3 * 6 * 6);
    let mut cpu = open(&path, Backend::Cpu, 2, Precision::Fp32).unwrap();
    let mut reference = open(&path, Backend::Reference, 2, Precision::Fp16).unwrap();
    assert_eq!(cpu.input_shape(), [3, 6, 6]);
    assert_eq!(reference.output_shape(), [4]);
    assert_eq!(
        (cpu.max_batch(), reference.precision()),
        (2, Precision::Fp16)
    );
    let a = cpu.run(&input, 2).unwrap();
    let b = reference.run(&input, 2).unwrap();
    assert_eq!(a.shape, vec![2, 4]);
    assert!(rel_l2(&b.data, &a.data) < 1e-2);
    assert_eq!(a.top_k(1, 2).len(), 2);
    assert!(matches!(
        open(&path, Backend::Cpu, 2, Precision::Fp16).err(),
        Some(Error::Backend(_))
    ));
    assert!(matches!(
        open(&path, Backend::Gpu, 2, Precision::Fp16).err(),
        Some(Error::Backend(_))
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn reference_refuses_to_read_unwritten_arena_bytes() {
    let mut g = G::new(26);
    let a = g.conv("input", 2, 2, 1, 1, 0, 1, false);
    let p = g.pool("MaxPool", &a, 2, 2, 0);
    let b = g.relu(&p);
    let proto = g.finish(&[2, 4, 4], &b, 4);
    let mut plan = compile(&proto, 1, Precision::Fp32);
    assert_eq!(kinds(&plan), ["conv", "pool", "activation"]);
    // Make the pool read a copy of its input tensor placed where no step
    // writes.
    let mut stray = plan.tensor(plan.steps[1].inputs()[0]).clone();
    stray.offset = plan.arena_bytes;
    plan.arena_bytes += 4096;
    plan.tensors.push(stray);
    let Op::Pool(pool) = &mut plan.steps[1].op else {
        unreachable!()
    };
    pool.x = netml_infer::plan::TensorId(plan.tensors.len() - 1);
    let err = Reference::new(plan).run(&[1.0; 32], 1).unwrap_err();
    assert!(
        matches!(&err, Error::Internal(m) if m.contains("step 1") && m.contains("NaN")),
        "{err}"
    );
}
