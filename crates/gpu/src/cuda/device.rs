//! GPU discovery that is safe to run anywhere: on a machine without libcuda it answers
//! [`NoGpu::NoDriver`] instead of panicking (cudarc's loader panics when a driver call is made
//! without the library).

use std::ffi::{c_char, c_int};
use std::fmt;
use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext, DriverError};

/// One GPU as the driver reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuInfo {
    /// cudarc / CUDA device ordinal.
    pub ordinal: usize,
    /// Marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// Compute capability, major part (9 on an H100).
    pub cc_major: u32,
    /// Compute capability, minor part.
    pub cc_minor: u32,
    /// Device memory in bytes.
    pub total_mem: u64,
    /// PCI bus id, e.g. "0000:3B:00.0".
    pub pci_bus_id: String,
}

impl GpuInfo {
    /// The `sm_XY` architecture number NVRTC compiles for (e.g. 90).
    pub fn arch(&self) -> u32 {
        self.cc_major * 10 + self.cc_minor
    }
}

impl fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gpu{}: {} ({}), {} SMs, {:.1} GiB, compute capability {}.{}",
            self.ordinal,
            self.name,
            self.pci_bus_id,
            self.sm_count,
            self.total_mem as f64 / (1u64 << 30) as f64,
            self.cc_major,
            self.cc_minor
        )
    }
}

/// Why there is no GPU to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoGpu {
    /// The driver library could not be loaded (the text says which).
    NoDriver(String),
    /// The driver is there but `cuInit` or a device query failed.
    InitFailed(String),
    /// The driver works and reports no device.
    NoDevices,
}

impl fmt::Display for NoGpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoGpu::NoDriver(why) => write!(f, "no CUDA driver ({why})"),
            NoGpu::InitFailed(why) => write!(f, "CUDA driver failed to initialise ({why})"),
            NoGpu::NoDevices => f.write_str("CUDA driver reports no GPU"),
        }
    }
}

impl std::error::Error for NoGpu {}

fn init_failed(what: &str) -> impl Fn(DriverError) -> NoGpu + '_ {
    move |e| NoGpu::InitFailed(format!("{what}: {e}"))
}

fn attribute(dev: sys::CUdevice, attr: sys::CUdevice_attribute) -> Result<u32, NoGpu> {
    // SAFETY: `dev` comes from cuDeviceGet after a successful cuInit.
    let v = unsafe { result::device::get_attribute(dev, attr) }
        .map_err(init_failed("cuDeviceGetAttribute"))?;
    Ok(v.max(0) as u32)
}

