//! The late window and new incarnations of an image id, as docs/protocol.md §7 and §8.2
//! state them: an image that finished less than `timeout` ago makes every fragment with its
//! identity `late`, except a fragment 0 whose sender timestamp differs from the finished
//! image's (a restarted sender reusing ids); the window holds at any image rate up to
//! `max_finished` per window, and what is forgotten beyond that is counted.

mod common;

use common::*;
use netml_verify::{Config, Counters, Drop, Fragment, Push, Verifier};

const MS: u64 = 1_000_000;

/// The scenario of the issue: (10.0.1.1:40100, model 1, image 0xFFFFFFFF), 3 fragments.
fn issue_image(ledger: &SharedLedger, timestamp: u64) -> Vec<Fragment<Tracked>> {
    let mut frags = fragments(ledger, 40100, 0xFFFF_FFFF, &tensor(150, 1), 64);
    for f in &mut frags {
        f.source = "10.0.1.1:40100".parse().unwrap();
        if let Some(d) = f.header.descriptor.as_mut() {
            d.timestamp = timestamp;
        }
    }
    assert_eq!(frags.len(), 3);
    frags
}

/// Pushes `frags` at `now` and returns the images they completed.
fn push_all(v: &mut Verifier<Tracked>, frags: Vec<Fragment<Tracked>>, now: u64) -> usize {
    frags
        .into_iter()
        .map(|f| v.push(f, now))
        .filter(|p| matches!(p, Push::Complete(_)))
        .count()
}

fn counts(c: &Counters) -> [u64; 5] {
    [
        c.accepted,
        c.late,
        c.images_completed,
        c.evicted_timeout,
        c.forgotten_early,
    ]
}

#[test]
fn reused_id_with_a_new_timestamp_is_a_new_incarnation() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(Config::default());
    assert_eq!(push_all(&mut v, issue_image(&ledger, 7), 0), 1);
    // 100 ms later, inside the window: fragment 0 (new timestamp) first, then 1 and 2.
    assert_eq!(push_all(&mut v, issue_image(&ledger, 8), 100 * MS), 1);
    // accepted, late, images_completed, evicted_timeout, forgotten_early
    assert_eq!(counts(v.counters()), [6, 0, 2, 0, 0]);
    assert_eq!(alive(&ledger), 0);
}

#[test]
fn reused_id_with_the_same_timestamp_is_late() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(Config::default());
    assert_eq!(push_all(&mut v, issue_image(&ledger, 7), 0), 1);
    assert_eq!(push_all(&mut v, issue_image(&ledger, 7), 100 * MS), 0);
    assert_eq!(counts(v.counters()), [3, 3, 1, 0, 0]);
    assert_eq!(v.in_flight(), 0);
}

#[test]
fn fragments_of_a_new_incarnation_before_its_fragment_0_are_late() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(Config::default());
    push_all(&mut v, issue_image(&ledger, 7), 0);
    let mut again = issue_image(&ledger, 8);
    again.rotate_left(1); // fragments 1, 2, then 0
    assert_eq!(push_all(&mut v, again, 100 * MS), 0);
    assert_eq!(counts(v.counters()), [4, 2, 1, 0, 0]);
    // Fragment 0 opened the new incarnation, which can no longer complete: it times out.
    assert_eq!(v.in_flight(), 1);
    assert_eq!(v.expire(600 * MS), 1);
    assert_eq!(counts(v.counters()), [4, 2, 1, 1, 0]);
    assert_eq!(alive(&ledger), 0);
}

#[test]
fn an_image_evicted_on_timeout_and_resent_with_a_new_timestamp_is_new() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(Config::default());
    let mut first = issue_image(&ledger, 7);
    first.pop(); // fragment 2 lost
    push_all(&mut v, first, 0);
    assert_eq!(v.expire(500 * MS), 1);
    // Resent 100 ms after the eviction: with the same timestamp it is late ...
    assert_eq!(push_all(&mut v, issue_image(&ledger, 7), 600 * MS), 0);
    assert_eq!(counts(v.counters()), [2, 3, 0, 1, 0]);
    // ... with a new one (fragment 0 first) it is a new incarnation and completes.
    assert_eq!(push_all(&mut v, issue_image(&ledger, 8), 600 * MS), 1);
    assert_eq!(counts(v.counters()), [5, 3, 1, 1, 0]);
    assert_eq!(alive(&ledger), 0);
}

