//! ONNX loading.
//!
//! The protobuf is decoded with the prost-generated types that `tract-onnx`
//! exports as [`tract_onnx::pb`] (the crate is already our `cpu` backend, so
//! this costs no extra dependency and no hand-written decoder). The decoded
//! [`pb::ModelProto`] is converted into the small, owned graph IR below:
//! nodes with parsed attributes, constant tensors (initializers and
//! `Constant` nodes) as `f32`/`i64` arrays, and the graph's inputs/outputs
//! with their (possibly symbolic) dimensions.
//!
//! [`Model::load`] also checks every node against [`SUPPORTED_OPS`] and
//! fails with [`Error::UnsupportedOp`] naming the first offending node.

use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The prost-generated ONNX protobuf types (re-exported from tract-onnx).
pub use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use crate::error::{Error, Result};

/// The ONNX operators the planner implements (the seed models' set).
/// `Constant` is accepted too: it only provides compile-time constants.
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Add",
    "Gemm",
    "MatMul",
    "Flatten",
    "Reshape",
    "Dropout",
    "Concat",
    "Softmax",
    "Constant",
];

/// One dimension of a graph input or output as declared in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named symbolic size (`dim_param`, e.g. `N`).
    Param(String),
    /// Neither a value nor a name.
    Unknown,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Param(p) => write!(f, "{p}"),
            Dim::Unknown => write!(f, "?"),
        }
    }
}

/// A graph input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    /// Tensor name.
    pub name: String,
    /// Declared dimensions; `None` when the file declares no shape.
    pub dims: Option<Vec<Dim>>,
}

impl ValueInfo {
    /// The input's shape for a plan of `batch` (the planner's and tract's):
    /// only the first dimension may be symbolic (it becomes the batch), and
    /// a fixed one must equal `batch`.
    pub(crate) fn batched_shape(&self, batch: usize) -> Result<Vec<usize>> {
        let dims = self.dims.as_ref().ok_or_else(|| Error::DynamicShape {
            tensor: self.name.clone(),
            detail: "the graph input declares no shape".into(),
        })?;
        if dims.is_empty() {
            return Err(Error::DynamicShape {
                tensor: self.name.clone(),
                detail: "the graph input is a scalar; expected [N, ...]".into(),
            });
        }
        let mut shape = vec![batch];
        match &dims[0] {
            Dim::Fixed(b) if *b != batch => {
                return Err(Error::BadInputShape {
                    expected: format!("batch {b} (fixed by the model's input '{}')", self.name),
                    got: format!("a plan for batch {batch}"),
                })
            }
            _ => {}
        }
        for (i, d) in dims.iter().enumerate().skip(1) {
            match d {
                Dim::Fixed(v) => shape.push(*v),
                other => {
                    return Err(Error::DynamicShape {
                        tensor: self.name.clone(),
                        detail: format!(
                            "dimension {i} is '{other}'; only the first (batch) dimension may be symbolic"
                        ),
                    })
                }
            }
        }
        Ok(shape)
    }
}

/// The payload of a constant tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstData {
    /// Floating point data (FLOAT, DOUBLE and FLOAT16 are all read as f32).
    F32(Vec<f32>),
    /// Integer data (INT64, INT32).
    I64(Vec<i64>),
}

/// A constant tensor: an initializer or the value of a `Constant` node.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    /// Dimensions (empty for a scalar).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: ConstData,
}

impl Constant {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// True for a tensor with no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32 (integers converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            ConstData::F32(v) => v.clone(),
            ConstData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as i64 (floats truncated).
    pub fn to_i64(&self) -> Vec<i64> {
        match &self.data {
            ConstData::F32(v) => v.iter().map(|&x| x as i64).collect(),
            ConstData::I64(v) => v.clone(),
        }
    }
}

