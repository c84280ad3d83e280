//! The handles of one image in flight, kept in the order they arrived.
//!
//! A slot indexed by fragment (`Vec<Option<H>>` of the image's count) must be written whole
//! before its first fragment: with the image taking that vector when it completes, every
//! image started by filling a fresh allocation of `count` entries (588 x 24 bytes for a
//! 224x224 RGB image in 1 KiB fragments), a burst of write misses on the rx core that cost
//! more than all of the image's fragments in the rx loop's profile. Kept in arrival order,
//! each handle is written once, by the fragment that brings it, into a vector that is only
//! reserved beforehand. Fragments almost always arrive in index order, and then the vector
//! is already the image's. A few fragments that arrive before their turn (the last one
//! first, a swapped pair) wait beside it with their index, and completion appends them in
//! index order. Past [`EARLY_MAX`] of those the image is reordered for real, and its
//! handles move to a vector indexed by fragment, as all images were kept before: a
//! reordered image costs about what it did (1.7 ns more per fragment in criterion's
//! `reordered` stream), an image in order costs less. And while every fragment arrives in
//! its turn, the fragments held are `0..len`: the duplicate check needs no bitmap, and the
//! bitmap is filled in only when the first fragment arrives out of turn.

/// Fragments an image may have waiting out of order before its handles move to a vector
/// indexed by fragment.
const EARLY_MAX: usize = 16;

/// The held handles of one image, and which indices they are: `in_order` holds fragments
/// `0..in_order.len()`, the others wait in `early` with their index (any order), unless
/// `by_index` is in use (not empty), which then holds them all. While every fragment
/// arrived in its turn the indices held are `0..in_order.len()`, and the bitmap is not
/// needed (nor touched, per fragment); the first fragment out of turn fills it in.
pub(crate) struct Arrivals<H> {
    in_order: Vec<H>,
    early: Vec<(u16, H)>,
    by_index: Vec<Option<H>>,
    count: usize,
    /// Bit i set: fragment i is held; valid only while `reordered`.
    bitmap: Vec<u64>,
    /// Some fragment arrived out of its turn: `early` or `by_index` holds handles.
    reordered: bool,
}

impl<H> Arrivals<H> {
    pub(crate) fn new() -> Self {
        Arrivals {
            in_order: Vec::new(),
            early: Vec::new(),
            by_index: Vec::new(),
            count: 0,
            bitmap: Vec::new(),
            reordered: false,
        }
    }

    /// Drops every handle and makes room for an image of `count` fragments.
    pub(crate) fn prepare(&mut self, count: usize) {
        self.clear();
        self.count = count;
        // The image takes a vector when it completes: one left much larger by an earlier
        // image (a hostile claim of 4096 fragments, evicted) would go out whole with it.
        let bound = 2 * count.max(64);
        if self.in_order.capacity() > bound {
            self.in_order = Vec::new();
        }
        if self.by_index.capacity() > bound {
            self.by_index = Vec::new();
        }
        self.in_order.reserve_exact(count);
        self.bitmap.resize(count.div_ceil(64), 0);
    }

