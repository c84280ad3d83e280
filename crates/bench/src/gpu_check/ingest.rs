//! Section "ingest": the three GPU ingest modes against the self-check's oracles, the gather
//! bandwidth of the resident kernel against the pinned DMA ceiling of the same run, and the
//! completion latencies (one image, a batch, an empty doorbell). Figures also go to
//! `ingest.csv` in the output directory.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::CudaContext;
use netml_gpu::cuda::ingest::{open_in, GpuIngestOptions};
use netml_gpu::cuda::MappedPinned;
use netml_gpu::selfcheck::{self, SelfCheckOptions};
use netml_gpu::{IngestConfig, IngestMode};

use super::{Env, Row, Rows};
use bounce::Bounce;
use perf::{Latency, Mbufs, BATCH, IMAGE};

mod bounce;
pub mod perf;

const S: &str = "ingest";
/// Batches timed per bandwidth figure (32 images each, ~19 MB).
const BW_BATCHES: usize = 30;
/// Payload offsets in the mbuf: 64-byte aligned (the wire format's), and 2-byte aligned.
const OFFSETS: [(usize, &str); 2] = [(128, "64-byte aligned"), (170, "2-byte aligned")];

/// The self-check's configurations per mode: (blocks, ring entries).
pub const SELFCHECK_CONFIGS: [(u32, u32); 2] = [(8, 4), (1, 1)];

/// The self-check's ingest shape for `mode` (the dry run uses it on the host target).
pub fn selfcheck_config(mode: IngestMode, blocks: u32, ring: u32) -> IngestConfig {
    IngestConfig {
        mode,
        slots: 4,
        slot_bytes: 96 * 1024,
        blocks,
        ring_entries: ring,
    }
}

/// The self-check's options: 20 rounds of every slot.
pub fn selfcheck_options() -> SelfCheckOptions {
    SelfCheckOptions {
        rounds: 20,
        ..SelfCheckOptions::default()
    }
}

/// Correctness of every mode, bandwidth and latency of the GPU ingest. After every ingest is
/// dropped, a leaked one (its kernel did not stop) ends the section's process
/// ([`Rows::exit_if_leaked`]).
pub fn rows(env: &Env, rows: &mut Rows) {
    let ctx = env.ctx;
    let mut csv = String::from("check,mode,blocks,payload_offset,value,unit\n");
    for mode in IngestMode::ALL {
        for (blocks, ring) in SELFCHECK_CONFIGS {
            let row = selfcheck_row(ctx, mode, blocks, ring, rows);
            rows.push(row);
        }
    }
    match Mbufs::new(ctx) {
        Ok(mbufs) => {
            bandwidth(ctx, &mbufs, rows, &mut csv);
            latencies(ctx, &mbufs, rows, &mut csv);
        }
        Err(e) => rows.push(Row::failed(S, "register 38.5 MB of mbufs", e)),
    }
    if let Err(e) = std::fs::write(env.out.join("ingest.csv"), csv) {
        rows.push(Row::failed(S, "write ingest.csv", e));
    }
}

/// The target-agnostic self-check on `mode` (sources bounced into mapped pinned memory, see
/// [`bounce`]); for `netml`, also how long quit takes to stop the kernel.
fn selfcheck_row(
    ctx: &Arc<CudaContext>,
    mode: IngestMode,
    blocks: u32,
    ring: u32,
    rows: &mut Rows,
) -> Row {
    let what = format!("{mode}: self-check vs oracle, {blocks} blocks, {ring}-entry ring");
    let cfg = selfcheck_config(mode, blocks, ring);
    let opts = GpuIngestOptions {
        max_frags_per_entry: 4096,
        ..GpuIngestOptions::default()
    };
    // Declared before the ingest: dropped after it, so no batch can still read it.
    let buf = match MappedPinned::new(ctx, 16 << 20) {
        Ok(b) => b,
        Err(e) => return Row::failed(S, &what, e),
    };
    let mut ing = match open_in(ctx, &cfg, &opts) {
        Ok(i) => i,
        Err(e) => return Row::failed(S, &what, e),
    };
    let rep = selfcheck::run(&mut Bounce::new(ing.as_mut(), &buf), &selfcheck_options());
    let c = ing.counters();
    let t = Instant::now();
    drop(ing);
    let stop = t.elapsed();
    // Before `buf` is freed: freeing waits on the device, forever after a leak.
    rows.exit_if_leaked();
    match rep {
        Ok(rep) => {
            let counted = c.batches_completed == c.batches_submitted;
            let stopped = stop < Duration::from_millis(opts.shutdown_ms);
            Row::check(
                S,
                &what,
                rep.passed() && counted && stopped,
                format!(
                    "{rep}; {}/{} batches completed; stopped in {:.1} ms",
                    c.batches_completed,
                    c.batches_submitted,
                    stop.as_secs_f64() * 1e3
                ),
                "every byte equal, f32 within 1e-6 relative; stop < 2 s",
            )
        }
        Err(e) => Row::failed(S, &what, e),
    }
}

