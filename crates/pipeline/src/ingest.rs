//! Opening the ingest stage the configuration asks for: the mode, and a GPU when there is one.

use crate::config::{IngestSection, IngestTarget};
use netml_gpu::{Ingest, IngestConfig, Target};

/// Ring entries of the doorbell (and jobs in flight in the other modes): far more than the
/// slots, so that a batch never waits for an entry.
const RING_ENTRIES: u32 = 64;

/// Where the ingests run and the packet memory registered for it (dropped after them).
pub struct Prepared {
    /// Where every ingest of this pipeline runs.
    pub target: Target,
    /// Packet memory registered with the GPU (empty on the host).
    pub registrations: Vec<netml_gpu::cuda::Registered>,
}

/// Chooses the target and registers the DPDK memory segments with the GPU (so that fragment
/// pointers are valid on the device as they are).
pub fn prepare(cfg: &IngestSection) -> Result<Prepared, String> {
    cfg.mode()?;
    let target = match cfg.target {
        IngestTarget::Host => Target::Host,
        IngestTarget::Gpu => match netml_gpu::cuda::discover() {
            Ok(gpus) if !gpus.is_empty() => Target::Gpu(gpus[0].ordinal),
            Ok(_) => return Err("ingest.target = \"gpu\" but no GPU was found".into()),
            Err(why) => return Err(format!("ingest.target = \"gpu\": {why}")),
        },
        IngestTarget::Auto => match netml_gpu::cuda::discover_logged().first() {
            Some(g) => Target::Gpu(g.ordinal),
            None => Target::Host,
        },
    };
    let registrations = match target {
        Target::Host => Vec::new(),
        Target::Gpu(ordinal) => register_packet_memory(ordinal)?,
    };
    Ok(Prepared {
        target,
        registrations,
    })
}

/// Opens one ingest on `target`: `slots` batch slots of `slot_bytes` (one inference
/// function's, or the whole receiver's when it serves none).
pub fn open(
    cfg: &IngestSection,
    target: Target,
    slots: usize,
    slot_bytes: usize,
) -> Result<Box<dyn Ingest>, String> {
    let mode = cfg.mode()?;
    let blocks = match (cfg.blocks, target) {
        (0, Target::Host) => 1,
        (0, Target::Gpu(_)) => 8,
        (b, _) => b,
    };
    let icfg = IngestConfig {
        mode,
        slots,
        slot_bytes,
        blocks,
        ring_entries: RING_ENTRIES,
    };
    let ingest = netml_gpu::open(&icfg, target)
        .map_err(|e| format!("opening the {mode} ingest on {target}: {e}"))?;
    tracing::info!(
        "ingest: {mode} on {target}, {slots} slots of {slot_bytes} B, {blocks} gather blocks"
    );
    Ok(ingest)
}

/// Registers every DPDK memory segment (where all mbufs live) with GPU `ordinal`.
fn register_packet_memory(ordinal: usize) -> Result<Vec<netml_gpu::cuda::Registered>, String> {
    let ctx =
        cudarc::driver::CudaContext::new(ordinal).map_err(|e| format!("GPU {ordinal}: {e:?}"))?;
    let segments = netml_dpdk::memory_segments().map_err(|e| format!("memory segments: {e}"))?;
    let mut out = Vec::with_capacity(segments.len());
    for s in segments {
        // SAFETY: DPDK memory segments stay mapped until the EAL is cleaned up, which happens
        // after the pipeline (and with it these registrations) is dropped.
        let r = unsafe { netml_gpu::cuda::Registered::new(&ctx, s.addr as *mut u8, s.len) }
            .map_err(|e| {
                format!(
                    "registering {} MiB of packet memory at {:#x} with GPU {ordinal}: {e:?}",
                    s.len >> 20,
                    s.addr
                )
            })?;
        out.push(r);
    }
    Ok(out)
}
