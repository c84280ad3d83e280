//! Load-time preparation of a [`GpuPlan`]'s calls: cuDNN descriptors for every convolution
//! and pooling, and each convolution's algorithm, timed on the real operands.

use std::collections::HashMap;

use cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t;

use super::calls::{Call, ConvCall, GpuPlan, KArg, KernelCall};
use super::device::DevBuf;
use super::dnn::{self, ConvPtrs, Dnn, PreparedConv};
use super::kernels::Ptrs;
use super::launch::grid_for;
use super::pool::{self, PreparedPool};
use crate::error::{Error, Result};

/// Largest workspace `cudnnFindConvolutionForwardAlgorithmEx` may try (the chosen algorithms'
/// maximum is then allocated once and shared by every convolution).
const FIND_WORKSPACE_BYTES: usize = 256 << 20;

/// Per-call state built at load.
pub(crate) enum Prepared {
    /// A convolution's descriptors and algorithm.
    Conv(PreparedConv),
    /// A pooling call's descriptors.
    Pool(PreparedPool),
    /// Nothing to prepare (GEMM, kernels).
    Other,
}

/// The upload call for the first `n` input values only.
pub(crate) fn partial(upload: &KernelCall, n: usize) -> KernelCall {
    let mut call = upload.clone();
    call.args[2] = KArg::U32(n as u32);
    call.grid = grid_for(n);
    call
}

pub(crate) fn conv_ptrs(v: &ConvCall, p: &Ptrs, zero_bias: Option<&DevBuf>) -> ConvPtrs {
    let y = p.arena + v.y.offset as u64;
    ConvPtrs {
        x: p.arena + v.x.offset as u64,
        w: p.weights[v.w.weight.0],
        z: v.z.map_or(y, |z| p.arena + z.offset as u64),
        bias: v
            .bias
            .map_or_else(|| zero_bias.map_or(0, DevBuf::ptr), |b| p.weights[b.0]),
        y,
    }
}

/// Descriptors for every call and the algorithm of every convolution (timed on the real
/// operands), returning the shared workspace size. Same-shape convolutions share a choice.
pub(crate) fn prepare(
    gp: &GpuPlan,
    dnn: &Dnn,
    ptrs: &Ptrs,
    zero_bias: Option<&DevBuf>,
    stream: cudarc::driver::sys::CUstream,
) -> Result<(Vec<Prepared>, usize)> {
    let find_ws = DevBuf::zeroed(FIND_WORKSPACE_BYTES, stream)?;
    let mut chosen: HashMap<String, (cudnnConvolutionFwdAlgo_t, usize, bool)> = HashMap::new();
    let mut ws_max = 0;
    let mut out = Vec::with_capacity(gp.calls.len());
    for c in &gp.calls {
        out.push(match &c.call {
            Call::Conv(v) => {
                let mut p = dnn::prepare_conv(v, gp.dtype)?;
                // Same shapes, layout, geometry and fusion: same algorithm.
                let key = format!(
                    "{:?}{:?}{:?}{:?}{:?}{:?}{}{}{:?}{}",
                    v.x.dims,
                    v.x.strides,
                    v.w.dims,
                    v.pad,
                    v.stride,
                    v.dilation,
                    v.groups,
                    v.relu,
                    v.algo,
                    v.z.is_some()
                );
                let a = conv_ptrs(v, ptrs, zero_bias);
                if let Some(&(algo, bytes, fused)) = chosen.get(&key) {
                    (p.algo, p.workspace, p.fused) = (algo, bytes, fused);
                } else {
                    // SAFETY: load time, no capture; operands and workspace sized by the plan.
                    unsafe {
                        dnn.choose_algo(
                            &mut p,
                            v.algo,
                            v.z.is_some(),
                            a,
                            find_ws.ptr(),
                            find_ws.bytes(),
                        )
                    }
                    .map_err(|e| Error::Backend(format!("step {}: {e}", c.step)))?;
                    chosen.insert(key, (p.algo, p.workspace, p.fused));
                }
                ws_max = ws_max.max(p.workspace);
                Prepared::Conv(p)
            }
            Call::Pool(v) => Prepared::Pool(pool::prepare_pool(v, gp.dtype)?),
            _ => Prepared::Other,
        });
    }
    Ok((out, ws_max))
}
