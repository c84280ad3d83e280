//! The CPU's part of `cpu-copy`, on the host and on a GPU alike: every payload into the slot's
//! staging buffer, the byte runs to copy to the slot, and conversion entries reading the staging.

use crate::host::EntrySpec;
use crate::ring::{RawFrag, RawStrided};

/// Copies every payload of `entries` (for the slot at address `base`) into the slot's staging
/// at `staging` (consumer address `staging_dev`) at its slot offset; converted images as u8 HWC
/// at the start of their f32 range. Returns the byte runs to copy to the slot (merged where
/// contiguous) and the conversion entries reading the staging.
///
/// # Safety
/// `staging` must be writable for a slot's size and not in use; every source (and every
/// strided `srcs` array) readable; the entries validated by `plan` for this slot.
pub(crate) unsafe fn stage(
    entries: &[EntrySpec],
    base: u64,
    staging: *mut u8,
    staging_dev: u64,
) -> (Vec<(usize, usize)>, Vec<EntrySpec>) {
    let mut runs = Vec::new();
    let mut converts = Vec::new();
    for spec in entries {
        let at = (spec.dst - base) as usize;
        let copy = spec.convert.is_none();
        for d in &spec.descs {
            let off = at + d.dst_off as usize;
            // SAFETY: the plan kept every fragment inside the slot (for conversions, inside
            // the u8 image, a quarter of its f32 range); the rest is the caller's contract.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    d.src as usize as *const u8,
                    staging.add(off),
                    d.len as usize,
                )
            };
            if copy && d.len > 0 {
                runs.push((off, off + d.len as usize));
            }
        }
        for s in &spec.strided {
            let off = at + s.dst_off as usize;
            // SAFETY: as above: the plan checked the image's `len` bytes are in the slot.
            unsafe { stage_strided(s, staging.add(off)) };
            if copy && s.len > 0 {
                runs.push((off, off + s.len as usize));
            }
        }
        if !copy {
            converts.push(from_staging(spec, staging_dev + at as u64));
        }
    }
    merge_runs(&mut runs);
    (runs, converts)
}

/// One memcpy per fragment of a strided image, into `dst` laid out like the image.
///
/// # Safety
/// `s.srcs` must hold `s.nfrags` readable source pointers `s.src_stride` bytes apart, each
/// readable for its fragment, and `dst` writable for `s.len` bytes.
unsafe fn stage_strided(s: &RawStrided, dst: *mut u8) {
    let (fs, len) = (s.frag_size as usize, s.len as usize);
    for i in 0..s.nfrags as usize {
        let off = i * fs;
        // SAFETY: pointer `i` of the caller's array or records (kept alive by the submit
        // contract); the plan checked (n - 1) * fs < len, so `off < len`.
        unsafe {
            let at = (s.srcs as usize + i * s.src_stride as usize) as *const *const u8;
            std::ptr::copy_nonoverlapping(*at, dst.add(off), fs.min(len - off));
        }
    }
}

/// A conversion entry reading its u8 image from staging (at consumer address `staged`, laid
/// out like the image) instead of the packets: the same fragments with their sources moved
/// (a strided image's as listed descriptors), so exactly the pixels the packets carried are
/// converted, spread over the warps as usual.
pub(crate) fn from_staging(spec: &EntrySpec, staged: u64) -> EntrySpec {
    let moved = |d: &RawFrag| RawFrag {
        src: staged + u64::from(d.dst_off),
        ..*d
    };
    let mut descs: Vec<RawFrag> = spec.descs.iter().map(moved).collect();
    for s in &spec.strided {
        descs.extend((0..s.nfrags).map(|i| {
            let off = i * s.frag_size;
            moved(&RawFrag {
                src: 0,
                len: s.frag_size.min(s.len - off),
                dst_off: s.dst_off + off,
            })
        }));
    }
    EntrySpec {
        dst: spec.dst,
        dst_len: spec.dst_len,
        descs,
        strided: Vec::new(),
        convert: spec.convert,
    }
}

/// Sorts `runs` and merges the ones that touch, so that contiguous bytes go in one copy.
pub(crate) fn merge_runs(runs: &mut Vec<(usize, usize)>) {
    runs.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
    for &(a, b) in runs.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *runs = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_when_they_touch() {
        let mut r = vec![(10, 20), (0, 10), (30, 40), (35, 38), (20, 25)];
        merge_runs(&mut r);
        assert_eq!(r, [(0, 25), (30, 40)]);
    }

    #[test]
    fn conversion_reads_staging_laid_out_like_the_image() {
        let spec = EntrySpec {
            dst: 4096,
            dst_len: 48,
            descs: vec![
                RawFrag {
                    src: 0xdead_0000,
                    len: 5,
                    dst_off: 7,
                },
                RawFrag {
                    src: 0xbeef_0000,
                    len: 7,
                    dst_off: 0,
                },
            ],
            strided: Vec::new(),
            convert: Some((3, 4, [1.0; 4], [0.0; 4])),
        };
        let e = from_staging(&spec, 1 << 20);
        let got: Vec<_> = e.descs.iter().map(|d| (d.src, d.len, d.dst_off)).collect();
        assert_eq!(got, [((1 << 20) + 7, 5, 7), (1 << 20, 7, 0)]);
        assert_eq!(
            (e.dst, e.dst_len, e.convert),
            (spec.dst, spec.dst_len, spec.convert)
        );
        let strided = EntrySpec {
            strided: vec![RawStrided {
                srcs: 0xdead_0000,
                len: 10,
                nfrags: 3,
                frag_size: 4,
                ..RawStrided::default()
            }],
            descs: Vec::new(),
            ..spec
        };
        let e = from_staging(&strided, 1 << 20);
        let got: Vec<_> = e.descs.iter().map(|d| (d.src, d.len, d.dst_off)).collect();
        let s = 1 << 20;
        assert_eq!(got, [(s, 4, 0), (s + 4, 4, 4), (s + 8, 2, 8)]);
        assert!(!e.is_strided());
    }
}