/// A node attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Attribute {
    /// `INT`.
    Int(i64),
    /// `FLOAT`.
    Float(f32),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRING` (lossy UTF-8).
    String(String),
    /// `TENSOR`.
    Tensor(Constant),
    /// Any other kind (graphs, sparse tensors, ...), not used by the planner.
    Other,
}

/// One ONNX node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node name, or `#<index>` when the file leaves it empty.
    pub name: String,
    /// Operator type, e.g. `Conv`.
    pub op_type: String,
    /// Operator domain (empty for the default ONNX domain).
    pub domain: String,
    /// Input tensor names; an empty string marks an omitted optional input.
    pub inputs: Vec<String>,
    /// Output tensor names.
    pub outputs: Vec<String>,
    /// Attributes by name.
    pub attributes: HashMap<String, Attribute>,
}

impl Node {
    /// An integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        match self.attributes.get(name) {
            Some(Attribute::Int(v)) => *v,
            _ => default,
        }
    }

    /// A float attribute, or `default`.
    pub fn float(&self, name: &str, default: f32) -> f32 {
        match self.attributes.get(name) {
            Some(Attribute::Float(v)) => *v,
            Some(Attribute::Int(v)) => *v as f32,
            _ => default,
        }
    }

    /// An integer-list attribute, if present.
    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        match self.attributes.get(name) {
            Some(Attribute::Ints(v)) => Some(v),
            _ => None,
        }
    }

    /// A string attribute, if present.
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.attributes.get(name) {
            Some(Attribute::String(v)) => Some(v),
            _ => None,
        }
    }
}

/// A decoded ONNX model: the graph in topological order plus its constants.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Graph name.
    pub name: String,
    /// Version of the default (`ai.onnx`) operator set.
    pub opset: i64,
    /// Nodes, topologically sorted; `Constant` nodes are moved to `constants`.
    pub nodes: Vec<Node>,
    /// Initializers and `Constant` node values by tensor name.
    pub constants: HashMap<String, Constant>,
    /// Graph inputs that are not initializers (the runtime inputs).
    pub inputs: Vec<ValueInfo>,
    /// Graph outputs.
    pub outputs: Vec<ValueInfo>,
}

