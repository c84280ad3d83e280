//! Lowering: ONNX nodes to the IR, for a fixed batch.
//!
//! Each node becomes a typed [`IrOp`] with its constant operands read and
//! its output shape computed (`shapes` for ops whose work is shape
//! inference, `fold` for ops whose constants are folded). Doing both here,
//! once, means every later pass sees concrete shapes and plain f32
//! constants, and every unsupported or unresolvable case fails with an
//! error naming the ONNX node rather than deep inside a later pass.

use std::collections::HashMap;
use std::fmt;

use super::ir::{Ir, IrNode, IrOp, IrTensor};
use super::{fold, shapes, Activation};
use crate::error::{Error, Result};
use crate::onnx::{Constant, Model, Node};

/// What a node lowers to: the op, its activation inputs (IR tensor
/// indices) and its output shape.
pub(super) type Lowered = (IrOp, Vec<usize>, Vec<usize>);

/// What an ONNX value name is bound to while lowering.
pub(super) enum Val<'a> {
    /// An activation (IR tensor index).
    Tensor(usize),
    /// A compile-time constant (initializer or `Constant` node).
    Const(&'a Constant),
}

pub(super) fn unsupported(n: &Node, detail: impl Into<String>) -> Error {
    Error::Unsupported {
        node: n.name.clone(),
        op_type: n.op_type.clone(),
        detail: detail.into(),
    }
}

pub(super) fn invalid(n: &Node, detail: impl fmt::Display) -> Error {
    Error::InvalidModel(format!("node '{}' ({}): {detail}", n.name, n.op_type))
}

/// One node being lowered: its operands resolved through the bindings so
/// far, with errors that name the node and say which operand is wrong.
pub(super) struct NodeCx<'a> {
    pub(super) n: &'a Node,
    /// The model's default opset (several ops changed semantics).
    pub(super) opset: i64,
    /// The node's (first) output name.
    pub(super) out_name: &'a str,
    env: &'a HashMap<&'a str, Val<'a>>,
    tensors: &'a [IrTensor],
}

impl<'a> NodeCx<'a> {
    /// Input `i`, or `None` when it is omitted (empty name) or unbound.
    pub(super) fn get(&self, i: usize) -> Option<&'a Val<'a>> {
        self.n
            .inputs
            .get(i)
            .filter(|s| !s.is_empty())
            .and_then(|s| self.env.get(s.as_str()))
    }

    /// Input `i`, which must be an activation.
    pub(super) fn tensor(&self, i: usize) -> Result<usize> {
        match self.get(i) {
            Some(Val::Tensor(t)) => Ok(*t),
            Some(Val::Const(_)) => Err(unsupported(
                self.n,
                format!("input {i} is a constant; the engine expects an activation there"),
            )),
            None => Err(invalid(
                self.n,
                format!("input {i} is missing or undefined"),
            )),
        }
    }

    /// Input `i` (`what`, for errors), which must be a constant.
    pub(super) fn constant(&self, i: usize, what: &str) -> Result<&'a Constant> {
        match self.get(i) {
            Some(Val::Const(c)) => Ok(*c),
            Some(Val::Tensor(_)) => Err(unsupported(
                self.n,
                format!("{what} (input {i}) must be a constant initializer"),
            )),
            None => Err(invalid(self.n, format!("{what} (input {i}) is missing"))),
        }
    }

    /// The inferred shape of IR tensor `t`.
    pub(super) fn shape(&self, t: usize) -> Vec<usize> {
        self.tensors[t].shape.clone()
    }
}