    /// Whether fragment `index` (below the count) is held.
    #[inline(always)]
    pub(crate) fn holds(&self, index: u16) -> bool {
        let i = usize::from(index);
        if !self.reordered {
            return i < self.in_order.len();
        }
        self.bitmap[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// The index that comes in its turn: `in_order.len()` while every fragment came in its
    /// turn, `usize::MAX` (no index) once one did not.
    #[inline(always)]
    pub(crate) fn turn(&self) -> usize {
        if self.reordered {
            usize::MAX
        } else {
            self.in_order.len()
        }
    }

    /// Holds the handle of fragment [`turn`](Self::turn) (below the count).
    #[inline(always)]
    pub(crate) fn push_in_turn(&mut self, handle: H) {
        debug_assert!(!self.reordered && self.by_index.is_empty());
        self.in_order.push(handle);
    }

    /// Holds the handle of fragment `index` (below the count, not held yet).
    #[inline(always)]
    pub(crate) fn push(&mut self, index: u16, handle: H) {
        if !self.by_index.is_empty() {
            self.mark(index);
            self.by_index[usize::from(index)] = Some(handle);
        } else if usize::from(index) == self.in_order.len() {
            if self.reordered {
                self.mark(index);
            }
            self.in_order.push(handle);
        } else {
            self.push_early(index, handle);
        }
    }

    #[inline(always)]
    fn mark(&mut self, index: u16) {
        let i = usize::from(index);
        self.bitmap[i / 64] |= 1u64 << (i % 64);
    }

    #[cold]
    #[inline(never)]
    fn push_early(&mut self, index: u16, handle: H) {
        if !self.reordered {
            // The first fragment out of its turn: the bitmap takes over from the count.
            self.reordered = true;
            for i in 0..self.in_order.len() {
                self.mark(i as u16);
            }
        }
        self.mark(index);
        if self.early.len() < EARLY_MAX {
            self.early.push((index, handle));
            return;
        }
        // Reordered for real: every handle to its place.
        self.by_index.resize_with(self.count, || None);
        for (i, h) in self.in_order.drain(..).enumerate() {
            self.by_index[i] = Some(h);
        }
        for (i, h) in self.early.drain(..) {
            self.by_index[usize::from(i)] = Some(h);
        }
        self.by_index[usize::from(index)] = Some(handle);
    }

    /// Number of handles held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.in_order.len() + self.early.len() + self.by_index.iter().flatten().count()
    }

    /// Every handle in index order, when the indices held are exactly `0..count`: the
    /// in-order vector itself, with the early ones appended in index order; or the vector
    /// indexed by fragment, collected in place when `Option<H>` is as large as `H` (as for
    /// any pointer-like handle).
    pub(crate) fn take_in_order(&mut self) -> Vec<H> {
        self.forget_indices();
        if !self.by_index.is_empty() {
            let by_index = std::mem::take(&mut self.by_index);
            return by_index
                .into_iter()
                .map(|h| h.expect("every fragment held"))
                .collect();
        }
        let mut handles = std::mem::take(&mut self.in_order);
        if !self.early.is_empty() {
            // `in_order` holds 0..p and the image is complete, so `early` holds p..count:
            // each entry's place is known, and a cycle sort puts one where it belongs per
            // swap.
            let (p, early) = (handles.len(), &mut self.early);
            for k in 0..early.len() {
                loop {
                    let at = usize::from(early[k].0) - p;
                    if at == k {
                        break;
                    }
                    assert!(early[at].0 != early[k].0, "fragment held twice");
                    early.swap(k, at);
                }
            }
            handles.extend(early.drain(..).map(|(_, h)| h));
        }
        handles
    }

    /// The handle of the lowest index held, removed (the others stay until [`clear`]).
    ///
    /// [`clear`]: Arrivals::clear
    pub(crate) fn take_first(&mut self) -> Option<H> {
        if !self.by_index.is_empty() {
            return self.by_index.iter_mut().find_map(Option::take);
        }
        if !self.in_order.is_empty() {
            return Some(self.in_order.swap_remove(0));
        }
        let at = (0..self.early.len()).min_by_key(|&k| self.early[k].0)?;
        Some(self.early.swap_remove(at).1)
    }

    /// Drops every handle held.
    pub(crate) fn clear(&mut self) {
        self.forget_indices();
        self.in_order.clear();
        self.early.clear();
        self.by_index.clear();
    }

    /// Back to "nothing out of turn", with the bitmap all zeros.
    fn forget_indices(&mut self) {
        if self.reordered {
            self.bitmap.iter_mut().for_each(|w| *w = 0);
            self.reordered = false;
        }
    }

    /// The in-order vector's address, to tell whether an image took it.
    #[cfg(test)]
    pub(crate) fn as_ptr(&self) -> *const H {
        self.in_order.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handles of an image of `count` fragments, pushed in `order`.
    fn hold(count: usize, order: &[u16]) -> Arrivals<Box<u16>> {
        let mut a = Arrivals::new();
        a.prepare(count);
        for &i in order {
            a.push(i, Box::new(i));
        }
        a
    }

    fn values(v: &[Box<u16>]) -> Vec<u16> {
        v.iter().map(|b| **b).collect()
    }

    /// `order` completes in index order, with `early` and `by_index` empty after.
    fn completes(order: &[u16]) {
        let mut a = hold(order.len(), order);
        assert_eq!(a.len(), order.len());
        let image = a.take_in_order();
        let want: Vec<u16> = (0..order.len() as u16).collect();
        assert_eq!(values(&image), want, "arrived {order:?}");
        assert!(a.early.is_empty() && a.by_index.is_empty());
    }

    #[test]
    fn in_order_arrivals_are_the_image_as_it_stands() {
        let mut a = hold(4, &[0, 1, 2, 3]);
        assert!(a.early.is_empty() && a.by_index.is_empty());
        let at = a.as_ptr();
        let image = a.take_in_order();
        assert_eq!(values(&image), [0, 1, 2, 3]);
        assert_eq!(image.as_ptr(), at);
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn a_few_early_fragments_wait_beside_the_rest() {
        // The last fragment first, a swapped pair: the in-order vector and a short list.
        let mut last_first: Vec<u16> = vec![99];
        last_first.extend(0..99);
        let a = hold(100, &last_first);
        assert_eq!((a.in_order.len(), a.early.len()), (99, 1));
        assert!(a.by_index.is_empty());
        completes(&last_first);
        completes(&[0, 2, 1, 3]);
    }

    #[test]
    fn a_reordered_image_moves_to_the_vector_by_index() {
        let reversed: Vec<u16> = (0..100).rev().collect();
        let a = hold(100, &reversed);
        assert!(a.in_order.is_empty() && a.early.is_empty());
        assert_eq!(a.by_index.len(), 100);
        completes(&reversed);
        // Shuffled in windows of 64, as a multi-queue path might deliver them.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut shuffled: Vec<u16> = (0..588).collect();
        for w in shuffled.chunks_mut(64) {
            for i in (1..w.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.swap(i, (x % (i as u64 + 1)) as usize);
            }
        }
        completes(&shuffled);
    }

    #[test]
    fn any_arrival_order_completes_in_index_order() {
        // Every order of 6 fragments (720).
        let mut order = [0u16, 1, 2, 3, 4, 5];
        let mut c = [0usize; 6];
        let mut k = 0;
        let mut seen = std::collections::HashSet::new();
        loop {
            seen.insert(order);
            completes(&order);
            // Heap's algorithm, iterative.
            while k < 6 && c[k] >= k {
                c[k] = 0;
                k += 1;
            }
            if k == 6 {
                break;
            }
            let swap_with = if k % 2 == 0 { 0 } else { c[k] };
            order.swap(swap_with, k);
            c[k] += 1;
            k = 0;
        }
        assert_eq!(seen.len(), 720);
    }

    #[test]
    fn holds_is_the_count_in_order_and_the_bitmap_after() {
        let mut a = hold(200, &[0, 1, 2]);
        assert!(a.holds(0) && a.holds(2) && !a.holds(3) && !a.holds(199));
        assert!(a.bitmap.iter().all(|&w| w == 0), "untouched while in order");
        a.push(150, Box::new(150));
        assert!(a.reordered);
        assert!(a.holds(0) && a.holds(2) && a.holds(150) && !a.holds(3) && !a.holds(149));
        a.push(3, Box::new(3));
        assert!(a.holds(3) && !a.holds(4));
        // Past EARLY_MAX out of turn: the vector by index, the bitmap still right.
        for i in (100..100 + EARLY_MAX as u16).rev() {
            a.push(i, Box::new(i));
        }
        assert!(!a.by_index.is_empty());
        assert!(a.holds(100) && a.holds(3) && a.holds(150) && !a.holds(4) && !a.holds(99));
        a.clear();
        assert!(!a.reordered && !a.holds(0) && a.bitmap.iter().all(|&w| w == 0));
    }

    #[test]
    fn take_first_takes_the_lowest_index() {
        assert_eq!(*hold(3, &[0, 1, 2]).take_first().unwrap(), 0);
        assert_eq!(*hold(10, &[5, 3, 9]).take_first().unwrap(), 3);
        assert_eq!(*hold(3, &[0, 2, 1]).take_first().unwrap(), 0);
        let reversed: Vec<u16> = (1..40).rev().collect();
        assert_eq!(*hold(40, &reversed).take_first().unwrap(), 1);
        assert!(hold(3, &[]).take_first().is_none());
    }

    #[test]
    fn a_small_image_does_not_keep_a_large_vector() {
        let reversed: Vec<u16> = (0..4096).rev().collect();
        let mut a = hold(4096, &reversed);
        a.prepare(3);
        assert!(a.by_index.capacity() <= 128);
        for i in [2, 1, 0] {
            a.push(i, Box::new(i));
        }
        let image = a.take_in_order();
        assert!(image.capacity() <= 128, "capacity {}", image.capacity());
    }
}
