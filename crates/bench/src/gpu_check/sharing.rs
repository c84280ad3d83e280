//! Section "sharing": the GPU executor on green-context SM partitions.
//!
//! 1. The share profile: each model's batch latency at several SM counts (its engine's CUDA
//!    graph replayed on a stream of each partition) next to the whole GPU; written as
//!    `share-profile.csv` (`netml simulate --profile` reads its `gpu_share_pct` rows instead
//!    of the modelled shares).
//! 2. The sharing modes live, closed loop at batch [`MIX_BATCH`]: every model's batch in
//!    turns on one stream (temporal), all at once on streams of the whole GPU (shared), all at
//!    once each on its own partition (partitioned); images/s of each, ratios.
//! 3. A resize: a model serving back to back on one partition switches to a bigger one
//!    prepared beforehand (the shadow); the gap from the old share's last batch done to the
//!    new share's first batch enqueued, host clock, and the partition's preparation time.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{CudaContext, CudaSlice, DevicePtr};
use netml_gpu::cuda::{GreenPartition, GreenStream};
use netml_infer::fixtures::Rng;
use netml_infer::gpu::GpuEngine;
use netml_infer::{Engine, Model, Plan, Precision};

use super::models::{models, Found};
use super::{Env, Row, Rows};

const S: &str = "sharing";
/// Batch sizes of the share profile.
pub const BATCHES: [usize; 3] = [1, 8, 32];
/// SM counts of the share profile (the whole GPU less the ingest's 8 SMs is added).
pub const SMS: [u32; 4] = [8, 16, 32, 64];
/// Timed replays per profile case (after 3 untimed).
pub const REPLAYS: usize = 30;
/// Batch of the live mode comparison.
pub const MIX_BATCH: usize = 8;
/// Seconds of each mode in the live comparison.
pub const MIX_S: f64 = 2.0;

/// One model ready to run: its engines per batch and a device input of the largest batch.
struct Ready {
    name: String,
    engines: Vec<(usize, GpuEngine)>,
    input: CudaSlice<f32>,
}

/// The share profile, the live modes and a resize.
pub fn rows(env: &Env, rows: &mut Rows) {
    // Several streams use one input buffer; the ordering is ours (every enqueue waits for
    // the engine's previous batch), not cudarc's event tracking.
    netml_gpu::cuda::untracked(env.ctx);
    let ready = match load(env.ctx) {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => return rows.push(Row::failed(S, "models", "no model found")),
        Err(e) => return rows.push(Row::failed(S, "models", e)),
    };
    let all = env.gpu.sm_count;
    let mut sms: Vec<u32> = SMS.iter().copied().filter(|&s| s < all).collect();
    sms.push(all.saturating_sub(8).max(8));
    let mut parts = Vec::new();
    for &n in &sms {
        let t = Instant::now();
        match GreenPartition::new(env.ctx, n).and_then(|p| Ok((p.new_stream()?, p))) {
            Ok((stream, p)) => {
                let ms = t.elapsed().as_secs_f64() * 1e3;
                rows.push(Row::figure(
                    S,
                    &format!("partition {n} SMs"),
                    format!("{} SMs granted, prepared in {ms:.2} ms", p.sm_count()),
                    "green context + stream; 0.8-1.0 ms (H100 machine)",
                ));
                parts.push((p, stream));
            }
            Err(e) => rows.push(Row::failed(S, &format!("partition {n} SMs"), e)),
        }
    }
    let mut ready = ready;
    profile(env, &mut ready, &parts, rows);
    modes(env, &mut ready, rows);
    resize(env, &mut ready, &parts, rows);
}

/// The full-size models found (else the small ones), fp32, an engine per batch size.
fn load(ctx: &Arc<CudaContext>) -> Result<Vec<Ready>, String> {
    let found = models(false);
    let full: Vec<&Found> = found.iter().filter(|m| m.full).collect();
    let chosen: Vec<&Found> = if full.is_empty() {
        found.iter().collect()
    } else {
        full
    };
    let mut out = Vec::new();
    for m in chosen {
        let model = Model::load(&m.path).map_err(|e| format!("{}: {e}", m.name))?;
        let mut engines = Vec::new();
        for b in BATCHES {
            let plan = Plan::compile(&model, b, Precision::Fp32).map_err(|e| e.to_string())?;
            let e = GpuEngine::with_context(ctx, plan).map_err(|e| format!("{}: {e}", m.name))?;
            engines.push((b, e));
        }
        let per: usize = engines[0].1.input_shape().iter().product();
        let max = BATCHES.iter().copied().max().unwrap_or(1);
        let stream = ctx.default_stream();
        let input = stream
            .clone_htod(&Rng::new(11).normals(max * per))
            .map_err(|e| e.to_string())?;
        out.push(Ready {
            name: m.name.clone(),
            engines,
            input,
        });
    }
    Ok(out)
}

