//! Host memory the GPU reads and writes directly: registered regions (the mbuf pools, whose
//! payload pointers go to the gather kernel as they are) and mapped pinned allocations (the
//! doorbell ring and descriptor pools).
//!
//! Both use the PORTABLE flag, so every context on every GPU sees them (green contexts and
//! the inference context included), and both rely on UVA: the device address is the host
//! address, which is what lets fragment pointers travel unchanged. [`Registered::new`]
//! checks that rather than assuming it.

use std::ffi::c_void;
use std::sync::Arc;

use cudarc::driver::{sys, CudaContext, DriverError};

fn device_pointer(host: *mut c_void) -> Result<u64, DriverError> {
    let mut dptr: sys::CUdeviceptr = 0;
    // SAFETY: `host` lies in memory registered/allocated with DEVICEMAP; flags must be 0.
    unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dptr, host, 0) }.result()?;
    Ok(dptr)
}

fn invalid_value() -> DriverError {
    DriverError(sys::CUresult::CUDA_ERROR_INVALID_VALUE)
}

/// Host memory registered with the driver (`cuMemHostRegister`, DEVICEMAP | PORTABLE),
/// unregistered on drop. Its device address equals its host address (UVA), checked at
/// registration.
#[derive(Debug)]
pub struct Registered {
    ctx: Arc<CudaContext>,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a registration handle; the memory itself is owned and synchronised by the caller,
// and the driver calls made from it (unregister) are thread safe.
unsafe impl Send for Registered {}
// SAFETY: as above; `&Registered` only exposes addresses.
unsafe impl Sync for Registered {}

impl Registered {
    /// Registers `len` bytes at `ptr`. Registration takes milliseconds per tens of MB
    /// (4.3 ms for 77 MB on the H100 machine): do it once per memory region, at start.
    ///
    /// Fails with the driver's error, or with `CUDA_ERROR_NOT_SUPPORTED` when the device
    /// address differs from the host address (no UVA: fragment pointers could not be passed
    /// as they are).
    ///
    /// # Safety
    ///
    /// `ptr..ptr + len` must be mapped host memory that stays mapped, and is not registered
    /// by anyone else, until the returned value is dropped.
    pub unsafe fn new(
        ctx: &Arc<CudaContext>,
        ptr: *mut u8,
        len: usize,
    ) -> Result<Self, DriverError> {
        if ptr.is_null() || len == 0 {
            return Err(invalid_value());
        }
        ctx.bind_to_thread()?;
        let flags = sys::CU_MEMHOSTREGISTER_DEVICEMAP | sys::CU_MEMHOSTREGISTER_PORTABLE;
        // SAFETY: the caller guarantees the range is mapped and stays so.
        unsafe { sys::cuMemHostRegister_v2(ptr.cast(), len, flags) }.result()?;
        let reg = Registered {
            ctx: ctx.clone(),
            ptr,
            len,
        };
        // On error `reg` drops here and unregisters.
        let dptr = device_pointer(ptr.cast())?;
        if dptr != ptr as u64 {
            return Err(DriverError(sys::CUresult::CUDA_ERROR_NOT_SUPPORTED));
        }
        Ok(reg)
    }

    /// Device address of the start (the host address, under UVA).
    pub fn device_ptr(&self) -> u64 {
        self.ptr as u64
    }

    /// Bytes registered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (empty registrations are refused); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.ctx.record_err(self.ctx.bind_to_thread());
        // SAFETY: `ptr` was registered in `new` and is unregistered only here.
        let r = unsafe { sys::cuMemHostUnregister(self.ptr.cast()) }.result();
        self.ctx.record_err(r);
    }
}

/// Mapped pinned host memory (`cuMemHostAlloc`, DEVICEMAP | PORTABLE), zeroed, 64-byte
/// aligned, freed on drop: for the doorbell ring and descriptor pools, which the host writes
/// and the kernel polls over PCIe.
#[derive(Debug)]
pub struct MappedPinned {
    ctx: Arc<CudaContext>,
    ptr: *mut u8,
    dptr: u64,
    len: usize,
}

// SAFETY: owns its allocation; the caller synchronises access to the bytes (the ring
// protocol does, with fences), and freeing is a thread-safe driver call.
unsafe impl Send for MappedPinned {}
// SAFETY: as above; `&MappedPinned` only exposes addresses.
unsafe impl Sync for MappedPinned {}

impl MappedPinned {
    /// Allocates `len` (> 0) zeroed bytes.
    pub fn new(ctx: &Arc<CudaContext>, len: usize) -> Result<Self, DriverError> {
        if len == 0 {
            return Err(invalid_value());
        }
        ctx.bind_to_thread()?;
        let mut p: *mut c_void = std::ptr::null_mut();
        let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
        // SAFETY: valid out-pointer; the context is current.
        unsafe { sys::cuMemHostAlloc(&mut p, len, flags) }.result()?;
        let mut mem = MappedPinned {
            ctx: ctx.clone(),
            ptr: p.cast(),
            dptr: 0,
            len,
        };
        // The driver hands out page-aligned blocks; the ring layout needs 64 (one cache line
        // per entry), so a violation is a hard error rather than silently misaligned entries.
        if !(mem.ptr as usize).is_multiple_of(64) {
            return Err(invalid_value());
        }
        // SAFETY: `len` bytes were just allocated at `ptr` and nobody else sees them yet.
        unsafe { std::ptr::write_bytes(mem.ptr, 0, len) };
        mem.dptr = device_pointer(p)?;
        Ok(mem)
    }

    /// Host address of the start.
    pub fn host_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Device address of the start (equal to the host address under UVA).
    pub fn device_ptr(&self) -> u64 {
        self.dptr
    }

    /// Bytes allocated.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (empty allocations are refused); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for MappedPinned {
    fn drop(&mut self) {
        self.ctx.record_err(self.ctx.bind_to_thread());
        // SAFETY: allocated by cuMemHostAlloc in `new`, freed only here.
        let r = unsafe { sys::cuMemFreeHost(self.ptr.cast()) }.result();
        self.ctx.record_err(r);
    }
}
