//! Green contexts: a fixed share of the GPU's SMs for the gather kernel, so that it stays
//! resident beside inference without taking the SMs inference needs (and so that all of its
//! blocks are co-resident inside the partition).
//!
//! A green context is a view of the device's primary context restricted to some SMs. Work
//! runs with its resources when launched on one of its streams; modules loaded through the
//! primary context (cudarc's [`CudaContext`]) launch there too (the stream's context is the
//! primary one: `cuStreamGetCtx_v2`). Creation costs about 1 ms (0.8-1.0 ms measured).

use std::mem::MaybeUninit;
use std::sync::Arc;

use cudarc::driver::{sys, CudaContext, CudaStream, DriverError};

/// A `CUdevResource` with room behind it: later drivers append fields to the struct (13.1 adds
/// `nextResource`), and a driver newer than the headers must not write past our value.
#[repr(C)]
struct Resource {
    res: sys::CUdevResource,
    _slack: [u8; 64],
}

impl Resource {
    fn zeroed() -> Self {
        // SAFETY: a plain C struct of integers, byte arrays and a union of those; all-zero is
        // a valid value (type 0 = invalid, which every call below overwrites).
        unsafe { MaybeUninit::zeroed().assume_init() }
    }

    fn sm_count(&self) -> u32 {
        // SAFETY: only read after the driver filled an SM resource (type SM), whose union
        // member is `sm`.
        unsafe { self.res.__bindgen_anon_1.sm.smCount }
    }
}

/// The green context itself, shared by the partition and its streams (a stream must not
/// outlive its context).
#[derive(Debug)]
struct Inner {
    ctx: Arc<CudaContext>,
    green: sys::CUgreenCtx,
}

// SAFETY: the handle is only passed to thread-safe driver calls (stream creation, destroy);
// the partition never makes the green context current on a thread.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: created in `GreenPartition::new`; every stream holding an `Arc<Inner>` is
        // gone, so nothing uses it any more.
        let r = unsafe { sys::cuGreenCtxDestroy(self.green) }.result();
        self.ctx.record_err(r);
    }
}

/// A green context holding at least `sms` SMs of the device, with streams created on it.
/// The driver rounds the request up to its partition granularity (8 SMs on an H100; asked
/// 66, got 72): [`GreenPartition::sm_count`] reports what was granted.
#[derive(Debug, Clone)]
pub struct GreenPartition {
    inner: Arc<Inner>,
    sms: u32,
}

impl GreenPartition {
    /// Splits `sms` SMs (rounded up) off the device of `ctx` into a new green context.
    /// Fails with `CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION` when the device cannot give that
    /// many, and with the driver's error otherwise (e.g. a GPU older than compute 9.0 or a
    /// driver older than 12.4 answers `CUDA_ERROR_NOT_SUPPORTED`).
    pub fn new(ctx: &Arc<CudaContext>, sms: u32) -> Result<Self, DriverError> {
        if sms == 0 {
            return Err(DriverError(sys::CUresult::CUDA_ERROR_INVALID_VALUE));
        }
        ctx.bind_to_thread()?;
        let dev = ctx.cu_device();
        let mut all = Resource::zeroed();
        // SAFETY: valid out-pointer with slack; `dev` is the context's device.
        unsafe {
            sys::cuDeviceGetDevResource(
                dev,
                &mut all.res,
                sys::CUdevResourceType::CU_DEV_RESOURCE_TYPE_SM,
            )
        }
        .result()?;
        let mut group = Resource::zeroed();
        let mut rest = Resource::zeroed();
        let mut n_groups: u32 = 1;
        // SAFETY: one result slot for one requested group; input filled above.
        unsafe {
            sys::cuDevSmResourceSplitByCount(
                &mut group.res,
                &mut n_groups,
                &all.res,
                &mut rest.res,
                0,
                sms,
            )
        }
        .result()?;
        if n_groups != 1 || group.sm_count() < sms {
            return Err(DriverError(
                sys::CUresult::CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION,
            ));
        }
        let granted = group.sm_count();
        let mut desc: sys::CUdevResourceDesc = std::ptr::null_mut();
        // SAFETY: one resource, filled by the split. The descriptor is owned by the driver
        // (there is no destroy call for it).
        unsafe { sys::cuDevResourceGenerateDesc(&mut desc, &mut group.res, 1) }.result()?;
        let mut green: sys::CUgreenCtx = std::ptr::null_mut();
        // SAFETY: descriptor from above, device of `ctx`. DEFAULT_STREAM is required by the
        // driver for a usable green context.
        unsafe {
            sys::cuGreenCtxCreate(
                &mut green,
                desc,
                dev,
                sys::CUgreenCtxCreate_flags::CU_GREEN_CTX_DEFAULT_STREAM as u32,
            )
        }
        .result()?;
        Ok(GreenPartition {
            inner: Arc::new(Inner {
                ctx: ctx.clone(),
                green,
            }),
            sms: granted,
        })
    }

