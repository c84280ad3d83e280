//! Section "copy": the host-to-device ceilings the ingest modes are judged against (pinned
//! DMA, pageable), and the two kinds of device-visible host memory netml-gpu uses: mapped
//! pinned (ring, descriptors) and registered (mbuf pools), both at their UVA addresses.

use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{sys, CudaContext, DevicePtr, DriverError};
use netml_gpu::cuda::{MappedPinned, Registered};

use super::{Env, Row, Rows};

const S: &str = "copy";
/// 256 MiB: large enough that per-call overhead is noise (the reference measurement's size).
const BYTES: usize = 256 << 20;
/// Timed copies per kind; the best one is reported (the ceiling, not the average).
const REPEAT: usize = 5;
/// Size of the registration check: the 77 MB of the reference measurement (4.3 ms).
const REGISTER_BYTES: usize = 77_000_000;

/// Best-of-`REPEAT` GB/s (10^9 B/s) of synchronous copies of `BYTES` from `src` to `dst`,
/// after one warm-up copy.
fn h2d_gbps(ctx: &Arc<CudaContext>, dst: u64, src: *const u8) -> Result<f64, DriverError> {
    let mut best = f64::INFINITY;
    for i in 0..=REPEAT {
        let t = Instant::now();
        // SAFETY: `src` has `BYTES` readable bytes and `dst` `BYTES` of device memory, both
        // alive for the call (owned by the caller).
        unsafe { sys::cuMemcpyHtoD_v2(dst, src.cast(), BYTES) }.result()?;
        // From pageable memory the call may return before the last DMA lands.
        ctx.synchronize()?;
        if i > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    Ok(BYTES as f64 / best / 1e9)
}

/// Pinned and pageable H2D bandwidth, mapped pinned and registered memory.
pub fn rows(env: &Env, rows: &mut Rows) {
    let ctx = env.ctx;
    let stream = ctx.default_stream();
    let dev = match stream.alloc_zeros::<u8>(BYTES) {
        Ok(d) => d,
        Err(e) => return rows.push(Row::failed(S, "cuMemAlloc 256 MiB", e)),
    };
    let (dptr, _sync) = dev.device_ptr(&stream);

    match MappedPinned::new(ctx, BYTES) {
        Ok(pinned) => {
            rows.push(Row::check(
                S,
                "mapped pinned 256 MiB: device address = host address",
                pinned.device_ptr() == pinned.host_ptr() as u64,
                format!(
                    "host {:#x}, device {:#x}",
                    pinned.host_ptr() as u64,
                    pinned.device_ptr()
                ),
                "equal (UVA)",
            ));
            rows.push(match h2d_gbps(ctx, dptr, pinned.host_ptr()) {
                Ok(g) => Row::figure(
                    S,
                    "pinned cuMemcpyHtoD 256 MiB",
                    format!("{g:.1} GB/s"),
                    "55 GB/s (H100, PCIe Gen5 x16)",
                ),
                Err(e) => Row::failed(S, "pinned cuMemcpyHtoD 256 MiB", e),
            });
        }
        Err(e) => rows.push(Row::failed(S, "cuMemHostAlloc 256 MiB", e)),
    }

    // Touched, so the copy measures the transfer and not first-touch page faults.
    let pageable = vec![1u8; BYTES];
    rows.push(match h2d_gbps(ctx, dptr, pageable.as_ptr()) {
        Ok(g) => Row::figure(
            S,
            "pageable cuMemcpyHtoD 256 MiB",
            format!("{g:.1} GB/s"),
            "8.2 GB/s (H100 machine)",
        ),
        Err(e) => Row::failed(S, "pageable cuMemcpyHtoD 256 MiB", e),
    });
    drop(pageable);

    // Written (not calloc'd zero pages): registration pins every page, and faulting fresh
    // pages in would be timed as registration.
    let mut region = vec![1u8; REGISTER_BYTES];
    let t = Instant::now();
    // SAFETY: `region` is a live heap allocation, registered by nobody else, and outlives
    // `reg` (dropped at the end of this block, before `region`).
    match unsafe { Registered::new(ctx, region.as_mut_ptr(), region.len()) } {
        Ok(reg) => {
            let ms = t.elapsed().as_secs_f64() * 1e3;
            rows.push(Row::check(
                S,
                "cuMemHostRegister 77 MB: device address = host address",
                reg.device_ptr() == region.as_ptr() as u64 && reg.len() == REGISTER_BYTES,
                format!("{ms:.1} ms"),
                "equal (UVA); 4.3 ms (H100 machine, pages touched first)",
            ));
        }
        Err(e) => rows.push(Row::failed(S, "cuMemHostRegister 77 MB", e)),
    }
}