/// The engine compiled for `batch`.
fn engine_for(engines: &mut [(usize, GpuEngine)], batch: usize) -> Result<&mut GpuEngine, String> {
    engines
        .iter_mut()
        .find(|e| e.0 == batch)
        .map(|e| &mut e.1)
        .ok_or_else(|| "no engine for the batch".to_string())
}

/// Enqueues `batch` of `r` on `stream`.
fn enqueue(
    r: &mut Ready,
    batch: usize,
    stream: cudarc::driver::sys::CUstream,
    ctx: &Arc<CudaContext>,
) -> Result<(), String> {
    let s = ctx.default_stream();
    let (ptr, _guard) = r.input.device_ptr(&s);
    let engine = engine_for(&mut r.engines, batch)?;
    // SAFETY: `input` holds the largest batch of f32 values on this context and lives as long
    // as `r`; every caller synchronises the stream before enqueuing on this engine again.
    unsafe { engine.enqueue(stream, ptr, batch) }.map_err(|e| e.to_string())
}

/// Captures `batch`'s graph of `r` again on `stream` (a partition's: its kernel nodes then
/// belong to the green context), or on the engine's own stream for `None`.
fn recapture(
    r: &mut Ready,
    batch: usize,
    stream: Option<cudarc::driver::sys::CUstream>,
) -> Result<(), String> {
    let engine = engine_for(&mut r.engines, batch)?;
    // SAFETY: a live stream of this context or of one of its green contexts; every caller
    // synchronised its last enqueue on this engine.
    unsafe { engine.capture_on(stream) }.map_err(|e| e.to_string())
}

