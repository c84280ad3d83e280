//! The handles of one image in flight, kept in the order they arrived.
//!
//! A slot indexed by fragment (`Vec<Option<H>>` of the image's count) must be written whole
//! before its first fragment: with the image taking that vector when it completes, every
//! image started by filling a fresh allocation of `count` entries (588 x 24 bytes for a
//! 224x224 RGB image in 1 KiB fragments), a burst of write misses on the rx core that cost
//! more than all of the image's fragments in the rx loop's profile. Kept in arrival order,
//! each handle is written once, by the fragment that brings it, into a vector that is only
//! reserved beforehand. Fragments almost always arrive in index order, and then the vector
//! is already the image's. A fragment that arrives before its turn waits beside it with its
//! index, and completion appends those in index order: a reordered fragment costs its own
//! place in that side list, not a cost on every other fragment of its image.

/// The held handles of one image: `in_order` holds fragments `0..in_order.len()`, the
/// others wait in `early` with their index (any order). Whether an index is already held
/// is the slot's bitmap's business: pushing an index twice is a caller's bug.
pub(crate) struct Arrivals<H> {
    in_order: Vec<H>,
    early: Vec<(u16, H)>,
}

impl<H> Arrivals<H> {
    pub(crate) fn new() -> Self {
        Arrivals {
            in_order: Vec::new(),
            early: Vec::new(),
        }
    }

    /// Drops every handle and makes room for an image of `count` fragments.
    pub(crate) fn prepare(&mut self, count: usize) {
        self.clear();
        // The image takes this vector when it completes: one left much larger by an earlier
        // image (a hostile claim of 4096 fragments, evicted) would go out whole with it.
        let bound = 2 * count.max(64);
        if self.in_order.capacity() > bound {
            self.in_order = Vec::new();
        }
        if self.early.capacity() > bound {
            self.early = Vec::new();
        }
        self.in_order.reserve_exact(count);
    }

    /// Holds the handle of fragment `index` (not held yet).
    #[inline(always)]
    pub(crate) fn push(&mut self, index: u16, handle: H) {
        if usize::from(index) == self.in_order.len() {
            self.in_order.push(handle);
        } else {
            self.push_early(index, handle);
        }
    }

    #[cold]
    fn push_early(&mut self, index: u16, handle: H) {
        self.early.push((index, handle));
    }

    /// Number of handles held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.in_order.len() + self.early.len()
    }

    /// Every handle in index order, when the indices held are exactly `0..len`: the
    /// in-order vector itself, with the early ones appended in index order.
    pub(crate) fn take_in_order(&mut self) -> Vec<H> {
        let mut handles = std::mem::take(&mut self.in_order);
        if !self.early.is_empty() {
            // `in_order` holds 0..p and the image is complete, so `early` holds p..count:
            // each entry's place is known, and a cycle sort puts one where it belongs per
            // swap (linear, where a comparison sort cost more than the rest of the image).
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
        if !self.in_order.is_empty() {
            return Some(self.in_order.swap_remove(0));
        }
        let at = (0..self.early.len()).min_by_key(|&k| self.early[k].0)?;
        Some(self.early.swap_remove(at).1)
    }

    /// Drops every handle held.
    pub(crate) fn clear(&mut self) {
        self.in_order.clear();
        self.early.clear();
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

    fn hold(order: &[u16]) -> Arrivals<Box<u16>> {
        let mut a = Arrivals::new();
        a.prepare(order.len());
        for &i in order {
            a.push(i, Box::new(i));
        }
        a
    }

    fn values(v: &[Box<u16>]) -> Vec<u16> {
        v.iter().map(|b| **b).collect()
    }

    #[test]
    fn in_order_arrivals_are_the_image_as_it_stands() {
        let mut a = hold(&[0, 1, 2, 3]);
        assert!(a.early.is_empty());
        let at = a.as_ptr();
        let image = a.take_in_order();
        assert_eq!(values(&image), [0, 1, 2, 3]);
        assert_eq!(image.as_ptr(), at);
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn any_arrival_order_completes_in_index_order() {
        let orders: [&[u16]; 6] = [
            &[3, 2, 1, 0],
            &[0, 1, 3, 2],
            &[1, 0, 2, 3],
            &[2, 0, 3, 1],
            &[0, 2, 4, 1, 3],
            &[4, 3, 0, 1, 2, 5],
        ];
        for order in orders {
            let mut a = hold(order);
            let image = a.take_in_order();
            let want: Vec<u16> = (0..order.len() as u16).collect();
            assert_eq!(values(&image), want, "arrived {order:?}");
            assert!(a.early.is_empty());
        }
        // Every order of 6 fragments (720).
        let mut order = [0u16, 1, 2, 3, 4, 5];
        let mut c = [0usize; 6];
        let mut k = 0;
        let mut seen = std::collections::HashSet::new();
        loop {
            seen.insert(order);
            let image = hold(&order).take_in_order();
            assert_eq!(values(&image), [0, 1, 2, 3, 4, 5], "arrived {order:?}");
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
    fn take_first_takes_the_lowest_index() {
        assert_eq!(*hold(&[0, 1, 2]).take_first().unwrap(), 0);
        assert_eq!(*hold(&[5, 3, 9]).take_first().unwrap(), 3);
        assert_eq!(*hold(&[0, 2, 1]).take_first().unwrap(), 0);
        assert!(hold(&[]).take_first().is_none());
    }

    #[test]
    fn a_small_image_does_not_keep_a_large_vector() {
        let mut a = hold(&[4000]);
        a.prepare(4096);
        a.prepare(3);
        for i in 0..3 {
            a.push(i, Box::new(i));
        }
        let image = a.take_in_order();
        assert!(image.capacity() <= 128, "capacity {}", image.capacity());
    }
}
