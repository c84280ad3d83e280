//! The bench's packet memory: fragment payloads laid out like mbufs (2 KiB buffers, payload at
//! offset 128, after the headroom and headers) in one big buffer, and the batches built on it.

use netml_gpu::{ImageJob, Normalize, RawFragment, Sources, SrcPtrs};

/// Bytes of one mbuf.
pub(super) const MBUF: usize = 2048;
/// Where the payload starts inside an mbuf (DPDK headroom + Ethernet/IP/UDP/netml headers).
pub(super) const PAYLOAD_AT: usize = 128;

/// An image shape, channels x height x width.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    pub c: u32,
    pub h: u32,
    pub w: u32,
}

impl Shape {
    /// Parses `CxHxW` (or `1xCxHxW`).
    pub(super) fn parse(s: &str) -> Result<Shape, String> {
        let dims: Vec<u32> = s
            .split('x')
            .map(|d| {
                d.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("bad shape {s:?}"))
            })
            .collect::<Result<_, _>>()?;
        let dims = match dims.as_slice() {
            [1, rest @ ..] if rest.len() == 3 => rest.to_vec(),
            _ => dims,
        };
        match dims.as_slice() {
            &[c, h, w] if (1..=4).contains(&c) && h > 0 && w > 0 => Ok(Shape { c, h, w }),
            _ => Err(format!("shape {s:?}: expected CxHxW with 1 to 4 channels")),
        }
    }

    /// Values per image.
    pub(super) fn pixels(self) -> usize {
        (self.c * self.h * self.w) as usize
    }
}

/// `images` images' fragments in mbuf layout, and the jobs of a batch over them.
pub(super) struct Pool {
    buf: Vec<u8>,
    frags: Vec<Vec<RawFragment>>,
    /// Bytes of one image as sent (u8 HWC or f32 CHW).
    pub wire_bytes: usize,
    /// Bytes of one image in a slot (always f32).
    pub slot_image_bytes: usize,
    /// Payload bytes per fragment (the last one of an image may be shorter).
    frag_size: usize,
    convert: Option<Normalize>,
}

impl Pool {
    /// Builds `images` images of `shape` cut into `frag_size`-byte payloads; `u8`: the
    /// images travel as u8 HWC and are converted (ImageNet mean/std).
    pub(super) fn new(shape: Shape, frag_size: usize, u8: bool, images: usize) -> Pool {
        let wire_bytes = if u8 {
            shape.pixels()
        } else {
            4 * shape.pixels()
        };
        let per_image = wire_bytes.div_ceil(frag_size);
        let mbufs = per_image * images;
        let mut buf = vec![0u8; mbufs * MBUF + 64];
        let base = buf.as_ptr().align_offset(64);
        // Touch every payload byte once (the pages exist, the values vary).
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
        }
        let frags = (0..images)
            .map(|img| {
                (0..per_image)
                    .map(|f| {
                        let at = base + (img * per_image + f) * MBUF + PAYLOAD_AT;
                        RawFragment {
                            src: buf[at..].as_ptr(),
                            len: frag_size.min(wire_bytes - f * frag_size),
                            dst_offset: f * frag_size,
                        }
                    })
                    .collect()
            })
            .collect();
        let convert = u8.then_some(Normalize {
            channels: shape.c,
            height: shape.h,
            width: shape.w,
            mean: [0.485, 0.456, 0.406, 0.5],
            std: [0.229, 0.224, 0.225, 0.25],
        });
        Pool {
            buf,
            frags,
            wire_bytes,
            slot_image_bytes: 4 * shape.pixels(),
            frag_size,
            convert,
        }
    }

    /// Fragments per image.
    pub(super) fn frags_per_image(&self) -> usize {
        self.frags[0].len()
    }

    /// The packet memory (to register with a GPU; nothing writes it after `new`).
    pub(super) fn memory(&self) -> (*mut u8, usize) {
        (self.buf.as_ptr() as *mut u8, self.buf.len())
    }

    /// Fragments of pool image `i`.
    pub(super) fn image(&self, i: usize) -> &[RawFragment] {
        &self.frags[i % self.frags.len()]
    }

    /// The pool images of batch number `k` of `b` images: the next `b` (rotating, so that the
    /// sources are not all in cache).
    fn images_of(&self, k: usize, b: usize) -> impl Iterator<Item = &[RawFragment]> {
        (0..b).map(move |i| &self.frags[(k * b + i) % self.frags.len()][..])
    }

    /// The listed jobs of batch number `k` of `b` images, packed from the start of the slot.
    pub(super) fn batch(&self, k: usize, b: usize) -> Vec<ImageJob<'_>> {
        self.images_of(k, b)
            .enumerate()
            .map(|(i, f)| ImageJob {
                slot_offset: i * self.slot_image_bytes,
                fragments: Sources::Listed(f),
                convert: self.convert,
            })
            .collect()
    }

    /// The strided jobs of batch number `k` of `b` images, packed from the start of the slot,
    /// as the pipeline thread builds them: one job per image whose source pointers are the
    /// `src` fields of the image's fragment records (24 bytes each, like the pipeline's held
    /// packets), read in place.
    pub(super) fn batch_strided(&self, k: usize, b: usize) -> Vec<ImageJob<'_>> {
        self.images_of(k, b)
            .enumerate()
            .map(|(i, f)| ImageJob {
                slot_offset: i * self.slot_image_bytes,
                fragments: Sources::Strided {
                    // SAFETY: a plain field projection.
                    srcs: unsafe { SrcPtrs::fields(f, |r| &r.src) },
                    frag_size: self.frag_size,
                    total: self.wire_bytes,
                },
                convert: self.convert,
            })
            .collect()
    }
}