/// Gather GB/s for 4-32 blocks in the 8-SM partition, both payload alignments, against one
/// pinned `cuMemcpyHtoD` of the same bytes (measured first, while no kernel runs).
fn bandwidth(ctx: &Arc<CudaContext>, mbufs: &Mbufs, rows: &mut Rows, csv: &mut String) {
    let bytes = BATCH * IMAGE;
    let pinned = match perf::pinned_gbps(ctx, bytes) {
        Ok(g) => g,
        Err(e) => {
            rows.push(Row::failed(S, "pinned cuMemcpyHtoD of one batch", e));
            return;
        }
    };
    let _ = writeln!(csv, "pinned_htod_gbps,-,-,-,{pinned:.2},GB/s");
    rows.push(Row::figure(
        S,
        &format!("pinned cuMemcpyHtoD, {} MB (one batch)", bytes / 1_000_000),
        format!("{pinned:.1} GB/s"),
        "55 GB/s (H100 reference, 256 MB)",
    ));
    let mut best_aligned = 0.0f64;
    let mut placement = None;
    for (offset, align) in OFFSETS {
        for blocks in [4u32, 8, 16, 32] {
            let run = perf::gather_gbps(ctx, mbufs, blocks, offset, BW_BATCHES);
            rows.exit_if_leaked();
            let on = run
                .as_ref()
                .ok()
                .and_then(|g| g.sms)
                .map_or_else(|| "?".to_string(), |p| p.to_string());
            let what = format!("netml gather, {blocks} blocks x 256 on the {on}, payloads {align}");
            match run {
                Ok(perf::Gathered { gbps, matched, sms }) => {
                    if offset == OFFSETS[0].0 {
                        best_aligned = best_aligned.max(gbps);
                        placement = placement.or(sms);
                    }
                    let _ = writeln!(csv, "gather_gbps,netml,{blocks},{offset},{gbps:.2},GB/s");
                    rows.push(Row::check(
                        S,
                        &what,
                        matched,
                        format!(
                            "{gbps:.1} GB/s = {:.0}% of pinned; image bytes {}",
                            100.0 * gbps / pinned,
                            if matched { "match" } else { "DIFFER" }
                        ),
                        &format!("pinned {pinned:.1} GB/s; {}", reference(blocks, offset)),
                    ));
                }
                Err(e) => rows.push(Row::failed(S, &what, e)),
            }
        }
    }
    // Where the limit lies: more SMs (more warps in flight) at the same per-warp code. Figures,
    // not the check, which is for the default partition.
    for (sms, blocks) in [(16u32, 32u32), (16, 64), (0, 132)] {
        let run = perf::gather_gbps_on(ctx, mbufs, blocks, OFFSETS[0].0, BW_BATCHES, sms);
        rows.exit_if_leaked();
        let on = if sms == 0 {
            "whole GPU".to_string()
        } else {
            format!("{sms}-SM partition")
        };
        let what =
            format!("netml gather, {blocks} blocks x 256 on the {on}, payloads 64-byte aligned");
        match run {
            Ok(g) => {
                let _ = writeln!(
                    csv,
                    "gather_gbps_sms{sms},netml,{blocks},{},{:.2},GB/s",
                    OFFSETS[0].0, g.gbps
                );
                rows.push(Row::check(
                    S,
                    &what,
                    g.matched,
                    format!(
                        "{:.1} GB/s = {:.0}% of pinned",
                        g.gbps,
                        100.0 * g.gbps / pinned
                    ),
                    "more warps in flight than the default partition holds",
                ));
            }
            Err(e) => rows.push(Row::failed(S, &what, e)),
        }
    }
    let on = placement.map_or_else(|| "?".to_string(), |p| p.to_string());
    rows.push(Row::check(
        S,
        &format!("netml gather best (aligned, {on}) >= 90% of pinned"),
        best_aligned >= 0.9 * pinned,
        format!("{:.0}%", 100.0 * best_aligned / pinned),
        &format!(">= 90% of {pinned:.1} GB/s"),
    ));
}

