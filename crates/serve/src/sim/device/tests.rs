use super::*;
use crate::policy::Policy;
use crate::sim::trace::Shape;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// The H100 profile's fp32 rows (docs/profiles/h100-pytorch.csv).
fn curve(name: &str) -> ShareCurve {
    let pts: &[(usize, f64)] = match name {
        "alexnet" => &[(1, 0.43), (8, 0.52), (32, 0.97)],
        "mobilenet_v2" => &[(1, 2.65), (8, 2.57), (32, 2.99)],
        "resnet50" => &[(1, 4.22), (8, 3.44), (32, 6.07)],
        _ => &[(1, 1.2), (8, 3.06), (32, 10.19)],
    };
    let ns: Vec<(usize, f64)> = pts.iter().map(|&(b, ms)| (b, ms * 1e6)).collect();
    ShareCurve::new(&ns).unwrap()
}

fn function(name: &str, model: u8, units: u32) -> DeviceFunction {
    DeviceFunction {
        spec: FunctionSpec {
            name: name.into(),
            model,
            slo_ns: 50 * MS,
            batch_sizes: FunctionSpec::default_batch_sizes(32),
            policy: Policy::Slab,
            admission: true,
            queue_limit: 4096,
        },
        curve: curve(name),
        shares: vec![units],
    }
}

fn arrivals(shapes: &[(u8, Shape)], duration_ns: u64) -> Vec<Arrival> {
    let mut v: Vec<Arrival> = shapes
        .iter()
        .flat_map(|(model, shape)| {
            shape
                .times(duration_ns, *model as u64)
                .into_iter()
                .map(|at| Arrival { at, model: *model })
        })
        .collect();
    v.sort_unstable();
    v
}

fn goodput(o: &DeviceOutcome, duration_ns: u64) -> f64 {
    o.functions.iter().map(|f| f.1.within_slo).sum::<u64>() as f64 * 1e9 / duration_ns as f64
}

/// Every offered image is answered or shed exactly once.
fn conserved(o: &DeviceOutcome) {
    for (spec, s) in &o.functions {
        assert_eq!(
            s.offered,
            s.answered + s.shed() + s.failed,
            "{}: {s:?}",
            spec.name
        );
    }
}

#[test]
fn a_function_whose_load_doubles_gets_a_larger_share_and_keeps_its_slo() {
    let d = Device::gpu(132);
    let cfg = DeviceConfig::new(d, Sharing::Partitioned);
    let fns = vec![function("resnet50", 1, 56), function("vgg19", 2, 56)];
    // resnet50 from 1500 to 3000 images/s at 2 s; vgg19 steady at 600.
    let trace = arrivals(
        &[
            (1, Shape::Steps(vec![(0, 1500.0), (2 * S, 3000.0)])),
            (2, Shape::Poisson { rate: 600.0 }),
        ],
        4 * S,
    );
    let o = run(&cfg, fns, &trace, 7).unwrap();
    conserved(&o);
    let before = o
        .resizes
        .iter()
        .rfind(|r| r.function == 0 && r.at < 2 * S)
        .map(|r| r.to)
        .unwrap_or(56);
    let after: Vec<_> = o
        .resizes
        .iter()
        .filter(|r| r.function == 0 && r.at >= 2 * S && r.to > before)
        .collect();
    let first = after
        .first()
        .expect("resnet50 grows after its load doubles");
    let decisions = (first.at - 2 * S).div_ceil(cfg.controller.unwrap().period_ns);
    assert!(decisions <= 3, "grew after {decisions} decisions");
    assert!(!o.switches.is_empty());
    for (spec, s) in &o.functions {
        assert!(s.attainment() >= 0.99, "{}: {}", spec.name, s.attainment());
        // Admission sheds while the controller reacts (one to three periods at the new
        // rate): bounded, and never answered late instead.
        assert!(
            s.shed() * 50 <= s.offered,
            "{}: shed {}",
            spec.name,
            s.shed()
        );
    }
    let used: u32 = o.shares.iter().flatten().sum();
    assert!(used <= d.available());
}

#[test]
fn partitioned_serves_more_inside_the_slo_than_temporal_and_shared_on_the_four_model_mix() {
    let d = Device::gpu(132);
    let names = ["alexnet", "mobilenet_v2", "resnet50", "vgg19"];
    let duration = 2 * S;
    let shapes: Vec<(u8, Shape)> = (1..=4)
        .map(|m| (m, Shape::Poisson { rate: 1500.0 }))
        .collect();
    let trace = arrivals(&shapes, duration);
    let mut good = Vec::new();
    for sharing in [Sharing::Temporal, Sharing::Shared, Sharing::Partitioned] {
        let each = Controller::equal_shares(&d, &[1; 4])[0];
        let fns = names
            .iter()
            .enumerate()
            .map(|(i, n)| function(n, i as u8 + 1, each))
            .collect();
        let o = run(&DeviceConfig::new(d, sharing), fns, &trace, 3).unwrap();
        conserved(&o);
        good.push(goodput(&o, duration));
    }
    assert!(good[2] > good[0] && good[2] > good[1], "{good:?}");
}

#[test]
fn mps_keeps_its_shares_and_isolated_starting_shares_must_fit() {
    let d = Device::gpu(132);
    let trace = arrivals(&[(1, Shape::Poisson { rate: 500.0 })], S / 2);
    let o = run(
        &DeviceConfig::new(d, Sharing::Mps),
        vec![function("resnet50", 1, 32)],
        &trace,
        1,
    )
    .unwrap();
    assert!(o.resizes.is_empty() && o.switches.is_empty());
    assert_eq!(o.shares, vec![vec![32]]);
    let e = run(
        &DeviceConfig::new(d, Sharing::Mps),
        vec![function("resnet50", 1, 124), function("vgg19", 2, 64)],
        &trace,
        1,
    )
    .unwrap_err();
    assert!(e.contains("available"), "{e}");
}
