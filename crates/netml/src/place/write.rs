//! A placement as `netml run` configurations: one file per GPU, `DIR/gpuN.toml`, each with
//! an `[[functions]]` entry per model on that GPU (its instances and their shares).
//!
//! One `netml run` drives one GPU (the ingest's, whose batch slots the instances read in
//! place), so a placement over N GPUs is N processes, GPU k's started with
//! `CUDA_VISIBLE_DEVICES=k`; in its file the GPU is `gpu:0`.

use super::Context;
use netml_serve::place::Placement;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Writes `pl` into `dir` (created when missing); returns the files written.
pub(super) fn configs(
    dir: &Path,
    ctx: &Context,
    pl: &Placement,
    profile: Option<&Path>,
    model_dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for g in 0..pl.gpus.len() {
        let path = dir.join(format!("gpu{g}.toml"));
        std::fs::write(&path, config(ctx, pl, g, profile, model_dir))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// GPU `g`'s configuration.
pub(super) fn config(
    ctx: &Context,
    pl: &Placement,
    g: usize,
    profile: Option<&Path>,
    model_dir: &Path,
) -> String {
    let gpu = &pl.gpus[g];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# netml place: GPU {g} of {} ({} placement); profile {}; GPU {}; co-location margin {}; planning load {}",
        pl.gpus.len(),
        pl.strategy,
        ctx.profile,
        ctx.params.device,
        ctx.params.margin,
        ctx.params.max_load
    );
    if let Some(m) = &ctx.modelled {
        let _ = writeln!(s, "# shares modelled (no share rows for {})", m.join(", "));
    }
    let _ = writeln!(
        s,
        "# Run on GPU {g}: CUDA_VISIBLE_DEVICES={g} netml run --config gpu{g}.toml\n\
         # Send each model's images to the GPUs serving it in proportion to their planned rates."
    );
    let _ = writeln!(s, "\n[ingest]\ntarget = \"gpu\"");
    let mut functions: Vec<usize> = gpu.instances.iter().map(|i| i.function).collect();
    functions.dedup();
    for f in functions {
        let arg = &ctx.functions[f];
        let mine: Vec<_> = gpu.instances.iter().filter(|i| i.function == f).collect();
        let batches = super::engine_batches(&ctx.params.batch_sizes);
        let largest = batches.last().copied().unwrap_or(1);
        let sizes: Vec<String> = batches.iter().map(|b| b.to_string()).collect();
        let shares: Vec<String> = mine.iter().map(|i| i.share.to_string()).collect();
        let planned: Vec<String> = mine
            .iter()
            .map(|i| {
                format!(
                    "{:.1}/s at batch {} ({:.2} ms)",
                    i.rate,
                    i.batch,
                    i.latency_ns / 1e6
                )
            })
            .collect();
        let model_file = model_dir.join(format!("{}.onnx", arg.name));
        let _ = writeln!(s, "\n# planned: {}", planned.join(", "));
        let _ = writeln!(s, "[[functions]]");
        let _ = writeln!(s, "name = {}", toml_str(&arg.name));
        let _ = writeln!(s, "model = {}", arg.model);
        let _ = writeln!(
            s,
            "model_file = {}",
            toml_str(&model_file.to_string_lossy())
        );
        let _ = writeln!(s, "precision = {}", toml_str(&arg.precision));
        let _ = writeln!(s, "slo_ms = {:?}", arg.slo_ms);
        let _ = writeln!(s, "max_batch = {largest}");
        let _ = writeln!(s, "batch_sizes = [{}]", sizes.join(", "));
        let _ = writeln!(s, "instances = {}", mine.len());
        let _ = writeln!(s, "shares = [{}]", shares.join(", "));
        let _ = writeln!(s, "target = \"gpu:0\"");
        let _ = writeln!(s, "policy = \"slab\"");
        match profile {
            Some(p) => {
                let _ = writeln!(s, "profile = {}", toml_str(&p.to_string_lossy()));
            }
            None => {
                let _ = writeln!(s, "# profile = \"docs/profiles/h100-pytorch.csv\"");
            }
        }
        let _ = writeln!(s, "profile_model = {}", toml_str(&arg.name));
    }
    s
}
