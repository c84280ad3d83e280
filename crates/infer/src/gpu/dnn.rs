//! cuDNN side of the executor: descriptors built once per call at load, algorithm choice,
//! and the convolution calls the graph records (pooling is in `pool`). Raw cudarc `result` /
//! `sys` functions over device addresses, because operands are offsets into one arena.

use std::ffi::{c_int, c_void};

use cudarc::cudnn::{result as dr, sys as ds};

use super::calls::{AlgoRule, ConvCall, DType, TensorDesc};
use super::device::err;
use crate::error::{Error, Result};

pub(crate) fn ci(v: usize) -> Result<c_int> {
    c_int::try_from(v).map_err(|_| Error::Backend(format!("gpu: {v} does not fit a cuDNN int")))
}

fn ci4(v: [usize; 4]) -> Result<[c_int; 4]> {
    Ok([ci(v[0])?, ci(v[1])?, ci(v[2])?, ci(v[3])?])
}

fn data_type(d: DType) -> ds::cudnnDataType_t {
    match d {
        DType::F32 => ds::cudnnDataType_t::CUDNN_DATA_FLOAT,
        DType::F16 => ds::cudnnDataType_t::CUDNN_DATA_HALF,
    }
}

/// A cuDNN handle bound to the engine's stream.
pub(crate) struct Dnn(pub(crate) ds::cudnnHandle_t);

impl Dnn {
    /// Creates the handle and binds it to `stream` (the capture stream).
    pub(crate) fn new(stream: *mut c_void) -> Result<Dnn> {
        let h = dr::create_handle().map_err(err("cudnnCreate"))?;
        let dnn = Dnn(h);
        // SAFETY: a live stream of the current context; the handle is new, nothing in flight.
        unsafe { dnn.set_stream(stream) }?;
        Ok(dnn)
    }

    /// Binds the handle to `stream` (a graph is recorded on another stream).
    ///
    /// # Safety
    /// `stream` is a live stream of the handle's device; no call of the handle is in flight.
    pub(crate) unsafe fn set_stream(&self, stream: *mut c_void) -> Result<()> {
        // SAFETY: the caller's contract; the handle is live (owned).
        unsafe { dr::set_stream(self.0, stream as _) }.map_err(err("cudnnSetStream"))
    }
}

impl Drop for Dnn {
    fn drop(&mut self) {
        // SAFETY: created in Dnn::new, destroyed once.
        let _ = unsafe { dr::destroy_handle(self.0) };
    }
}

/// Owns one descriptor and destroys it with `$destroy`.
macro_rules! owned_desc {
    ($name:ident, $ty:ty, $destroy:path) => {
        pub(crate) struct $name(pub(crate) $ty);
        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: created by the matching cudnnCreate*, destroyed once here.
                let _ = unsafe { $destroy(self.0) };
            }
        }
    };
}
owned_desc!(
    TDesc,
    ds::cudnnTensorDescriptor_t,
    ds::cudnnDestroyTensorDescriptor
);
owned_desc!(
    FDesc,
    ds::cudnnFilterDescriptor_t,
    ds::cudnnDestroyFilterDescriptor
);
owned_desc!(
    CDesc,
    ds::cudnnConvolutionDescriptor_t,
    ds::cudnnDestroyConvolutionDescriptor
);
owned_desc!(
    ADesc,
    ds::cudnnActivationDescriptor_t,
    ds::cudnnDestroyActivationDescriptor
);
owned_desc!(
    PDesc,
    ds::cudnnPoolingDescriptor_t,
    ds::cudnnDestroyPoolingDescriptor
);

fn tensor(dims: [usize; 4], strides: [usize; 4], dtype: DType) -> Result<TDesc> {
    let d = TDesc(dr::create_tensor_descriptor().map_err(err("cudnnCreateTensorDescriptor"))?);
    let (dims, st) = (ci4(dims)?, ci4(strides)?);
    // SAFETY: a fresh descriptor; dims and strides describe a dense NCHW or NHWC tensor.
    unsafe { dr::set_tensor4d_descriptor_ex(d.0, data_type(dtype), dims, st) }
        .map_err(err("cudnnSetTensor4dDescriptorEx"))?;
    Ok(d)
}

pub(crate) fn tdesc(t: &TensorDesc, dtype: DType) -> Result<TDesc> {
    tensor(t.dims, t.strides, dtype)
}

