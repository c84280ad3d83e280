//! `netml simulate`: the serving scheduler of `netml run` (netml_serve: routing, admission,
//! SLAB and the baseline policies, instance choice, latency learning) driven by
//! `netml_serve::sim`'s discrete-event loop, with a virtual clock and batches that take the
//! time a latency profile says (plus jitter), against generated or captured arrivals.
//!
//! ```text
//! for each load level: arrivals per function (--trace, the same for every policy)
//!   for each policy: sim::run(functions under that policy, arrivals) -> one row per function
//! -> table (+ CSV, JSON), a summary per load (goodput and p99 per policy, SLAB / best other),
//!    plots of goodput and p99 against the load
//! ```
//!
//! The code: [`setup`] (functions, policies, capacities), [`trace`] (`--trace`, load levels,
//! arrivals), [`capture`] (arrivals from a pcap), [`columns`] (a row's figures),
//! [`summary`] (runs in total, per load, SLAB's verdict), [`report`] (table, CSV, JSON),
//! [`plots`].

mod capture;
mod columns;
mod plots;
mod replay;
mod report;
mod setup;
mod sharing;
mod summary;
mod trace;

use clap::Args as ClapArgs;
use netml_serve::sim;
use netml_serve::{FunctionSpec, FunctionStats, Profile};
use setup::{FunctionArg, Setup};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use trace::{Level, TraceSpec};

/// The project's first profile (PyTorch eager on a whole H100), built in so that the
/// default works from any directory.
pub(crate) const H100_PROFILE: &str = include_str!("../../../../docs/profiles/h100-pytorch.csv");

/// Options of `netml simulate`.
#[derive(ClapArgs)]
pub struct Args {
    /// Latency profile CSV (`model,precision,batch,ms` columns by name, `latency_ms` or
    /// `p50_ms` also read: what `netml bench infer --csv` writes). Default: the built-in
    /// docs/profiles/h100-pytorch.csv (PyTorch eager on a whole H100).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// An inference function (repeatable): `NAME[,key=value...]`, NAME being the profile's
    /// model name; keys (defaults): model=ID (its place in the list, from 1), slo_ms=50,
    /// policy=slab, precision=fp32, instances=1, batch_sizes=1,2,4,8,16,32, admission=on|off
    /// (the policy's: on for slab, off for the baselines), queue_limit=4096. Default: every
    /// model of the profile, with the defaults.
    #[arg(long = "function", value_name = "NAME[,key=value]")]
    functions: Vec<String>,
    /// Load levels: fractions of each function's capacity (its best images/s inside the
    /// SLO from the profile: max over batch sizes of batch / latency, times instances).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.25,0.5,0.75,0.9,1.0,1.25,1.5"
    )]
    load: Vec<f64>,
    /// Absolute images/s per function instead of --load (comma-separated levels).
    #[arg(long, value_delimiter = ',', conflicts_with = "load")]
    rate: Vec<f64>,
    /// Arrivals: `poisson`, `bursts:SIZE,PERIOD_MS` (SIZE images at once every PERIOD_MS,
    /// plus Poisson making up the rest of the level's rate), `steps:T0_S=F0,T1_S=F1,...`
    /// (Poisson at the level's rate times F from time T on), or `pcap:FILE` (each image's
    /// fragment 0 in a capture, with its model id; --load, --rate and --duration-s do not
    /// apply).
    #[arg(long, default_value = "poisson")]
    trace: String,
    /// UDP port(s) of the fragment protocol in a `pcap:` trace.
    #[arg(long = "port", default_values_t = [9000])]
    ports: Vec<u16>,
    /// Seconds of arrivals per run (virtual time; the run lasts until the last answer).
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Policies compared, one run each per load level, every function under that policy:
    /// `slab`, `fixed:N`, `max_delay:N,D_us`. Default:
    /// slab,fixed:1,fixed:32,max_delay:32,5000, or, when a --function sets its own policy=,
    /// one run with each function's own.
    #[arg(long)]
    policies: Option<String>,
    /// Relative standard deviation of a batch's time around the profile's.
    #[arg(long, default_value_t = 0.05)]
    jitter: f64,
    /// Seed of the arrivals and the jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Append one CSV row per load x policy x function to this file (header when new).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write goodput against load per policy to this SVG, and p99 latency against load to
    /// `<name>-p99.svg` beside it.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON instead of the tables.
    #[arg(long)]
    json: bool,
    /// Replay a live run's decision record (`netml run --record FILE`) instead: the same
    /// functions and starting latency models, the recorded arrivals and batch completion
    /// times; prints whether the simulator makes the live run's batch decisions.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Put every function on one GPU and compare sharing modes instead of policies (each
    /// function under SLAB): `temporal` (time-slicing: one function's kernels at a time),
    /// `shared` (all concurrent, no limits: default MPS), `mps` (fixed equal shares, the
    /// papers' baseline), `partitioned` (green-context SM shares resized online by the GSLICE
    /// controller), comma-separated, or `all`. --load is then a fraction of the GPU's
    /// capacity for the mix (every function at the same rate). Share latencies come from the
    /// profile's gpu_share_pct rows, else from a model (the report says which). A CPU profile
    /// (`threads` column, `netml bench infer --threads 1,2,.. --csv`) simulates a CPU of its
    /// largest thread count, its shares in cores, measured.
    #[arg(long, value_name = "MODES")]
    sharing: Option<String>,
    /// SMs of the simulated GPU (--sharing); shares are multiples of 8 SMs, 8 kept for ingest.
    #[arg(long, default_value_t = netml_serve::share::HOPPER_SMS)]
    gpu_sms: u32,
    /// Slowdown per other running batch in the `shared` mode (memory and cache contention
    /// that SM limits do not remove).
    #[arg(long, default_value_t = 0.1)]
    interference: f64,
    /// Time between the controller's decisions, ms (--sharing partitioned).
    #[arg(long, default_value_t = 100.0)]
    controller_period_ms: f64,
}

