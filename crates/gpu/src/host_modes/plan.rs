//! Validation of a batch and the ring entries it becomes, shared by every mode on every target.

use crate::host::{convert_params, describe_into, ConvertParams, EntrySpec, SubmitError};
use crate::ingest::{ImageJob, IngestError, Sources, SrcPtrs};
use crate::ring::{RawEntry, RawFrag, RawStrided};

/// One validated image: its listed descriptors `descs[start..end]` of the batch (none when
/// strided), where it lands in the slot and, when converted, its u8 size and the conversion
/// constants.
pub(crate) struct Image {
    pub offset: usize,
    /// Batch-wide index of its first fragment (error and overlap reports).
    pub first: usize,
    pub start: usize,
    pub end: usize,
    /// The strided form (`dst_off` and `first` are filled in by [`entries_of`]).
    pub strided: Option<RawStrided>,
    pub convert: Option<(usize, ConvertParams)>,
}

/// A validated batch: nothing of it has been submitted yet.
pub(crate) struct Batch {
    /// Listed descriptors of all images, in image order. Without conversion anywhere in the
    /// batch their offsets are slot offsets (shifted by each image's offset); otherwise image
    /// offsets.
    pub descs: Vec<RawFrag>,
    pub images: Vec<Image>,
    pub bytes: u64,
    pub converts: bool,
}

