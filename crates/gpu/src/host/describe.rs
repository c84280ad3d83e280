//! Validation of a listed job: fragments inside the slot, no overlaps, 32-bit fields; and the
//! conversion constants of a [`Normalize`].

use super::{Normalize, SubmitError};
use crate::ring::{RawFrag, MAX_CHANNELS};

/// Conversion constants of an entry: channels, H * W, `scale[c]`, `bias[c]`.
pub(crate) type ConvertParams = (u32, u32, [f32; MAX_CHANNELS], [f32; MAX_CHANNELS]);

/// Validates `norm` and derives the entry's constants; also returns the pixel count
/// `C * H * W` (bytes of the u8 HWC image, f32 values of the CHW tensor).
pub(crate) fn convert_params(norm: &Normalize) -> Result<(usize, ConvertParams), SubmitError> {
    let c = norm.channels as usize;
    let hw = (norm.height as usize)
        .checked_mul(norm.width as usize)
        .ok_or(SubmitError::TooLarge)?;
    let n = hw.checked_mul(c).ok_or(SubmitError::TooLarge)?;
    if !(1..=MAX_CHANNELS).contains(&c) {
        return Err(SubmitError::BadNormalize);
    }
    let hw32 = u32::try_from(hw).map_err(|_| SubmitError::TooLarge)?;
    let (mut scale, mut bias) = ([0.0f32; MAX_CHANNELS], [0.0f32; MAX_CHANNELS]);
    for i in 0..c {
        let (m, s) = (norm.mean[i], norm.std[i]);
        if !(m.is_finite() && s.is_finite() && s != 0.0) {
            return Err(SubmitError::BadNormalize);
        }
        scale[i] = 1.0 / (255.0 * s);
        bias[i] = -m / s;
    }
    Ok((n, (c as u32, hw32, scale, bias)))
}

/// Validates a job against a slot of `slot_len` bytes and builds its descriptors.
pub(crate) fn describe(
    frags: impl Iterator<Item = (*const u8, usize, usize)>,
    count: usize,
    slot_len: usize,
) -> Result<Vec<RawFrag>, SubmitError> {
    let mut descs = Vec::with_capacity(count);
    describe_into(frags, count, slot_len, 0, &mut descs)?;
    Ok(descs)
}

/// What [`describe_into`] saw of a valid job.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Described {
    /// Smallest start and largest end of the non-empty fragments (unshifted), if any.
    pub extent: Option<(usize, usize)>,
    /// Payload bytes.
    pub bytes: u64,
}

/// [`describe`], appending to `out` with every `dst_off` shifted by `shift` (where the job
/// starts in a larger buffer; `shift + slot_len` must fit the 32-bit offsets). On error `out`
/// is left as it was. Fragments in destination order (what the verifier hands over) are
/// checked for overlaps in one pass; only out-of-order jobs pay for a sort.
pub(crate) fn describe_into(
    frags: impl Iterator<Item = (*const u8, usize, usize)>,
    count: usize,
    slot_len: usize,
    shift: usize,
    out: &mut Vec<RawFrag>,
) -> Result<Described, SubmitError> {
    u32::try_from(count).map_err(|_| SubmitError::TooLarge)?;
    let start = out.len();
    let r = describe_checked(frags, slot_len, shift, out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn describe_checked(
    frags: impl Iterator<Item = (*const u8, usize, usize)>,
    slot_len: usize,
    shift: usize,
    out: &mut Vec<RawFrag>,
) -> Result<Described, SubmitError> {
    let first = out.len();
    let (mut d, mut in_order, mut prev_end) = (Described::default(), true, 0usize);
    for (i, (src, len, off)) in frags.enumerate() {
        let end = off
            .checked_add(len)
            .ok_or(SubmitError::OutOfBounds { fragment: i })?;
        if end > slot_len {
            return Err(SubmitError::OutOfBounds { fragment: i });
        }
        let len32 = u32::try_from(len).map_err(|_| SubmitError::TooLarge)?;
        let off32 = u32::try_from(off + shift).map_err(|_| SubmitError::TooLarge)?;
        if len > 0 {
            in_order &= off >= prev_end;
            prev_end = end;
            d.extent = Some(
                d.extent
                    .map_or((off, end), |(a, b)| (a.min(off), b.max(end))),
            );
            d.bytes += len as u64;
        }
        out.push(RawFrag {
            src: src as u64,
            len: len32,
            dst_off: off32,
        });
    }
    if !in_order {
        let mut ranges: Vec<(u64, u64, usize)> = out[first..]
            .iter()
            .enumerate()
            .filter(|(_, f)| f.len > 0)
            .map(|(i, f)| {
                let a = u64::from(f.dst_off);
                (a, a + u64::from(f.len), i)
            })
            .collect();
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            if w[1].0 < w[0].1 {
                let (a, b) = (w[0].2.min(w[1].2), w[0].2.max(w[1].2));
                return Err(SubmitError::Overlap {
                    first: a,
                    second: b,
                });
            }
        }
    }
    Ok(d)
}
