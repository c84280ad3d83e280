//! [`Sources`]: the fragments of one image, listed or strided, and [`SrcPtrs`], a strided
//! image's source pointers read in place (a plain array, or a field of the caller's
//! per-fragment records).

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};

use crate::ingest::RawFragment;

/// The fragments of one image, in one of two forms.
#[derive(Clone, Copy, Debug)]
pub enum Sources<'a> {
    /// Any layout: every fragment says where it lands. Validated per fragment (bounds,
    /// overlaps) and sent as one 16-byte descriptor each.
    Listed(&'a [RawFragment]),
    /// The completeness verifier's layout: fragment `i` is `frag_size` bytes at `srcs.get(i)`,
    /// landing at `i * frag_size`, except the last, which is `total - (n - 1) * frag_size`
    /// bytes (`n = srcs.len()`; `(n - 1) * frag_size < total <= n * frag_size`). Contiguous and
    /// non-overlapping by construction, so validated in O(1); the gather computes every
    /// fragment's offset and length itself. The host modes read `srcs` in place (no copy, no
    /// work per fragment on the submitting thread); a GPU copies the pointers into its
    /// descriptor pool.
    Strided {
        srcs: SrcPtrs<'a>,
        frag_size: usize,
        total: usize,
    },
}

impl<'a> Sources<'a> {
    /// Number of fragments.
    pub fn len(&self) -> usize {
        match self {
            Sources::Listed(f) => f.len(),
            Sources::Strided { srcs, .. } => srcs.len(),
        }
    }

    /// True when the image has no fragment.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fragment `i` as `(src, len, offset in the image)`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn fragment(&self, i: usize) -> (*const u8, usize, usize) {
        match *self {
            Sources::Listed(f) => (f[i].src, f[i].len, f[i].dst_offset),
            Sources::Strided {
                srcs,
                frag_size,
                total,
            } => {
                let off = i * frag_size;
                (srcs.get(i), frag_size.min(total.saturating_sub(off)), off)
            }
        }
    }

    /// Every fragment as `(src, len, offset in the image)`, in order.
    pub fn iter(self) -> impl Iterator<Item = (*const u8, usize, usize)> + 'a {
        (0..self.len()).map(move |i| self.fragment(i))
    }
}

impl<'a> From<&'a [RawFragment]> for Sources<'a> {
    fn from(f: &'a [RawFragment]) -> Self {
        Sources::Listed(f)
    }
}

/// `len` source pointers, `stride` bytes apart, borrowed for `'a`: a plain array
/// ([`SrcPtrs::new`]) or one `*const u8` field of each of the caller's records
/// ([`SrcPtrs::fields`]), so that a caller that already keeps one record per fragment (the
/// pipeline's held packets) hands them over without building anything.
#[derive(Clone, Copy)]
pub struct SrcPtrs<'a> {
    first: *const u8,
    len: usize,
    stride: usize,
    _borrow: PhantomData<&'a [*const u8]>,
}

impl<'a> SrcPtrs<'a> {
    /// The pointers of a plain array.
    pub fn new(ptrs: &'a [*const u8]) -> Self {
        Self {
            first: ptrs.as_ptr() as *const u8,
            len: ptrs.len(),
            stride: size_of::<*const u8>(),
            _borrow: PhantomData,
        }
    }

    /// The `*const u8` field that `field` projects each record to, read in place.
    ///
    /// # Safety
    /// `field` must return a reference to the same field of every record it is given (a plain
    /// projection such as `|r| &r.ptr`): only its offset in the first record is used.
    ///
    /// # Panics
    /// If the reference `field` returns for the first record is not inside it.
    pub unsafe fn fields<T>(records: &'a [T], field: impl Fn(&T) -> &*const u8) -> Self {
        let first = match records.first() {
            None => return Self::new(&[]),
            Some(r) => field(r) as *const *const u8 as *const u8,
        };
        let off = (first as usize).wrapping_sub(records.as_ptr() as usize);
        assert!(
            off + size_of::<*const u8>() <= size_of::<T>()
                && off.is_multiple_of(align_of::<*const u8>()),
            "SrcPtrs::fields: not a field of the record"
        );
        Self {
            first,
            len: records.len(),
            stride: size_of::<T>(),
            _borrow: PhantomData,
        }
    }

    /// Number of pointers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pointer `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn get(&self, i: usize) -> *const u8 {
        assert!(i < self.len, "SrcPtrs index {i} out of {}", self.len);
        // SAFETY: `i < len`: an aligned, initialised `*const u8` of the borrowed array or
        // records (checked at construction), alive for `'a`.
        unsafe { *(self.first.add(i * self.stride) as *const *const u8) }
    }

    /// Address of pointer 0 and the stride in bytes (what the gather reads in place).
    pub(crate) fn raw(&self) -> (*const u8, usize) {
        (self.first, self.stride)
    }

    /// A sub-range of the pointers (`range` inside `0..len()`).
    ///
    /// # Panics
    /// If the range is not inside `0..len()`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= self.len);
        Self {
            // SAFETY: inside (or one past the end of) the borrowed array or records.
            first: unsafe { self.first.add(range.start * self.stride) },
            len: range.len(),
            ..*self
        }
    }
}

impl<'a> From<&'a [*const u8]> for SrcPtrs<'a> {
    fn from(ptrs: &'a [*const u8]) -> Self {
        Self::new(ptrs)
    }
}

impl fmt::Debug for SrcPtrs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrcPtrs")
            .field("len", &self.len)
            .field("stride", &self.stride)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_of_an_array_and_of_record_fields() {
        let data = [0u8; 8];
        let ptrs: Vec<*const u8> = (0..5).map(|i| data[i..].as_ptr()).collect();
        let a = SrcPtrs::new(&ptrs);
        assert_eq!((a.len(), a.get(3)), (5, data[3..].as_ptr()));
        struct Rec {
            _tag: u16,
            p: *const u8,
            _len: u16,
        }
        let recs: Vec<Rec> = ptrs
            .iter()
            .map(|&p| Rec {
                _tag: 1,
                p,
                _len: 2,
            })
            .collect();
        // SAFETY: a plain field projection.
        let f = unsafe { SrcPtrs::fields(&recs, |r| &r.p) };
        let got: Vec<_> = (0..f.len()).map(|i| f.get(i)).collect();
        assert_eq!(got, ptrs);
        let s = f.slice(1..4);
        assert_eq!((s.len(), s.get(0), s.get(2)), (3, ptrs[1], ptrs[3]));
        assert!(f.slice(5..5).is_empty());
    }

    #[test]
    #[should_panic(expected = "not a field")]
    fn a_reference_outside_the_record_is_refused() {
        let other: &'static *const u8 = Box::leak(Box::new(std::ptr::null()));
        struct Rec(#[allow(dead_code)] u64);
        let recs = [Rec(1), Rec(2)];
        // SAFETY: deliberately wrong; the constructor refuses it.
        let _ = unsafe { SrcPtrs::fields(&recs, |_| other) };
    }
}
