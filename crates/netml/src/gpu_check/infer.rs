//! Section "infer": the GPU executor of netml-infer against the reference executor of the
//! same plan, and its time per batch, for every seed model found (small ones from the package
//! or `target/netml-infer-models/small`, full-size ones from `NETML_FULL_MODELS_DIR` or
//! `target/models` when present), batch 1/8/32, fp32/fp16. Writes `infer.csv` in the output
//! directory. PyTorch eager is the baseline: measured in the same run when
//! `NETML_TORCH_BASELINE` names the CSV of `scripts/models/torch_baseline.py` (scripts/gpu-check
//! does that where torch is installed), else the H100 reference table, labelled so.
//!
//! Correctness thresholds are those of docs/inference.md (fp32: rel-L2 ≤ 1e-4 and every
//! top-1 equal; fp16: rel-L2 ≤ 1e-2 and at most one top-1 difference). The reference is
//! batch-independent, so every image is compared with a batch-1 reference run of the same
//! image (cached across batch sizes); for full-size models (seconds per image on the CPU)
//! only the first two images of a batch are.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{CudaContext, DevicePtr};
use netml_gpu::cuda::GpuInfo;
use netml_infer::fixtures::{Rng, SEED_MODELS};
use netml_infer::gpu::GpuEngine;
use netml_infer::metrics::{rel_l2, top1_agreement};
use netml_infer::{Engine, Plan, Precision, Reference};

use super::Row;

const S: &str = "infer";
const BATCHES: [usize; 3] = [1, 8, 32];
const REPLAYS: usize = 200;

/// The PyTorch eager figures the GPU executor is compared with.
enum Baseline {
    /// Measured in this run by `scripts/models/torch_baseline.py` (scripts/gpu-check's
    /// run.sh writes it and names it in `NETML_TORCH_BASELINE`): keyed by (model, batch,
    /// precision), model names as the .onnx stems (`resnet50`, `resnet50_small`).
    SameRun(HashMap<(String, usize, String), f64>),
    /// No measurement in this run: the reference table of ../shared/reference (full-size
    /// models only), labelled as such.
    Table,
}

impl Baseline {
    fn load() -> (Baseline, Option<Row>) {
        let Some(path) = std::env::var_os("NETML_TORCH_BASELINE").map(PathBuf::from) else {
            return (Baseline::Table, None);
        };
        match crate::bench::infer::report::read_baseline(&path) {
            Ok(m) => (Baseline::SameRun(m), None),
            Err(e) => (
                Baseline::Table,
                Some(Row::failed(S, "PyTorch baseline (NETML_TORCH_BASELINE)", e)),
            ),
        }
    }

    /// PyTorch's ms per batch and where it comes from.
    fn ms(
        &self,
        model: &str,
        full: bool,
        batch: usize,
        p: Precision,
    ) -> Option<(f64, &'static str)> {
        match self {
            Baseline::SameRun(m) => m
                .get(&(model.to_string(), batch, p.to_string()))
                .map(|&ms| (ms, "this run")),
            Baseline::Table if full => table_ms(model, batch, p).map(|ms| (ms, "reference table")),
            Baseline::Table => None,
        }
    }
}

/// PyTorch 2.11 eager on the H100 (../shared/reference/h100-measurements.md), ms per batch
/// for (model, batch, precision), for the full-size models it lists.
fn table_ms(model: &str, batch: usize, p: Precision) -> Option<f64> {
    // (fp32 b1 ms, fp32 b8 img/s, fp32 b32 img/s, fp16 b32 img/s)
    let (b1, b8, b32, h32) = match model {
        "alexnet" => (0.43, 15.5e3, 33.0e3, 54.7e3),
        "mobilenet_v2" => (2.65, 3.1e3, 10.7e3, 9.6e3),
        "resnet50" => (4.22, 2.3e3, 5.3e3, 7.3e3),
        "vgg19" => (1.20, 2.6e3, 3.1e3, 4.8e3),
        _ => return None,
    };
    match (batch, p) {
        (1, Precision::Fp32) => Some(b1),
        (8, Precision::Fp32) => Some(8e3 / b8),
        (32, Precision::Fp32) => Some(32e3 / b32),
        (32, Precision::Fp16) => Some(32e3 / h32),
        _ => None,
    }
}