/// Descriptors and chosen algorithm of one fused convolution.
pub(crate) struct PreparedConv {
    pub(crate) x: TDesc,
    pub(crate) w: FDesc,
    pub(crate) y: TDesc,
    /// Residual descriptor (`y`'s twin when the call has none).
    pub(crate) z: TDesc,
    pub(crate) bias: TDesc,
    pub(crate) conv: CDesc,
    pub(crate) act: ADesc,
    pub(crate) algo: ds::cudnnConvolutionFwdAlgo_t,
    pub(crate) workspace: usize,
    /// The fused call works; otherwise ConvolutionForward + the call's epilogue kernel.
    pub(crate) fused: bool,
}

/// Builds the descriptors of `c` (the algorithm is chosen by `choose_algo`).
pub(crate) fn prepare_conv(c: &ConvCall, dtype: DType) -> Result<PreparedConv> {
    let w = FDesc(dr::create_filter_descriptor().map_err(err("cudnnCreateFilterDescriptor"))?);
    let format = if c.w.nhwc {
        ds::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC
    } else {
        ds::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW
    };
    let wd = ci4(c.w.dims)?;
    // SAFETY: a fresh descriptor.
    unsafe { dr::set_filter4d_descriptor(w.0, data_type(dtype), format, wd) }
        .map_err(err("cudnnSetFilter4dDescriptor"))?;
    let conv = CDesc(
        dr::create_convolution_descriptor().map_err(err("cudnnCreateConvolutionDescriptor"))?,
    );
    let math = if c.tensor_ops {
        ds::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
    } else {
        ds::cudnnMathType_t::CUDNN_FMA_MATH
    };
    // SAFETY: a fresh descriptor. Compute type FLOAT in both precisions: fp16 I/O with f32
    // accumulation (cuDNN's PSEUDO_HALF_CONFIG), like the reference executor.
    unsafe {
        dr::set_convolution2d_descriptor(
            conv.0,
            ci(c.pad[0])?,
            ci(c.pad[1])?,
            ci(c.stride[0])?,
            ci(c.stride[1])?,
            ci(c.dilation[0])?,
            ci(c.dilation[1])?,
            ds::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
            ds::cudnnDataType_t::CUDNN_DATA_FLOAT,
        )
        .map_err(err("cudnnSetConvolution2dDescriptor"))?;
        dr::set_convolution_group_count(conv.0, ci(c.groups)?)
            .map_err(err("cudnnSetConvolutionGroupCount"))?;
        dr::set_convolution_math_type(conv.0, math).map_err(err("cudnnSetConvolutionMathType"))?;
    }
    let act =
        ADesc(dr::create_activation_descriptor().map_err(err("cudnnCreateActivationDescriptor"))?);
    let mode = if c.relu {
        ds::cudnnActivationMode_t::CUDNN_ACTIVATION_RELU
    } else {
        ds::cudnnActivationMode_t::CUDNN_ACTIVATION_IDENTITY
    };
    // SAFETY: a fresh descriptor.
    unsafe {
        dr::set_activation_descriptor(
            act.0,
            mode,
            ds::cudnnNanPropagation_t::CUDNN_NOT_PROPAGATE_NAN,
            0.0,
        )
    }
    .map_err(err("cudnnSetActivationDescriptor"))?;
    let k = c.y.dims[1];
    Ok(PreparedConv {
        x: tdesc(&c.x, dtype)?,
        y: tdesc(&c.y, dtype)?,
        z: tdesc(c.z.as_ref().unwrap_or(&c.y), dtype)?,
        bias: tensor([1, k, 1, 1], [k, 1, 1, 1], dtype)?,
        w,
        conv,
        act,
        algo: ds::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
        workspace: 0,
        fused: true,
    })
}

/// Device addresses of one convolution's operands.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvPtrs {
    pub(crate) x: u64,
    pub(crate) w: u64,
    pub(crate) z: u64,
    pub(crate) bias: u64,
    pub(crate) y: u64,
}

