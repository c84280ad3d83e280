//! The memory of finished images: every image that completed or was evicted less than the
//! late window (`timeout_ns`) ago, so that its stragglers and late duplicates are counted
//! `late` instead of opening an image that could never complete (docs/protocol.md §8.2).
//!
//! Records are kept in finish order in a ring and found by key in a hash map: insert,
//! look-up and expiry are O(1) amortised, and a record leaves when its window ends, so the
//! window does not depend on the image rate. The ring holds at most `capacity` records: when
//! more images finish within one window, the oldest record is forgotten before its window
//! ends (the caller counts it, `forgotten_early`). Both containers are sized for `capacity`
//! up front (the map at most half full, so removals leave few tombstones), so the rx core
//! never stalls on a growing or rehashing table.

use crate::hash::BuildFx;
use crate::ImageKey;
use std::collections::{HashMap, VecDeque};

#[derive(Clone, Copy)]
struct Finished {
    at: u64,
    /// The descriptor's timestamp; `None` when the image was evicted before its fragment 0
    /// was taken.
    sender_timestamp: Option<u64>,
}

pub struct Recent {
    by_key: HashMap<ImageKey, Finished, BuildFx>,
    /// Finish order, oldest first. An entry whose key has finished again since, or was
    /// forgotten for a new incarnation, no longer matches `by_key` and is skipped when popped.
    order: VecDeque<(ImageKey, u64)>,
    capacity: usize,
    window_ns: u64,
}

impl Recent {
    pub fn new(capacity: usize, window_ns: u64) -> Self {
        // The map grows to the next power of two at 7/8 full: this many keys take a table of
        // at least twice `capacity` buckets.
        let keys = (2 * capacity).next_power_of_two() / 8 * 7;
        Recent {
            by_key: HashMap::with_capacity_and_hasher(keys, BuildFx::default()),
            order: VecDeque::with_capacity(capacity),
            capacity,
            window_ns,
        }
    }

    /// Remembers that `key` finished at `now`. Returns whether a record had to be forgotten
    /// before its window ended to make room (always, with a capacity of 0).
    pub fn insert(&mut self, key: ImageKey, now: u64, sender_timestamp: Option<u64>) -> bool {
        if self.capacity == 0 {
            return true;
        }
        while self
            .order
            .front()
            .is_some_and(|&(_, at)| !self.in_window(at, now))
        {
            self.pop_oldest();
        }
        let forgotten = self.order.len() == self.capacity && self.pop_oldest();
        self.by_key.insert(
            key,
            Finished {
                at: now,
                sender_timestamp,
            },
        );
        self.order.push_back((key, now));
        forgotten
    }

    /// Fragments of an image that finished at `at` are late until `at + window`, exclusive.
    fn in_window(&self, at: u64, now: u64) -> bool {
        now < at.saturating_add(self.window_ns)
    }

    /// Drops the oldest entry; returns whether it was a live record.
    fn pop_oldest(&mut self) -> bool {
        let Some((key, at)) = self.order.pop_front() else {
            return false;
        };
        let live = self.by_key.get(&key).is_some_and(|f| f.at == at);
        if live {
            self.by_key.remove(&key);
        }
        live
    }

    /// Whether a fragment of `key` (not in flight) is late: an image with this identity
    /// finished less than the window ago, and the fragment is not the fragment 0 of a new
    /// incarnation. A new incarnation is a fragment 0 whose sender timestamp differs from the
    /// one remembered (a restarted sender reusing ids); its record is forgotten, so that the
    /// image it opens is looked up like any other. Fragments without a timestamp (index > 0),
    /// and any fragment when the finished image's fragment 0 was never taken, cannot tell an
    /// incarnation from a straggler: they are late.
    pub fn is_late(&mut self, key: &ImageKey, now: u64, sender_timestamp: Option<u64>) -> bool {
        let Some(f) = self.by_key.get(key).copied() else {
            return false;
        };
        if !self.in_window(f.at, now) {
            return false;
        }
        match (sender_timestamp, f.sender_timestamp) {
            (Some(new), Some(old)) if new != old => {
                self.by_key.remove(key);
                false
            }
            _ => true,
        }
    }
}