/// Validates `jobs` for a slot of `slot_bytes`: listed images with `describe_into` (the checks
/// of `HostIngest`) against the bytes from their offset to the end of the slot, strided images
/// in O(1) (fragment count, size and total agree, the image fits), conversions with the same
/// checks as `submit_convert` (and a 4-byte aligned `slot_offset`), and no two images writing
/// the same slot bytes ([`SubmitError::Overlap`]). Fragment indices in errors count across the
/// whole batch.
///
/// The descriptors go into `descs` (cleared first): pass a recycled allocation where there
/// is one, since fresh large ones cost page faults in every batch.
pub(crate) fn plan(
    jobs: &[ImageJob<'_>],
    slot_bytes: usize,
    mut descs: Vec<RawFrag>,
) -> Result<Batch, IngestError> {
    let converts = jobs.iter().any(|j| j.convert.is_some());
    let listed = jobs
        .iter()
        .map(|j| match j.fragments {
            Sources::Listed(f) => f.len(),
            Sources::Strided { .. } => 0,
        })
        .sum();
    descs.clear();
    descs.reserve(listed);
    let mut images = Vec::with_capacity(jobs.len());
    // Slot bytes each image writes: (start, end, its first fragment's batch-wide index).
    let mut extents = Vec::with_capacity(jobs.len());
    let (mut bytes, mut first) = (0u64, 0usize);
    for (k, job) in jobs.iter().enumerate() {
        let room = slot_bytes
            .checked_sub(job.slot_offset)
            .ok_or(SubmitError::OutOfBounds { fragment: first })?;
        let convert = match &job.convert {
            None => None,
            Some(norm) => {
                let (pixels, params) = convert_params(norm)?;
                // f32 stores: a misaligned tensor would fault on the GPU.
                let misaligned = job.slot_offset % 4 != 0;
                if misaligned || pixels.checked_mul(4).is_none_or(|b| b > room) {
                    return Err(SubmitError::BadNormalize.into());
                }
                Some((pixels, params))
            }
        };
        // Bytes of the (u8) image the fragments may cover.
        let limit = convert.map_or(room, |(pixels, _)| pixels);
        let start = descs.len();
        let (extent, img_bytes, strided) = match job.fragments {
            Sources::Listed(frags) => {
                let it = frags.iter().map(|f| (f.src, f.len, f.dst_offset));
                let shift = if converts { 0 } else { job.slot_offset };
                let d = describe_into(it, frags.len(), limit, shift, &mut descs)
                    .map_err(|e| shift_error(e, first))?;
                (d.extent, d.bytes, None)
            }
            Sources::Strided {
                srcs,
                frag_size,
                total,
            } => {
                let s = stride(srcs, frag_size, total, limit, k, first)?;
                ((total > 0).then_some((0, total)), total as u64, Some(s))
            }
        };
        let extent = match convert {
            Some((pixels, _)) => extent.map(|_| (0, 4 * pixels)),
            None => extent,
        };
        if let Some((a, b)) = extent {
            extents.push((job.slot_offset + a, job.slot_offset + b, first));
        }
        bytes += img_bytes;
        images.push(Image {
            offset: job.slot_offset,
            first,
            start,
            end: descs.len(),
            strided,
            convert,
        });
        first += job.fragments.len();
    }
    u32::try_from(first).map_err(|_| SubmitError::TooLarge)?;
    if extents.len() > 1 && {
        extents.sort_unstable();
        extents.windows(2).any(|w| w[1].0 < w[0].1)
    } {
        // Images interleave: compare their fragments.
        cross_check(jobs, &images)?;
    }
    Ok(Batch {
        descs,
        images,
        bytes,
        converts,
    })
}

/// The O(1) check of strided image `image` (batch-wide fragment index `first`) against
/// `limit` bytes: `n` fragments of `frag_size` cover `total` with a non-empty last one.
fn stride(
    srcs: SrcPtrs<'_>,
    frag_size: usize,
    total: usize,
    limit: usize,
    image: usize,
    first: usize,
) -> Result<RawStrided, SubmitError> {
    let n = srcs.len();
    let consistent = match n {
        0 => total == 0,
        _ => {
            frag_size > 0
                && (n - 1).checked_mul(frag_size).is_some_and(|a| a < total)
                && n.checked_mul(frag_size).is_none_or(|b| total <= b)
        }
    };
    if !consistent {
        return Err(SubmitError::BadStride { image });
    }
    if total > limit {
        return Err(SubmitError::OutOfBounds {
            fragment: first + n - 1,
        });
    }
    // `total <= limit <= slot_bytes` fits in 32 bits (a config rule), so do `n <= total` and
    // the fragment size once capped at `total` (it only matters when n == 1).
    let fits = |v: usize| u32::try_from(v).map_err(|_| SubmitError::TooLarge);
    let (at, src_stride) = srcs.raw();
    Ok(RawStrided {
        srcs: at as u64,
        src_stride: fits(src_stride)?,
        len: fits(total)?,
        nfrags: fits(n)?,
        frag_size: fits(frag_size.min(total))?,
        ..RawStrided::default()
    })
}

/// Overlap check between the images of a batch whose extents interleave (rare: slow path). A
/// strided or converted image is one range, reported by its first fragment.
fn cross_check(jobs: &[ImageJob<'_>], images: &[Image]) -> Result<(), SubmitError> {
    let mut ranges = Vec::new();
    for (job, img) in jobs.iter().zip(images) {
        match (img.convert, job.fragments) {
            (Some((pixels, _)), f) if !f.is_empty() => {
                ranges.push((img.offset, img.offset + 4 * pixels, img.first))
            }
            (Some(_), _) => {}
            (None, Sources::Strided { total, .. }) if total > 0 => {
                ranges.push((img.offset, img.offset + total, img.first))
            }
            (None, Sources::Strided { .. }) => {}
            (None, Sources::Listed(frags)) => ranges.extend(
                frags
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.len > 0)
                    .map(|(i, f)| {
                        let a = img.offset + f.dst_offset;
                        (a, a + f.len, img.first + i)
                    }),
            ),
        }
    }
    ranges.sort_unstable();
    match ranges.windows(2).find(|w| w[1].0 < w[0].1) {
        Some(w) => Err(SubmitError::Overlap {
            first: w[0].2.min(w[1].2),
            second: w[0].2.max(w[1].2),
        }),
        None => Ok(()),
    }
}

/// Renumbers the fragments of an image's error into the batch's numbering.
fn shift_error(e: SubmitError, first: usize) -> SubmitError {
    match e {
        SubmitError::OutOfBounds { fragment } => SubmitError::OutOfBounds {
            fragment: first + fragment,
        },
        SubmitError::Overlap {
            first: a,
            second: b,
        } => SubmitError::Overlap {
            first: first + a,
            second: first + b,
        },
        other => other,
    }
}

/// The entries of a batch landing at `base` (a slot of `slot_bytes`). Without conversion: the
/// listed fragments of all images in one entry (the batch's descriptors as they are) and the
/// strided images of all images in one strided entry (only the entries that have something,
/// one empty entry for an empty batch). With conversion: one entry per image.
pub(crate) fn entries_of(batch: Batch, base: *mut u8, slot_bytes: usize) -> Vec<EntrySpec> {
    let base = base as u64;
    if !batch.converts {
        let mut strided = Vec::new();
        let mut first = 0u32;
        for img in &batch.images {
            if let Some(s) = img.strided {
                strided.push(RawStrided {
                    dst_off: img.offset as u32,
                    first,
                    ..s
                });
                first += s.nfrags;
            }
        }
        let mut out = Vec::with_capacity(2);
        if !batch.descs.is_empty() || strided.is_empty() {
            out.push(EntrySpec {
                dst: base,
                dst_len: slot_bytes as u64,
                descs: batch.descs,
                ..EntrySpec::default()
            });
        }
        if !strided.is_empty() {
            out.push(EntrySpec {
                dst: base,
                dst_len: slot_bytes as u64,
                strided,
                ..EntrySpec::default()
            });
        }
        return out;
    }
    batch
        .images
        .iter()
        .map(|img| EntrySpec {
            dst: base + img.offset as u64,
            dst_len: match img.convert {
                Some((pixels, _)) => 4 * pixels as u64,
                None => (slot_bytes - img.offset) as u64,
            },
            descs: batch.descs[img.start..img.end].to_vec(),
            strided: img.strided.into_iter().collect(),
            convert: img.convert.map(|(_, p)| p),
        })
        .collect()
}

/// A ring entry for the one-shot body (`netml_host_gather_block`): its array out of line (the
/// caller keeps `spec` alive and its vectors unmoved while the entry is in use).
pub(crate) fn raw_entry(spec: &EntrySpec) -> RawEntry {
    // SAFETY: all-zero is a valid RawEntry (integers, floats, an atomic).
    let mut e: RawEntry = unsafe { std::mem::zeroed() };
    // SAFETY: `e` is a local we own; no consumer sees it before the caller hands it over.
    unsafe { crate::host::write_entry(&mut e, 0, spec, spec.array_addr(), false) };
    e
}
