//! The compiler's internal graph: typed ops with their constants already
//! read and shapes already inferred, in topological order. Lowering builds
//! it, fusion rewrites it in place, emission turns it into steps.
//!
//! Nodes are `Option`s so passes can delete or move nodes without
//! renumbering: a node's index is its position in execution order, which
//! fusion relies on to keep operands computed in between ready.

use super::{Activation, PoolKind};

/// A typed op. Constants are owned, in f32, logical order (filters KCRS,
/// Gemm weights `[N, K]`); packing into step layouts happens in `emit`.
#[derive(Debug, Clone)]
pub(super) enum IrOp {
    Conv {
        /// `[K, C/g, R, S]` KCRS.
        w: Vec<f32>,
        wshape: [usize; 4],
        bias: Option<Vec<f32>>,
        stride: [usize; 2],
        pads: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
        act: Activation,
        /// `inputs[1]` is the residual.
        residual: bool,
    },
    Gemm {
        /// `[N, K]`.
        w: Vec<f32>,
        n: usize,
        k: usize,
        bias: Option<Vec<f32>>,
        act: Activation,
    },
    ScaleShift {
        scale: Vec<f32>,
        shift: Vec<f32>,
        act: Activation,
    },
    Add {
        act: Activation,
    },
    Act(Activation),
    Pool {
        kind: PoolKind,
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
        ceil_pads: [usize; 2],
    },
    Concat {
        axis: usize,
    },
    Softmax {
        axis: usize,
        coerce_2d: bool,
    },
    /// Flatten/Reshape: a view or a `Reorder` copy, decided in `emit`
    /// once layouts are known.
    Reshape,
}

#[derive(Debug, Clone)]
pub(super) struct IrNode {
    pub(super) op: IrOp,
    /// Indices into [`Ir::tensors`].
    pub(super) inputs: Vec<usize>,
    pub(super) output: usize,
    /// Names of the ONNX nodes this one implements (several once fused).
    pub(super) sources: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) struct IrTensor {
    pub(super) name: String,
    /// Logical shape, batch included.
    pub(super) shape: Vec<usize>,
}

pub(super) struct Ir {
    pub(super) tensors: Vec<IrTensor>,
    /// In execution order; `None` where a node was removed or moved.
    pub(super) nodes: Vec<Option<IrNode>>,
    pub(super) input: usize,
    pub(super) output: usize,
}

impl Ir {
    /// Number of readers of each tensor among live nodes (+1 for the graph
    /// output).
    pub(super) fn uses(&self) -> Vec<usize> {
        let mut u = vec![0usize; self.tensors.len()];
        for n in self.nodes.iter().flatten() {
            for &i in &n.inputs {
                u[i] += 1;
            }
        }
        u[self.output] += 1;
        u
    }

    /// Index of the node producing each tensor.
    pub(super) fn producers(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.tensors.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(n) = n {
                p[n.output] = Some(i);
            }
        }
        p
    }

    /// Drops every node the graph output does not depend on.
    pub(super) fn eliminate_dead_code(&mut self) {
        let mut needed = vec![false; self.tensors.len()];
        needed[self.output] = true;
        for slot in self.nodes.iter_mut().rev() {
            let keep = matches!(slot, Some(n) if needed[n.output]);
            if keep {
                for &i in &slot.as_ref().unwrap().inputs {
                    needed[i] = true;
                }
            } else {
                *slot = None;
            }
        }
    }
}
