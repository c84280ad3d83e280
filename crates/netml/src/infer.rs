//! `netml infer`: run one model on an input, the command a user tries first.

use clap::Args as ClapArgs;
use netml_bench::engines::{open_engine_threads, parse_threads, random_input};
use netml_infer::engine::Backend;
use netml_infer::npy;
use netml_infer::plan::Precision;
use netml_pktgen::images::{self, Format};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Options of `netml infer`.
#[derive(ClapArgs)]
pub struct Args {
    /// The model (ONNX; `scripts/models/export.py` writes the seed models).
    model: PathBuf,
    /// Input: a `.npy` tensor (`[N,C,H,W]` or `[C,H,W]` f32) or a PNG/JPEG image (resized and
    /// ImageNet-normalised); default: seeded random tensors.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Backend: cpu (ONNX Runtime when its library is found, else tract), ort, tract,
    /// reference (the plan's CPU executor), gpu.
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Threads the CPU backends compute on (ort, tract); `all`: every core.
    #[arg(long, default_value = "1", value_parser = parse_threads)]
    threads: usize,
    /// Images per batch (default: N of an `[N,C,H,W]` `.npy` input, else 1).
    #[arg(long)]
    batch: Option<usize>,
    /// Precision: fp32 or fp16.
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// Batches to run (the time per batch is their mean; the first is a warm-up when > 1).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Seed of the random input.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Write the raw output tensor to this `.npy` file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print only the row `ID,INPUT,CLASS` (the model id the receiver serves this model as,
    /// `--input` as given, the top-1 class of the first image): a line of the expected-class
    /// CSV (`model,input,class`) that `netml-pktgen recv --expected` checks answers against.
    #[arg(long, value_name = "ID", requires = "input")]
    expected_row: Option<u8>,
}

/// Runs the model and prints the top-5 classes per image.
pub fn run(a: Args) -> Result<ExitCode, String> {
    let backend: Backend = a.backend.parse().map_err(|e| format!("--backend: {e}"))?;
    let precision: Precision = a
        .precision
        .parse()
        .map_err(|e| format!("--precision: {e}"))?;
    let npy = match &a.input {
        Some(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) => {
            Some(npy::read_f32(p).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        _ => None,
    };
    // An [N,C,H,W] tensor is a batch of N unless --batch says otherwise.
    let batch = match (a.batch, &npy) {
        (Some(b), _) => b,
        (None, Some((s, _))) if s.len() == 4 => s[0],
        _ => 1,
    };
    if batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let (mut engine, load_ms) =
        open_engine_threads(&a.model, backend, batch, precision, a.threads)?;
    let shape = engine.input_shape().to_vec();
    let input = input_batch(&a, npy, batch, &shape)?;

    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..a.repeat.max(1) {
        let t = Instant::now();
        out = Some(
            engine
                .run(&input, batch)
                .map_err(|e| format!("inference: {e}"))?,
        );
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let out = out.expect("at least one run");
    let measured = if times.len() > 1 {
        &times[1..]
    } else {
        &times[..]
    };
    let ms = measured.iter().sum::<f64>() / measured.len() as f64;

    if let Some(path) = &a.output {
        npy::write_f32(path, &out.shape, &out.data)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let top: Vec<Vec<(usize, f32)>> = (0..batch).map(|i| out.top_k(i, 5)).collect();
    if let (Some(id), Some(input)) = (a.expected_row, &a.input) {
        let class = top[0].first().map_or(0, |t| t.0);
        println!("{id},{},{class}", input.display());
        return Ok(ExitCode::SUCCESS);
    }
    if a.json {
        let doc = json!({
            "model": a.model.display().to_string(),
            "backend": engine.name(),
            "precision": precision.to_string(),
            "batch": batch,
            "load_ms": load_ms,
            "ms_per_batch": ms,
            "images_per_s": batch as f64 / (ms / 1e3),
            "top5": top.iter().map(|t| t.iter().map(|(c, s)| json!({"class": c, "score": s})).collect::<Vec<_>>()).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    } else {
        println!(
            "{} on {} ({precision}, batch {}): {ms:.2} ms per batch, {:.1} images/s (load {load_ms:.0} ms)",
            a.model.display(),
            engine.name(),
            batch,
            batch as f64 / (ms / 1e3)
        );
        for (i, t) in top.iter().enumerate() {
            let classes: Vec<String> = t.iter().map(|(c, s)| format!("{c}:{s:.4}")).collect();
            println!("image {i}: top-5 {}", classes.join(" "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `batch` images of `shape` (`[C,H,W]`): from the input file (repeated to fill the batch)
/// or seeded random values.
fn input_batch(
    a: &Args,
    npy: Option<(Vec<usize>, Vec<f32>)>,
    batch: usize,
    shape: &[usize],
) -> Result<Vec<f32>, String> {
    let per: usize = shape.iter().product();
    let one: Vec<f32> = match (&a.input, npy) {
        (None, _) => return Ok(random_input(a.seed, per * batch)),
        (Some(p), Some((s, v))) => {
            if v.len() == per * batch {
                return Ok(v);
            }
            if v.len() != per {
                return Err(format!(
                    "{}: shape {s:?} is neither one image {shape:?} nor a batch of {batch}",
                    p.display()
                ));
            }
            v
        }
        (Some(p), None) => {
            let [c, h, w] = shape else {
                return Err(format!(
                    "an image input needs a [C,H,W] model input, not {shape:?}"
                ));
            };
            if *c != 3 {
                return Err(format!(
                    "an image input needs 3 channels; the model takes {c}"
                ));
            }
            let t =
                images::load(p, *h as u32, *w as u32, Format::F32Chw).map_err(|e| e.to_string())?;
            t.data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        }
    };
    Ok(one.repeat(batch))
}