impl Model {
    /// Reads and decodes an ONNX file, then checks every node against
    /// [`SUPPORTED_OPS`].
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let proto = read_proto(path)?;
        let model = Model::from_proto(&proto)?;
        model.check_supported()?;
        Ok(model)
    }

    /// Decodes ONNX protobuf bytes and checks the operators.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let mut r = bytes;
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut r)
            .map_err(|e| Error::Decode(format!("{e:#}")))?;
        let model = Model::from_proto(&proto)?;
        model.check_supported()?;
        Ok(model)
    }

    /// Converts a decoded protobuf into the IR, without checking operators
    /// (the tract backend uses this to read the input shape of any model).
    pub fn from_proto(proto: &pb::ModelProto) -> Result<Model> {
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| Error::InvalidModel("the model has no graph".into()))?;
        let opset = proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .unwrap_or(1);

        let mut constants = HashMap::new();
        for t in &graph.initializer {
            constants.insert(t.name.clone(), read_tensor(t, &t.name)?);
        }
        let inputs: Vec<ValueInfo> = graph
            .input
            .iter()
            .filter(|v| !constants.contains_key(&v.name))
            .map(value_info)
            .collect();
        let outputs = graph.output.iter().map(value_info).collect();

        let mut nodes = Vec::with_capacity(graph.node.len());
        for (i, n) in graph.node.iter().enumerate() {
            let name = if n.name.is_empty() {
                format!("#{i}")
            } else {
                n.name.clone()
            };
            let mut attributes = HashMap::new();
            for a in &n.attribute {
                attributes.insert(a.name.clone(), attribute(a, &name)?);
            }
            let node = Node {
                name,
                op_type: n.op_type.clone(),
                domain: n.domain.clone(),
                inputs: n.input.clone(),
                outputs: n.output.clone(),
                attributes,
            };
            if node.op_type == "Constant" && node.domain.is_empty() {
                let value = match node.attributes.get("value") {
                    Some(Attribute::Tensor(t)) => t.clone(),
                    Some(Attribute::Float(f)) => Constant {
                        dims: vec![],
                        data: ConstData::F32(vec![*f]),
                    },
                    Some(Attribute::Int(v)) => Constant {
                        dims: vec![],
                        data: ConstData::I64(vec![*v]),
                    },
                    Some(Attribute::Ints(v)) => Constant {
                        dims: vec![v.len()],
                        data: ConstData::I64(v.clone()),
                    },
                    Some(Attribute::Floats(v)) => Constant {
                        dims: vec![v.len()],
                        data: ConstData::F32(v.clone()),
                    },
                    _ => {
                        return Err(Error::Unsupported {
                            node: node.name,
                            op_type: node.op_type,
                            detail: "Constant without a value/value_float(s)/value_int(s)".into(),
                        })
                    }
                };
                if let Some(out) = node.outputs.first() {
                    constants.insert(out.clone(), value);
                }
                continue;
            }
            nodes.push(node);
        }

        let nodes = topo_sort(nodes, &constants, &inputs)?;
        Ok(Model {
            name: graph.name.clone(),
            opset,
            nodes,
            constants,
            inputs,
            outputs,
        })
    }

    /// Fails with [`Error::UnsupportedOp`] for the first node whose operator
    /// is not in [`SUPPORTED_OPS`] (or is in a non-default domain).
    pub fn check_supported(&self) -> Result<()> {
        for n in &self.nodes {
            let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
            if !default_domain || !SUPPORTED_OPS.contains(&n.op_type.as_str()) {
                let op_type = if default_domain {
                    n.op_type.clone()
                } else {
                    format!("{}::{}", n.domain, n.op_type)
                };
                return Err(Error::UnsupportedOp {
                    node: n.name.clone(),
                    op_type,
                });
            }
        }
        Ok(())
    }
}

/// Reads an ONNX file into the prost-generated protobuf type.
pub fn read_proto(path: impl AsRef<Path>) -> Result<pb::ModelProto> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut r = bytes.as_slice();
    tract_onnx::onnx()
        .proto_model_for_read(&mut r)
        .map_err(|e| Error::Decode(format!("{}: {e:#}", path.display())))
}

fn value_info(v: &pb::ValueInfoProto) -> ValueInfo {
    use pb::tensor_shape_proto::dimension::Value;
    let dims = v.r#type.as_ref().and_then(|t| match &t.value {
        Some(pb::type_proto::Value::TensorType(tt)) => tt.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(Value::DimValue(x)) if *x >= 0 => Dim::Fixed(*x as usize),
                    Some(Value::DimParam(p)) if !p.is_empty() => Dim::Param(p.clone()),
                    _ => Dim::Unknown,
                })
                .collect()
        }),
        _ => None,
    });
    ValueInfo {
        name: v.name.clone(),
        dims,
    }
}

