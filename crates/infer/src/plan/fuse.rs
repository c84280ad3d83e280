//! Fusion: rewrites the IR so one step does what several ONNX nodes did,
//! matching the fused forms cuDNN and cuBLAS execute in one call
//! (`conv + bias + residual + activation`, `gemm + bias + activation`).
//!
//! Every rule moves a producer into its consumer's slot. That is only
//! sound when the consumer is the producer's sole reader (no one else
//! needs the unfused value), and the fused node takes the consumer's
//! position so anything the consumer read that was computed in between (a
//! shortcut branch) is ready.

use super::fold::fold_affine;
use super::ir::{Ir, IrOp};
use super::Activation;

impl IrOp {
    /// The fused activation slot, if the op has one and it is still free.
    fn free_act(&mut self) -> Option<&mut Activation> {
        let slot = match self {
            IrOp::Conv { act, .. }
            | IrOp::Gemm { act, .. }
            | IrOp::ScaleShift { act, .. }
            | IrOp::Add { act } => act,
            _ => return None,
        };
        (*slot == Activation::None).then_some(slot)
    }
}

/// The node producing tensor `t`, if `t` has no reader but the one being
/// fused (graph input: no producer; graph output: counted as a reader).
fn sole_producer(uses: &[usize], producers: &[Option<usize>], t: usize) -> Option<usize> {
    producers[t].filter(|_| uses[t] == 1)
}

impl Ir {
    /// Runs the fusion rules to a fixed point, higher-priority rules first
    /// (one rewrite per round, then the use counts are recomputed).
    pub(super) fn fuse(&mut self) {
        while self.fuse_scale_shift() || self.fuse_residual() || self.fuse_activation() {}
    }

    /// Moves producer `p` into consumer `c`'s slot, taking over its output,
    /// with its op changed in place by `rewrite` (no copy of its weights).
    fn absorb(
        &mut self,
        p: usize,
        c: usize,
        extra_inputs: &[usize],
        rewrite: impl FnOnce(&mut IrOp),
    ) {
        let mut prod = self.nodes[p].take().unwrap();
        let cons = self.nodes[c].take().unwrap();
        rewrite(&mut prod.op);
        prod.output = cons.output;
        prod.inputs.extend_from_slice(extra_inputs);
        prod.sources.extend(cons.sources);
        self.nodes[c] = Some(prod);
    }

    /// Conv/Gemm -> ScaleShift (BatchNorm, bias Add): fold the affine map
    /// into the weights and bias. Only before an activation or residual is
    /// attached, since those come after the affine map.
    fn fuse_scale_shift(&mut self) -> bool {
        let uses = self.uses();
        let prod = self.producers();
        for c in 0..self.nodes.len() {
            let Some(cn) = &self.nodes[c] else { continue };
            let IrOp::ScaleShift { scale, shift, act } = &cn.op else {
                continue;
            };
            let Some(p) = sole_producer(&uses, &prod, cn.inputs[0]) else {
                continue;
            };
            let pn = self.nodes[p].as_ref().unwrap();
            let foldable = matches!(
                pn.op,
                IrOp::Conv {
                    act: Activation::None,
                    residual: false,
                    ..
                } | IrOp::Gemm {
                    act: Activation::None,
                    ..
                }
            );
            if !foldable {
                continue;
            }
            let (scale, shift, act) = (scale.clone(), shift.clone(), *act);
            self.absorb(p, c, &[], |op| match op {
                IrOp::Conv {
                    w,
                    wshape,
                    bias,
                    act: slot,
                    ..
                } => {
                    let per = wshape[1] * wshape[2] * wshape[3];
                    *bias = Some(fold_affine(w, per, bias.as_deref(), &scale, &shift));
                    *slot = act;
                }
                IrOp::Gemm {
                    w,
                    k,
                    bias,
                    act: slot,
                    ..
                } => {
                    *bias = Some(fold_affine(w, *k, bias.as_deref(), &scale, &shift));
                    *slot = act;
                }
                _ => unreachable!("checked foldable above"),
            });
            return true;
        }
        false
    }

    /// Add(conv(x), z) -> conv with residual z.
    fn fuse_residual(&mut self) -> bool {
        let uses = self.uses();
        let prod = self.producers();
        for c in 0..self.nodes.len() {
            let Some(cn) = &self.nodes[c] else { continue };
            let IrOp::Add { act } = cn.op else { continue };
            if cn.inputs[0] == cn.inputs[1] {
                continue; // Add(x, x): x has two reads, nothing to fuse
            }
            // Candidates: operands produced by a plain conv read only here.
            // With two (a projection shortcut), fuse the one computed last:
            // the other is then ready when the fused conv runs.
            let mut best: Option<(usize, usize)> = None; // (producer, operand index)
            for (oi, &t) in cn.inputs.iter().enumerate() {
                let Some(p) = sole_producer(&uses, &prod, t) else {
                    continue;
                };
                let ok = matches!(
                    self.nodes[p].as_ref().unwrap().op,
                    IrOp::Conv {
                        act: Activation::None,
                        residual: false,
                        ..
                    }
                );
                if ok && best.is_none_or(|(bp, _)| p > bp) {
                    best = Some((p, oi));
                }
            }
            let Some((p, oi)) = best else { continue };
            let z = cn.inputs[1 - oi];
            self.absorb(p, c, &[z], |op| {
                if let IrOp::Conv {
                    act: a, residual, ..
                } = op
                {
                    *a = act;
                    *residual = true;
                }
            });
            return true;
        }
        false
    }

    /// Relu/Clip after a step with a free activation slot.
    fn fuse_activation(&mut self) -> bool {
        let uses = self.uses();
        let prod = self.producers();
        for c in 0..self.nodes.len() {
            let Some(cn) = &self.nodes[c] else { continue };
            let IrOp::Act(act) = cn.op else { continue };
            let Some(p) = sole_producer(&uses, &prod, cn.inputs[0]) else {
                continue;
            };
            if self.nodes[p].as_mut().unwrap().op.free_act().is_none() {
                continue;
            }
            self.absorb(p, c, &[], |op| *op.free_act().unwrap() = act);
            return true;
        }
        false
    }
}