/// (name, path, full size) of every model found.
fn models() -> Vec<(String, PathBuf, bool)> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let mut small_dirs: Vec<PathBuf> = std::env::var_os("NETML_MODELS_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    small_dirs.extend(exe_dir.map(|d| d.join("../models")));
    small_dirs.push(PathBuf::from("target/netml-infer-models/small"));
    let mut found = Vec::new();
    for m in SEED_MODELS {
        if let Some(p) = small_dirs
            .iter()
            .map(|d| d.join(format!("{m}_small.onnx")))
            .find(|p| p.is_file())
        {
            found.push((format!("{m}_small"), p, false));
        }
    }
    let mut full_dirs: Vec<PathBuf> = std::env::var_os("NETML_FULL_MODELS_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    full_dirs.push(PathBuf::from("target/models"));
    for m in SEED_MODELS {
        if let Some(p) = full_dirs
            .iter()
            .map(|d| d.join(format!("{m}.onnx")))
            .find(|p| p.is_file())
        {
            found.push((m.to_string(), p, true));
        }
    }
    found
}

/// Correctness and timing of every model found.
pub fn rows(ctx: &Arc<CudaContext>, _gpu: &GpuInfo, out: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut csv = String::from("model,batch,precision,load_ms,rel_l2,top1_agree,top1_total,p50_ms,p99_ms,images_per_s,pytorch_ms\n");
    let found = models();
    let (baseline, baseline_error) = Baseline::load();
    rows.extend(baseline_error);
    if found.is_empty() {
        return vec![Row::failed(S, "models", "no seed model found (NETML_MODELS_DIR, <exe>/../models, target/netml-infer-models/small)")];
    }
    for (name, path, full) in &found {
        for precision in [Precision::Fp32, Precision::Fp16] {
            let mut refs = match RefCache::new(path, precision) {
                Ok(r) => r,
                Err(e) => {
                    rows.push(Row::failed(S, &format!("{name} {precision} reference"), e));
                    continue;
                }
            };
            for batch in BATCHES {
                let what = format!("{name} b{batch} {precision}");
                // Full-size models: seconds per image on the CPU, so two images per batch.
                let checked = if *full { batch.min(2) } else { batch };
                match case(ctx, path, batch, precision, checked, &mut refs) {
                    Ok(c) => {
                        let (max, misses) = match precision {
                            Precision::Fp32 => (1e-4, 0),
                            Precision::Fp16 => (1e-2, 1),
                        };
                        let ok = c.rel_l2 <= max && c.total - c.agree <= misses && c.replay_same;
                        rows.push(Row::check(
                            S,
                            &format!("{what} vs reference"),
                            ok,
                            format!(
                                "rel-L2 {:.2e}, top-1 {}/{}, enqueue replay {}",
                                c.rel_l2,
                                c.agree,
                                c.total,
                                if c.replay_same {
                                    "== run"
                                } else {
                                    "DIFFERS from run"
                                }
                            ),
                            &format!("<= {max:e}, <= {misses} top-1 miss"),
                        ));
                        let torch = baseline.ms(name, *full, batch, precision);
                        let limit = torch.map_or("-".to_string(), |(ms, source)| {
                            format!(
                                "PyTorch eager {ms:.2} ms ({source}); netml is {:.2}x as fast",
                                ms / c.p50
                            )
                        });
                        rows.push(Row::figure(
                            S,
                            &format!("{what} ms/batch p50/p99 ({REPLAYS} replays)"),
                            format!(
                                "{:.3} / {:.3} ms ({:.0} img/s), load {:.0} ms",
                                c.p50,
                                c.p99,
                                batch as f64 * 1e3 / c.p50,
                                c.load_ms
                            ),
                            &limit,
                        ));
                        let _ = writeln!(
                            csv,
                            "{name},{batch},{precision},{:.1},{:.3e},{},{},{:.4},{:.4},{:.1},{}",
                            c.load_ms,
                            c.rel_l2,
                            c.agree,
                            c.total,
                            c.p50,
                            c.p99,
                            batch as f64 * 1e3 / c.p50,
                            torch.map_or(String::new(), |(v, _)| format!("{v:.3}"))
                        );
                    }
                    Err(e) => rows.push(Row::failed(S, &what, e)),
                }
            }
        }
    }
    if let Err(e) = std::fs::write(out.join("infer.csv"), csv) {
        rows.push(Row::failed(S, "write infer.csv", e));
    }
    rows
}

struct Case {
    replay_same: bool,
    load_ms: f64,
    rel_l2: f64,
    agree: usize,
    total: usize,
    p50: f64,
    p99: f64,
}

/// Batch-1 reference outputs of a fixed set of images, computed on demand and shared by the
/// batch sizes (image `i` is the same in every batch).
struct RefCache {
    reference: Reference,
    per: usize,
    images: Vec<f32>,
    outputs: Vec<f32>,
    done: usize,
}

impl RefCache {
    fn new(path: &Path, precision: Precision) -> Result<RefCache, String> {
        let reference = Reference::load(path, 1, precision).map_err(|e| e.to_string())?;
        let per: usize = reference.input_shape().iter().product();
        let max = BATCHES.iter().copied().max().unwrap_or(1);
        Ok(RefCache {
            reference,
            per,
            images: Rng::new(7).normals(max * per),
            outputs: Vec::new(),
            done: 0,
        })
    }

    /// Outputs of the first `n` images, concatenated.
    fn outputs(&mut self, n: usize) -> Result<&[f32], String> {
        while self.done < n {
            let img = &self.images[self.done * self.per..(self.done + 1) * self.per];
            let out = self.reference.execute(img).map_err(|e| e.to_string())?;
            self.outputs.extend(out);
            self.done += 1;
        }
        let per_out = self.outputs.len() / self.done.max(1);
        Ok(&self.outputs[..n * per_out])
    }
}

fn case(
    ctx: &Arc<CudaContext>,
    path: &Path,
    batch: usize,
    precision: Precision,
    checked: usize,
    refs: &mut RefCache,
) -> Result<Case, String> {
    let plan = Plan::load(path, batch, precision).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let mut engine = GpuEngine::with_context(ctx, plan).map_err(|e| e.to_string())?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let classes: usize = engine.output_shape().iter().product();
    let input = refs.images[..batch * refs.per].to_vec();
    let ran = engine.run(&input, batch).map_err(|e| e.to_string())?.data;
    let want = refs.outputs(checked)?;
    let got = &ran[..checked * classes];
    let err = rel_l2(got, want);
    let (agree, total) = top1_agreement(got, want, classes);

    // Replays as the pipeline issues them: enqueue from a device input on a stream of ours,
    // timed from enqueue to the stream's completion.
    let stream = ctx.new_stream().map_err(|e| e.to_string())?;
    let dev_in = stream.clone_htod(&input).map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(REPLAYS);
    {
        let (ptr, _guard) = dev_in.device_ptr(&stream);
        for _ in 0..REPLAYS + 10 {
            let t = Instant::now();
            // SAFETY: `dev_in` holds batch × per f32 values on this context and outlives the
            // work (the stream is synchronised before the next iteration).
            unsafe { engine.enqueue(stream.cu_stream(), ptr, batch) }.map_err(|e| e.to_string())?;
            stream.synchronize().map_err(|e| e.to_string())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    // The replays (caller's stream, device input) must give run()'s output bit for bit.
    let mut replayed = vec![0f32; batch * classes];
    // SAFETY: the output buffer holds at least batch × classes f32; the stream is idle.
    unsafe { cudarc::driver::result::memcpy_dtoh_sync(&mut replayed, engine.output_device_ptr()) }
        .map_err(|e| e.to_string())?;
    let replay_same = replayed
        .iter()
        .zip(&ran)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    let mut times = times.split_off(10); // warm-up
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Case {
        replay_same,
        load_ms,
        rel_l2: err,
        agree,
        total,
        p50: pct(0.5),
        p99: pct(0.99),
    })
}
