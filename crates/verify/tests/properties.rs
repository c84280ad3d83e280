//! Any loss, duplication or permutation of an image's fragments gives exactly one complete
//! image iff every fragment arrived before the timeout, with the original bytes; no handle
//! is leaked or freed twice.

mod common;

use common::*;
use netml_verify::{Config, Push, Verifier};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    len: usize,
    frag_size: u16,
    /// Per fragment: how many copies arrive (0 = lost).
    copies: Vec<u8>,
    /// Arrival order: a permutation seed.
    order: Vec<u32>,
    /// Arrival time step per delivered packet.
    step: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..3000,
        prop::sample::select(vec![16u16, 64, 100, 1024]),
    )
        .prop_flat_map(|(len, fs)| {
            let n = len.div_ceil(fs as usize);
            (
                Just(len),
                Just(fs),
                prop::collection::vec(prop::sample::select(vec![0u8, 1, 1, 1, 1, 2, 3]), n),
                prop::collection::vec(any::<u32>(), n * 3),
                0u64..40,
            )
                .prop_map(|(len, frag_size, copies, order, step)| Case {
                    len,
                    frag_size,
                    copies,
                    order,
                    step,
                })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn exactly_one_image_iff_all_fragments_arrive_in_time(c in case()) {
        let ledger = SharedLedger::default();
        let timeout = 1_000;
        let mut v = Verifier::new(Config { max_in_flight: 2, max_fragments: 4096, timeout_ns: timeout, max_finished: 8 });
        let data = tensor(c.len, c.len as u8);
        let originals = fragments(&ledger, 7, 3, &data, c.frag_size);
        let mut wire = Vec::new();
        for (f, &k) in originals.iter().zip(&c.copies) {
            for _ in 0..k {
                wire.push(duplicate(&ledger, f));
            }
        }
        drop(originals);
        // A seeded permutation of the arrival order.
        let mut keyed: Vec<_> = wire.into_iter().enumerate().map(|(i, f)| (c.order[i % c.order.len()], i, f)).collect();
        keyed.sort_by_key(|&(k, i, _)| (k, i));
        let delivered = keyed.len() as u64;

        let mut complete = Vec::new();
        let mut now = 0;
        for (_, _, f) in keyed {
            v.expire(now);
            if let Push::Complete(img) = v.push(f, now) {
                complete.push(img);
            }
            now += c.step;
        }
        v.expire(u64::MAX);

        let all_arrived = c.copies.iter().all(|&k| k > 0);
        // Arrival time of the packet that completed the set, relative to the first packet.
        let in_time = {
            let n = c.copies.len();
            // Each distinct index must be seen before first + timeout. Recompute from the
            // order: the time at which the last new index first arrived.
            let mut seen = vec![false; n];
            let mut count = 0;
            let mut t_complete = None;
            let mut wire_idx = Vec::new();
            for (i, &k) in c.copies.iter().enumerate() { for _ in 0..k { wire_idx.push(i); } }
            let mut keyed: Vec<_> = wire_idx.iter().enumerate().map(|(j, &i)| (c.order[j % c.order.len()], j, i)).collect();
            keyed.sort_by_key(|&(k, j, _)| (k, j));
            for (t, (_, _, i)) in keyed.iter().enumerate() {
                if !seen[*i] { seen[*i] = true; count += 1; if count == n { t_complete = Some(t as u64 * c.step); } }
            }
            t_complete.is_some_and(|t| t < timeout)
        };
        prop_assert_eq!(complete.len(), usize::from(all_arrived && in_time));
        for img in &complete {
            prop_assert_eq!(&concat(img), &data);
        }
        let cs = *v.counters();
        prop_assert_eq!(cs.pushed(), delivered);
        prop_assert_eq!(cs.accepted, cs.fragments_completed + cs.fragments_evicted);
        drop(complete);
        prop_assert_eq!(alive(&ledger), 0);
    }
}
