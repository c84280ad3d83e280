//! Compiles an ONNX model into a plan, runs the reference executor and
//! tract on the same seeded random input and prints their agreement.
//!
//! ```text
//! cargo run --release -p netml-infer --example compare -- MODEL.onnx \
//!     [--batch N] [--precision fp32|fp16|both] [--plan] [--seed S]
//! ```
//!
//! `scripts/models/check-full.sh` runs it on the full-size seed models.

use std::process::ExitCode;
use std::time::Instant;

use netml_infer::metrics::{rel_l2, top1_agreement};
use netml_infer::{Engine, Plan, Precision, Reference, Tract};

const USAGE: &str =
    "usage: compare MODEL.onnx [--batch N] [--precision fp32|fp16|both] [--plan] [--seed S]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut batch = 1usize;
    let mut precisions = vec![Precision::Fp32, Precision::Fp16];
    let mut show_plan = false;
    let mut seed = 1u64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--batch" => batch = args.next().and_then(|v| v.parse().ok()).expect("--batch N"),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).expect("--seed S"),
            "--precision" => {
                let v = args.next().expect("--precision fp32|fp16|both");
                precisions = if v == "both" {
                    vec![Precision::Fp32, Precision::Fp16]
                } else {
                    vec![v.parse().expect("fp32 or fp16")]
                };
            }
            "--plan" => show_plan = true,
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => path = Some(a),
        }
    }
    let Some(path) = path else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };

    let t = Instant::now();
    let mut tract = match Tract::load(&path, batch) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tract: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tract_load = t.elapsed();
    let per: usize = tract.input_shape().iter().product();
    // xorshift + Box-Muller: N(0, 1) inputs like normalised images.
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    };
    let input: Vec<f32> = (0..batch * per)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
        })
        .collect();
    let t = Instant::now();
    let want = tract.run(&input, batch).expect("tract run");
    let tract_run = t.elapsed();
    println!(
        "{path}: tract load {:.0} ms, run {:.0} ms",
        tract_load.as_secs_f64() * 1e3,
        tract_run.as_secs_f64() * 1e3
    );
    let classes: usize = want.shape[1..].iter().product();

    let mut ok = true;
    for precision in precisions {
        let t = Instant::now();
        let plan = match Plan::load(&path, batch, precision) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("plan: {e}");
                return ExitCode::FAILURE;
            }
        };
        let compile = t.elapsed();
        if show_plan {
            print!("{}", plan.summary());
        }
        let (steps, arena, naive): (usize, usize, usize) = (
            plan.steps.len(),
            plan.arena_bytes,
            plan.buffers.iter().map(|b| b.bytes).sum(),
        );
        let mut reference = Reference::new(plan);
        let t = Instant::now();
        let got = reference.run(&input, batch).expect("reference run");
        let run = t.elapsed();
        let err = rel_l2(&got.data, &want.data);
        let (agree, total) = top1_agreement(&got.data, &want.data, classes);
        println!(
            "  {precision} batch {batch}: rel-L2 {err:.2e}, top-1 {agree}/{total}; {steps} steps, \
             arena {:.2} MiB (unshared {:.2} MiB); compile {:.0} ms, reference run {:.0} ms",
            arena as f64 / 1048576.0,
            naive as f64 / 1048576.0,
            compile.as_secs_f64() * 1e3,
            run.as_secs_f64() * 1e3
        );
        let limit = match precision {
            Precision::Fp32 => 1e-4,
            Precision::Fp16 => 1e-2,
        };
        ok &= err <= limit;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("rel-L2 above threshold (fp32 1e-4, fp16 1e-2)");
        ExitCode::FAILURE
    }
}