fn pci_bus_id(dev: sys::CUdevice) -> Result<String, NoGpu> {
    // "dddd:bb:dd.f" plus NUL fits 13 bytes; the driver documents 13 as enough.
    let mut buf = [0 as c_char; 32];
    // SAFETY: the buffer and its length match; the driver writes a NUL-terminated string.
    unsafe { sys::cuDeviceGetPCIBusId(buf.as_mut_ptr(), buf.len() as c_int, dev) }
        .result()
        .map_err(init_failed("cuDeviceGetPCIBusId"))?;
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn query(ordinal: usize) -> Result<GpuInfo, NoGpu> {
    use sys::CUdevice_attribute::*;
    let dev = result::device::get(ordinal as c_int).map_err(init_failed("cuDeviceGet"))?;
    let name = result::device::get_name(dev).map_err(init_failed("cuDeviceGetName"))?;
    // SAFETY: as above, a valid device handle.
    let total_mem =
        unsafe { result::device::total_mem(dev) }.map_err(init_failed("cuDeviceTotalMem"))?;
    Ok(GpuInfo {
        ordinal,
        name,
        sm_count: attribute(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
        cc_major: attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
        cc_minor: attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        total_mem: total_mem as u64,
        pci_bus_id: pci_bus_id(dev)?,
    })
}

/// Whether libcuda can be loaded (cudarc panics on the first driver call otherwise).
fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the candidate names and closes them again.
    unsafe { sys::is_culib_present() }
}

/// Every GPU; never panics when libcuda is absent. Creates no context (a context costs
/// memory and time on each device; callers make one for the GPU they use).
pub fn discover() -> Result<Vec<GpuInfo>, NoGpu> {
    if !driver_present() {
        return Err(NoGpu::NoDriver("libcuda.so.1 not found".into()));
    }
    result::init().map_err(init_failed("cuInit"))?;
    let count = result::device::get_count().map_err(init_failed("cuDeviceGetCount"))?;
    if count <= 0 {
        return Err(NoGpu::NoDevices);
    }
    (0..count as usize).map(query).collect()
}

/// The primary context of GPU `ordinal` through a cudarc wrapper with event tracking off
/// ([`untracked`]). Every context netml uses comes from here or goes through [`untracked`].
pub fn context(ordinal: usize) -> Result<Arc<CudaContext>, DriverError> {
    let ctx = CudaContext::new(ordinal)?;
    untracked(&ctx);
    Ok(ctx)
}

/// Turns cudarc's event tracking off on this wrapper of a context (each `CudaContext::new`
/// makes a new wrapper, with tracking on).
///
/// With tracking on, the wrapper's first `new_stream` calls `cuCtxSynchronize`, which never
/// returns while a resident kernel runs, and every `CudaSlice` records and waits on events of
/// the streams that use it. netml orders its streams itself (raw allocations, one stream per
/// user, explicit stream synchronisation), so it needs neither.
pub fn untracked(ctx: &Arc<CudaContext>) {
    // SAFETY: cudarc's contract for this call is that the user orders work between streams
    // itself: netml's GPU code uses raw allocations on one stream each, and its few
    // `CudaSlice`s are used on the stream that made them only.
    unsafe { ctx.disable_event_tracking() };
}

/// [`discover`] plus one log line per GPU, or one warning with the reason and "using the host
/// ingest path" (then the list is empty).
pub fn discover_logged() -> Vec<GpuInfo> {
    match discover() {
        Ok(gpus) => {
            for g in &gpus {
                tracing::info!("{g}");
            }
            gpus
        }
        Err(e) => {
            tracing::warn!("{e}; using the host ingest path");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_gpu_messages_are_one_line() {
        for e in [
            NoGpu::NoDriver("libcuda.so.1 not found".into()),
            NoGpu::InitFailed("cuInit: CUDA_ERROR_NO_DEVICE".into()),
            NoGpu::NoDevices,
        ] {
            let s = e.to_string();
            assert!(!s.contains('\n') && !s.is_empty(), "{s:?}");
        }
        assert_eq!(
            NoGpu::NoDriver("libcuda.so.1 not found".into()).to_string(),
            "no CUDA driver (libcuda.so.1 not found)"
        );
    }

    /// Without libcuda (CI, the dev machine) discovery must answer NoDriver, not panic in
    /// cudarc's loader; with it, it must answer without panicking either way.
    #[test]
    fn discover_without_driver_is_no_driver() {
        // SAFETY: only probes whether the library can be loaded; dropped at once.
        let have_driver = ["libcuda.so.1", "libcuda.so"]
            .iter()
            .any(|n| unsafe { libloading::Library::new(*n) }.is_ok());
        let got = std::panic::catch_unwind(discover).expect("discover panicked");
        if have_driver {
            eprintln!("libcuda present: discover() = {got:?}");
            assert!(!matches!(got, Err(NoGpu::NoDriver(_))), "{got:?}");
        } else {
            assert_eq!(got, Err(NoGpu::NoDriver("libcuda.so.1 not found".into())));
            assert!(discover_logged().is_empty());
        }
    }

    #[test]
    fn arch_from_compute_capability() {
        let g = GpuInfo {
            ordinal: 0,
            name: "x".into(),
            sm_count: 132,
            cc_major: 9,
            cc_minor: 0,
            total_mem: 80 << 30,
            pci_bus_id: "0000:3B:00.0".into(),
        };
        assert_eq!(g.arch(), 90);
        assert!(g.to_string().contains("132 SMs"));
    }
}