fn attribute(a: &pb::AttributeProto, node: &str) -> Result<Attribute> {
    use pb::attribute_proto::AttributeType as T;
    let ty = T::try_from(a.r#type).unwrap_or(T::Undefined);
    Ok(match ty {
        T::Int => Attribute::Int(a.i),
        T::Float => Attribute::Float(a.f),
        T::Ints => Attribute::Ints(a.ints.clone()),
        T::Floats => Attribute::Floats(a.floats.clone()),
        T::String => Attribute::String(String::from_utf8_lossy(&a.s).into_owned()),
        T::Tensor => match &a.t {
            Some(t) => Attribute::Tensor(read_tensor(t, node)?),
            None => Attribute::Other,
        },
        // Very old files leave `type` unset: infer it from the filled field.
        T::Undefined if !a.ints.is_empty() => Attribute::Ints(a.ints.clone()),
        T::Undefined if !a.floats.is_empty() => Attribute::Floats(a.floats.clone()),
        T::Undefined if !a.s.is_empty() => {
            Attribute::String(String::from_utf8_lossy(&a.s).into_owned())
        }
        T::Undefined if a.t.is_some() => {
            Attribute::Tensor(read_tensor(a.t.as_ref().unwrap(), node)?)
        }
        _ => Attribute::Other,
    })
}

/// Decodes a `TensorProto` (FLOAT, FLOAT16, DOUBLE, INT64, INT32) into a
/// [`Constant`]. `owner` names the tensor or node in errors.
pub fn read_tensor(t: &pb::TensorProto, owner: &str) -> Result<Constant> {
    use pb::tensor_proto::DataType as D;
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(Error::InvalidModel(format!(
            "tensor '{owner}' uses external data, which is not supported"
        )));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| Error::InvalidModel(format!("tensor '{owner}' has dimension {d}")))
        })
        .collect::<Result<_>>()?;
    let n: usize = dims.iter().product();
    let raw = &t.raw_data;
    let dt = D::try_from(t.data_type).unwrap_or(D::Undefined);
    let data = match dt {
        D::Float => ConstData::F32(if !raw.is_empty() {
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            t.float_data.clone()
        }),
        D::Double => ConstData::F32(if !raw.is_empty() {
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect()
        } else {
            t.double_data.iter().map(|&x| x as f32).collect()
        }),
        D::Float16 => ConstData::F32(if !raw.is_empty() {
            raw.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()
        } else {
            // FLOAT16 values live in int32_data as raw 16-bit patterns.
            t.int32_data
                .iter()
                .map(|&x| half::f16::from_bits(x as u16).to_f32())
                .collect()
        }),
        D::Int64 => ConstData::I64(if !raw.is_empty() {
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        } else {
            t.int64_data.clone()
        }),
        D::Int32 => ConstData::I64(if !raw.is_empty() {
            raw.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect()
        } else {
            t.int32_data.iter().map(|&x| x as i64).collect()
        }),
        _ => {
            return Err(Error::InvalidModel(format!(
                "tensor '{owner}' has data type {} ({}), only FLOAT, FLOAT16, DOUBLE, INT64 and INT32 are supported",
                dt.as_str_name(),
                t.data_type
            )))
        }
    };
    let len = match &data {
        ConstData::F32(v) => v.len(),
        ConstData::I64(v) => v.len(),
    };
    if len != n {
        return Err(Error::InvalidModel(format!(
            "tensor '{owner}' has {len} values for dimensions {dims:?}"
        )));
    }
    Ok(Constant { dims, data })
}

/// Orders nodes so that every input is produced before it is used (ONNX
/// requires this already; sorting makes hand-edited files work too).
fn topo_sort(
    nodes: Vec<Node>,
    constants: &HashMap<String, Constant>,
    inputs: &[ValueInfo],
) -> Result<Vec<Node>> {
    let mut available: HashSet<String> = constants.keys().cloned().collect();
    available.extend(inputs.iter().map(|v| v.name.clone()));
    available.insert(String::new()); // omitted optional inputs
    let mut pending: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let mut sorted = Vec::with_capacity(pending.len());
    loop {
        let mut progressed = false;
        for slot in pending.iter_mut() {
            let ready = matches!(slot, Some(n) if n.inputs.iter().all(|i| available.contains(i)));
            if ready {
                let n = slot.take().unwrap();
                available.extend(n.outputs.iter().cloned());
                sorted.push(n);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    if let Some(n) = pending.into_iter().flatten().next() {
        let missing: Vec<&String> = n
            .inputs
            .iter()
            .filter(|i| !available.contains(*i))
            .collect();
        return Err(Error::InvalidModel(format!(
            "node '{}' ({}) uses {:?}, which no node, initializer or graph input produces (or the graph has a cycle)",
            n.name, n.op_type, missing
        )));
    }
    Ok(sorted)
}
