//! `netml place`: instances, shares and GPUs for a set of models at given rates and SLOs
//! (`netml_serve::place`), our placement beside the two baselines, optionally run through
//! the device simulator, and written as `netml run` configurations.
//!
//! ```text
//! profile + --function (model, rate, SLO) x --rate levels
//!   -> per level and strategy: place() -> table (+ CSV)
//!   -> --evaluate: each GPU of each placement through sim::device::run -> attainment, goodput
//!   -> --write DIR: our placement as one netml run config per GPU
//! ```
//!
//! The code: [`function`] (`--function` parsed, the demands), [`table`] (text and CSV),
//! [`evaluate`] (the simulation), [`write`](mod@write) (the configurations).

mod evaluate;
mod function;
mod table;
mod write;

use crate::simulate::H100_PROFILE;
use clap::Args as ClapArgs;
use function::FunctionArg;
use netml_serve::place::{self, Params, Placement, Strategy};
use netml_serve::{Device, Profile};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `netml place`.
#[derive(ClapArgs)]
pub struct Args {
    /// Latency profile CSV (as `netml simulate`; rows with `gpu_share_pct` below 100 are the
    /// latency at that share). Default: the built-in docs/profiles/h100-pytorch.csv.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// A model to place (repeatable): `NAME[,key=value...]`, NAME being the profile's model
    /// name; keys (defaults): rate=R (images/s; default: each --rate level), slo_ms=50,
    /// precision=fp32, model=ID (its place in the list, from 1). Default: every model of the
    /// profile.
    #[arg(long = "function", value_name = "NAME[,key=value]")]
    functions: Vec<String>,
    /// Images/s of each model that sets no rate=, one placement per level.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    rate: Vec<f64>,
    /// GPUs at hand: a placement needing more is marked, and the exit status is 1 when ours
    /// does. Default: as many as needed.
    #[arg(long)]
    gpus: Option<usize>,
    /// SMs per GPU (132: H100/H200 SXM); shares are multiples of 8 SMs and 8 are kept for
    /// the resident gather kernel.
    #[arg(long, default_value_t = netml_serve::share::HOPPER_SMS)]
    sms: u32,
    /// Co-location slowdown margin: an instance in less than a whole GPU is planned with
    /// its predicted latency this much longer (0.1: 10%).
    #[arg(long, default_value_t = place::DEFAULT_MARGIN)]
    margin: f64,
    /// Fraction of an instance's sustainable images/s (batch / latency) it is planned at at
    /// most; less where the SLO leaves little room for a queue (1 - 2.3 / (k x batch), k the
    /// batches of slack beyond two batch latencies).
    #[arg(long, default_value_t = place::DEFAULT_MAX_LOAD)]
    max_load: f64,
    /// Engine batch sizes an instance may be planned at (all of them are the written and
    /// simulated functions' engine batch sizes).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    batch_sizes: Vec<usize>,
    /// Strategies compared: `one-per-gpu`, `gpu-lets`, `ours`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "one-per-gpu,gpu-lets,ours"
    )]
    strategies: Vec<String>,
    /// Run each placement through the device simulator (partitioned mode, each GPU on its
    /// own, Poisson arrivals per model split over its GPUs by planned rate) and print SLO
    /// attainment and goodput.
    #[arg(long)]
    evaluate: bool,
    /// Seconds of simulated arrivals per placement (--evaluate).
    #[arg(long, default_value_t = 5.0)]
    duration_s: f64,
    /// Relative standard deviation of a simulated batch's time (--evaluate).
    #[arg(long, default_value_t = 0.05)]
    jitter: f64,
    /// Slowdown of every simulated batch on a GPU holding several instances (--evaluate;
    /// default: the planning margin).
    #[arg(long)]
    interference: Option<f64>,
    /// Seed of the simulated arrivals and jitter (--evaluate).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Append one CSV row per rate x strategy x instance to this file (header when new).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write our placement as `netml run` configurations, DIR/gpuN.toml, one per GPU
    /// (one --rate level only).
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
    /// Directory of the ONNX models the written configurations name (`DIR/NAME.onnx`).
    #[arg(long, default_value = "models")]
    model_dir: PathBuf,
}

/// The placements of one rate level.
pub(super) struct Level {
    /// The level's rate (images/s of each model without its own rate=).
    rate: f64,
    /// The models at this level.
    demands: Vec<place::Demand>,
    /// One per strategy, with its evaluation when asked.
    placements: Vec<(Placement, Option<evaluate::Outcome>)>,
}