#[test]
fn an_image_evicted_before_its_fragment_0_arrived_makes_every_fragment_late() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(Config::default());
    let mut first = issue_image(&ledger, 7);
    first.remove(0); // fragment 0 lost: no timestamp is remembered
    push_all(&mut v, first, 0);
    assert_eq!(v.expire(500 * MS), 1);
    assert_eq!(push_all(&mut v, issue_image(&ledger, 8), 600 * MS), 0);
    assert_eq!(counts(v.counters()), [2, 3, 0, 1, 0]);
    // After the window (500 ms after the eviction) the id is free again.
    assert_eq!(push_all(&mut v, issue_image(&ledger, 8), 1_000 * MS), 1);
}

#[test]
fn a_copy_of_the_old_fragment_0_after_the_new_incarnation_opens_another_image() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(Config::default());
    let old = issue_image(&ledger, 7);
    let old_first = duplicate(&ledger, &old[0]);
    push_all(&mut v, old, 0);
    push_all(&mut v, issue_image(&ledger, 8), 100 * MS);
    // Its timestamp differs from the one now remembered (8): a third incarnation, which
    // cannot complete (docs/protocol.md §7 says so).
    assert!(matches!(v.push(old_first, 150 * MS), Push::Accepted));
    assert_eq!(v.expire(650 * MS), 1);
    assert_eq!(counts(v.counters()), [7, 0, 2, 1, 0]);
}

#[test]
fn the_window_is_timeout_long_exclusive() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(Config::default());
    push_all(&mut v, issue_image(&ledger, 7), 0);
    let copy = issue_image(&ledger, 7);
    let late = duplicate(&ledger, &copy[1]);
    assert!(matches!(
        v.push(late, 500 * MS - 1),
        Push::Dropped(Drop::Late)
    ));
    let mut copy = copy.into_iter();
    assert!(matches!(
        v.push(copy.nth(1).unwrap(), 500 * MS),
        Push::Accepted
    ));
}

/// The issue's second scenario: 4,200 single-fragment images 50 us apart (20k images/s),
/// then copies of the 1st and the 101st about 210 ms after the first completed. The window
/// is time-based: both are late, whatever the number of images in between.
#[test]
fn the_window_holds_at_20k_images_per_second() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(Config::default());
    let mut copies = Vec::new();
    for i in 0..4200u32 {
        let f = fragments(&ledger, 40000, i, &tensor(64, i as u8), 64).remove(0);
        if i == 0 || i == 100 {
            copies.push(duplicate(&ledger, &f));
        }
        assert!(matches!(v.push(f, i as u64 * 50_000), Push::Complete(_)));
    }
    for f in copies {
        assert!(matches!(v.push(f, 210 * MS), Push::Dropped(Drop::Late)));
    }
    assert_eq!(counts(v.counters()), [4200, 2, 4200, 0, 0]);
}

/// Beyond `max_finished` images per window the oldest are forgotten early, counted; their
/// stragglers open new images, the others' are still late.
#[test]
fn beyond_max_finished_the_oldest_are_forgotten_and_counted() {
    let ledger = SharedLedger::default();
    let mut v = Verifier::new(Config {
        max_finished: 4,
        ..Config::default()
    });
    let mut copies = Vec::new();
    for i in 0..6u32 {
        let f = fragments(&ledger, 40000, i, &tensor(64, 0), 64).remove(0);
        copies.push(duplicate(&ledger, &f));
        v.push(f, i as u64 * MS);
    }
    assert_eq!(v.counters().forgotten_early, 2);
    // Newest first, so that nothing finishes (and forgets more) while the late ones are
    // checked: the copies of images 5..2 are late, those of 1 and 0 complete as new images.
    let outcomes: Vec<bool> = copies
        .into_iter()
        .rev()
        .map(|f| match v.push(f, 10 * MS) {
            Push::Dropped(Drop::Late) => true,
            Push::Complete(_) => false,
            Push::Accepted | Push::Dropped(_) => panic!("neither late nor complete"),
        })
        .collect();
    assert_eq!(outcomes, [true, true, true, true, false, false]);
    // Remembering those two forgot two more.
    assert_eq!(v.counters().forgotten_early, 4);
}
