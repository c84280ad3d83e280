//! A batch of [`ImageJob`]s as ring entries for the GPU, validated before anything is
//! published.
//!
//! Validation and the batch -> entries mapping are the host modes' (`host_modes::plan` and
//! `entries_of`, built on the same `describe` as `HostIngest`), so every target refuses exactly
//! the same jobs with the same errors (including a converted image whose f32 output is not
//! 4-byte aligned: a misaligned `float` store faults on the GPU and ends the CUDA context).
//! One thing is added for the GPU: descriptors live in a fixed device-visible pool of
//! `max_frags` per entry (`16 * max_frags` bytes), so a merged copy entry is cut into entries of
//! at most `max_frags` descriptors, a strided one into entries of whole images whose headers
//! (32 bytes) and source pointers (8 bytes each) fit (all of them write relative to the slot
//! start, so cutting changes nothing), and a converted image (or a strided image) that does
//! not fit one entry is refused ([`SubmitError::TooLarge`]).

use std::mem::size_of;

use super::pool::{array_bytes, strided_bytes};
use crate::host::SubmitError;
use crate::host_modes::{entries_of, plan as plan_batch, EntrySpec};
use crate::ring::{RawFrag, RawStrided};
use crate::{ImageJob, IngestError};

/// A validated batch as entries (at least one: an empty batch is one empty doorbell).
#[derive(Default)]
pub(crate) struct Planned {
    /// Entries in publication order.
    pub entries: Vec<EntrySpec>,
    /// Images of the batch.
    pub images: u64,
    /// Payload bytes of the batch.
    pub bytes: u64,
}

impl Planned {
    /// The largest descriptor allocation, for the next batch's `spare` (a fresh one per batch
    /// would cost page faults every time).
    pub(crate) fn recycle(self) -> Vec<RawFrag> {
        self.entries
            .into_iter()
            .map(|e| e.descs)
            .max_by_key(Vec::capacity)
            .unwrap_or_default()
    }
}

/// What every GPU mode plans its batches with: the slot size and the pool's descriptors per
/// entry it plans for, and the descriptor allocation it reuses from one batch to the next.
pub(crate) struct Planner {
    slot_bytes: usize,
    max_frags: usize,
    /// Descriptor allocation kept from the last batch.
    spare: Vec<RawFrag>,
}

impl Planner {
    /// A planner for slots of `slot_bytes` and entries of at most `max_frags` descriptors.
    pub(crate) fn new(slot_bytes: usize, max_frags: usize) -> Self {
        Planner {
            slot_bytes,
            max_frags,
            spare: Vec::new(),
        }
    }

