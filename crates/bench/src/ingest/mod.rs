//! `netml bench ingest`: what moving images into batch slots costs the pipeline thread, in the
//! three ingest modes (netml, launch, cpu-copy), for several batch sizes.
//!
//! The sources are laid out like received packets (2 KiB mbufs, payload at offset 128). On
//! the host ([`Target::Host`]) host threads stand in for the GPU's blocks and copy engine;
//! with `--target gpu` the same command runs the GPU implementations through
//! [`netml_gpu::open`] (the packet memory registered with the driver first). The figure that
//! matters is the submitting thread's CPU per image ([`measure`]); the papers' claim is that
//! the GPU-pull path needs >= 150x less of it than the CPU copy. Both job forms are measured
//! (`--jobs`): strided (the pipeline's, rows named after the mode) and listed.

mod measure;
mod report;
mod source;

use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::process::ExitCode;

use netml_gpu::{open, register_sources, IngestConfig, IngestMode, Target};

use measure::{clock_overhead_s, memcpy_ceiling, run_point};
use report::{Ceiling, Report};
use source::{Pool, Shape, MBUF, PAYLOAD_AT};

/// How the bench hands images to the ingest ([`netml_gpu::Sources`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Form {
    /// One (src, len, offset) descriptor per fragment, validated per fragment.
    Listed,
    /// One source pointer per fragment plus the fragment size (the pipeline's form), validated
    /// in O(1) per image.
    Strided,
}

/// Which forms `--jobs` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Jobs {
    Listed,
    Strided,
    Both,
}

impl Jobs {
    fn forms(self) -> &'static [Form] {
        match self {
            Jobs::Listed => &[Form::Listed],
            Jobs::Strided => &[Form::Strided],
            Jobs::Both => &[Form::Strided, Form::Listed],
        }
    }
}

/// Row name of `mode` in `form`: the mode's name for strided jobs (what the pipeline sends),
/// `<mode>-listed` for listed ones.
pub(super) fn row_name(mode: IngestMode, form: Form) -> String {
    match form {
        Form::Strided => mode.name().to_string(),
        Form::Listed => format!("{}-listed", mode.name()),
    }
}

/// Options of `netml bench ingest`.
#[derive(ClapArgs)]
pub struct Args {
    /// `host`, or `gpu` / `gpuN` (GPU N, default 0).
    #[arg(long, default_value = "host")]
    target: String,
    /// Modes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "netml,launch,cpu-copy")]
    modes: Vec<IngestMode>,
    /// Job forms to measure: strided (rows named after the mode), listed (rows `<mode>-listed`)
    /// or both.
    #[arg(long, value_enum, default_value = "both")]
    jobs: Jobs,
    /// Batch sizes (images per batch), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16,32")]
    batches: Vec<usize>,
    /// Seconds measured per mode and batch size (after a warm-up of a sixth of that).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Gather blocks (host threads on the host; default 2 there, 32 on a GPU).
    #[arg(long)]
    blocks: Option<u32>,
    /// Batch slots (= batches in flight).
    #[arg(long, default_value_t = 4)]
    slots: usize,
    /// Doorbell ring entries / jobs in flight (default: 64, or room for every slot's batch
    /// when converting, which takes one entry per image).
    #[arg(long)]
    ring: Option<u32>,
    /// Payload bytes per fragment.
    #[arg(long, default_value_t = 1024)]
    frag_size: usize,
    /// Image shape, CxHxW.
    #[arg(long, default_value = "3x224x224")]
    shape: String,
    /// Send u8 HWC images and convert them to f32 CHW in the ingest.
    #[arg(long)]
    u8: bool,
    /// Short run (0.15 s per point) for tests.
    #[arg(long)]
    quick: bool,
    /// Append one CSV row per mode and batch size to this file (header when new).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write an SVG plot (CPU per image vs batch size, one line per mode) to this file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn parse_target(s: &str) -> Result<Target, String> {
    match s {
        "host" => Ok(Target::Host),
        "gpu" => Ok(Target::Gpu(0)),
        _ => s
            .strip_prefix("gpu")
            .and_then(|n| n.parse().ok())
            .map(Target::Gpu)
            .ok_or_else(|| format!("--target {s:?}: expected host, gpu or gpuN")),
    }
}

/// Runs `netml bench ingest`.
pub fn run(a: Args) -> Result<ExitCode, String> {
    let target = parse_target(&a.target)?;
    let shape = Shape::parse(&a.shape)?;
    if a.frag_size == 0 || a.frag_size > MBUF - PAYLOAD_AT {
        return Err(format!(
            "--frag-size must be 1..={} (a {MBUF}-byte mbuf with the payload at {PAYLOAD_AT})",
            MBUF - PAYLOAD_AT
        ));
    }
    if a.batches.is_empty() || a.batches.contains(&0) || a.modes.is_empty() {
        return Err("--batches and --modes need at least one value, batches >= 1".into());
    }
    let (seconds, warmup) = if a.quick {
        (0.15, 0.05)
    } else {
        (a.seconds, a.seconds / 6.0)
    };
    let blocks = a.blocks.unwrap_or(match target {
        Target::Host => 2,
        Target::Gpu(_) => 32,
    });
    let max_batch = *a.batches.iter().max().expect("non-empty");
    let per_batch = if a.u8 { max_batch } else { 1 };
    let ring = a.ring.unwrap_or_else(|| 64.max(a.slots * per_batch) as u32);
    let pool = Pool::new(shape, a.frag_size, a.u8, (2 * max_batch).max(8));
    let (mem, len) = pool.memory();
    // SAFETY: the pool's buffer stays allocated, unmoved, until after `_registered` drops
    // (declared after `pool`, so dropped before it).
    let _registered = unsafe { register_sources(target, mem, len) }.map_err(|e| e.to_string())?;
    let clock_s = clock_overhead_s();
    let mut rep = Report::new(&a, target, blocks, &pool, clock_s);
    rep.header();
    let ceiling_s = if a.quick { 0.05 } else { 1.0 };
    let (memcpy_us, memcpy_gbs) = memcpy_ceiling(&pool, a.slots * max_batch, ceiling_s);
    rep.ceiling = Some(Ceiling {
        us_per_image: memcpy_us,
        gb_per_s: memcpy_gbs,
    });
    for &mode in &a.modes {
        for &form in a.jobs.forms() {
            for &batch in &a.batches {
                let cfg = IngestConfig {
                    mode,
                    slots: a.slots,
                    slot_bytes: max_batch * pool.slot_image_bytes,
                    blocks,
                    ring_entries: ring,
                };
                let mut ingest = open(&cfg, target).map_err(|e| format!("{mode}: {e}"))?;
                let label = format!("{} x {batch}", row_name(mode, form));
                let p = run_point(
                    ingest.as_mut(),
                    &pool,
                    form,
                    batch,
                    warmup,
                    seconds,
                    &label,
                    clock_s,
                )
                .map_err(|e| format!("{label}: {e}"))?;
                drop(ingest);
                eprint!("\r{:78}\r", "");
                rep.add(mode, form, p);
            }
        }
    }
    rep.finish()?;
    Ok(ExitCode::SUCCESS)
}