impl Dnn {
    /// The convolution as `p` was prepared: if `p.fused`, the fused call
    /// `y = act(conv(x, w) + alpha2·z + bias)`; otherwise `cudnnConvolutionForward`
    /// (alpha 1, beta 0) into `y`, the fallback the caller follows with the epilogue kernel.
    /// On the handle's stream.
    ///
    /// # Safety
    /// Every address must point to device memory of the size its descriptor implies, and
    /// `ws` to at least `p.workspace` bytes.
    pub(crate) unsafe fn conv(
        &self,
        p: &PreparedConv,
        residual: bool,
        a: ConvPtrs,
        ws: u64,
    ) -> Result<()> {
        let (one, zero) = (1f32, 0f32);
        if !p.fused {
            return dr::convolution_forward(
                self.0,
                &one as *const f32 as *const c_void,
                p.x.0,
                a.x as *const c_void,
                p.w.0,
                a.w as *const c_void,
                p.conv.0,
                p.algo,
                ws as *mut c_void,
                p.workspace,
                &zero as *const f32 as *const c_void,
                p.y.0,
                a.y as *mut c_void,
            )
            .map_err(err("cudnnConvolutionForward"));
        }
        // No residual: z aliases y with alpha2 = 0, as cuDNN documents for this call.
        let alpha2 = if residual { one } else { zero };
        dr::convolution_bias_activation_forward(
            self.0,
            &one as *const f32 as *const c_void,
            p.x.0,
            a.x as *const c_void,
            p.w.0,
            a.w as *const c_void,
            p.conv.0,
            p.algo,
            ws as *mut c_void,
            p.workspace,
            &alpha2 as *const f32 as *const c_void,
            p.z.0,
            a.z as *const c_void,
            p.bias.0,
            a.bias as *const c_void,
            p.act.0,
            p.y.0,
            a.y as *mut c_void,
        )
        .map_err(err("cudnnConvolutionBiasActivationForward"))
    }

    /// Chooses `p`'s algorithm: `cudnnFindConvolutionForwardAlgorithmEx` (timed on the real
    /// operands, workspace up to `ws_bytes` at `ws`), then the fastest candidate allowed by
    /// `rule` that the fused call accepts in an eager trial run (the fused call supports fewer
    /// algorithm/layout combinations than the plain convolution Find times). If it accepts
    /// none, the fastest plain `cudnnConvolutionForward` that runs, with `p.fused = false`.
    ///
    /// # Safety
    /// As for [`conv`](Dnn::conv), with `ws` holding `ws_bytes`; not during stream capture.
    pub(crate) unsafe fn choose_algo(
        &self,
        p: &mut PreparedConv,
        rule: AlgoRule,
        residual: bool,
        a: ConvPtrs,
        ws: u64,
        ws_bytes: usize,
    ) -> Result<()> {
        const N: usize = 8; // CUDNN_CONVOLUTION_FWD_ALGO_COUNT
        let mut perf: [std::mem::MaybeUninit<ds::cudnnConvolutionFwdAlgoPerf_t>; N] =
            [std::mem::MaybeUninit::zeroed(); N];
        let mut count: c_int = 0;
        ds::cudnnFindConvolutionForwardAlgorithmEx(
            self.0,
            p.x.0,
            a.x as *const c_void,
            p.w.0,
            a.w as *const c_void,
            p.conv.0,
            p.y.0,
            a.y as *mut c_void,
            N as c_int,
            &mut count,
            perf.as_mut_ptr() as *mut ds::cudnnConvolutionFwdAlgoPerf_t,
            ws as *mut c_void,
            ws_bytes,
        )
        .result()
        .map_err(err("cudnnFindConvolutionForwardAlgorithmEx"))?;
        let precomp =
            ds::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
        // Find returns its results fastest first.
        let found: Vec<(ds::cudnnConvolutionFwdAlgo_t, usize)> = perf
            [..count.clamp(0, N as c_int) as usize]
            .iter()
            .map(|r| r.assume_init())
            .filter(|r| r.status == ds::cudnnStatus_t::CUDNN_STATUS_SUCCESS && r.memory <= ws_bytes)
            .map(|r| (r.algo, r.memory))
            .collect();
        let mut fused: Vec<_> = found
            .iter()
            .copied()
            .filter(|&(algo, _)| rule == AlgoRule::Fastest || algo == precomp)
            .collect();
        if fused.is_empty() && rule == AlgoRule::ImplicitPrecompGemm {
            let mut bytes = 0usize;
            ds::cudnnGetConvolutionForwardWorkspaceSize(
                self.0, p.x.0, p.w.0, p.conv.0, p.y.0, precomp, &mut bytes,
            )
            .result()
            .map_err(err("cudnnGetConvolutionForwardWorkspaceSize"))?;
            if bytes <= ws_bytes {
                fused.push((precomp, bytes));
            }
        }
        // Fused candidates first; if cuDNN accepts none for this shape/layout, plain
        // convolution + epilogue kernel.
        let candidates = fused
            .into_iter()
            .map(|(algo, bytes)| (algo, bytes, true))
            .chain(found.into_iter().map(|(algo, bytes)| (algo, bytes, false)));
        let mut last = None;
        for (algo, bytes, fused) in candidates {
            (p.algo, p.workspace, p.fused) = (algo, bytes, fused);
            match self.conv(p, residual, a, ws) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::Backend("gpu: cuDNN found no forward algorithm for a convolution".into())
        }))
    }
}
