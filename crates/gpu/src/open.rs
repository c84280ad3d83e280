//! [`open`]: one entry point for every mode on every target.

use crate::host_modes::open_host;
use crate::ingest::{Ingest, IngestConfig, IngestError, Target};

/// Starts an ingest of `cfg.mode` on `target`: host threads and host slots for
/// [`Target::Host`], the CUDA backend ([`crate::cuda::open`]) for [`Target::Gpu`].
///
/// Configuration errors (no slots, no blocks, slots of 4 GiB or more) and a missing driver or
/// device are refused with [`IngestError::Device`] (the driver is probed first, so a machine
/// without libcuda gets an error, not a panic from the dynamic loader).
pub fn open(cfg: &IngestConfig, target: Target) -> Result<Box<dyn Ingest>, IngestError> {
    match target {
        Target::Host => open_host(cfg),
        Target::Gpu(ordinal) => {
            let gpus = crate::cuda::discover().map_err(|e| IngestError::Device(e.to_string()))?;
            if ordinal >= gpus.len() {
                return Err(IngestError::Device(format!(
                    "no GPU {ordinal} ({} found)",
                    gpus.len()
                )));
            }
            crate::cuda::open(cfg, ordinal)
        }
    }
}

/// Makes `len` bytes at `ptr` readable by `target`'s gathers: registers them with the driver
/// for [`Target::Gpu`] (fragment sources must lie in registered memory there), nothing on
/// the host. Keep the returned value until every ingest reading the range is dropped.
///
/// # Safety
/// `ptr..ptr + len` must stay mapped, and not be registered by anyone else, until the returned
/// value is dropped.
pub unsafe fn register_sources(
    target: Target,
    ptr: *mut u8,
    len: usize,
) -> Result<Option<crate::cuda::Registered>, IngestError> {
    match target {
        Target::Host => Ok(None),
        Target::Gpu(ordinal) => {
            crate::cuda::discover().map_err(|e| IngestError::Device(e.to_string()))?;
            let ctx = crate::cuda::context(ordinal)
                .map_err(|e| IngestError::Device(format!("opening GPU {ordinal}: {e:?}")))?;
            // SAFETY: forwarded from the caller.
            let reg = unsafe { crate::cuda::Registered::new(&ctx, ptr, len) }
                .map_err(|e| IngestError::Device(format!("registering sources: {e:?}")))?;
            Ok(Some(reg))
        }
    }
}
