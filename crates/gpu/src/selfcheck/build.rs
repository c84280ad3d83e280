//! Random cases of the self-check: image placement, fragment layout, sources.

use super::{Arena, Case, Img, Rng, SelfCheckOptions, GUARD};
use crate::host::Normalize;
use crate::ingest::RawFragment;

/// Builds case `case_no` for `slot` (a slot of `slot_bytes`).
pub(super) fn case(
    rng: &mut Rng,
    opts: &SelfCheckOptions,
    slot: usize,
    slot_bytes: usize,
    case_no: usize,
) -> Case {
    let nimg = 1 + rng.below(opts.max_images.max(1));
    let per_max = opts
        .max_image_bytes
        .min(slot_bytes.saturating_sub(64) / nimg)
        .max(1);
    let mut imgs = Vec::with_capacity(nimg);
    let mut cursor = 0usize;
    for _ in 0..nimg {
        let mut offset = if rng.chance(2) {
            cursor.div_ceil(64) * 64 + 64 * rng.below(2)
        } else {
            cursor + rng.below(64)
        };
        let convert = if opts.convert && rng.chance(3) {
            normalize(rng, per_max)
        } else {
            None
        };
        let (len, extent) = match &convert {
            Some(n) => {
                offset = offset.div_ceil(4) * 4;
                let px = (n.channels * n.height * n.width) as usize;
                (px, 4 * px)
            }
            None => {
                let l = 1 + rng.below(per_max);
                (l, l)
            }
        };
        if offset + extent > slot_bytes {
            break;
        }
        cursor = offset + extent;
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let (frags, frag_size) = if opts.strided && rng.chance(2) {
            let fs = stride(rng, len);
            let frags = (0..len.div_ceil(fs))
                .map(|i| (0, fs.min(len - i * fs), i * fs))
                .collect();
            (frags, Some(fs))
        } else {
            (fragments(rng, len), None)
        };
        imgs.push(Img {
            offset,
            data,
            frags,
            convert,
            frag_size,
        });
    }
    // Sources: every fragment in its own "mbuf" region of the arena, payload at offset 128 of
    // a 64-byte aligned region or at an odd place; some re-sent (second copy read, the first
    // left with stale bytes).
    let mut at = 0usize;
    for img in imgs.iter_mut() {
        for f in img.frags.iter_mut() {
            let mut place = |rng: &mut Rng, len: usize| {
                let pos = if rng.chance(2) {
                    at.div_ceil(64) * 64 + 128
                } else {
                    at + 1 + rng.below(63)
                };
                at = pos + len;
                pos
            };
            let first = place(rng, f.1);
            f.0 = if rng.chance(10) {
                place(rng, f.1)
            } else {
                first
            };
        }
    }
    let mut arena = Arena::new(at + 64);
    for b in arena.buf.iter_mut() {
        *b = rng.next_u64() as u8;
    }
    for img in &imgs {
        for &(pos, len, d) in &img.frags {
            let start = arena.base + pos;
            arena.buf[start..start + len].copy_from_slice(&img.data[d..d + len]);
        }
    }
    let check_len = slot_bytes.min(cursor + GUARD);
    let mut poison = Arena::new(check_len);
    for (i, b) in poison.buf[poison.base..].iter_mut().enumerate() {
        *b = 0xA5 ^ (i as u8).wrapping_mul(7) ^ (case_no as u8).wrapping_mul(13);
    }
    let raw = imgs
        .iter()
        .map(|img| {
            img.frags
                .iter()
                .map(|&(pos, len, d)| RawFragment {
                    src: arena.at(pos),
                    len,
                    dst_offset: d,
                })
                .collect()
        })
        .collect();
    let srcs = imgs
        .iter()
        .map(|img| img.frags.iter().map(|&(pos, _, _)| arena.at(pos)).collect())
        .collect();
    Case {
        slot,
        imgs,
        _arena: arena,
        raw,
        srcs,
        check_len,
        poison,
    }
}

/// A random small image shape (1 to 4 channels) whose f32 tensor fits `max_bytes`.
fn normalize(rng: &mut Rng, max_bytes: usize) -> Option<Normalize> {
    let channels = [1u32, 3, 3, 4][rng.below(4)];
    let max_px = max_bytes / (4 * channels as usize);
    if max_px == 0 {
        return None;
    }
    let height = 1 + rng.below(max_px.min(64));
    let width = 1 + rng.below((max_px / height).min(256));
    let mut mean = [0.0f32; 4];
    let mut std = [1.0f32; 4];
    for c in 0..channels as usize {
        mean[c] = (rng.below(1000) as f32) / 1000.0;
        std[c] = 0.05 + (rng.below(1000) as f32) / 1000.0;
    }
    Some(Normalize {
        channels,
        height: height as u32,
        width: width as u32,
        mean,
        std,
    })
}

/// A fragment size for a strided image of `len` bytes (`len >= 1`): odd and small ones (at
/// most ~1024 fragments, so that a GPU descriptor pool entry holds the pointers), MTU payloads
/// (most leave a short last fragment), the whole image in one fragment, or one fragment
/// nominally larger than the image.
fn stride(rng: &mut Rng, len: usize) -> usize {
    match rng.below(6) {
        0 => (1 + rng.below(16)).max(len / 1024),
        1 => 1024,
        2 => 1 + rng.below(1500),
        3 => 1 + rng.below(4096),
        4 => len,
        _ => len + rng.below(100),
    }
}

/// Fragments over `[0, len)`: one size class per image (1-16 B, 1 KiB, up to 1500 B, up to
/// 4 KiB), some pieces left out (gaps), usually shuffled. Arena positions are filled later.
fn fragments(rng: &mut Rng, len: usize) -> Vec<(usize, usize, usize)> {
    let class = rng.below(4);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < len {
        let want = match class {
            0 => 1 + rng.below(16),
            1 => 1024,
            2 => 1 + rng.below(1500),
            _ => 1 + rng.below(4096),
        };
        let l = want.min(len - pos);
        if !rng.chance(12) {
            out.push((0, l, pos));
        }
        pos += l;
    }
    if rng.below(3) != 0 {
        rng.shuffle(&mut out);
    }
    out
}
