//! Images that finished (completed or evicted) a short while ago, so that their stragglers
//! are recognised as late instead of opening a new image that could never complete.

use crate::hash::BuildFx;
use crate::ImageKey;
use std::collections::{HashMap, VecDeque};

#[derive(Clone, Copy)]
struct Finished {
    at: u64,
    sender_timestamp: Option<u64>,
}

pub struct Recent {
    by_key: HashMap<ImageKey, Finished, BuildFx>,
    order: VecDeque<(ImageKey, u64)>,
    capacity: usize,
    window_ns: u64,
}

impl Recent {
    pub fn new(capacity: usize, window_ns: u64) -> Self {
        Recent {
            by_key: HashMap::with_capacity_and_hasher(capacity, BuildFx::default()),
            order: VecDeque::with_capacity(capacity),
            capacity,
            window_ns,
        }
    }

    pub fn insert(&mut self, key: ImageKey, now: u64, sender_timestamp: Option<u64>) {
        if self.capacity == 0 {
            return;
        }
        while self.order.len() >= self.capacity
            || self
                .order
                .front()
                .is_some_and(|&(_, at)| at.saturating_add(self.window_ns) < now)
        {
            self.pop_oldest();
        }
        self.by_key.insert(
            key,
            Finished {
                at: now,
                sender_timestamp,
            },
        );
        self.order.push_back((key, now));
    }

    fn pop_oldest(&mut self) {
        if let Some((key, at)) = self.order.pop_front() {
            // The key may have finished again since; only its newest record counts.
            if self.by_key.get(&key).is_some_and(|f| f.at == at) {
                self.by_key.remove(&key);
            }
        }
    }

    /// Whether a fragment of `key` is a straggler of a recently finished image. A first
    /// fragment whose sender timestamp differs from the finished image's starts a new image
    /// that reuses the id (a restarted sender), so the old record is forgotten.
    pub fn is_late(&mut self, key: &ImageKey, now: u64, sender_timestamp: Option<u64>) -> bool {
        let Some(f) = self.by_key.get(key).copied() else {
            return false;
        };
        if f.at.saturating_add(self.window_ns) < now {
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
