//! Emission: the fused IR becomes the plan's steps, tensors and packed
//! weights, with a layout chosen for every tensor.
//!
//! Layouts are decided here, in execution order, because a Reshape can
//! only become a view once its input's layout is known, and a Gemm's
//! weights can only be packed once its input's layout is known. Arena
//! offsets are left at 0 for `arena` to fill in.

use std::collections::HashMap;

use super::ir::{Ir, IrNode, IrOp, IrTensor};
use super::layout::{activation_layout, reshape_view};
use super::weights::WeightPacker;
use super::{
    ActivationStep, AddStep, BufferId, ConcatStep, ConvStep, GemmStep, Layout, Op, PoolStep,
    Precision, ReorderStep, ScaleShiftStep, SoftmaxStep, Step, TensorId, TensorInfo, Weight,
};
use crate::error::{Error, Result};

/// The plan before arena placement.
pub(super) struct Emitted {
    pub(super) steps: Vec<Step>,
    /// Offsets still 0; `buffer` already says which tensors share bytes.
    pub(super) tensors: Vec<TensorInfo>,
    pub(super) weights: Vec<Weight>,
    /// Number of distinct buffers the tensors refer to.
    pub(super) nbuffers: usize,
    pub(super) input: TensorId,
    pub(super) output: TensorId,
}

/// The plan's tensors as they are created, each either with a buffer of
/// its own or sharing one (a view).
struct Tensors {
    list: Vec<TensorInfo>,
    nbuffers: usize,
    elem_bytes: usize,
}

impl Tensors {
    fn add(&mut self, t: &IrTensor, layout: Layout, shared: Option<BufferId>) -> TensorId {
        let buffer = shared.unwrap_or_else(|| {
            self.nbuffers += 1;
            BufferId(self.nbuffers - 1)
        });
        let numel: usize = t.shape.iter().product();
        self.list.push(TensorInfo {
            name: t.name.clone(),
            shape: t.shape.clone(),
            layout,
            buffer,
            offset: 0,
            bytes: numel * self.elem_bytes,
        });
        TensorId(self.list.len() - 1)
    }
}

/// Emits a step per live IR node, in order (none for a Reshape that can be
/// a view), choosing each new tensor's layout on the way.
pub(super) fn emit(ir: &Ir, precision: Precision) -> Result<Emitted> {
    let nodes: Vec<&IrNode> = ir.nodes.iter().flatten().collect();
    // Readers of each tensor (by index in `nodes`).
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); ir.tensors.len()];
    for (i, n) in nodes.iter().enumerate() {
        for &t in &n.inputs {
            readers[t].push(i);
        }
    }

    let mut tensors = Tensors {
        list: Vec::new(),
        nbuffers: 0,
        elem_bytes: precision.elem_bytes(),
    };
    let mut map: HashMap<usize, TensorId> = HashMap::new(); // ir tensor -> plan tensor
    let in_t = &ir.tensors[ir.input];
    let input = tensors.add(in_t, activation_layout(precision, &in_t.shape), None);
    map.insert(ir.input, input);

    let mut weights = WeightPacker::new(precision);
    let mut steps: Vec<Step> = Vec::new();
    for node in &nodes {
        let ins: Vec<TensorId> = node.inputs.iter().map(|i| map[i]).collect();
        let ot = &ir.tensors[node.output];
        let out_layout = activation_layout(precision, &ot.shape);

        if let IrOp::Reshape = node.op {
            let x = &tensors.list[ins[0].0];
            let gemm_only = node.output != ir.output
                && !readers[node.output].is_empty()
                && readers[node.output]
                    .iter()
                    .all(|&r| matches!(nodes[r].op, IrOp::Gemm { .. }));
            match reshape_view(x, &ot.shape, out_layout, gemm_only) {
                Some(layout) => {
                    let shared = Some(x.buffer);
                    map.insert(node.output, tensors.add(ot, layout, shared));
                }
                None => {
                    let y = tensors.add(ot, out_layout, None);
                    map.insert(node.output, y);
                    steps.push(Step {
                        op: Op::Reorder(ReorderStep { x: ins[0], y }),
                        nodes: node.sources.clone(),
                    });
                }
            }
            continue;
        }

        let y = tensors.add(ot, out_layout, None);
        map.insert(node.output, y);
        let op = step_op(node, &ins, y, &tensors.list[ins[0].0], &mut weights);
        steps.push(Step {
            op,
            nodes: node.sources.clone(),
        });
    }

    let output = *map
        .get(&ir.output)
        .ok_or_else(|| Error::Internal("the output tensor was never emitted".into()))?;
    Ok(Emitted {
        steps,
        tensors: tensors.list,
        weights: weights.finish(),
        nbuffers: tensors.nbuffers,
        input,
        output,
    })
}

