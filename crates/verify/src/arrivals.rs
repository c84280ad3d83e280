//! The handles of one image in flight, kept in the order they arrived.
//!
//! A slot indexed by fragment (`Vec<Option<H>>` of the image's count) must be written whole
//! before its first fragment: with the image taking that vector when it completes, every
//! image started by filling a fresh allocation of `count` entries (588 x 24 bytes for a
//! 224x224 RGB image in 1 KiB fragments), a burst of write misses on the rx core that cost
//! more than all of the image's fragments in the rx loop's profile. Kept in arrival order,
//! each handle is written once, by the fragment that brings it, into a vector that is only
//! reserved beforehand. Fragments almost always arrive in index order, and then the vector
//! is already the image's; the first fragment out of order starts recording each handle's
//! index, and completion sorts by it.

/// The held handles of one image, in arrival order (which is index order until
/// [`Arrivals::indices`] is in use). Whether an index is already held is the slot's bitmap's
/// business: pushing an index twice is a caller's bug.
pub(crate) struct Arrivals<H> {
    handles: Vec<H>,
    /// The fragment index of each handle; empty while `handles[i]` is fragment `i`.
    indices: Vec<u16>,
}

impl<H> Arrivals<H> {
    pub(crate) fn new() -> Self {
        Arrivals {
            handles: Vec::new(),
            indices: Vec::new(),
        }
    }

    /// Drops every handle and makes room for an image of `count` fragments.
    pub(crate) fn prepare(&mut self, count: usize) {
        self.clear();
        // The image takes this vector when it completes: one left much larger by an earlier
        // image (a hostile claim of 4096 fragments, evicted) would go out whole with it.
        if self.handles.capacity() > 2 * count.max(64) {
            self.handles = Vec::new();
        }
        self.handles.reserve_exact(count);
    }

    /// Holds the handle of fragment `index` (not held yet).
    #[inline(always)]
    pub(crate) fn push(&mut self, index: u16, handle: H) {
        if self.indices.is_empty() && usize::from(index) == self.handles.len() {
            self.handles.push(handle);
        } else {
            self.push_out_of_order(index, handle);
        }
    }

    #[cold]
    fn push_out_of_order(&mut self, index: u16, handle: H) {
        if self.indices.is_empty() {
            // Everything before arrived in order.
            self.indices.extend(0..self.handles.len() as u16);
        }
        self.indices.push(index);
        self.handles.push(handle);
    }

    /// Number of handles held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }

    /// Every handle in index order, when the indices held are exactly `0..len`: the
    /// vector itself, sorted in place if anything arrived out of order.
    pub(crate) fn take_in_order(&mut self) -> Vec<H> {
        let mut handles = std::mem::take(&mut self.handles);
        let indices = &mut self.indices;
        if !indices.is_empty() {
            debug_assert_eq!(indices.len(), handles.len());
            // Cycle sort: every swap puts one handle where its index says.
            for i in 0..indices.len() {
                while usize::from(indices[i]) != i {
                    let j = usize::from(indices[i]);
                    handles.swap(i, j);
                    indices.swap(i, j);
                }
            }
            indices.clear();
        }
        handles
    }

    /// The handle of the lowest index held, removed (the others stay until [`clear`]).
    ///
    /// [`clear`]: Arrivals::clear
    pub(crate) fn take_first(&mut self) -> Option<H> {
        if self.handles.is_empty() {
            return None;
        }
        let at = match self.indices.iter().enumerate().min_by_key(|&(_, &i)| i) {
            Some((at, _)) => {
                self.indices.swap_remove(at);
                at
            }
            None => 0,
        };
        Some(self.handles.swap_remove(at))
    }

    /// Drops every handle held.
    pub(crate) fn clear(&mut self) {
        self.handles.clear();
        self.indices.clear();
    }

    /// The vector's address, to tell whether an image took it.
    #[cfg(test)]
    pub(crate) fn as_ptr(&self) -> *const H {
        self.handles.as_ptr()
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
    fn in_order_arrivals_are_the_image_without_indices() {
        let mut a = hold(&[0, 1, 2, 3]);
        assert!(a.indices.is_empty());
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
            assert!(a.indices.is_empty());
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