/// The reference measurement for a gather row (whole GPU, standalone CUDA C).
fn reference(blocks: u32, offset: usize) -> &'static str {
    match (blocks, offset) {
        (4, 128) => "ref 11.9 GB/s",
        (8, 128) => "ref 22.7 GB/s",
        (32, 128) => "ref 48.4 GB/s",
        (32, _) => "ref 12.4 GB/s (132 blocks: 41)",
        _ => "-",
    }
}

/// Submit-to-completion latencies of every mode (32 blocks; `netml` in its green partition).
fn latencies(ctx: &Arc<CudaContext>, mbufs: &Mbufs, rows: &mut Rows, csv: &mut String) {
    let frags: Vec<_> = (0..BATCH).map(|i| mbufs.image(i, OFFSETS[0].0)).collect();
    let batch = perf::jobs(&frags);
    for mode in IngestMode::ALL {
        let cfg = IngestConfig {
            mode,
            slots: 2,
            slot_bytes: BATCH * IMAGE,
            blocks: 32,
            ring_entries: 8,
        };
        let mut ing = match open_in(ctx, &cfg, &GpuIngestOptions::default()) {
            Ok(i) => i,
            Err(e) => {
                rows.push(Row::failed(S, &format!("{mode}: latency"), e));
                continue;
            }
        };
        let cases: [(&str, &[_], usize); 3] = [
            ("one image (588 x 1 KiB)", &batch[..1], 1000),
            ("batch of 32 images", &batch[..], 200),
            ("empty doorbell", &[], 2000),
        ];
        for (what, jobs, iters) in cases {
            let name = format!("{mode}: submit -> in GPU slot, {what}");
            match perf::latency(ing.as_mut(), jobs, iters) {
                Ok(l) => {
                    let _ = writeln!(
                        csv,
                        "latency_p50_us {what},{mode},32,128,{:.2},us\nlatency_p99_us {what},{mode},32,128,{:.2},us",
                        us(l.p50),
                        us(l.p99)
                    );
                    rows.push(latency_row(&name, mode, what, &l));
                }
                Err(e) => rows.push(Row::failed(S, &name, e)),
            }
        }
        drop(ing);
        rows.exit_if_leaked();
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A latency row: a check for the two `netml` targets, a figure otherwise.
fn latency_row(name: &str, mode: IngestMode, what: &str, l: &Latency) -> Row {
    let figure = format!(
        "p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        us(l.p50),
        us(l.p99),
        us(l.max)
    );
    let target = match (mode, what.starts_with("one"), what.starts_with("empty")) {
        (IngestMode::Netml, true, _) => Some((25.0, "p99 <= 25 us")),
        (IngestMode::Netml, _, true) => Some((10.0, "p99 <= 10 us (ref 5.7 / 6.1 us)")),
        _ => None,
    };
    match target {
        Some((bound, limit)) => Row::check(S, name, us(l.p99) <= bound, figure, limit),
        None => {
            let limit = match (mode, what.starts_with("empty")) {
                (IngestMode::Launch, true) => "ref launch + event query 9.5 / 17.5 us",
                (IngestMode::CpuCopy, false) => "ref CPU copy ~94 us per image",
                _ => "-",
            };
            Row::figure(S, name, figure, limit)
        }
    }
}
