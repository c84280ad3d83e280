//! Ordering of the frame stream: duplicate placement and window shuffles.

use crate::rng::{self, Rng};
use std::collections::VecDeque;

/// Turns the in-order stream of planned frames into the order they are sent.
///
/// A duplicate copy is placed 0..W-1 original frames after its original (right after it
/// when reordering is off), then every consecutive window of W frames is shuffled. Frames
/// come out of [`Reorder::pop`] as soon as their window is complete.
#[derive(Debug)]
pub struct Reorder<T> {
    window: usize,
    rng: Rng,
    originals: u64,
    /// Duplicates waiting for their slot: (emit after original number, seq, item).
    pending: Vec<(u64, u64, T)>,
    seq: u64,
    buf: Vec<T>,
    ready: VecDeque<T>,
    moved: u64,
}

impl<T: Clone> Reorder<T> {
    /// A reorderer with windows of `window` frames (0 and 1 mean no shuffling).
    pub fn new(window: usize, seed: u64) -> Self {
        Reorder {
            window: window.max(1),
            rng: Rng::new(seed, rng::stream::REORDER),
            originals: 0,
            pending: Vec::new(),
            seq: 0,
            buf: Vec::new(),
            ready: VecDeque::new(),
            moved: 0,
        }
    }

    /// Adds an original frame, and schedules an extra copy of it if `dup`.
    pub fn push(&mut self, item: T, dup: bool) {
        let n = self.originals;
        self.originals += 1;
        if dup {
            let delay = self.rng.below(self.window as u64);
            self.pending.push((n + delay, self.seq, item.clone()));
            self.seq += 1;
        }
        self.enqueue(item);
        if self.pending.iter().any(|p| p.0 <= n) {
            let mut due: Vec<_> = Vec::new();
            self.pending.retain(|p| {
                if p.0 <= n {
                    due.push(p.clone());
                    false
                } else {
                    true
                }
            });
            due.sort_by_key(|p| (p.0, p.1));
            for (_, _, item) in due {
                self.enqueue(item);
            }
        }
    }

    /// Releases everything still held (pending duplicates, then a final partial window).
    pub fn finish(&mut self) {
        let mut rest = std::mem::take(&mut self.pending);
        rest.sort_by_key(|p| (p.0, p.1));
        for (_, _, item) in rest {
            self.enqueue(item);
        }
        self.flush();
    }

    /// The next frame in send order, if its window is complete.
    pub fn pop(&mut self) -> Option<T> {
        self.ready.pop_front()
    }

    /// Frames whose position changed in a shuffle so far.
    pub fn moved(&self) -> u64 {
        self.moved
    }

    fn enqueue(&mut self, item: T) {
        self.buf.push(item);
        if self.buf.len() >= self.window {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let mut items: Vec<(usize, T)> = self.buf.drain(..).enumerate().collect();
        if items.len() > 1 {
            self.rng.shuffle(&mut items);
        }
        for (pos, (orig, item)) in items.into_iter().enumerate() {
            self.moved += (pos != orig) as u64;
            self.ready.push_back(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(window: usize, n: u32, dup: impl Fn(u32) -> bool) -> (Vec<u32>, u64) {
        let mut r = Reorder::new(window, 11);
        let mut out = Vec::new();
        for i in 0..n {
            r.push(i, dup(i));
            while let Some(x) = r.pop() {
                out.push(x);
            }
        }
        r.finish();
        while let Some(x) = r.pop() {
            out.push(x);
        }
        (out, r.moved())
    }

    #[test]
    fn no_reorder_keeps_order_and_puts_dups_right_after() {
        let (out, moved) = run(0, 6, |i| i == 2);
        assert_eq!(out, vec![0, 1, 2, 2, 3, 4, 5]);
        assert_eq!(moved, 0);
    }

    #[test]
    fn windows_are_permutations_of_their_frames() {
        let (out, moved) = run(8, 100, |_| false);
        assert_eq!(out.len(), 100);
        assert!(moved > 0);
        for (w, chunk) in out.chunks(8).enumerate() {
            let mut c = chunk.to_vec();
            c.sort_unstable();
            let lo = (w * 8) as u32;
            assert_eq!(c, (lo..lo + c.len() as u32).collect::<Vec<_>>());
        }
        let counted = out
            .iter()
            .enumerate()
            .filter(|(pos, &v)| *pos as u32 != v)
            .count();
        assert_eq!(counted as u64, moved);
    }

    #[test]
    fn duplicates_stay_close_to_their_original() {
        let (out, _) = run(4, 50, |i| i % 3 == 0);
        assert_eq!(out.len(), 50 + 17);
        for i in (0..50).step_by(3) {
            let pos: Vec<usize> = (0..out.len()).filter(|&p| out[p] == i).collect();
            assert_eq!(pos.len(), 2, "{i}: {out:?}");
            // At most W-1 originals in between, plus other dups and one window of shuffle.
            assert!(pos[1] - pos[0] < 4 * 3, "{i}: {out:?}");
        }
    }
}