    /// [`plan`]s `jobs` for the slot at device address `slot`, reusing the allocation that
    /// [`Planner::recycle`] kept.
    pub(crate) fn plan(
        &mut self,
        jobs: &[ImageJob<'_>],
        slot: u64,
    ) -> Result<Planned, IngestError> {
        let spare = std::mem::take(&mut self.spare);
        plan(jobs, slot, self.slot_bytes, self.max_frags, spare)
    }

    /// Keeps the batch's largest descriptor allocation for the next one, once it is published.
    pub(crate) fn recycle(&mut self, planned: Planned) {
        self.spare = planned.recycle();
    }
}

/// Validates `jobs` for the slot at device address `slot` (`slot_bytes` long) and cuts them
/// into entries of at most `max_frags` descriptors. `spare` is an allocation to reuse for the
/// descriptors (see [`Planned::recycle`]).
pub(crate) fn plan(
    jobs: &[ImageJob<'_>],
    slot: u64,
    slot_bytes: usize,
    max_frags: usize,
    spare: Vec<RawFrag>,
) -> Result<Planned, IngestError> {
    assert!(max_frags > 0, "descriptor pool without room");
    let batch = plan_batch(jobs, slot_bytes, spare)?;
    let bytes = batch.bytes;
    // `entries_of` only does arithmetic on the base address; it is never dereferenced here.
    let specs = entries_of(batch, slot as usize as *mut u8, slot_bytes);
    let cap = max_frags * size_of::<RawFrag>();
    let mut entries = Vec::with_capacity(specs.len());
    for e in specs {
        // cpu-copy converts a strided image from staging through listed descriptors, one per
        // fragment: a converted image must fit one entry in that form too.
        let listed = e.strided.iter().map(|s| s.nfrags as usize).sum::<usize>();
        let converted_fits = e.convert.is_none() || listed * size_of::<RawFrag>() <= cap;
        if array_bytes(&e) <= cap && converted_fits {
            entries.push(e);
        } else if e.convert.is_some() {
            return Err(SubmitError::TooLarge.into());
        } else if e.is_strided() {
            cut_strided(e, cap, &mut entries)?;
        } else {
            entries.extend(e.descs.chunks(max_frags).map(|c| EntrySpec {
                dst: e.dst,
                dst_len: e.dst_len,
                descs: c.to_vec(),
                ..EntrySpec::default()
            }));
        }
    }
    Ok(Planned {
        entries,
        images: jobs.len() as u64,
        bytes,
    })
}

/// Cuts a strided copy entry into entries whose headers and pointers fit `cap` bytes, whole
/// images each (they all write relative to the slot start); an image that alone does not fit
/// is refused ([`SubmitError::TooLarge`]).
fn cut_strided(e: EntrySpec, cap: usize, out: &mut Vec<EntrySpec>) -> Result<(), IngestError> {
    let mut cur: Vec<RawStrided> = Vec::new();
    let (mut bytes, mut first) = (0usize, 0u32);
    for s in e.strided {
        let b = strided_bytes(s.nfrags as usize);
        if b > cap {
            return Err(SubmitError::TooLarge.into());
        }
        if bytes + b > cap {
            out.push(EntrySpec {
                dst: e.dst,
                dst_len: e.dst_len,
                strided: std::mem::take(&mut cur),
                ..EntrySpec::default()
            });
            (bytes, first) = (0, 0);
        }
        cur.push(RawStrided { first, ..s });
        bytes += b;
        first += s.nfrags;
    }
    out.push(EntrySpec {
        dst: e.dst,
        dst_len: e.dst_len,
        strided: cur,
        ..EntrySpec::default()
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Normalize, RawFragment, Sources, SrcPtrs};

    const SLOT: u64 = 0x7000_0000;

    fn refused(r: Result<Planned, IngestError>) -> IngestError {
        match r {
            Err(e) => e,
            Ok(_) => panic!("job accepted"),
        }
    }

    fn frag(src: &[u8], dst_offset: usize) -> RawFragment {
        RawFragment {
            src: src.as_ptr(),
            len: src.len(),
            dst_offset,
        }
    }

    fn norm(c: u32, h: u32, w: u32) -> Normalize {
        Normalize {
            channels: c,
            height: h,
            width: w,
            mean: [0.5; 4],
            std: [0.25; 4],
        }
    }

    #[test]
    fn empty_batch_is_one_empty_doorbell() {
        let p = plan(&[], SLOT, 64, 8, Vec::new()).unwrap();
        assert_eq!(p.entries.len(), 1);
        assert!(p.entries[0].descs.is_empty());
        assert_eq!((p.images, p.bytes), (0, 0));
    }

    #[test]
    fn merged_copies_are_cut_to_the_pool_size() {
        let data = [7u8; 4];
        let a: Vec<_> = (0..5).map(|i| frag(&data, i * 4)).collect();
        let b: Vec<_> = (0..3).map(|i| frag(&data, i * 4)).collect();
        let jobs = [
            ImageJob {
                slot_offset: 0,
                fragments: Sources::Listed(&a),
                convert: None,
            },
            ImageJob {
                slot_offset: 20,
                fragments: Sources::Listed(&b),
                convert: None,
            },
        ];
        let p = plan(&jobs, SLOT, 32, 3, Vec::new()).unwrap();
        let sizes: Vec<_> = p.entries.iter().map(|e| e.descs.len()).collect();
        assert_eq!(sizes, [3, 3, 2]);
        assert!(p.entries.iter().all(|e| e.dst == SLOT && e.dst_len == 32));
        let offs: Vec<u32> = p
            .entries
            .iter()
            .flat_map(|e| e.descs.iter().map(|d| d.dst_off))
            .collect();
        assert_eq!(offs, [0, 4, 8, 12, 16, 20, 24, 28]);
        assert_eq!((p.images, p.bytes), (2, 32));
    }

    #[test]
    fn refusals_are_the_host_modes_refusals() {
        let data = [1u8; 8];
        let a = [frag(&data, 0)];
        let over = [
            ImageJob {
                slot_offset: 0,
                fragments: Sources::Listed(&a),
                convert: None,
            },
            ImageJob {
                slot_offset: 4,
                fragments: Sources::Listed(&a),
                convert: None,
            },
        ];
        assert!(matches!(
            plan(&over, SLOT, 64, 8, Vec::new()),
            Err(IngestError::Submit(SubmitError::Overlap { .. }))
        ));
        let out = [ImageJob {
            slot_offset: 60,
            fragments: Sources::Listed(&a),
            convert: None,
        }];
        assert!(matches!(
            plan(&out, SLOT, 64, 8, Vec::new()),
            Err(IngestError::Submit(SubmitError::OutOfBounds { .. }))
        ));
    }

    #[test]
    fn strided_entries_are_cut_by_images_and_oversized_ones_refused() {
        let data = [5u8; 64];
        let ptrs: Vec<*const u8> = (0..8).map(|i| data[i * 8..].as_ptr()).collect();
        let img = |slot_offset, n: usize, convert| ImageJob {
            slot_offset,
            fragments: Sources::Strided {
                srcs: SrcPtrs::new(&ptrs[..n]),
                frag_size: 8,
                total: 8 * n,
            },
            convert,
        };
        // 112 bytes of pool per entry; an image takes a header (32) and its pointers (8 each).
        let jobs = [img(0, 8, None), img(64, 4, None), img(96, 2, None)];
        let p = plan(&jobs, SLOT, 256, 7, Vec::new()).unwrap();
        let cut: Vec<Vec<(u32, u32, u32)>> = p
            .entries
            .iter()
            .map(|e| {
                e.strided
                    .iter()
                    .map(|s| (s.dst_off, s.nfrags, s.first))
                    .collect()
            })
            .collect();
        assert_eq!(cut, [vec![(0, 8, 0)], vec![(64, 4, 0), (96, 2, 4)]]);
        assert!(p
            .entries
            .iter()
            .all(|e| e.dst == SLOT && e.descs.is_empty()));
        assert_eq!((p.images, p.bytes), (3, 112));
        // One image whose pointers alone do not fit.
        assert_eq!(
            refused(plan(&[img(0, 8, None)], SLOT, 256, 4, Vec::new())),
            IngestError::Submit(SubmitError::TooLarge)
        );
        // A converted strided image must also fit as listed descriptors (cpu-copy's form):
        // 8 fragments take 96 bytes strided but 128 listed.
        let conv = [img(0, 8, Some(norm(1, 1, 64)))];
        assert!(plan(&conv, SLOT, 256, 8, Vec::new()).is_ok());
        assert_eq!(
            refused(plan(&conv, SLOT, 256, 6, Vec::new())),
            IngestError::Submit(SubmitError::TooLarge)
        );
    }

    #[test]
    fn conversion_entries_stay_whole_and_aligned() {
        let pixels = [9u8; 12]; // 2 x 2 x 3
        let f = [frag(&pixels[..6], 0), frag(&pixels[6..], 6)];
        let job = |off| {
            [ImageJob {
                slot_offset: off,
                fragments: Sources::Listed(&f),
                convert: Some(norm(3, 2, 2)),
            }]
        };
        let p = plan(&job(16), SLOT, 64, 8, Vec::new()).unwrap();
        assert_eq!(p.entries.len(), 1);
        let e = &p.entries[0];
        assert_eq!((e.dst, e.dst_len, e.descs.len()), (SLOT + 16, 48, 2));
        assert!(e.convert.is_some());
        // f32 output at a 2-byte offset: refused (it would fault on the GPU).
        assert_eq!(
            refused(plan(&job(2), SLOT, 64, 8, Vec::new())),
            IngestError::Submit(SubmitError::BadNormalize)
        );
        // More descriptors than one pool entry holds.
        assert_eq!(
            refused(plan(&job(0), SLOT, 64, 1, Vec::new())),
            IngestError::Submit(SubmitError::TooLarge)
        );
    }
}
