//! Building the serving stage from the configuration: one lane per inference function
//! (engines loaded, ingest opened, scheduler seeded) before any packet flows, so that a
//! model that fails to load stops `netml run` at start with its function and file named.

use super::instances::{self, Cores, Place};
use super::lane::{Accepts, Instance, Lane};
use super::shares::ShareControl;
use super::Admitted;
use crate::config::{Config, FunctionConfig};
use crate::ingest;
use netml_gpu::{Normalize, Target, MAX_CHANNELS};
use netml_infer::Precision;
use netml_serve::{Function, FunctionSpec, LatencyModel, Policy, Profile, Server};
use std::time::Duration;

/// The scheduler and the lanes of a pipeline. Every engine of every function is built
/// before the first ingest opens: on a GPU the `netml` ingest starts its resident kernel,
/// after which building an engine could wait for the whole device.
pub(crate) fn open(cfg: &Config, target: Target) -> Result<Opened, String> {
    if cfg.functions.is_empty() {
        let (server, lanes) = gather_only(cfg, target)?;
        return Ok((server, lanes, None));
    }
    let mut cores = Cores::new(&cfg.rx.lcores);
    let prepared: Vec<Prepared> = cfg
        .functions
        .iter()
        .map(|f| prepare(f, target, &mut cores))
        .collect::<Result<_, _>>()?;
    let mut functions = Vec::new();
    let mut lanes = Vec::new();
    for (p, f) in prepared.into_iter().zip(&cfg.functions) {
        let ingest = ingest::open(&cfg.ingest, target, f.instances, p.max_batch * p.stride)
            .map_err(|e| format!("function {:?}: {e}", f.name))?;
        functions.push(p.function);
        lanes.push(Lane {
            ingest,
            stride: p.stride,
            accepts: p.accepts,
            instances: p.instances,
            stall_after: p.stall_after,
            check_crc: cfg.ingest.check_crc,
        });
    }
    let server = Server::new(functions)?;
    let control = ShareControl::new(cfg, &server, &lanes, cores)?;
    Ok((server, lanes, control))
}

/// The scheduler, the lanes, and the share controller when it is on.
pub(crate) type Opened = (Server<Admitted>, Vec<Lane>, Option<ShareControl>);

/// A function with its engines, before its ingest opens.
struct Prepared {
    function: Function<Admitted>,
    instances: Vec<Instance>,
    accepts: Accepts,
    stride: usize,
    max_batch: usize,
    stall_after: Duration,
}

/// No function: every model is gathered in batches of what is queued and answered with its
/// CRC-32; each slot is an "instance" so that several batches are in flight.
fn gather_only(cfg: &Config, target: Target) -> Result<(Server<Admitted>, Vec<Lane>), String> {
    let i = &cfg.ingest;
    let spec = FunctionSpec {
        name: "gather".into(),
        model: 0,
        slo_ns: u64::MAX / 4,
        batch_sizes: vec![i.max_batch],
        policy: Policy::MaxDelay {
            max: i.max_batch,
            delay_ns: 0,
        },
        admission: false,
        queue_limit: cfg.dispatch_queue.max(1),
    };
    let function = Function::new(
        spec,
        (0..i.slots)
            .map(|_| LatencyModel::new(&[i.max_batch]))
            .collect(),
    );
    let lane = Lane {
        ingest: ingest::open(i, target, i.slots, i.max_batch * i.max_image_bytes)?,
        stride: i.max_image_bytes,
        accepts: Accepts::Any,
        instances: (0..i.slots).map(|_| Instance::new(None)).collect(),
        stall_after: Duration::MAX,
        check_crc: i.check_crc,
    };
    Ok((Server::catch_all(function), vec![lane]))
}

