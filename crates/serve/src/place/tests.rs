use super::*;
use crate::profile::Profile;

const H100: &str = include_str!("../../../../docs/profiles/h100-pytorch.csv");

fn demand(model: &str, rate: f64, slo_ms: f64) -> Demand {
    let p = Profile::parse(H100).unwrap();
    Demand {
        name: model.into(),
        rate,
        slo_ns: (slo_ms * 1e6) as u64,
        curve: ShareCurve::from_profile(&p, model, "fp32").unwrap(),
    }
}

fn params() -> Params {
    Params::new(Device::gpu(132))
}

/// What every placement must hold: each model's rate planned in full, no instance above
/// its capacity or outside the SLO rule, no GPU over its units or instance count.
fn check(pl: &Placement, demands: &[Demand], p: &Params) {
    for (f, d) in demands.iter().enumerate() {
        assert!((pl.planned(f) - d.rate).abs() < 1e-6 * d.rate, "{}", d.name);
    }
    for g in &pl.gpus {
        assert!(!g.instances.is_empty());
        assert!(g.used() <= p.device.available(), "{g:?}");
        assert!(g.instances.len() <= pl.strategy.max_per_gpu());
        for i in &g.instances {
            let d = &demands[i.function];
            assert!(meets_slo(i.latency_ns, d.slo_ns), "{i:?}");
            assert_eq!(i.latency_ns, p.latency(&d.curve, i.batch, i.share));
            assert!(i.rate <= i.capacity * (1.0 + 1e-9) && i.rate > 0.0, "{i:?}");
            assert!(pl.strategy.shares(&p.device).contains(&i.share));
        }
    }
}

#[test]
fn two_functions_that_fit_one_gpu_are_placed_on_one() {
    let p = params();
    let demands = [
        demand("alexnet", 2000.0, 50.0),
        demand("resnet50", 500.0, 50.0),
    ];
    let ours = place(Strategy::Packed, &demands, &p).unwrap();
    check(&ours, &demands, &p);
    assert_eq!(ours.gpus.len(), 1, "{ours:?}");
    assert_eq!(ours.gpus[0].instances.len(), 2);
    let alone = place(Strategy::OnePerGpu, &demands, &p).unwrap();
    check(&alone, &demands, &p);
    assert_eq!(alone.gpus.len(), 2);
    let lets = place(Strategy::GpuLets, &demands, &p).unwrap();
    check(&lets, &demands, &p);
    assert_eq!(lets.gpus.len(), 1);
}

#[test]
fn a_rate_worth_two_and_a_half_gpus_gets_three() {
    let p = params();
    let whole = p.device.available();
    let one = options(&demand("vgg19", 1.0, 50.0), &p, &[whole])
        .iter()
        .map(|c| c.capacity)
        .fold(0.0, f64::max);
    let demands = [demand("vgg19", 2.5 * one, 50.0)];
    for s in Strategy::ALL {
        let pl = place(s, &demands, &p).unwrap();
        check(&pl, &demands, &p);
        assert_eq!(pl.gpus.len(), 3, "{s}: {pl:?}");
    }
    // Ours: two whole GPUs at their capacity, the half GPU's worth right-sized on the third.
    let ours = place(Strategy::Packed, &demands, &p).unwrap();
    let rest = &ours
        .gpus
        .iter()
        .find(|g| g.used() < whole)
        .unwrap()
        .instances;
    assert_eq!(rest.len(), 1);
    assert!(rest[0].share < whole, "{rest:?}");
}

#[test]
fn ours_never_needs_more_gpus_than_the_baselines_on_the_mix() {
    let p = params();
    for rate in [300.0, 1000.0, 2500.0, 6000.0] {
        let demands: Vec<Demand> = ["alexnet", "mobilenet_v2", "resnet50", "vgg19"]
            .iter()
            .map(|m| demand(m, rate, 50.0))
            .collect();
        let n: Vec<usize> = Strategy::ALL
            .iter()
            .map(|&s| {
                let pl = place(s, &demands, &p).unwrap();
                check(&pl, &demands, &p);
                pl.gpus.len()
            })
            .collect();
        let (alone, lets, ours) = (n[0], n[1], n[2]);
        assert!(ours <= lets && ours <= alone, "{rate}/s: {n:?}");
        assert!(alone >= 4, "one model per GPU needs a GPU per model");
    }
}

