//! The scheduler's decisions on literal arrival patterns (virtual time, ns).

use netml_serve::{Event, Function, FunctionSpec, LatencyModel, Policy, Refusal, Server};

const MS: u64 = 1_000_000;

fn spec(policy: Policy, sizes: &[usize]) -> FunctionSpec {
    FunctionSpec {
        name: "f".into(),
        model: 1,
        slo_ns: 50 * MS,
        batch_sizes: sizes.to_vec(),
        admission: policy.admission_by_default(),
        policy,
        queue_limit: 1000,
    }
}

/// Latency 10 ms + 1 ms per image.
fn linear(sizes: &[usize]) -> LatencyModel {
    let pts: Vec<(usize, f64)> = sizes
        .iter()
        .map(|&b| (b, (10 + b as u64) as f64 * MS as f64))
        .collect();
    LatencyModel::seeded(sizes, &pts)
}

fn function(policy: Policy, sizes: &[usize], instances: usize) -> Function<u32> {
    Function::new(
        spec(policy, sizes),
        (0..instances).map(|_| linear(sizes)).collect(),
    )
}

#[test]
fn admission_refuses_what_cannot_finish_inside_the_slo() {
    // Batch 1 only, 11 ms each: images 0..=3 finish by 44 ms, the fifth would at 55 ms.
    let mut f = function(Policy::Slab, &[1], 1);
    let got: Vec<bool> = (0..6).map(|i| f.offer(0, i).is_ok()).collect();
    assert_eq!(got, [true, true, true, true, false, false]);
    assert_eq!(f.stats().shed_admission, 2);
    let r = f.offer(0, 9).unwrap_err();
    assert_eq!((r.reason, r.item), (Refusal::Overloaded, 9));
    // Without admission control the queue takes them (up to its bound).
    let mut plain = function(Policy::Fixed(1), &[1], 1);
    assert!((0..6).all(|i| plain.offer(0, i).is_ok()));
}

#[test]
fn slab_dispatches_at_once_at_low_load_and_the_largest_fitting_batch_under_backlog() {
    let sizes = [1, 2, 4, 8, 16, 32];
    let mut f = function(Policy::Slab, &sizes, 1);
    f.offer(0, 0).unwrap();
    let b = f.dispatch(0).expect("an idle instance runs a lone image");
    assert_eq!((b.items.len(), b.engine_batch), (1, 1));
    assert!(f.dispatch(0).is_none(), "the only instance is busy");
    f.complete(11 * MS, 0);
    // 40 images queued at 20 ms: the oldest's deadline is 70 ms; batch 32 (42 ms) finishes
    // at 62 ms and fits.
    let admitted = (0..40).filter(|&i| f.offer(20 * MS, i).is_ok()).count();
    // A second batch would end after the 70 ms deadline: admission keeps 32.
    assert_eq!(admitted, 32);
    let b = f.dispatch(20 * MS).unwrap();
    assert_eq!((b.items.len(), b.engine_batch), (32, 32));
    assert_eq!(b.decision.predicted_ns, 42 * MS);
    assert_eq!(b.decision.slack_ns, 8 * MS as i64);
}

#[test]
fn fixed_and_max_delay_batch_as_configured() {
    let mut f = function(Policy::Fixed(4), &[1], 1);
    assert_eq!(
        f.spec().batch_sizes,
        vec![1, 4],
        "the policy's batch gets a plan"
    );
    for i in 0..3 {
        f.offer(0, i).unwrap();
    }
    assert!(f.dispatch(MS).is_none());
    assert_eq!(f.wakeup(), Some(50 * MS));
    let b = f.dispatch(50 * MS).unwrap();
    assert_eq!((b.items.len(), b.engine_batch), (3, 4));

    let mut d = function(
        Policy::MaxDelay {
            max: 4,
            delay_ns: 5 * MS,
        },
        &[1, 2, 4],
        1,
    );
    for i in 0..2 {
        d.offer(MS, i).unwrap();
    }
    assert!(d.dispatch(2 * MS).is_none());
    assert_eq!(d.wakeup(), Some(6 * MS));
    let b = d.dispatch(6 * MS).unwrap();
    assert_eq!((b.items.len(), b.engine_batch), (2, 2));
    for i in 0..5 {
        d.offer(7 * MS, i).unwrap();
    }
    d.complete(7 * MS, 0);
    assert_eq!(
        d.dispatch(7 * MS).unwrap().items.len(),
        4,
        "full batch leaves at once"
    );
}

