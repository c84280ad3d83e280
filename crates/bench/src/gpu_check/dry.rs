//! `netml gpu-check --dry-run`: the run without a GPU. Every section's CPU side runs here
//! as it would on the GPU machine (NVRTC compiles, the self-check's generators and oracles on
//! the host target, ONNX parsing, plan compilation and translation, the reference runs) and is
//! timed; the GPU side is estimated from the work it would do and the rates below, which are
//! assumptions (reference measurements of the H100 machine where there are any), not
//! measurements. The sum, with what scripts/gpu-check spent before the binary
//! (`--elapsed-before`: the model export, measured) and the PyTorch baseline (estimated), is
//! the estimate of the default run on the GPU machine.

use std::process::ExitCode;
use std::time::Instant;

use netml_gpu::selfcheck;
use netml_gpu::{IngestMode, Target};
use netml_infer::gpu::{translate, Call};
use netml_infer::{Model, Plan, Precision};

use super::infer::{RefCache, BATCHES, FULL_CHECKED, REPLAYS};
use super::ingest::perf::{pattern, BATCH, IMAGE, MBUF_BYTES};
use super::ingest::{selfcheck_config, selfcheck_options, SELFCHECK_CONFIGS};
use super::models::{models, table_ms, DEFAULT_FULL};
use super::{libraries, Args, Row, Rows};

/// Assumed: starting a section's process (discovery, primary context, teardown).
const CHILD_S: f64 = 1.5;
/// Assumed, generously: cuBLAS + cuDNN loading and initialisation in the infer process
/// (hundreds of MB of libraries; their kernels load as the warm-up runs first use them, or
/// all at once where `CUDA_MODULE_LOADING=EAGER` is set).
const LIBRARY_INIT_S: f64 = 15.0;
/// Assumed: one engine's fixed cost (handles, allocations, capture, instantiation).
const ENGINE_S: f64 = 0.05;
/// Assumed: cuDNN's algorithm search per convolution (every algorithm timed once).
const FIND_PER_CONV_S: f64 = 0.01;
/// Assumed: a small model's batch on the GPU (launch-bound).
const SMALL_BATCH_MS: f64 = 0.3;
/// Assumed: host-to-device rate for weights (pageable copies).
const UPLOAD_GBPS: f64 = 5.0;
/// Assumed: the PyTorch baseline's fixed cost (import, CUDA and cuDNN initialisation).
const TORCH_START_S: f64 = 20.0;
/// Assumed: PyTorch's per-case overhead (building the model, cudnn.benchmark's search).
const TORCH_CASE_S: f64 = 1.0;
/// Warm-up plus timed runs per baseline case (run.sh: `--runs 200`, default warm-up 20).
const TORCH_RUNS: f64 = 220.0;

/// What one section costs: measured CPU seconds here, estimated GPU seconds there.
struct Cost {
    section: &'static str,
    cpu_s: f64,
    gpu_s: f64,
    note: String,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64())
}

/// The dry run: prints each section's times and the estimate; exit status 0.
pub fn run(a: &Args) -> Result<ExitCode, String> {
    println!(
        "gpu-check: dry run: CPU side of every section measured here, GPU side estimated \
         (assumptions in crates/bench/src/gpu_check/dry.rs)"
    );
    let mut costs = Vec::new();
    let (_, s) = timed(|| libraries::rows(&mut Rows::printed("libraries")));
    costs.push(Cost {
        section: "libraries",
        cpu_s: s,
        gpu_s: 1.0,
        note: "library search and loading; GPU: discovery".into(),
    });
    let (compiled, s) = timed(|| {
        netml_gpu::cuda::compile_cubin(&netml_gpu::cuda::nvrtc::GATHER, 90)
            .and_then(|_| netml_gpu::cuda::gather_ptx(90))
    });
    if let Err(e) = compiled {
        println!("gpu-check: [dry] NVRTC: {e}");
    }
    costs.push(Cost {
        section: "nvrtc",
        cpu_s: s,
        gpu_s: CHILD_S + s,
        note: "gather.cu to SASS and PTX for sm_90; GPU: the driver's JIT of the PTX".into(),
    });
    let (_, s) = timed(|| {
        let a = vec![1u8; 256 << 20];
        let b = vec![1u8; 77_000_000];
        (a.len(), b.len())
    });
    let copy_gpu = 6.0 * (256.0 * 1.048_576e-3) * (1.0 / 50.0 + 1.0 / 8.0) + 0.5;
    costs.push(Cost {
        section: "copy",
        cpu_s: s,
        gpu_s: CHILD_S + copy_gpu,
        note: "filling the buffers; GPU: 6 x 256 MiB pinned (50 GB/s) and pageable (8 GB/s)".into(),
    });
    costs.push(Cost {
        section: "green",
        cpu_s: 0.0,
        gpu_s: CHILD_S + 0.1,
        note: "one green context and a stream".into(),
    });
    costs.push(ingest_cost(compiled_s(&costs)));
    costs.push(infer_cost(a));
    costs.push(sharing_cost());
    report(a, &costs);
    Ok(ExitCode::SUCCESS)
}