/// p50 ms of `batch` of `r` on `stream` (`sync` waits for it).
fn p50(
    env: &Env,
    r: &mut Ready,
    batch: usize,
    stream: cudarc::driver::sys::CUstream,
    sync: &dyn Fn() -> Result<(), String>,
) -> Result<f64, String> {
    let mut t = Vec::with_capacity(REPLAYS);
    for i in 0..REPLAYS + 3 {
        let start = Instant::now();
        enqueue(r, batch, stream, env.ctx)?;
        sync()?;
        if i >= 3 {
            t.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn green_sync(s: &GreenStream) -> Result<(), String> {
    s.synchronize().map_err(|e| e.to_string())
}

/// The share profile: every model, batch and partition, and the whole GPU.
fn profile(
    env: &Env,
    ready: &mut [Ready],
    parts: &[(GreenPartition, GreenStream)],
    rows: &mut Rows,
) {
    let all = env.gpu.sm_count;
    let mut csv = String::from("model,precision,batch,gpu_share_pct,sms,latency_ms\n");
    let whole = env.ctx.default_stream();
    let mut cases: Vec<Case> = Vec::new();
    for r in ready.iter_mut() {
        for b in BATCHES {
            let sync = || whole.synchronize().map_err(|e| e.to_string());
            let mut line = Vec::new();
            let whole_ms = match p50(env, r, b, whole.cu_stream(), &sync) {
                Ok(ms) => {
                    let _ = writeln!(csv, "{},fp32,{b},100,{all},{ms:.4}", r.name);
                    line.push(format!("all {ms:.2}"));
                    ms
                }
                Err(e) => {
                    rows.push(Row::failed(S, &format!("{} b{b} whole GPU", r.name), e));
                    continue;
                }
            };
            for (p, stream) in parts {
                let sync = || green_sync(stream);
                match recapture(r, b, Some(stream.cu_stream()))
                    .and_then(|()| p50(env, r, b, stream.cu_stream(), &sync))
                {
                    Ok(ms) => {
                        let pct = (p.sm_count() as f64 * 100.0 / all as f64).round();
                        let _ = writeln!(csv, "{},fp32,{b},{pct},{},{ms:.4}", r.name, p.sm_count());
                        line.push(format!("{} {ms:.2}", p.sm_count()));
                        cases.push(Case {
                            what: format!("{} b{b}", r.name),
                            whole_ms,
                            sms: p.sm_count(),
                            ms,
                        });
                    }
                    Err(e) => rows.push(Row::failed(
                        S,
                        &format!("{} b{b} on {} SMs", r.name, p.sm_count()),
                        e,
                    )),
                }
            }
            if let Err(e) = recapture(r, b, None) {
                rows.push(Row::failed(
                    S,
                    &format!("{} b{b} back on its stream", r.name),
                    e,
                ));
            }
            rows.push(Row::figure(
                S,
                &format!("{} b{b} ms p50 by SMs", r.name),
                line.join(", "),
                "the knee: where fewer SMs start to cost time",
            ));
        }
    }
    if let Some(row) = confinement(&cases, all) {
        rows.push(row);
    }
    if let Err(e) = std::fs::write(env.out.join("share-profile.csv"), csv) {
        rows.push(Row::failed(S, "write share-profile.csv", e));
    }
}

/// One case of the share profile: a model and batch on a partition of `sms` SMs.
struct Case {
    what: String,
    whole_ms: f64,
    sms: u32,
    ms: f64,
}

/// Whether the partitions confine the work: the heaviest case (longest on the whole GPU) on
/// the smallest partition, at most a quarter of the GPU, must take at least twice as long.
/// The same time means the work ran outside the partition (seen on the H200, 2026-12-04:
/// resnet50 b32 9.55 ms on 8 SMs, 9.44 on 132). None without such a case.
fn confinement(cases: &[Case], all: u32) -> Option<Row> {
    let heaviest = cases
        .iter()
        .map(|c| c.whole_ms)
        .fold(f64::NEG_INFINITY, f64::max);
    let c = cases
        .iter()
        .filter(|c| c.whole_ms == heaviest && c.sms * 4 <= all)
        .min_by_key(|c| c.sms)?;
    let ratio = c.ms / c.whole_ms;
    Some(Row::check(
        S,
        "partitions confine the work (heaviest case, fewest SMs)",
        ratio >= 2.0,
        format!(
            "{}: {:.2} ms on {} SMs vs {:.2} on {all} ({ratio:.2}x)",
            c.what, c.ms, c.sms, c.whole_ms
        ),
        "the same time on a small partition means its work ran on other SMs",
    ))
}

/// Closed-loop images/s of the three live modes.
fn modes(env: &Env, ready: &mut [Ready], rows: &mut Rows) {
    let n = ready.len() as u32;
    let each = (env.gpu.sm_count.saturating_sub(8) / n.max(1)) / 8 * 8;
    let own: Vec<(GreenPartition, GreenStream)> = (0..n)
        .filter_map(|_| {
            let p = GreenPartition::new(env.ctx, each.max(8)).ok()?;
            let s = p.new_stream().ok()?;
            Some((p, s))
        })
        .collect();
    let temporal = run_mode(env, ready, |_| None, true);
    let shared_streams: Vec<_> = (0..n).filter_map(|_| env.ctx.new_stream().ok()).collect();
    let shared = if shared_streams.len() == n as usize {
        run_mode(
            env,
            ready,
            |i| Some(Stream::Plain(shared_streams[i].clone())),
            false,
        )
    } else {
        Err("stream creation failed".into())
    };
    let partitioned = if own.len() == n as usize {
        // Each model's graph captured on its partition's stream, then back on its own.
        let captured = ready
            .iter_mut()
            .zip(&own)
            .try_for_each(|(r, (_, s))| recapture(r, MIX_BATCH, Some(s.cu_stream())));
        let ips =
            captured.and_then(|()| run_mode(env, ready, |i| Some(Stream::Green(&own[i].1)), false));
        for r in ready.iter_mut() {
            if let Err(e) = recapture(r, MIX_BATCH, None) {
                rows.push(Row::failed(S, &format!("{} back on its stream", r.name), e));
            }
        }
        ips
    } else {
        Err(format!("could not create {n} partitions of {each} SMs"))
    };
    let mut figures = Vec::new();
    for (name, r) in [
        ("temporal", &temporal),
        ("shared", &shared),
        ("partitioned", &partitioned),
    ] {
        match r {
            Ok(ips) => {
                figures.push((name, *ips));
                rows.push(Row::figure(
                    S,
                    &format!("live {name}, batch {MIX_BATCH}, {n} models"),
                    format!("{ips:.0} images/s"),
                    if name == "partitioned" {
                        "each model on its own partition"
                    } else {
                        "-"
                    },
                ));
            }
            Err(e) => rows.push(Row::failed(S, &format!("live {name}"), e)),
        }
    }
    if let (Ok(t), Ok(s), Ok(p)) = (&temporal, &shared, &partitioned) {
        rows.push(Row::figure(
            S,
            "live partitioned / temporal, / shared",
            format!("{:.2}x, {:.2}x", p / t, p / s),
            &format!("{each} SMs per model; closed loop, not SLO-bound"),
        ));
    }
}

enum Stream<'a> {
    Plain(Arc<cudarc::driver::CudaStream>),
    Green(&'a GreenStream),
}

impl Stream<'_> {
    fn raw(&self) -> cudarc::driver::sys::CUstream {
        match self {
            Stream::Plain(s) => s.cu_stream(),
            Stream::Green(s) => s.cu_stream(),
        }
    }
    fn sync(&self) -> Result<(), String> {
        match self {
            Stream::Plain(s) => s.synchronize().map_err(|e| e.to_string()),
            Stream::Green(s) => green_sync(s),
        }
    }
}

/// Images/s over [`MIX_S`]: every model's batch per round, on the stream `stream_of` gives
/// (`None`: the whole GPU's default stream), in turns (`serial`) or all at once.
fn run_mode<'a>(
    env: &Env,
    ready: &mut [Ready],
    stream_of: impl Fn(usize) -> Option<Stream<'a>>,
    serial: bool,
) -> Result<f64, String> {
    let whole = env.ctx.default_stream();
    let streams: Vec<Stream> = (0..ready.len())
        .map(|i| stream_of(i).unwrap_or(Stream::Plain(whole.clone())))
        .collect();
    let start = Instant::now();
    let mut images = 0usize;
    while start.elapsed().as_secs_f64() < MIX_S {
        for (r, s) in ready.iter_mut().zip(&streams) {
            enqueue(r, MIX_BATCH, s.raw(), env.ctx)?;
            if serial {
                s.sync()?;
            }
        }
        for s in &streams {
            s.sync()?;
        }
        images += MIX_BATCH * ready.len();
    }
    Ok(images as f64 / start.elapsed().as_secs_f64())
}

/// A model serving back to back on the smallest partition switches to the largest one,
/// prepared beforehand: the gap between the two shares' batches.
fn resize(
    env: &Env,
    ready: &mut [Ready],
    parts: &[(GreenPartition, GreenStream)],
    rows: &mut Rows,
) {
    let (Some(r), Some(old), Some(new)) = (ready.first_mut(), parts.first(), parts.last()) else {
        return;
    };
    let mut gaps = Vec::new();
    for _ in 0..20 {
        let step = (|| -> Result<f64, String> {
            enqueue(r, MIX_BATCH, old.1.cu_stream(), env.ctx)?;
            green_sync(&old.1)?;
            let done = Instant::now();
            enqueue(r, MIX_BATCH, new.1.cu_stream(), env.ctx)?;
            let gap = done.elapsed().as_secs_f64() * 1e6;
            green_sync(&new.1)?;
            Ok(gap)
        })();
        match step {
            Ok(g) => gaps.push(g),
            Err(e) => return rows.push(Row::failed(S, "resize", e)),
        }
    }
    gaps.sort_by(f64::total_cmp);
    rows.push(Row::check(
        S,
        &format!(
            "resize {} -> {} SMs: old share's last batch done -> new share's first enqueued",
            old.0.sm_count(),
            new.0.sm_count()
        ),
        gaps[gaps.len() / 2] < 50.0,
        format!(
            "p50 {:.1} us, max {:.1} us (20 switches, {})",
            gaps[gaps.len() / 2],
            gaps[gaps.len() - 1],
            r.name
        ),
        "< 50 us (GSLICE: < 100 us)",
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(what: &str, whole_ms: f64, sms: u32, ms: f64) -> Case {
        Case {
            what: what.into(),
            whole_ms,
            sms,
            ms,
        }
    }

    #[test]
    fn the_h200_share_profile_fails_confinement() {
        // The H200 run of 2026-12-04: the same time on 8 SMs as on 132.
        let cases = [
            case("alexnet b32", 0.88, 8, 0.99),
            case("resnet50 b32", 9.44, 128, 9.42),
            case("resnet50 b32", 9.44, 16, 9.48),
            case("resnet50 b32", 9.44, 8, 9.55),
        ];
        let row = confinement(&cases, 132).unwrap();
        assert_eq!(row.ok, Some(false));
        assert!(
            row.figure.starts_with("resnet50 b32: 9.55 ms on 8 SMs"),
            "{}",
            row.figure
        );
    }

    #[test]
    fn a_confined_partition_passes_and_small_ones_are_needed() {
        let confined = [
            case("resnet50 b32", 9.44, 8, 120.0),
            case("alexnet b1", 0.5, 8, 0.5),
        ];
        assert_eq!(confinement(&confined, 132).unwrap().ok, Some(true));
        // No partition of at most a quarter of the GPU: nothing to say.
        assert!(confinement(&[case("resnet50 b32", 9.44, 64, 9.5)], 132).is_none());
        assert!(confinement(&[], 132).is_none());
    }
}