#[test]
fn expired_images_are_handed_back_and_counted() {
    let mut f = function(Policy::Slab, &[1], 1);
    f.offer(0, 1).unwrap();
    f.offer(0, 2).unwrap();
    let _running = f.dispatch(0).unwrap();
    let mut out = Vec::new();
    f.expire(30 * MS, &mut out);
    assert!(out.is_empty(), "30 + 11 <= 50");
    f.expire(40 * MS, &mut out);
    assert_eq!(out.iter().map(|q| q.item).collect::<Vec<_>>(), vec![2]);
    assert_eq!(f.stats().shed_expired, 1);
}

#[test]
fn batches_go_to_the_instance_that_finishes_first_and_failed_instances_leave_rotation() {
    let sizes = [1, 2];
    let slow = LatencyModel::seeded(&sizes, &[(1, 30e6), (2, 40e6)]);
    let fast = LatencyModel::seeded(&sizes, &[(1, 5e6), (2, 6e6)]);
    let mut f: Function<u32> = Function::new(spec(Policy::Slab, &sizes), vec![slow, fast]);
    f.offer(0, 0).unwrap();
    assert_eq!(f.dispatch(0).unwrap().instance, 1);
    // Sparse arrivals (the slow instance alone keeps up with them).
    f.offer(20 * MS, 1).unwrap();
    assert_eq!(
        f.dispatch(20 * MS).unwrap().instance,
        0,
        "the fast one is busy"
    );
    assert!(f.fail_instance(0).is_empty(), "one instance is left");
    assert_eq!(f.stats().failed, 1);
    f.offer(40 * MS, 2).unwrap();
    let left = f.fail_instance(1);
    assert_eq!(
        left.len(),
        1,
        "the last instance's queue comes back to be answered failed"
    );
    assert_eq!(
        f.offer(41 * MS, 3).unwrap_err().reason,
        Refusal::Unavailable
    );
}

#[test]
fn latency_is_learned_from_completions() {
    let mut f: Function<u32> = Function::new(
        spec(Policy::Slab, &[1, 2]),
        vec![LatencyModel::new(&[1, 2])],
    );
    f.offer(0, 0).unwrap();
    f.offer(0, 1).unwrap();
    let b = f.dispatch(0).unwrap();
    assert_eq!(b.items.len(), 1, "nothing known: the smallest plan first");
    assert_eq!(f.complete(7 * MS, 0), 7 * MS);
    assert_eq!(f.predict(0, 1), Some(7 * MS));
    assert_eq!(
        f.predict(0, 2),
        Some(14 * MS),
        "proportional from one point"
    );
    assert_eq!(f.stats().answered, 1);
    assert_eq!(f.stats().within_slo, 1);
}

#[test]
fn the_server_routes_by_model_and_reports_unknown_ones() {
    let mut a = spec(Policy::Slab, &[1]);
    a.model = 3;
    let mut s: Server<u32> = Server::new(vec![Function::new(a, vec![linear(&[1])])]).unwrap();
    assert_eq!(s.offer(0, 3, 1).unwrap(), 0);
    assert_eq!(s.offer(0, 4, 2).unwrap_err().reason, Refusal::UnknownModel);
    let mut ev = Vec::new();
    s.poll(0, &mut ev);
    assert!(matches!(ev.as_slice(), [Event::Batch { function: 0, .. }]));
    let dup = vec![
        Function::<u32>::new(spec(Policy::Slab, &[1]), vec![linear(&[1])]),
        Function::new(spec(Policy::Slab, &[1]), vec![linear(&[1])]),
    ];
    assert!(Server::new(dup).unwrap_err().contains("both serve model 1"));
}

#[test]
fn an_estimate_beyond_the_slo_is_measured_again_not_obeyed_forever() {
    // The model says 100 ms for any batch, the SLO is 50 ms: everything is refused, except
    // one image per SLO period while the function is idle, and that one runs.
    let slow = LatencyModel::seeded(&[1], &[(1, 100e6)]);
    let mut f: Function<u32> = Function::new(spec(Policy::Slab, &[1]), vec![slow]);
    assert!(f.offer(0, 0).is_ok(), "idle: a probe");
    assert_eq!(f.offer(0, 1).unwrap_err().reason, Refusal::Overloaded);
    let mut out = Vec::new();
    f.expire(MS, &mut out);
    assert!(out.is_empty(), "the probe is not expired");
    let b = f.dispatch(MS).expect("the probe runs");
    assert_eq!(b.items.len(), 1);
    f.complete(4 * MS, 0);
    assert_eq!(f.predict(0, 1), Some(3 * MS), "measured again");
    assert!(f.offer(5 * MS, 2).is_ok(), "and admitted again");
}
