//! The memory of finished images: every image that completed or was evicted less than the
//! late window (`timeout_ns`) ago, so that its stragglers and late duplicates are counted
//! `late` instead of opening an image that could never complete (docs/protocol.md §8.2).
//!
//! Records sit in finish order in a ring and leave when their window ends, so the window does
//! not depend on the image rate; the ring holds at most `capacity` records, and when more
//! images finish within one window the oldest record is forgotten early (the caller counts
//! it, `forgotten_early`). A key finds its record through an open-addressing index (linear
//! probing, at most half full, backward-shift deletion, so no tombstones) of 8-byte entries:
//! the high half of the key's hash and the record's ring position. The index is a quarter of
//! the ring's size, so the random accesses of a new image (is it late? forget the oldest,
//! remember this one) stay in cache even when the ring does not; the ring itself is read and
//! written in order. Everything is allocated up front: no rehash ever stalls the rx core.

use crate::hash::BuildFx;
use crate::ImageKey;
use core::hash::BuildHasher;

#[derive(Clone, Copy)]
struct Record {
    key: ImageKey,
    /// When it finished.
    at: u64,
    /// The descriptor's timestamp, if fragment 0 had arrived.
    sender_timestamp: u64,
    has_timestamp: bool,
    /// Whether the index points here: false once the key finished again, or its record was
    /// forgotten for a new incarnation.
    live: bool,
}

const EMPTY: u64 = u64::MAX;

pub struct Recent {
    /// `ring[seq % capacity]` for the records `head..tail`, oldest first; grows to
    /// `capacity` once, then wraps.
    ring: Vec<Record>,
    head: u64,
    tail: u64,
    capacity: usize,
    /// `tag << 32 | ring position`, or `EMPTY`; a power-of-two length at least `2 capacity`.
    index: Vec<u64>,
    /// log2 of the index length.
    bits: u32,
    window_ns: u64,
}

impl Recent {
    /// Memory for `capacity` records (at most 2^31), reserved now.
    pub fn new(capacity: usize, window_ns: u64) -> Self {
        let capacity = capacity.min(1 << 31);
        let slots = (2 * capacity).next_power_of_two().max(2);
        Recent {
            ring: Vec::with_capacity(capacity),
            head: 0,
            tail: 0,
            capacity,
            index: vec![EMPTY; slots],
            bits: slots.trailing_zeros(),
            window_ns,
        }
    }

    /// Remembers that `key` finished at `now`. Returns whether a record had to be forgotten
    /// before its window ended to make room (always, with a capacity of 0).
    pub fn insert(&mut self, key: ImageKey, now: u64, sender_timestamp: Option<u64>) -> bool {
        if self.capacity == 0 {
            return true;
        }
        while self.head < self.tail && !self.in_window(self.ring[self.pos(self.head)].at, now) {
            self.pop_oldest();
        }
        let forgotten = self.tail - self.head == self.capacity as u64 && self.pop_oldest();
        let tag = tag(&key);
        let pos = self.pos(self.tail);
        match self.find(&key, tag) {
            // Finished again within its window (after a new incarnation, or once the old
            // record expired but was not popped yet): only the newest record counts.
            Some(slot) => {
                self.ring[self.index[slot] as u32 as usize].live = false;
                self.index[slot] = entry(tag, pos);
            }
            None => {
                let mut i = self.home(tag);
                while self.index[i] != EMPTY {
                    i = self.next(i);
                }
                self.index[i] = entry(tag, pos);
            }
        }
        let r = Record {
            key,
            at: now,
            sender_timestamp: sender_timestamp.unwrap_or(0),
            has_timestamp: sender_timestamp.is_some(),
            live: true,
        };
        if pos == self.ring.len() {
            self.ring.push(r);
        } else {
            self.ring[pos] = r;
        }
        self.tail += 1;
        forgotten
    }

    /// Whether a fragment of `key` (not in flight) is late: an image with this identity
    /// finished less than the window ago, and the fragment is not the fragment 0 of a new
    /// incarnation. A new incarnation is a fragment 0 whose sender timestamp differs from the
    /// one remembered (a restarted sender reusing ids); its record is forgotten, so that the
    /// image it opens is looked up like any other. Fragments without a timestamp (index > 0),
    /// and any fragment when the finished image's fragment 0 was never taken, cannot tell an
    /// incarnation from a straggler: they are late.
    pub fn is_late(&mut self, key: &ImageKey, now: u64, sender_timestamp: Option<u64>) -> bool {
        let Some(slot) = self.find(key, tag(key)) else {
            return false;
        };
        let pos = self.index[slot] as u32 as usize;
        let r = self.ring[pos];
        if !self.in_window(r.at, now) {
            return false;
        }
        match sender_timestamp {
            Some(ts) if r.has_timestamp && ts != r.sender_timestamp => {
                self.ring[pos].live = false;
                self.remove(slot);
                false
            }
            _ => true,
        }
    }