/// The sharing section: fp32 engines of the models at three batches, each replayed on the
/// whole GPU and on every partition (at most `132 / SMs` times slower there; the graph
/// captured again on each), the live modes and twenty resizes. Its CPU side (parse,
/// compile) is the infer section's, measured there.
fn sharing_cost() -> Cost {
    use super::sharing::{BATCHES as SHARE_BATCHES, MIX_S, REPLAYS as SHARE_REPLAYS, SMS};
    let found = models(false);
    let full: Vec<_> = found.iter().filter(|m| m.full).collect();
    let names: Vec<(String, bool)> = if full.is_empty() {
        found.iter().map(|m| (m.name.clone(), false)).collect()
    } else {
        full.iter().map(|m| (m.name.clone(), true)).collect()
    };
    let slowdown: f64 = 1.0 + SMS.iter().map(|&s| 132.0 / s as f64).sum::<f64>() + 1.1;
    let mut gpu = CHILD_S + LIBRARY_INIT_S + 3.0 * MIX_S;
    for (name, full) in &names {
        for b in SHARE_BATCHES {
            let ms = match full {
                true => table_ms(name, b, Precision::Fp32).unwrap_or(b as f64 * 0.5),
                false => SMALL_BATCH_MS,
            };
            // The replays, plus a capture again on each partition and back (an eager run
            // at the partition's speed and the capture's fixed cost each).
            gpu += ENGINE_S
                + 30.0 * FIND_PER_CONV_S
                + (SHARE_REPLAYS + 4) as f64 * ms * slowdown / 1e3
                + (SMS.len() + 1) as f64 * ENGINE_S;
        }
    }
    Cost {
        section: "sharing",
        cpu_s: 0.0,
        gpu_s: gpu,
        note: format!(
            "{} models x {} batches on the whole GPU and {} partitions, 3 live modes of {MIX_S} s",
            names.len(),
            SHARE_BATCHES.len(),
            SMS.len() + 1
        ),
    }
}

/// The nvrtc section's compile time: every GPU section's process compiles once more.
fn compiled_s(costs: &[Cost]) -> f64 {
    costs
        .iter()
        .find(|c| c.section == "nvrtc")
        .map_or(0.0, |c| c.cpu_s)
}

/// The self-checks of every mode on the host target (generator, oracle, and the gathering
/// itself, which the GPU does there: an upper bound), the mbuf pattern, one gather compile.
fn ingest_cost(compile_s: f64) -> Cost {
    let (_, s) = timed(|| {
        for mode in IngestMode::ALL {
            for (blocks, ring) in SELFCHECK_CONFIGS {
                let cfg = selfcheck_config(mode, blocks, ring);
                match netml_gpu::open(&cfg, Target::Host) {
                    Ok(mut ing) => {
                        if let Err(e) = selfcheck::run(ing.as_mut(), &selfcheck_options()) {
                            println!("gpu-check: [dry] {mode} self-check: {e}");
                        }
                    }
                    Err(e) => println!("gpu-check: [dry] {mode}: {e}"),
                }
            }
        }
        pattern(MBUF_BYTES).len()
    });
    // 20 ingests opened and closed; 11 bandwidth runs of 31 batches at >= 10 GB/s; latency
    // loops per mode (one image, a batch, an empty doorbell), cpu-copy's batch the longest
    // (32 images x 94 us of CPU copy, the H100 machine's figure).
    let batches = 11.0 * 31.0 * (BATCH * IMAGE) as f64 / 10e9;
    let latency = 3.0 * (1010.0 * 100e-6 + 2010.0 * 20e-6) + 210.0 * 32.0 * 94e-6;
    Cost {
        section: "ingest",
        cpu_s: s + compile_s,
        gpu_s: CHILD_S + 20.0 * 0.05 + batches + latency,
        note: format!(
            "self-checks (3 modes x 2) on the host target, mbuf pattern, one compile; GPU: 20 \
             ingests, {batches:.1} s of gathering, {latency:.1} s of latency loops"
        ),
    }
}