/// What every table and file says about the whole run.
pub(super) struct Context {
    profile: String,
    params: Params,
    functions: Vec<FunctionArg>,
    /// GPUs at hand.
    gpus: Option<usize>,
    /// `Some(models)` when latencies at partial shares are modelled for these models.
    modelled: Option<Vec<String>>,
}

/// The engine batch sizes a placed function gets: every size placement may plan with, not
/// only its instances' planned batches, so that SLAB can catch up on a burst with a larger
/// batch where the SLO allows it.
fn engine_batches(sizes: &[usize]) -> Vec<usize> {
    let mut v = sizes.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Runs `netml place`.
pub fn run(a: Args) -> Result<ExitCode, String> {
    let (profile, profile_name) = match &a.profile {
        Some(p) => (Profile::load(p)?, p.display().to_string()),
        None => (
            Profile::parse(H100_PROFILE).expect("the built-in profile parses"),
            "built-in docs/profiles/h100-pytorch.csv".to_string(),
        ),
    };
    let functions = function::args(&a.functions, &profile)?;
    let strategies: Vec<Strategy> = a
        .strategies
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    if a.rate.is_empty() || a.rate.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        return Err("--rate: every level must be a positive number".into());
    }
    if a.write.is_some() && a.rate.len() > 1 {
        return Err("--write takes one --rate level".into());
    }
    if a.sms < 16 {
        return Err("--sms must be at least 16".into());
    }
    let params = Params {
        device: Device::gpu(a.sms),
        margin: a.margin,
        max_load: a.max_load,
        batch_sizes: a.batch_sizes.clone(),
    };
    params.check()?;
    let sim = evaluate::Settings {
        duration_s: a.duration_s,
        jitter: a.jitter,
        interference: a.interference.unwrap_or(a.margin),
        seed: a.seed,
    };
    if a.evaluate {
        sim.check()?;
    }
    let mut levels = Vec::new();
    for &rate in &a.rate {
        let demands = function::demands(&functions, &profile, rate)?;
        let mut placements = Vec::new();
        for &s in &strategies {
            let pl = place::place(s, &demands, &params)?;
            let ev = if a.evaluate {
                let started = std::time::Instant::now();
                let out = evaluate::run(&pl, &demands, &functions, &params, &profile, &sim)?;
                eprintln!(
                    "evaluated {s} at {rate}/s: {} GPU(s), attainment {:.4} ({:.1} s)",
                    pl.gpus.len(),
                    out.attainment(),
                    started.elapsed().as_secs_f64()
                );
                Some(out)
            } else {
                None
            };
            placements.push((pl, ev));
        }
        levels.push(Level {
            rate,
            demands,
            placements,
        });
    }
    let modelled: Vec<String> = levels[0]
        .demands
        .iter()
        .filter(|d| !d.curve.measured_shares())
        .map(|d| d.name.clone())
        .collect();
    let ctx = Context {
        profile: profile_name,
        params,
        functions,
        gpus: a.gpus,
        modelled: (!modelled.is_empty()).then_some(modelled),
    };
    print!("{}", table::text(&ctx, &levels));
    if let Some(path) = &a.csv {
        table::write_csv(path, &ctx, &levels)?;
    }
    let ours = |l: &Level| {
        l.placements
            .iter()
            .find(|(p, _)| p.strategy == Strategy::Packed)
            .map(|(p, _)| p.clone())
    };
    if let Some(dir) = &a.write {
        let level = &levels[0];
        let pl = match ours(level) {
            Some(p) => p,
            None => place::place(Strategy::Packed, &level.demands, &ctx.params)?,
        };
        if a.gpus.is_some_and(|n| pl.gpus.len() > n) {
            return Err(format!(
                "--write: our placement needs {} GPUs, more than the {} given",
                pl.gpus.len(),
                a.gpus.unwrap_or(0)
            ));
        }
        let paths = write::configs(dir, &ctx, &pl, a.profile.as_deref(), &a.model_dir)?;
        for p in paths {
            eprintln!("wrote {}", p.display());
        }
    }
    let over = levels
        .iter()
        .any(|l| ours(l).is_some_and(|p| a.gpus.is_some_and(|n| p.gpus.len() > n)));
    Ok(if over {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