    /// Fragments of an image that finished at `at` are late until `at + window`, exclusive.
    fn in_window(&self, at: u64, now: u64) -> bool {
        now < at.saturating_add(self.window_ns)
    }

    /// Drops the oldest record; returns whether it was live (the index pointed to it).
    fn pop_oldest(&mut self) -> bool {
        let pos = self.pos(self.head);
        self.head += 1;
        let r = &self.ring[pos];
        if !r.live {
            return false;
        }
        // Positions are unique in the index, so the entry is found by position alone.
        let mut i = self.home(tag(&r.key));
        loop {
            match self.index[i] {
                EMPTY => {
                    debug_assert!(false, "a live record is in the index");
                    return true;
                }
                e if e as u32 as usize == pos => break,
                _ => i = self.next(i),
            }
        }
        self.remove(i);
        true
    }

    /// The index slot of `key`'s live record.
    fn find(&self, key: &ImageKey, tag: u32) -> Option<usize> {
        let mut i = self.home(tag);
        loop {
            let e = self.index[i];
            if e == EMPTY {
                return None;
            }
            if (e >> 32) as u32 == tag && self.ring[e as u32 as usize].key == *key {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    /// Empties slot `i`, moving back the entries after it that probing would no longer reach.
    fn remove(&mut self, mut i: usize) {
        let mut j = i;
        loop {
            j = self.next(j);
            let e = self.index[j];
            if e == EMPTY {
                break;
            }
            // The entry at j stays unless its home lies cyclically outside (i, j].
            let k = self.home((e >> 32) as u32);
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.index[i] = e;
                i = j;
            }
        }
        self.index[i] = EMPTY;
    }

    fn pos(&self, seq: u64) -> usize {
        (seq % self.capacity as u64) as usize
    }

    /// The first slot to probe: the tag's top bits (the hash's best mixed ones).
    fn home(&self, tag: u32) -> usize {
        (tag >> (32 - self.bits)) as usize
    }

    fn next(&self, i: usize) -> usize {
        (i + 1) & (self.index.len() - 1)
    }
}

/// The high half of the key's hash.
fn tag(key: &ImageKey) -> u32 {
    (BuildFx::default().hash_one(key) >> 32) as u32
}

fn entry(tag: u32, pos: usize) -> u64 {
    (tag as u64) << 32 | pos as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use netml_wire::source::Source;
    use std::collections::VecDeque;

    /// The same semantics the slow way: a list of records, searched from the newest.
    struct Model {
        recs: VecDeque<(ImageKey, u64, Option<u64>, bool)>,
        capacity: usize,
        window_ns: u64,
    }

    impl Model {
        fn live(&mut self, key: &ImageKey) -> Option<&mut (ImageKey, u64, Option<u64>, bool)> {
            self.recs.iter_mut().rev().find(|r| r.0 == *key && r.3)
        }

        fn insert(&mut self, key: ImageKey, now: u64, ts: Option<u64>) -> bool {
            let w = self.window_ns;
            while self.recs.front().is_some_and(|r| now >= r.1 + w) {
                self.recs.pop_front();
            }
            let forgotten =
                self.recs.len() == self.capacity && self.recs.pop_front().is_some_and(|r| r.3);
            if let Some(old) = self.live(&key) {
                old.3 = false;
            }
            self.recs.push_back((key, now, ts, true));
            forgotten
        }

        fn is_late(&mut self, key: &ImageKey, now: u64, ts: Option<u64>) -> bool {
            let w = self.window_ns;
            match self.live(key) {
                Some(r) if now < r.1 + w => match (ts, r.2) {
                    (Some(new), Some(old)) if new != old => {
                        r.3 = false;
                        false
                    }
                    _ => true,
                },
                _ => false,
            }
        }
    }

    /// Random inserts and look-ups over few keys in small tables (long probe chains,
    /// wrap-around, deletions in the middle of chains) agree with the model.
    #[test]
    fn agrees_with_a_list_of_records() {
        for capacity in [1usize, 2, 3, 7, 8, 13] {
            let window_ns = 40;
            let mut r = Recent::new(capacity, window_ns);
            let mut m = Model {
                recs: VecDeque::new(),
                capacity,
                window_ns,
            };
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ capacity as u64;
            let mut rand = |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            let mut now = 0;
            for _ in 0..20_000 {
                now += rand(4);
                let key = ImageKey {
                    source: Source::v4([10, 0, 0, 1], 40000 + rand(3) as u16),
                    model: 0,
                    image: rand(9) as u32,
                };
                let ts = (rand(3) > 0).then(|| rand(3));
                if rand(2) == 0 {
                    assert_eq!(r.insert(key, now, ts), m.insert(key, now, ts));
                } else {
                    assert_eq!(r.is_late(&key, now, ts), m.is_late(&key, now, ts));
                }
            }
        }
    }
}
