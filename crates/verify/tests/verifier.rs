mod common;

use common::*;
use netml_verify::{Config, Counters, Drop, Push, Verifier};

fn cfg() -> Config {
    Config {
        max_in_flight: 4,
        max_fragments: 64,
        timeout_ns: 1_000,
        max_finished: 16,
    }
}

/// `outside`: handles the test itself still holds in completed images.
fn check_invariants(v: &Verifier<Tracked>, ledger: &SharedLedger, pushed: u64, outside: u64) {
    let c = v.counters();
    assert_eq!(c.pushed(), pushed, "{c}");
    assert_eq!(
        c.accepted,
        c.fragments_completed + c.fragments_evicted + v.held_fragments(),
        "{c}"
    );
    assert_eq!(
        alive(ledger),
        v.held_fragments() + outside,
        "handles leaked"
    );
}

#[test]
fn in_order_image_completes_with_exact_bytes() {
    let ledger = SharedLedger::default();
    let data = tensor(1000, 7);
    let mut v = Verifier::new(cfg());
    let frags = fragments(&ledger, 1, 5, &data, 64);
    let n = frags.len();
    let mut done = None;
    for (i, f) in frags.into_iter().enumerate() {
        match v.push(f, i as u64) {
            Push::Accepted => assert!(i + 1 < n),
            Push::Complete(img) => done = Some(img),
            Push::Dropped(d) => panic!("dropped {d:?}"),
        }
    }
    let img = done.expect("complete");
    assert_eq!(concat(&img), data);
    assert_eq!(
        img.descriptor.crc32,
        netml_wire::checksum::tensor_crc32([&data[..]])
    );
    assert_eq!((img.first_arrival, img.completed_at), (0, n as u64 - 1));
    assert_eq!(img.key.image, 5);
    check_invariants(&v, &ledger, n as u64, n as u64);
    drop(img);
    assert_eq!(alive(&ledger), 0);
}

#[test]
fn duplicates_out_of_range_and_inconsistent_are_each_counted_once() {
    let ledger = SharedLedger::default();
    let data = tensor(300, 1);
    let mut v = Verifier::new(cfg());
    let frags = fragments(&ledger, 1, 9, &data, 64); // 5 fragments
    let dup = duplicate(&ledger, &frags[1]);
    let mut oor = duplicate(&ledger, &frags[2]);
    oor.header.index = 5;
    let mut wrong_total = duplicate(&ledger, &frags[2]);
    wrong_total.header.total_bytes = 301; // still 5 fragments, but disagrees with the image
    let mut wrong_len = duplicate(&ledger, &frags[3]);
    wrong_len.payload_len = 63;
    let mut it = frags.into_iter();
    assert!(matches!(v.push(it.next().unwrap(), 0), Push::Accepted));
    assert!(matches!(v.push(it.next().unwrap(), 0), Push::Accepted));
    assert!(matches!(v.push(dup, 0), Push::Dropped(Drop::Duplicate)));
    assert!(matches!(v.push(oor, 0), Push::Dropped(Drop::OutOfRange)));
    assert!(matches!(
        v.push(wrong_total, 0),
        Push::Dropped(Drop::Inconsistent)
    ));
    assert!(matches!(
        v.push(wrong_len, 0),
        Push::Dropped(Drop::Inconsistent)
    ));
    let mut last = None;
    for f in it {
        last = Some(v.push(f, 1));
    }
    let Some(Push::Complete(img)) = last else {
        panic!("not complete")
    };
    assert_eq!(concat(&img), data);
    let c = *v.counters();
    assert_eq!(
        (
            c.duplicate,
            c.out_of_range,
            c.inconsistent,
            c.accepted,
            c.images_completed
        ),
        (1, 1, 2, 5, 1)
    );
    check_invariants(&v, &ledger, 9, 5);
}

#[test]
fn late_duplicate_after_completion_is_late_not_a_new_image() {
    let ledger = SharedLedger::default();
    let data = tensor(100, 3);
    let mut v = Verifier::new(cfg());
    let frags = fragments(&ledger, 1, 1, &data, 64);
    let straggler = duplicate(&ledger, &frags[1]);
    for f in frags {
        v.push(f, 0);
    }
    assert!(matches!(v.push(straggler, 10), Push::Dropped(Drop::Late)));
    assert_eq!(v.in_flight(), 0);
    // Past the window it would open a new image (which then times out).
    let again = fragments(&ledger, 1, 1, &data, 64).remove(1);
    assert!(matches!(v.push(again, 5_000), Push::Accepted));
    assert_eq!(v.expire(6_000), 1);
    check_invariants(&v, &ledger, 4, 0);
    assert_eq!(alive(&ledger), 0);
}