/// The infer section: per model, the ONNX parse, the reference runs and every plan
/// compilation and translation measured here; per engine, the GPU side from its calls.
fn infer_cost(a: &Args) -> Cost {
    let found = models(a.full);
    let mut cpu = 0.0;
    let mut gpu = LIBRARY_INIT_S;
    let mut engines = 0;
    for m in &found {
        let (model, s) = timed(|| Model::load(&m.path));
        let model = match model {
            Ok(model) => model,
            Err(e) => {
                println!("gpu-check: [dry] {}: {e}", m.name);
                cpu += s;
                continue;
            }
        };
        let mut model_s = s;
        for p in [Precision::Fp32, Precision::Fp16] {
            let checked = if m.full { FULL_CHECKED } else { BATCHES[2] };
            let (r, s) = timed(|| {
                RefCache::new(&model, p).and_then(|mut c| c.outputs(checked).map(|o| o.len()))
            });
            if let Err(e) = r {
                println!("gpu-check: [dry] {} {p} reference: {e}", m.name);
            }
            model_s += s;
            for batch in BATCHES {
                let (plan, s) = timed(|| {
                    Plan::compile(&model, batch, p).and_then(|plan| {
                        let gp = translate(&plan)?;
                        Ok((
                            plan.weight_bytes(),
                            gp.calls
                                .iter()
                                .filter(|c| matches!(c.call, Call::Conv(_)))
                                .count(),
                        ))
                    })
                });
                model_s += s;
                let Ok((weights, convs)) = plan else { continue };
                let ms = if m.full {
                    table_ms(&m.name, batch, p).unwrap_or(batch as f64 * 0.5)
                } else {
                    SMALL_BATCH_MS
                };
                engines += 1;
                gpu += ENGINE_S
                    + convs as f64 * FIND_PER_CONV_S
                    + weights as f64 / (UPLOAD_GBPS * 1e9)
                    + (REPLAYS + 12) as f64 * ms / 1e3;
            }
        }
        cpu += model_s;
        println!("gpu-check: [dry] infer {}: CPU side {model_s:.1} s", m.name);
    }
    Cost {
        section: "infer",
        cpu_s: cpu,
        gpu_s: CHILD_S + gpu,
        note: format!(
            "{} models ({} engines): ONNX parse, reference runs, plan compile + translate; GPU: \
             library init, algorithm search, weights, {REPLAYS} replays each",
            found.len(),
            engines
        ),
    }
}

/// The PyTorch baseline of run.sh: its fixed start, then per full-size model and case the
/// runs at the reference table's speed (with `--full` also the TF32 rows, timed as fp32).
fn torch_estimate(full: bool) -> f64 {
    let (models, precisions): (Vec<&str>, &[Precision]) = if full {
        let all = netml_infer::fixtures::SEED_MODELS.to_vec();
        (all, &[Precision::Fp32, Precision::Fp16, Precision::Fp32])
    } else {
        (DEFAULT_FULL.to_vec(), &[Precision::Fp32, Precision::Fp16])
    };
    let mut s = TORCH_START_S;
    for m in models {
        for &p in precisions {
            for b in BATCHES {
                let ms = table_ms(m, b, p).unwrap_or(b as f64 * 0.5);
                s += TORCH_CASE_S + TORCH_RUNS * ms / 1e3;
            }
        }
    }
    s
}

fn report(a: &Args, costs: &[Cost]) {
    let mut rows = Rows::printed("dry-run");
    let mut binary = 0.0;
    for c in costs {
        let total = c.cpu_s + c.gpu_s;
        binary += total;
        rows.push(Row::figure(
            c.section,
            "CPU side measured here + GPU side estimated",
            format!("{:.1} s + {:.1} s = {total:.1} s", c.cpu_s, c.gpu_s),
            &c.note,
        ));
    }
    let torch = torch_estimate(a.full);
    let total = a.elapsed_before + torch + binary;
    rows.push(Row::figure(
        "estimate",
        "scripts/gpu-check run on the GPU machine",
        format!(
            "{total:.0} s = {:.0} s before the binary (measured here) + {torch:.0} s PyTorch \
             baseline (estimated) + {binary:.0} s binary",
            a.elapsed_before
        ),
        "target < 360 s; the device tool stops a command at 600 s",
    ));
}