/// One function's outcome in one run.
struct FnResult {
    spec: FunctionSpec,
    stats: FunctionStats,
    /// Nominal images/s offered (the level's rate; for a capture, what it held).
    rate: f64,
    /// Its capacity, images/s.
    capacity: f64,
}

/// One run: a level and a policy.
struct Run {
    level: Level,
    policy: String,
    functions: Vec<FnResult>,
    /// Arrivals of a model no function serves (captures only).
    unknown_model: u64,
    /// Seconds of arrivals: offered rates and goodput are per these.
    duration_s: f64,
    /// Seconds from the first arrival to the last answer: throughput is per these (a
    /// backlog drained after the arrivals stopped counts at the rate it was drained).
    span_s: f64,
}

/// What the report says about the whole simulation.
struct Context<'a> {
    profile: &'a str,
    /// The device and the share-latency source, when modes were compared (`--sharing`).
    sharing: Option<String>,
    trace: String,
    setups: &'a [Setup],
    seed: u64,
    jitter: f64,
}

/// Runs `netml simulate`.
pub fn run(a: Args) -> Result<ExitCode, String> {
    if let Some(path) = &a.replay {
        return replay::run(path);
    }
    if !(a.duration_s.is_finite() && a.duration_s > 0.0) {
        return Err("--duration-s must be a positive number".into());
    }
    if !(a.jitter.is_finite() && (0.0..=0.5).contains(&a.jitter)) {
        return Err("--jitter must be in 0..=0.5".into());
    }
    let (profile, profile_name) = match &a.profile {
        Some(p) => (Profile::load(p)?, p.display().to_string()),
        None => (
            Profile::parse(H100_PROFILE).expect("the built-in profile parses"),
            "built-in docs/profiles/h100-pytorch.csv".to_string(),
        ),
    };
    let args: Vec<FunctionArg> = if a.functions.is_empty() {
        profile
            .models()
            .into_iter()
            .map(FunctionArg::named)
            .collect()
    } else {
        a.functions
            .iter()
            .map(|f| FunctionArg::parse(f))
            .collect::<Result<_, _>>()?
    };
    let setups: Vec<Setup> = args
        .into_iter()
        .enumerate()
        .map(|(i, f)| Setup::new(f, i, &profile))
        .collect::<Result<_, _>>()?;
    let policies = setup::policies(
        a.policies.as_deref(),
        &setups.iter().map(|s| s.arg.clone()).collect::<Vec<_>>(),
    )?;
    let spec: TraceSpec = a.trace.parse()?;
    let levels = levels(&a, &spec)?;
    let captured = match &spec {
        TraceSpec::Pcap(path) => Some(capture::arrivals(path, &a.ports)?),
        _ => None,
    };
    let duration_ns = match &captured {
        Some(c) => c.last().map_or(0, |l| l.at).max(1_000_000),
        None => (a.duration_s * 1e9) as u64,
    };
    let duration_s = duration_ns as f64 / 1e9;

    if let Some(modes) = &a.sharing {
        if captured.is_some() {
            return Err("--sharing runs generated arrivals, not a pcap: trace".into());
        }
        if !(a.controller_period_ms.is_finite() && a.controller_period_ms > 0.0) {
            return Err("--controller-period-ms must be a positive number".into());
        }
        if !(a.interference.is_finite() && a.interference >= 0.0) {
            return Err("--interference must be a number >= 0".into());
        }
        let o = sharing::Options {
            modes: sharing::modes(modes)?,
            device: match profile.threads {
                Some(cores) => netml_serve::Device::cpu(cores),
                None => netml_serve::Device::gpu(a.gpu_sms.max(16)),
            },
            interference: a.interference,
            controller: netml_serve::ControllerConfig {
                period_ns: (a.controller_period_ms * 1e6) as u64,
                ..Default::default()
            },
            jitter: a.jitter,
            seed: a.seed,
        };
        let mode_runs = sharing::run_all(&o, &setups, &levels, &spec, duration_ns, &profile)?;
        let curves = sharing::curves(&setups, &profile)?;
        let ctx = Context {
            profile: &profile_name,
            sharing: Some(sharing::header(&o.device, &curves, o.interference)),
            trace: a.trace.clone(),
            setups: &setups,
            seed: a.seed,
            jitter: a.jitter,
        };
        let extra = sharing::summary_text(&mode_runs, &o.device);
        let runs: Vec<Run> = mode_runs.into_iter().map(|m| m.run).collect();
        return report_all(&a, &ctx, &runs, &extra);
    }

    let total = levels.len() * policies.len();
    let mut runs = Vec::with_capacity(total);
    for (li, &level) in levels.iter().enumerate() {
        let arrivals = match &captured {
            Some(c) => c.clone(),
            None => {
                let rates: Vec<(u8, f64)> = setups
                    .iter()
                    .map(|s| (s.model, level.rate(s.capacity).expect("not a capture")))
                    .collect();
                let seed = a
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(li as u64 * 1009);
                trace::arrivals(&spec, &rates, duration_ns, seed)
            }
        };
        for (label, policy) in &policies {
            let started = Instant::now();
            let functions = setups.iter().map(|s| s.sim(*policy, a.jitter)).collect();
            let out = sim::run(functions, &arrivals, a.seed)?;
            let run = Run {
                level,
                policy: label.clone(),
                functions: out
                    .functions
                    .into_iter()
                    .zip(&setups)
                    .map(|((spec, stats), s)| FnResult {
                        rate: level
                            .rate(s.capacity)
                            .unwrap_or(stats.offered as f64 / duration_s),
                        capacity: s.capacity,
                        spec,
                        stats,
                    })
                    .collect(),
                unknown_model: out.unknown_model,
                duration_s,
                span_s: (out.span_ns as f64 / 1e9).max(duration_s),
            };
            summary::progress(runs.len() + 1, total, label, &run, started);
            runs.push(run);
        }
    }

    let ctx = Context {
        profile: &profile_name,
        sharing: None,
        trace: a.trace.clone(),
        setups: &setups,
        seed: a.seed,
        jitter: a.jitter,
    };
    report_all(&a, &ctx, &runs, "")
}

/// Prints the report (text with `extra` after it, or JSON) and writes the CSV and plots.
fn report_all(a: &Args, ctx: &Context, runs: &[Run], extra: &str) -> Result<ExitCode, String> {
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::json(ctx, runs)).expect("json")
        );
    } else {
        print!("{}{extra}", report::text(ctx, runs));
    }
    if let Some(path) = &a.csv {
        report::write_csv(path, ctx, runs)?;
    }
    if let Some(path) = &a.plot {
        plots::write(path, ctx, runs)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The load levels of the sweep.
fn levels(a: &Args, spec: &TraceSpec) -> Result<Vec<Level>, String> {
    if matches!(spec, TraceSpec::Pcap(_)) {
        return Ok(vec![Level::Capture]);
    }
    let (values, make, name): (&[f64], fn(f64) -> Level, _) = if a.rate.is_empty() {
        (&a.load, Level::Load, "--load")
    } else {
        (&a.rate, Level::Rate, "--rate")
    };
    if values.is_empty() || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(format!("{name}: every level must be a positive number"));
    }
    Ok(values.iter().map(|&v| make(v)).collect())
}
