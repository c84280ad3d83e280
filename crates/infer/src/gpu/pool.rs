//! cuDNN pooling: the descriptors of a [`PoolCall`] and `cudnnPoolingForward`.

use std::ffi::c_void;

use cudarc::cudnn::{result as dr, sys as ds};

use super::calls::{DType, PoolCall, PoolMode};
use super::device::err;
use super::dnn::{ci, tdesc, Dnn, PDesc, TDesc};
use crate::error::Result;

/// Descriptors of one pooling call.
pub(crate) struct PreparedPool {
    pub(crate) x: TDesc,
    pub(crate) y: TDesc,
    pub(crate) pool: PDesc,
}

/// Builds the descriptors of `p`.
pub(crate) fn prepare_pool(p: &PoolCall, dtype: DType) -> Result<PreparedPool> {
    let pool = PDesc(dr::create_pooling_descriptor().map_err(err("cudnnCreatePoolingDescriptor"))?);
    let mode = match p.mode {
        PoolMode::Max => ds::cudnnPoolingMode_t::CUDNN_POOLING_MAX,
        PoolMode::AvgIncludePad => {
            ds::cudnnPoolingMode_t::CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
        }
        PoolMode::AvgExcludePad => {
            ds::cudnnPoolingMode_t::CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING
        }
    };
    let window = [ci(p.window[0])?, ci(p.window[1])?];
    let pads = [ci(p.pad[0])?, ci(p.pad[1])?];
    let strides = [ci(p.stride[0])?, ci(p.stride[1])?];
    // SAFETY: a fresh descriptor; the three arrays hold nb_dims = 2 entries.
    unsafe {
        dr::set_pooling_descriptor(
            pool.0,
            mode,
            ds::cudnnNanPropagation_t::CUDNN_NOT_PROPAGATE_NAN,
            2,
            &window,
            &pads,
            &strides,
        )
    }
    .map_err(err("cudnnSetPoolingNdDescriptor"))?;
    Ok(PreparedPool {
        x: tdesc(&p.x, dtype)?,
        y: tdesc(&p.y, dtype)?,
        pool,
    })
}

impl Dnn {
    /// `cudnnPoolingForward` (alpha 1, beta 0) on the handle's stream.
    ///
    /// # Safety
    /// `x` and `y` must point to device memory of the sizes their descriptors imply.
    pub(crate) unsafe fn pool(&self, p: &PreparedPool, x: u64, y: u64) -> Result<()> {
        let (one, zero) = (1f32, 0f32);
        dr::pooling_forward(
            self.0,
            p.pool.0,
            &one as *const f32 as *const c_void,
            p.x.0,
            x as *const c_void,
            &zero as *const f32 as *const c_void,
            p.y.0,
            y as *mut c_void,
        )
        .map_err(err("cudnnPoolingForward"))
    }
}
