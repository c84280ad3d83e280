//! Shared test helpers: hand-built ONNX graphs (via tract-onnx's prost
//! types), deterministic inputs, and the generated seed models.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use netml_infer::onnx::pb;

// ---------------------------------------------------------------------------
// graph builder

/// Builds a `pb::ModelProto` node by node.
pub struct G {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    rng: Rng,
    n: usize,
    pub opset: i64,
}

pub fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

pub fn attr_str(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

pub fn attr_float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(v) => Value::DimValue(*v),
                                None => Value::DimParam("N".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl G {
    pub fn new(seed: u64) -> G {
        G {
            nodes: vec![],
            inits: vec![],
            rng: Rng::new(seed),
            n: 0,
            opset: 13,
        }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    fn fresh(&mut self, p: &str) -> String {
        self.n += 1;
        format!("{p}{}", self.n)
    }

    /// Adds an f32 initializer.
    pub fn init(&mut self, dims: &[usize], data: Vec<f32>) -> String {
        let name = self.fresh("w");
        assert_eq!(dims.iter().product::<usize>(), data.len());
        self.inits.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: data,
            ..Default::default()
        });
        name
    }

    /// Adds an i64 initializer.
    pub fn init_i64(&mut self, dims: &[usize], data: Vec<i64>) -> String {
        let name = self.fresh("s");
        self.inits.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: data,
            ..Default::default()
        });
        name
    }

    /// Random normal initializer with the given std.
    pub fn randn(&mut self, dims: &[usize], std: f32) -> String {
        let n = dims.iter().product();
        let d = (0..n).map(|_| self.rng.normal() * std).collect();
        self.init(dims, d)
    }

    /// Uniform initializer in [lo, hi).
    pub fn uniform(&mut self, dims: &[usize], lo: f32, hi: f32) -> String {
        let n = dims.iter().product();
        let d = (0..n)
            .map(|_| lo + (hi - lo) * self.rng.uniform())
            .collect();
        self.init(dims, d)
    }

    /// Adds a node with one output; returns the output name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<pb::AttributeProto>) -> String {
        let name = self.fresh(&op.to_lowercase());
        let out = format!("{name}_out");
        self.nodes.push(pb::NodeProto {
            name: name.clone(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        x: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        group: usize,
        bias: bool,
    ) -> String {
        let std = (2.0 / ((cin / group) * k * k) as f32).sqrt();
        let w = self.randn(&[cout, cin / group, k, k], std);
        let mut ins = vec![x.to_string(), w];
        if bias {
            ins.push(self.randn(&[cout], 0.1));
        }
        let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
        self.node(
            "Conv",
            &ins,
            vec![
                attr_ints("kernel_shape", &[k as i64, k as i64]),
                attr_ints("strides", &[stride as i64, stride as i64]),
                attr_ints("pads", &[pad as i64; 4]),
                attr_int("group", group as i64),
            ],
        )
    }

    pub fn bn(&mut self, x: &str, c: usize) -> String {
        let g = self.uniform(&[c], 0.5, 1.5);
        let b = self.randn(&[c], 0.1);
        let m = self.randn(&[c], 0.2);
        let v = self.uniform(&[c], 0.5, 2.0);
        self.node(
            "BatchNormalization",
            &[x, &g, &b, &m, &v],
            vec![attr_float("epsilon", 1e-5)],
        )
    }

    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![])
    }

    pub fn relu6(&mut self, x: &str) -> String {
        let lo = self.init(&[], vec![0.0]);
        let hi = self.init(&[], vec![6.0]);
        self.node("Clip", &[x, &lo, &hi], vec![])
    }

    pub fn pool(&mut self, op: &str, x: &str, k: usize, s: usize, p: usize) -> String {
        self.node(
            op,
            &[x],
            vec![
                attr_ints("kernel_shape", &[k as i64, k as i64]),
                attr_ints("strides", &[s as i64, s as i64]),
                attr_ints("pads", &[p as i64; 4]),
            ],
        )
    }

    pub fn gemm(&mut self, x: &str, fin: usize, fout: usize) -> String {
        let w = self.randn(&[fout, fin], (1.0 / fin as f32).sqrt());
        let b = self.randn(&[fout], 0.1);
        self.node("Gemm", &[x, &w, &b], vec![attr_int("transB", 1)])
    }

    /// Finishes the model: input `[N, dims...]` (N symbolic unless
    /// `batch` is given), output `out` of rank `out_rank`.
    pub fn finish(&self, input_dims: &[usize], out: &str, out_rank: usize) -> pb::ModelProto {
        let mut dims = vec![None];
        dims.extend(input_dims.iter().map(|&d| Some(d as i64)));
        let out_dims: Vec<Option<i64>> = (0..out_rank).map(|_| None).collect();
        self.finish_with(&dims, out, &out_dims)
    }

    pub fn finish_with(
        &self,
        input: &[Option<i64>],
        out: &str,
        out_dims: &[Option<i64>],
    ) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            producer_name: "netml-infer tests".into(),
            graph: Some(pb::GraphProto {
                name: "test".into(),
                node: self.nodes.clone(),
                initializer: self.inits.clone(),
                input: vec![value_info("input", input)],
                output: vec![value_info(out, out_dims)],
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

// ---------------------------------------------------------------------------
// deterministic random numbers (no rand dependency)

pub use netml_infer::fixtures::Rng;

// ---------------------------------------------------------------------------
// generated seed models

pub const SMALL_MODELS: &[&str] = &netml_infer::fixtures::SEED_MODELS;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

static GENERATE: Mutex<()> = Mutex::new(());

/// Directory holding `<model>_small.onnx` for every seed model, generated
/// by `scripts/models/export.py --small` when missing or older than the
/// script. `None` (after a loud message) when python3 + onnx are missing,
/// unless `NETML_REQUIRE_MODELS=1`, which turns that into a failure.
pub fn small_models() -> Option<PathBuf> {
    let _guard = GENERATE.lock().unwrap_or_else(|e| e.into_inner());
    let script = workspace_root().join("scripts/models/export.py");
    let dir = target_dir().join("netml-infer-models/small");
    let stamp = dir.join("export.py.stamp");
    let script_text = std::fs::read(&script).expect("scripts/models/export.py exists");
    let fresh = std::fs::read(&stamp).is_ok_and(|s| s == script_text)
        && SMALL_MODELS
            .iter()
            .all(|m| dir.join(format!("{m}_small.onnx")).is_file());
    if fresh {
        return Some(dir);
    }
    let out = Command::new("python3")
        .arg(&script)
        .arg("--small")
        .arg(&dir)
        .output();
    let failure = match out {
        Ok(o) if o.status.success() => {
            std::fs::write(&stamp, &script_text).expect("write stamp");
            return Some(dir);
        }
        Ok(o) => format!(
            "python3 scripts/models/export.py failed ({}):\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("cannot run python3: {e}"),
    };
    if std::env::var("NETML_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
        panic!("{failure}\n(NETML_REQUIRE_MODELS=1: install with `pip install -r scripts/models/requirements.txt`)");
    }
    // Written to the stderr handle directly: libtest captures eprintln!
    // of passing tests, and this must be seen (once per test binary).
    use std::io::Write;
    static SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SHOWN.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n==================== SKIPPED ====================\n\
         netml-infer model tests need python3 with onnx + numpy:\n  \
         pip install -r scripts/models/requirements.txt\n{failure}\n\
         ================================================="
    );
    None
}
