//! The simulator drives the real scheduler: SLAB against the baselines on the H100 profile.

use netml_serve::sim::{self, trace, Service, SimFunction};
use netml_serve::{FunctionSpec, LatencyModel, Policy, Profile};

const PROFILE: &str = include_str!("../../../docs/profiles/h100-pytorch.csv");
const MODELS: [&str; 4] = ["alexnet", "mobilenet_v2", "resnet50", "vgg19"];
const SIZES: [usize; 6] = [1, 2, 4, 8, 16, 32];
const SLO_NS: u64 = 50_000_000;

fn functions(policy: Policy) -> (Vec<SimFunction>, Vec<f64>) {
    let profile = Profile::parse(PROFILE).unwrap();
    let mut capacity = Vec::new();
    let fs = MODELS
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let model = LatencyModel::seeded(&SIZES, &profile.points(m, "fp32"));
            capacity.push(
                SIZES
                    .iter()
                    .filter_map(|&b| {
                        model
                            .predict(b)
                            .filter(|&l| l <= SLO_NS)
                            .map(|l| b as f64 * 1e9 / l as f64)
                    })
                    .fold(0.0, f64::max),
            );
            SimFunction {
                spec: FunctionSpec {
                    name: m.to_string(),
                    model: i as u8 + 1,
                    slo_ns: SLO_NS,
                    batch_sizes: SIZES.to_vec(),
                    policy,
                    admission: policy.admission_by_default(),
                    queue_limit: 100_000,
                },
                seed: vec![model.clone()],
                service: Service::Profile {
                    truth: vec![model],
                    jitter: 0.05,
                },
            }
        })
        .collect();
    (fs, capacity)
}

/// (goodput images/s, violations among admitted, attainment) summed over the functions.
fn run(policy: Policy, load: f64) -> (f64, u64, f64) {
    let (fs, capacity) = functions(policy);
    let duration = 2_000_000_000;
    let arrivals = trace::merge(capacity.iter().enumerate().map(|(i, c)| {
        (
            i as u8 + 1,
            trace::Shape::Poisson { rate: c * load }.times(duration, i as u64 + 7),
        )
    }));
    let out = sim::run(fs, &arrivals, 1).unwrap();
    let (mut good, mut late, mut answered) = (0u64, 0u64, 0u64);
    for (_, s) in &out.functions {
        good += s.within_slo;
        answered += s.answered;
        late += s.answered - s.within_slo;
    }
    (
        good as f64 / (duration as f64 / 1e9),
        late,
        good as f64 / answered.max(1) as f64,
    )
}

#[test]
fn slab_keeps_admitted_images_inside_the_slo_and_beats_the_baselines() {
    for load in [0.5, 1.5] {
        let (slab_good, slab_late, slab_att) = run(Policy::Slab, load);
        eprintln!(
            "load {load}: slab goodput {slab_good:.0}/s late {slab_late} attainment {slab_att:.4}"
        );
        if load < 1.0 {
            assert_eq!(slab_late, 0, "load {load}");
        } else {
            assert!(slab_att >= 0.99, "load {load}: {slab_att}");
        }
        for p in [
            Policy::Fixed(1),
            Policy::Fixed(32),
            Policy::MaxDelay {
                max: 32,
                delay_ns: 5_000_000,
            },
        ] {
            let (good, late, att) = run(p, load);
            eprintln!("load {load}: {p} goodput {good:.0}/s late {late} attainment {att:.4}");
            assert!(
                slab_good >= good * 0.99,
                "load {load}: slab {slab_good} vs {p} {good}"
            );
        }
    }
}