    /// SMs actually granted (≥ the request).
    pub fn sm_count(&self) -> u32 {
        self.sms
    }

    /// The raw green context (for driver calls this module does not wrap).
    pub fn cu_green_ctx(&self) -> sys::CUgreenCtx {
        self.inner.green
    }

    /// A new non-blocking stream whose work runs on this partition's SMs.
    pub fn new_stream(&self) -> Result<GreenStream, DriverError> {
        self.new_stream_with_priority(0)
    }

    /// As [`GreenPartition::new_stream`], with a scheduling priority (lower is higher;
    /// clamped by the driver to its range).
    pub fn new_stream_with_priority(&self, priority: i32) -> Result<GreenStream, DriverError> {
        let mut stream: sys::CUstream = std::ptr::null_mut();
        // SAFETY: valid out-pointer, live green context; NON_BLOCKING is mandatory here.
        unsafe {
            sys::cuGreenCtxStreamCreate(
                &mut stream,
                self.inner.green,
                sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32,
                priority,
            )
        }
        .result()?;
        Ok(GreenStream {
            stream,
            part: self.inner.clone(),
        })
    }
}

/// A stream of a green context, destroyed on drop (it keeps the green context alive).
#[derive(Debug)]
pub struct GreenStream {
    stream: sys::CUstream,
    part: Arc<Inner>,
}

// SAFETY: CUDA streams may be used from any thread; the handle is destroyed only in Drop.
unsafe impl Send for GreenStream {}
// SAFETY: as above; all stream operations are thread-safe driver calls.
unsafe impl Sync for GreenStream {}

impl GreenStream {
    /// The raw stream handle (for `cuLaunchKernel`, `cuEventRecord`, ...).
    pub fn cu_stream(&self) -> sys::CUstream {
        self.stream
    }

    /// This stream as a cudarc stream of the primary context, for cudarc's launch builder
    /// and copies. The wrapper does not own the stream.
    ///
    /// # Safety
    ///
    /// The returned `Arc` (and every clone of it) must be dropped before this `GreenStream`.
    pub unsafe fn as_cuda_stream(&self) -> Arc<CudaStream> {
        // SAFETY: the stream belongs to the primary context of `ctx` (green contexts are views
        // of it) and outlives the wrapper by the caller's contract.
        unsafe { self.part.ctx.wrap_borrowed_stream(self.stream) }
    }

    /// Blocks until all work on the stream has completed.
    pub fn synchronize(&self) -> Result<(), DriverError> {
        // SAFETY: live stream handle.
        unsafe { sys::cuStreamSynchronize(self.stream) }.result()
    }
}

impl Drop for GreenStream {
    fn drop(&mut self) {
        // SAFETY: created by cuGreenCtxStreamCreate, destroyed only here; the green context is
        // still alive (we hold an Arc to it).
        let r = unsafe { sys::cuStreamDestroy_v2(self.stream) }.result();
        self.part.ctx.record_err(r);
    }
}