#[test]
fn the_margin_applies_only_to_partial_shares() {
    let mut p = params();
    let d = demand("resnet50", 100.0, 50.0);
    let whole = p.device.available();
    let (alone, part) = (p.latency(&d.curve, 8, whole), p.latency(&d.curve, 8, 64));
    p.margin = 0.0;
    assert_eq!(p.latency(&d.curve, 8, whole), alone);
    assert!((part / p.latency(&d.curve, 8, 64) - 1.1).abs() < 1e-9);
}

#[test]
fn gpu_lets_partitions_pair_up_inside_a_gpu() {
    let d = Device::gpu(132);
    let s = Strategy::GpuLets.shares(&d);
    assert_eq!(s, vec![24, 48, 56, 72, 96, 124]);
    for (a, b) in [(24, 96), (48, 72), (56, 56)] {
        assert!(a + b <= d.available());
    }
}

#[test]
fn impossible_slos_and_bad_rates_are_errors() {
    let p = params();
    let e = place(Strategy::Packed, &[demand("vgg19", 100.0, 1.0)], &p).unwrap_err();
    assert!(e.contains("vgg19") && e.contains("SLO"), "{e}");
    assert!(place(Strategy::Packed, &[demand("vgg19", 0.0, 50.0)], &p).is_err());
    let mut bad = params();
    bad.max_load = 0.0;
    assert!(place(Strategy::Packed, &[demand("vgg19", 1.0, 50.0)], &bad).is_err());
    assert_eq!("gpu-lets".parse::<Strategy>(), Ok(Strategy::GpuLets));
    assert!("mig".parse::<Strategy>().is_err());
}

#[test]
fn a_tight_slo_leaves_room_for_queueing() {
    // 2 x 4.6 ms fits a 10 ms SLO, but 0.17 batches of slack hold no queue of 4 images.
    assert!(queue_load(4.6e6, 10_000_000, 4) <= 0.0);
    // 50 ms: 8.9 batches of slack x 8 images; the planning load binds first.
    let loose = queue_load(4.6e6, 50_000_000, 8);
    assert!(loose > DEFAULT_MAX_LOAD && loose < 1.0, "{loose}");
    let p = params();
    let tight = demand("resnet50", 100.0, 10.0);
    for c in options(&tight, &p, &p.device.steps()) {
        let load = c.capacity * c.latency_ns / (c.batch as f64 * 1e9);
        assert!(load <= queue_load(c.latency_ns, tight.slo_ns, c.batch) + 1e-9);
        assert!(load > 0.0);
    }
}

#[test]
fn a_gpu_is_emptied_into_the_holes_the_others_leave() {
    let device = Device::gpu(132);
    let inst = |function, share, rate| Instance {
        function,
        share,
        batch: 1,
        rate,
        capacity: rate,
        latency_ns: 1e6,
    };
    let choice = |share, capacity| Choice {
        share,
        batch: 1,
        latency_ns: 1e6,
        capacity,
    };
    // 96 + 96 + 40 SMs: best-fit decreasing needs 3 GPUs (124 each); the 40-SM instance's
    // 1000/s fits the two 28-SM holes as two 24-SM instances of 600/s.
    let packed = pack::best_fit_decreasing(
        vec![inst(0, 96, 1.0), inst(1, 96, 1.0), inst(2, 40, 1000.0)],
        &device,
        usize::MAX,
    );
    assert_eq!(packed.len(), 3);
    let opts = vec![vec![], vec![], vec![choice(24, 600.0), choice(40, 1000.0)]];
    let gpus = pack::consolidate(packed, &opts, &device);
    assert_eq!(gpus.len(), 2, "{gpus:?}");
    for g in &gpus {
        assert_eq!(g.used(), 120);
        let moved: f64 = g
            .instances
            .iter()
            .filter(|i| i.function == 2)
            .map(|i| i.rate)
            .sum();
        assert!(moved > 0.0);
    }
    let total: f64 = gpus
        .iter()
        .flat_map(|g| &g.instances)
        .filter(|i| i.function == 2)
        .map(|i| i.rate)
        .sum();
    assert!((total - 1000.0).abs() < 1e-9);
    // Without room for its rate (one hole only) the GPU stays.
    let packed = pack::best_fit_decreasing(
        vec![inst(0, 96, 1.0), inst(1, 120, 1.0), inst(2, 40, 1000.0)],
        &device,
        usize::MAX,
    );
    assert_eq!(pack::consolidate(packed, &opts, &device).len(), 3);
}