/// The step for a non-Reshape node with inputs `ins` (the first is `x`)
/// and output `y`, packing its constants.
fn step_op(
    node: &IrNode,
    ins: &[TensorId],
    y: TensorId,
    x: &TensorInfo,
    weights: &mut WeightPacker,
) -> Op {
    let label = node.sources.join("+");
    match &node.op {
        IrOp::Conv {
            w,
            wshape,
            bias,
            stride,
            pads,
            dilation,
            groups,
            act,
            residual,
        } => {
            let [_, _, r, s] = *wshape;
            let wid = weights.filter(format!("{label}.weight"), w, *wshape);
            let bid = bias
                .as_ref()
                .map(|b| weights.vector(format!("{label}.bias"), b));
            Op::Conv(ConvStep {
                x: ins[0],
                w: wid,
                bias: bid,
                residual: if *residual { Some(ins[1]) } else { None },
                y,
                kernel: [r, s],
                stride: *stride,
                pads: *pads,
                dilation: *dilation,
                groups: *groups,
                act: *act,
            })
        }
        IrOp::Gemm { w, n, k, bias, act } => {
            // The Gemm reads x as a raw [m, k] matrix in x's memory order.
            let wid = weights.matrix(format!("{label}.weight"), w, [*n, *k], x.layout);
            let bid = bias
                .as_ref()
                .map(|b| weights.vector(format!("{label}.bias"), b));
            Op::Gemm(GemmStep {
                x: ins[0],
                w: wid,
                bias: bid,
                y,
                m: x.shape[0],
                n: *n,
                k: *k,
                act: *act,
            })
        }
        IrOp::ScaleShift { scale, shift, act } => Op::ScaleShift(ScaleShiftStep {
            x: ins[0],
            y,
            scale: weights.vector(format!("{label}.scale"), scale),
            shift: weights.vector(format!("{label}.shift"), shift),
            act: *act,
        }),
        IrOp::Add { act } => Op::Add(AddStep {
            a: ins[0],
            b: ins[1],
            y,
            act: *act,
        }),
        IrOp::Act(act) => Op::Activation(ActivationStep {
            x: ins[0],
            y,
            act: *act,
        }),
        IrOp::Pool {
            kind,
            kernel,
            stride,
            pads,
            ceil_pads,
        } => Op::Pool(PoolStep {
            x: ins[0],
            y,
            kind: *kind,
            kernel: *kernel,
            stride: *stride,
            pads: *pads,
            ceil_pads: *ceil_pads,
        }),
        IrOp::Concat { axis } => Op::Concat(ConcatStep {
            inputs: ins.to_vec(),
            y,
            axis: *axis,
        }),
        IrOp::Softmax { axis, coerce_2d } => Op::Softmax(SoftmaxStep {
            x: ins[0],
            y,
            axis: *axis,
            coerce_2d: *coerce_2d,
        }),
        IrOp::Reshape => unreachable!("emit handles Reshape as a view or a Reorder"),
    }
}