/// Converts the model into the IR, inferring every shape for `batch`.
pub(super) fn build_ir(model: &Model, batch: usize) -> Result<Ir> {
    if model.inputs.len() != 1 {
        return Err(Error::InvalidModel(format!(
            "the engine serves models with exactly one runtime input; this one has {} ({:?})",
            model.inputs.len(),
            model.inputs.iter().map(|v| &v.name).collect::<Vec<_>>()
        )));
    }
    if model.outputs.len() != 1 {
        return Err(Error::InvalidModel(format!(
            "the engine serves models with exactly one output; this one has {}",
            model.outputs.len()
        )));
    }
    let input = &model.inputs[0];
    let mut ir = Ir {
        tensors: vec![IrTensor {
            name: input.name.clone(),
            shape: input.batched_shape(batch)?,
        }],
        nodes: Vec::new(),
        input: 0,
        output: 0,
    };
    let mut env: HashMap<&str, Val> = HashMap::new();
    for (name, c) in &model.constants {
        env.insert(name.as_str(), Val::Const(c));
    }
    env.insert(input.name.as_str(), Val::Tensor(0));

    for n in &model.nodes {
        let out_name = n
            .outputs
            .first()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(n, "no output"))?
            .clone();
        let cx = NodeCx {
            n,
            opset: model.opset,
            out_name: &out_name,
            env: &env,
            tensors: &ir.tensors,
        };
        if n.op_type == "Dropout" {
            // Inference Dropout is the identity: bind its output to its
            // input so it costs neither a step nor a buffer.
            let x = dropout(&cx)?;
            env.insert(n.outputs[0].as_str(), Val::Tensor(x));
            continue;
        }
        let (op, inputs, out_shape) = lower_node(&cx)?;
        let numel: usize = out_shape.iter().product();
        if numel == 0 {
            return Err(Error::DynamicShape {
                tensor: out_name,
                detail: format!("node '{}' produces an empty tensor {out_shape:?}", n.name),
            });
        }
        let id = ir.tensors.len();
        ir.tensors.push(IrTensor {
            name: out_name,
            shape: out_shape,
        });
        ir.nodes.push(Some(IrNode {
            op,
            inputs,
            output: id,
            sources: vec![n.name.clone()],
        }));
        env.insert(n.outputs[0].as_str(), Val::Tensor(id));
    }

    let out = &model.outputs[0].name;
    ir.output = match env.get(out.as_str()) {
        Some(Val::Tensor(t)) => *t,
        Some(Val::Const(_)) => {
            return Err(Error::InvalidModel(format!(
                "the graph output '{out}' is a constant"
            )))
        }
        None => {
            return Err(Error::InvalidModel(format!(
                "the graph output '{out}' is not produced by any node"
            )))
        }
    };
    Ok(ir)
}

/// Every supported op but Dropout (which `build_ir` aliases away).
fn lower_node(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    match n.op_type.as_str() {
        "Conv" => shapes::conv(cx),
        "BatchNormalization" => fold::batch_norm(cx),
        "Relu" => {
            let x = cx.tensor(0)?;
            Ok((IrOp::Act(Activation::Relu), vec![x], cx.shape(x)))
        }
        "Clip" => clip(cx),
        "MaxPool" | "AveragePool" => shapes::pool(cx),
        "GlobalAveragePool" => shapes::global_average_pool(cx),
        "Add" => fold::add(cx),
        "Gemm" => fold::gemm(cx),
        "MatMul" => fold::matmul(cx),
        "Flatten" => shapes::flatten(cx),
        "Reshape" => shapes::reshape(cx),
        "Concat" => shapes::concat(cx),
        "Softmax" => shapes::softmax(cx),
        other => Err(Error::UnsupportedOp {
            node: n.name.clone(),
            op_type: other.to_string(),
        }),
    }
}

/// Dropout's input, after refusing training mode.
fn dropout(cx: &NodeCx) -> Result<usize> {
    if let Some(Val::Const(c)) = cx.get(2) {
        if c.to_f32().first().copied().unwrap_or(0.0) != 0.0 {
            return Err(unsupported(cx.n, "training_mode = true"));
        }
    }
    cx.tensor(0)
}

/// Clip as an activation: bounds are attributes before opset 11 and
/// constant inputs from 11. `Clip(0, inf)` is a plain ReLU.
fn clip(cx: &NodeCx) -> Result<Lowered> {
    let n = cx.n;
    let x = cx.tensor(0)?;
    let (mut min, mut max) = (f32::NEG_INFINITY, f32::INFINITY);
    if cx.opset < 11 {
        min = n.float("min", min);
        max = n.float("max", max);
    } else {
        if cx.get(1).is_some() {
            min = scalar(n, cx.constant(1, "min")?)?;
        }
        if cx.get(2).is_some() {
            max = scalar(n, cx.constant(2, "max")?)?;
        }
    }
    let act = if min == 0.0 && max == f32::INFINITY {
        Activation::Relu
    } else {
        Activation::Clip { min, max }
    };
    Ok((IrOp::Act(act), vec![x], cx.shape(x)))
}

fn scalar(n: &Node, c: &Constant) -> Result<f32> {
    if c.len() != 1 {
        return Err(invalid(
            n,
            format!("expected a scalar, got shape {:?}", c.dims),
        ));
    }
    Ok(c.to_f32()[0])
}
