//! Device memory of the GPU modes: the batch slots and the resident kernel's grid control block.
//!
//! Raw `cuMemAlloc` rather than cudarc's `CudaSlice`: a `CudaSlice` records events on the
//! streams that use it and waits on them when dropped, and the resident kernel, which runs
//! forever on its stream, must never be part of that bookkeeping. Everything here is allocated
//! before the resident kernel starts and freed only after it stopped (`cuMemFree` may
//! synchronise the device).

use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext, DriverError};

use crate::IngestError;

/// Driver error of `what` as an [`IngestError`].
pub(crate) fn dev(what: &'static str) -> impl FnOnce(DriverError) -> IngestError {
    move |e| IngestError::Device(format!("{what}: {e}"))
}

/// `len` bytes of zeroed device memory, freed on drop.
#[derive(Debug)]
pub(crate) struct DeviceBuf {
    ctx: Arc<CudaContext>,
    ptr: u64,
}

impl DeviceBuf {
    /// Allocates `len` (> 0) bytes and zeroes them on `stream`, then waits for that stream.
    ///
    /// The zeroing is ordered on the stream of the kernels that use the memory (never the
    /// legacy default stream, which does not order against our non-blocking streams), and
    /// complete when this returns, so copies on other streams see zeroes too. Call it before
    /// a resident kernel runs on `stream` (the wait would otherwise never return).
    pub(crate) fn zeroed(
        ctx: &Arc<CudaContext>,
        len: usize,
        stream: sys::CUstream,
    ) -> Result<Self, DriverError> {
        ctx.bind_to_thread()?;
        // SAFETY: plain allocation in the current context.
        let ptr = unsafe { result::malloc_sync(len) }?;
        let buf = Self {
            ctx: ctx.clone(),
            ptr,
        };
        // SAFETY: `ptr` points at `len` bytes just allocated; `stream` is a live stream of
        // this context (the caller's).
        unsafe {
            result::memset_d8_async(buf.ptr, 0, len, stream)?;
            result::stream::synchronize(stream)?;
        }
        Ok(buf)
    }

    /// Device address.
    pub(crate) fn ptr(&self) -> u64 {
        self.ptr
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        self.ctx.record_err(self.ctx.bind_to_thread());
        // SAFETY: allocated in `zeroed`, freed once; owners drop this only after every kernel
        // and copy that used it finished (or leak it when that cannot be known).
        self.ctx.record_err(unsafe { result::free_sync(self.ptr) });
    }
}

/// The batch slots of one ingest, each `bytes` long.
#[derive(Debug)]
pub(crate) struct Slots {
    bufs: Vec<DeviceBuf>,
    bytes: usize,
}

impl Slots {
    /// Allocates `n` slots of `bytes` bytes (256-byte aligned, as `cuMemAlloc` returns),
    /// zeroed on `stream` ([`DeviceBuf::zeroed`]).
    pub(crate) fn new(
        ctx: &Arc<CudaContext>,
        n: usize,
        bytes: usize,
        stream: sys::CUstream,
    ) -> Result<Self, IngestError> {
        let bufs = (0..n)
            .map(|_| DeviceBuf::zeroed(ctx, bytes, stream))
            .collect::<Result<Vec<_>, _>>()
            .map_err(dev("allocating batch slots"))?;
        Ok(Self { bufs, bytes })
    }

    /// Device address of slot `i`.
    pub(crate) fn ptr(&self, i: usize) -> Option<u64> {
        self.bufs.get(i).map(DeviceBuf::ptr)
    }

    /// Device address of slot `i`, or the ingest error for a bad index.
    pub(crate) fn get(&self, i: usize) -> Result<u64, IngestError> {
        self.ptr(i).ok_or(IngestError::NoSuchSlot(i))
    }

    /// Copies the first `out.len()` bytes of slot `i` to `out` on `stream` and waits for it.
    /// The caller has seen the slot's last batch complete.
    pub(crate) fn read(
        &self,
        ctx: &CudaContext,
        stream: sys::CUstream,
        i: usize,
        out: &mut [u8],
    ) -> Result<(), IngestError> {
        let src = self.get(i)?;
        if out.len() > self.bytes {
            return Err(IngestError::Submit(crate::SubmitError::OutOfBounds {
                fragment: 0,
            }));
        }
        if out.is_empty() {
            return Ok(());
        }
        ctx.bind_to_thread().map_err(dev("binding context"))?;
        // SAFETY: `src` holds at least `out.len()` bytes; `out` is exclusively borrowed until
        // the stream synchronisation below returns.
        unsafe {
            result::memcpy_dtoh_async(out, src, stream).map_err(dev("reading a slot"))?;
            result::stream::synchronize(stream).map_err(dev("reading a slot"))
        }
    }
}