#[test]
fn pressure_evicts_the_oldest_incomplete_image() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(cfg());
    let data = tensor(200, 9);
    let mut images: Vec<_> = (0..5)
        .map(|i| fragments(&ledger, 1, i, &data, 64))
        .collect();
    // First fragment of each of 5 images into a table of 4: image 0 is evicted.
    for (i, img) in images.iter_mut().enumerate() {
        assert!(matches!(v.push(img.remove(0), i as u64), Push::Accepted));
    }
    assert_eq!(v.in_flight(), 4);
    assert_eq!(v.counters().evicted_pressure, 1);
    assert_eq!(v.counters().fragments_evicted, 1);
    // Image 0's remaining fragments are late now; image 4 completes.
    assert!(matches!(
        v.push(images[0].remove(0), 9),
        Push::Dropped(Drop::Late)
    ));
    let mut last = None;
    for f in images[4].drain(..) {
        last = Some(v.push(f, 10));
    }
    assert!(matches!(last, Some(Push::Complete(_))));
    drop(images);
    check_invariants(&v, &ledger, 5 + 1 + 3, 4);
}

#[test]
fn timeout_evicts_in_age_order_and_frees_everything() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(cfg());
    let data = tensor(200, 9);
    let mut a = fragments(&ledger, 1, 1, &data, 64);
    let mut b = fragments(&ledger, 2, 1, &data, 64);
    v.push(a.remove(0), 0);
    v.push(a.remove(0), 0);
    v.push(b.remove(0), 500);
    assert_eq!(v.expire(999), 0);
    assert_eq!(v.expire(1_000), 1);
    assert_eq!(v.in_flight(), 1);
    assert_eq!(v.expire(1_500), 1);
    let c: Counters = *v.counters();
    assert_eq!((c.evicted_timeout, c.fragments_evicted), (2, 3));
    drop((a, b));
    check_invariants(&v, &ledger, 3, 0);
    assert_eq!(alive(&ledger), 0);
}

#[test]
fn oversized_images_are_refused_without_allocating() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(cfg());
    let mut f = fragments(&ledger, 1, 1, &tensor(100, 0), 64).remove(1);
    f.header.count = 65;
    f.header.total_bytes = 65 * 64;
    f.payload_len = 64;
    assert!(matches!(v.push(f, 0), Push::Dropped(Drop::OutOfRange)));
    assert_eq!(v.in_flight(), 0);
}

#[test]
fn dropping_the_verifier_frees_held_handles() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(cfg());
    let mut frags = fragments(&ledger, 1, 1, &tensor(500, 0), 64);
    frags.pop();
    for f in frags {
        v.push(f, 0);
    }
    assert_eq!(alive(&ledger), 7);
    drop(v);
    assert_eq!(alive(&ledger), 0);
}

#[test]
fn interleaved_flows_and_models_do_not_mix() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(Config {
        max_in_flight: 8,
        ..cfg()
    });
    let datas: Vec<_> = (0..4).map(|i| tensor(64 * 7 + i * 5, i as u8)).collect();
    let mut streams: Vec<_> = datas
        .iter()
        .enumerate()
        .map(|(i, d)| fragments(&ledger, 100 + (i % 2) as u16, (i / 2) as u32, d, 64).into_iter())
        .collect();
    let mut done = Vec::new();
    loop {
        let mut any = false;
        for s in streams.iter_mut() {
            if let Some(f) = s.next() {
                any = true;
                if let Push::Complete(img) = v.push(f, 0) {
                    done.push(img);
                }
            }
        }
        if !any {
            break;
        }
    }
    assert_eq!(done.len(), 4);
    for img in &done {
        let i = (img.key.image * 2 + (img.key.source.port() - 100) as u32) as usize;
        assert_eq!(concat(img), datas[i]);
    }
}

#[test]
fn evictions_are_reported_with_one_packet_kept_for_the_reply() {
    let ledger = SharedLedger::default();
    let data = tensor(300, 3);
    let mut v = Verifier::new(cfg());
    v.report_evictions();
    let frags = fragments(&ledger, 1, 4, &data, 64); // 5 fragments
    let mut it = frags.into_iter().skip(1); // fragment 0 (and its timestamp) never arrives
    for t in 0..3 {
        assert!(matches!(v.push(it.next().unwrap(), t), Push::Accepted));
    }
    drop(it);
    assert_eq!(v.drain_evicted().count(), 0);
    assert_eq!(v.expire(5_000), 1);
    let e: Vec<_> = v.drain_evicted().collect();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].key.image, e[0].arrived, e[0].count), (4, 3, 5));
    assert_eq!((e[0].sender_timestamp, e[0].first_arrival), (None, 0));
    assert_eq!(alive(&ledger), 1, "only the reported packet is still held");
    drop(e);
    assert_eq!(alive(&ledger), 0);
    // Without report_evictions nothing is kept.
    let mut quiet = Verifier::new(cfg());
    let frags = fragments(&ledger, 1, 5, &data, 64);
    assert!(matches!(
        quiet.push(frags.into_iter().next().unwrap(), 0),
        Push::Accepted
    ));
    quiet.evict_all(1);
    assert_eq!(alive(&ledger), 0);
}
