//! Section "infer": the GPU executor of netml-infer against the reference executor of the
//! same plan, and its time per batch, for every model [`models`] selects (the small seed
//! models, one full-size model per kind unless `--full`), batch 1/8/32, fp32/fp16; each ONNX
//! file is parsed once. Writes `infer.csv` in the output directory. PyTorch eager is the
//! baseline: measured in the same run when `NETML_TORCH_BASELINE` names the CSV of
//! `scripts/models/torch_baseline.py` (scripts/gpu-check does that where torch is installed;
//! its fp32 rows are true fp32, TF32 off), else the H100 reference table, labelled so.
//!
//! Correctness thresholds are those of docs/inference.md (fp32: rel-L2 ≤ 1e-4 and every
//! top-1 equal; fp16: rel-L2 ≤ 1e-2 and at most one top-1 difference). The reference is
//! batch-independent, so every image is compared with a batch-1 reference run of the same
//! image (cached across batch sizes); for full-size models (seconds per image on the CPU)
//! only the first two images of a batch are.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{CudaContext, DevicePtr};
use netml_infer::fixtures::Rng;
use netml_infer::gpu::GpuEngine;
use netml_infer::metrics::{rel_l2, top1_agreement};
use netml_infer::{Engine, Model, Plan, Precision, Reference};

use super::models::{models, Baseline, Found};
use super::{Env, Row, Rows};

const S: &str = "infer";
/// Batch sizes of every model.
pub const BATCHES: [usize; 3] = [1, 8, 32];
/// Timed replays per case (after 10 untimed).
pub const REPLAYS: usize = 200;
/// Images compared with the reference per batch for a full-size model (seconds per image on
/// the CPU); small models compare every image.
pub const FULL_CHECKED: usize = 2;

/// Correctness and timing of every model found.
pub fn rows(env: &Env, rows: &mut Rows) {
    let mut csv = String::from("model,batch,precision,load_ms,rel_l2,top1_agree,top1_total,p50_ms,p99_ms,images_per_s,pytorch_ms\n");
    let found = models(env.full);
    let (baseline, baseline_error) = Baseline::load(S);
    if let Some(r) = baseline_error {
        rows.push(r);
    }
    if found.is_empty() {
        return rows.push(Row::failed(S, "models", "no seed model found (NETML_MODELS_DIR, <exe>/../models, target/netml-infer-models/small)"));
    }
    for m in &found {
        let t = Instant::now();
        let model = match Model::load(&m.path) {
            Ok(model) => model,
            Err(e) => {
                rows.push(Row::failed(S, &format!("{} load", m.name), e));
                continue;
            }
        };
        for precision in [Precision::Fp32, Precision::Fp16] {
            model_cases(env.ctx, m, &model, precision, &baseline, rows, &mut csv);
        }
        rows.push(Row::figure(
            S,
            &format!("{} elapsed", m.name),
            format!("{:.1} s", t.elapsed().as_secs_f64()),
            "-",
        ));
    }
    if let Err(e) = std::fs::write(env.out.join("infer.csv"), csv) {
        rows.push(Row::failed(S, "write infer.csv", e));
    }
}

/// The rows of one model at one precision, every batch size.
fn model_cases(
    ctx: &Arc<CudaContext>,
    m: &Found,
    model: &Model,
    precision: Precision,
    baseline: &Baseline,
    rows: &mut Rows,
    csv: &mut String,
) {
    let mut refs = match RefCache::new(model, precision) {
        Ok(r) => r,
        Err(e) => {
            return rows.push(Row::failed(
                S,
                &format!("{} {precision} reference", m.name),
                e,
            ))
        }
    };
    for batch in BATCHES {
        let what = format!("{} b{batch} {precision}", m.name);
        let checked = if m.full {
            batch.min(FULL_CHECKED)
        } else {
            batch
        };
        let c = match case(ctx, model, batch, precision, checked, &mut refs) {
            Ok(c) => c,
            Err(e) => {
                rows.push(Row::failed(S, &what, e));
                continue;
            }
        };
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
        let torch = baseline.ms(&m.name, m.full, batch, precision);
        let mut limit = torch.map_or("-".to_string(), |(ms, source)| {
            let tf32 = if precision == Precision::Fp32 {
                ", TF32 off"
            } else {
                ""
            };
            format!(
                "PyTorch eager {ms:.2} ms ({source}{tf32}); netml is {:.2}x as fast",
                ms / c.p50
            )
        });
        if let (Precision::Fp32, Some(t)) = (precision, baseline.tf32_ms(&m.name, batch)) {
            let _ = write!(limit, "; PyTorch with TF32 {t:.2} ms");
        }
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
            "{},{batch},{precision},{:.1},{:.3e},{},{},{:.4},{:.4},{:.1},{}",
            m.name,
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
pub struct RefCache {
    reference: Reference,
    per: usize,
    images: Vec<f32>,
    outputs: Vec<f32>,
    done: usize,
}

impl RefCache {
    /// The reference executor of `model` at batch 1 (outputs computed on demand).
    pub fn new(model: &Model, precision: Precision) -> Result<RefCache, String> {
        let plan = Plan::compile(model, 1, precision).map_err(|e| e.to_string())?;
        let reference = Reference::new(plan);
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
    pub fn outputs(&mut self, n: usize) -> Result<&[f32], String> {
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
    model: &Model,
    batch: usize,
    precision: Precision,
    checked: usize,
    refs: &mut RefCache,
) -> Result<Case, String> {
    let plan = Plan::compile(model, batch, precision).map_err(|e| e.to_string())?;
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
