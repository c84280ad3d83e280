//! A batch of [`ImageJob`]s as ring entries for the GPU, validated before anything is
//! published.
//!
//! Validation and the batch -> entries mapping are the host modes' (`host_modes::plan` and
//! `entries_of`, built on the same `describe` as `HostIngest`), so every target refuses exactly
//! the same jobs with the same errors (including a converted image whose f32 output is not
//! 4-byte aligned: a misaligned `float` store faults on the GPU and ends the CUDA context).
//! One thing is added for the GPU: descriptors live in a fixed device-visible pool of
//! `max_frags` per entry, so a merged copy entry is cut into entries of at most `max_frags`
//! descriptors (all of them write relative to the slot start, so cutting changes nothing), and
//! a converted image with more descriptors than that is refused ([`SubmitError::TooLarge`]).

use crate::host::SubmitError;
use crate::host_modes::{entries_of, plan as plan_batch, EntrySpec};
use crate::ring::RawFrag;
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
    let mut entries = Vec::with_capacity(specs.len());
    for e in specs {
        if e.convert.is_some() {
            if e.descs.len() > max_frags {
                return Err(SubmitError::TooLarge.into());
            }
            entries.push(e);
        } else if e.descs.len() <= max_frags {
            entries.push(e);
        } else {
            entries.extend(e.descs.chunks(max_frags).map(|c| EntrySpec {
                dst: e.dst,
                dst_len: e.dst_len,
                descs: c.to_vec(),
                convert: None,
            }));
        }
    }
    Ok(Planned {
        entries,
        images: jobs.len() as u64,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Normalize, RawFragment};

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
                fragments: &a,
                convert: None,
            },
            ImageJob {
                slot_offset: 20,
                fragments: &b,
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
                fragments: &a,
                convert: None,
            },
            ImageJob {
                slot_offset: 4,
                fragments: &a,
                convert: None,
            },
        ];
        assert!(matches!(
            plan(&over, SLOT, 64, 8, Vec::new()),
            Err(IngestError::Submit(SubmitError::Overlap { .. }))
        ));
        let out = [ImageJob {
            slot_offset: 60,
            fragments: &a,
            convert: None,
        }];
        assert!(matches!(
            plan(&out, SLOT, 64, 8, Vec::new()),
            Err(IngestError::Submit(SubmitError::OutOfBounds { .. }))
        ));
    }

    #[test]
    fn conversion_entries_stay_whole_and_aligned() {
        let pixels = [9u8; 12]; // 2 x 2 x 3
        let f = [frag(&pixels[..6], 0), frag(&pixels[6..], 6)];
        let job = |off| {
            [ImageJob {
                slot_offset: off,
                fragments: &f,
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