fn prepare(f: &FunctionConfig, target: Target, cores: &mut Cores) -> Result<Prepared, String> {
    let name = &f.name;
    let file = f.model_file.display();
    let precision: Precision = f
        .precision
        .parse()
        .map_err(|e| format!("function {name:?}: {e}"))?;
    let place = match (f.target.as_str(), target) {
        ("cpu", _) | ("auto", Target::Host) => Place::Cpu(instances::cpu_shares(f, cores)?),
        ("auto", Target::Gpu(ordinal)) => Place::Gpu(gpu_context(ordinal)?, f.shares.clone()),
        (t, _) => match t.strip_prefix("gpu:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if target == Target::Gpu(n) => Place::Gpu(gpu_context(n)?, f.shares.clone()),
            Some(n) => {
                return Err(format!(
                    "function {name:?}: target gpu:{n} but the ingest runs on {target} (instances read the ingest's slots in place)"
                ))
            }
            None => return Err(format!("function {name:?}: target {t:?} (expected auto, cpu or gpu:N)")),
        },
    };
    let sizes = {
        let mut s = f.engine_batches();
        if let Some(b) = f.policy()?.required_batch() {
            s.push(b);
        }
        s.sort_unstable();
        s.dedup();
        s
    };
    let mut instances = Vec::with_capacity(f.instances);
    let mut seeds = Vec::with_capacity(f.instances);
    let mut shape: Vec<usize> = Vec::new();
    for k in 0..f.instances {
        let (executor, measured, s) = instances::build(f, k, &sizes, precision, &place)?;
        instances.push(Instance::new(Some(executor)));
        seeds.push(measured);
        shape = s;
    }
    let [c, h, w] = shape[..] else {
        return Err(format!(
            "function {name:?}: {file} takes {shape:?} per image; only C x H x W images are served"
        ));
    };
    let chw = [c as u32, h as u32, w as u32];
    let accepts = match f.input.as_str() {
        "u8" => {
            if c > MAX_CHANNELS {
                return Err(format!(
                    "function {name:?}: u8 input supports at most {MAX_CHANNELS} channels"
                ));
            }
            let (mut mean, mut std) = ([0f32; MAX_CHANNELS], [1f32; MAX_CHANNELS]);
            for ch in 0..c {
                mean[ch] = f.mean[ch.min(2)];
                std[ch] = f.std[ch.min(2)];
            }
            Accepts::U8 {
                normalize: Normalize {
                    channels: chw[0],
                    height: chw[1],
                    width: chw[2],
                    mean,
                    std,
                },
            }
        }
        _ => Accepts::F32 { chw },
    };
    let stride = c * h * w * 4;
    let max_batch = *sizes.last().expect("at least one batch size");
    let policy = f.policy()?;
    let spec = FunctionSpec {
        name: name.clone(),
        model: f.model,
        slo_ns: (f.slo_ms * 1e6) as u64,
        batch_sizes: sizes.clone(),
        policy,
        admission: f.admission.unwrap_or(policy.admission_by_default()),
        queue_limit: f.queue_limit,
    };
    let profile = seed_model(f, &sizes, precision)?;
    // This machine's warm-up times win over a profile measured elsewhere.
    let models = seeds
        .iter()
        .map(|m| {
            if m.is_empty() {
                profile.clone()
            } else {
                LatencyModel::seeded(&sizes, m)
            }
        })
        .collect();
    let function = Function::new(spec, models);
    let slo = Duration::from_nanos((f.slo_ms * 1e6) as u64);
    Ok(Prepared {
        function,
        instances,
        accepts,
        stride,
        max_batch,
        stall_after: (slo * 20).max(Duration::from_secs(2)),
    })
}

fn gpu_context(ordinal: usize) -> Result<std::sync::Arc<cudarc::driver::CudaContext>, String> {
    netml_gpu::cuda::context(ordinal).map_err(|e| format!("GPU {ordinal}: {e:?}"))
}

/// The scheduler's starting latency model: the profile's rows for this model, or blank.
fn seed_model(
    f: &FunctionConfig,
    sizes: &[usize],
    precision: Precision,
) -> Result<LatencyModel, String> {
    let Some(path) = &f.profile else {
        return Ok(LatencyModel::new(sizes));
    };
    let profile = Profile::load(path).map_err(|e| format!("function {:?}: profile {e}", f.name))?;
    let model = f.profile_model.clone().unwrap_or_else(|| {
        f.model_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let points = profile.points(&model, &precision.to_string());
    if points.is_empty() {
        tracing::warn!(
            "function {:?}: profile {} has no rows for {model} {precision}; learning from scratch",
            f.name,
            path.display()
        );
    }
    Ok(LatencyModel::seeded(sizes, &points))
}
