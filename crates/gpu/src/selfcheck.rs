//! A correctness check of any [`Ingest`], on the host or on a GPU, against plain Rust oracles.
//!
//! Every case is one batch into one slot: 1 to `max_images` images at different slot offsets
//! (64-byte aligned or not), each copied or converted (u8 HWC -> f32 CHW), made of fragments of
//! 1 byte to 4 KiB, shuffled, with gaps, from sources 64-byte aligned (an mbuf's payload at
//! offset 128) or not, some "re-sent" (the payload read from a second copy while the first
//! holds stale bytes). The slot is poisoned first through the trait itself (device memory
//! cannot be written otherwise): one batch with one fragment writes a pattern over the region
//! checked, then the real batch follows. The region read back is the batch plus 256 guard bytes
//! (capped by the slot): every byte must be the oracle's (the poison where nothing was written),
//! converted values within 1e-6 of the terms they are computed from (a GPU may fuse the
//! multiply-add). All slots are in flight at once, round after round.

use std::fmt;

use crate::host::{Normalize, Ticket};
use crate::ingest::{wait, ImageJob, Ingest, IngestError, RawFragment, Sources, SrcPtrs};

const GUARD: usize = 256;

/// What to check.
#[derive(Clone, Copy, Debug)]
pub struct SelfCheckOptions {
    /// Seed of the layouts and contents.
    pub seed: u64,
    /// Rounds; every round submits one batch into every slot.
    pub rounds: usize,
    /// Most images per batch.
    pub max_images: usize,
    /// Most bytes an image occupies in the slot (also bounded by the slot size).
    pub max_image_bytes: usize,
    /// Whether some images are converted.
    pub convert: bool,
    /// Whether some images are sent in the strided form ([`Sources::Strided`]: the verifier's
    /// layout, random fragment sizes including odd ones, a short last fragment, one fragment).
    pub strided: bool,
}

impl Default for SelfCheckOptions {
    fn default() -> Self {
        Self {
            seed: 0x5EED_CAFE,
            rounds: 4,
            max_images: 4,
            max_image_bytes: 24 * 1024,
            convert: true,
            strided: true,
        }
    }
}

/// A value that differs from the oracle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Found {
    /// A copied (or poisoned, never written) byte.
    Byte { expected: u8, got: u8 },
    /// A converted value.
    F32 { expected: f32, got: f32 },
}

/// The first difference seen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mismatch {
    /// Case (batch) number, from 0.
    pub case: usize,
    /// Slot it went to.
    pub slot: usize,
    /// Byte offset in the slot.
    pub offset: usize,
    /// Expected and found values.
    pub found: Found,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, s, o) = (self.case, self.slot, self.offset);
        match self.found {
            Found::Byte { expected, got } => write!(
                f,
                "case {c}, slot {s}, byte {o}: expected {expected:#04x}, got {got:#04x}"
            ),
            Found::F32 { expected, got } => {
                write!(
                    f,
                    "case {c}, slot {s}, f32 at byte {o}: expected {expected}, got {got}"
                )
            }
        }
    }
}

/// What the check did and found.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SelfCheckReport {
    /// Batches checked.
    pub cases: usize,
    /// Images in them.
    pub images: usize,
    /// Of which converted (u8 HWC -> f32 CHW).
    pub converted_images: usize,
    /// Of which sent in the strided form.
    pub strided_images: usize,
    /// Fragments submitted.
    pub fragments: usize,
    /// Bytes read back and compared (converted values included, 4 bytes each).
    pub bytes_checked: u64,
    /// Values (bytes or f32) that differed.
    pub mismatches: u64,
    /// The first of them.
    pub first_mismatch: Option<Mismatch>,
}

impl SelfCheckReport {
    /// True when every byte and value matched.
    pub fn passed(&self) -> bool {
        self.mismatches == 0 && self.cases > 0
    }
}

impl fmt::Display for SelfCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} batches, {} images ({} converted, {} strided), {} fragments, {} bytes checked: ",
            self.cases,
            self.images,
            self.converted_images,
            self.strided_images,
            self.fragments,
            self.bytes_checked
        )?;
        match &self.first_mismatch {
            None => f.write_str("all match"),
            Some(m) => write!(f, "{} mismatches, first: {m}", self.mismatches),
        }
    }
}

/// splitmix64: small and deterministic (also the tests' generator).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// True once in `one_in` draws.
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    /// Fisher-Yates shuffle of `v`.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Bytes whose element `base` is 64-byte aligned (never reallocated once built).
struct Arena {
    buf: Vec<u8>,
    base: usize,
}

impl Arena {
    fn new(len: usize) -> Self {
        let buf = vec![0u8; len + 64];
        let base = buf.as_ptr().align_offset(64);
        Self { buf, base }
    }
    fn at(&self, off: usize) -> *const u8 {
        self.buf[self.base + off..].as_ptr()
    }
}

/// One image of a case: where it goes, its intended bytes, its fragments (offset in the arena,
/// length, offset in the image), and its fragment size when sent strided.
struct Img {
    offset: usize,
    data: Vec<u8>,
    frags: Vec<(usize, usize, usize)>,
    convert: Option<Normalize>,
    frag_size: Option<usize>,
}

/// One batch with everything it borrows, alive until it is checked.
struct Case {
    slot: usize,
    imgs: Vec<Img>,
    /// The sources `raw` points into (kept alive, read through `raw` only).
    _arena: Arena,
    raw: Vec<Vec<RawFragment>>,
    /// Source pointers of each image, in fragment order (used by strided images).
    srcs: Vec<Vec<*const u8>>,
    check_len: usize,
    poison: Arena,
}

mod build;
mod intercept;

pub use intercept::{Intercept, Intercepted};

/// Runs the check on `ingest`; submission errors and device failures are returned, wrong
/// bytes are reported in [`SelfCheckReport`].
pub fn run(
    ingest: &mut dyn Ingest,
    opts: &SelfCheckOptions,
) -> Result<SelfCheckReport, IngestError> {
    let mut rng = Rng(opts.seed);
    let mut rep = SelfCheckReport::default();
    let slots = ingest.slots();
    for round in 0..opts.rounds {
        let mut cases: Vec<(Case, Ticket)> = Vec::with_capacity(slots);
        // Poison every slot: all slots' batches in flight together.
        for slot in 0..slots {
            let case = build::case(
                &mut rng,
                opts,
                slot,
                ingest.slot_bytes(),
                round * slots + slot,
            );
            let poison = [RawFragment {
                src: case.poison.at(0),
                len: case.check_len,
                dst_offset: 0,
            }];
            let job = [ImageJob {
                slot_offset: 0,
                fragments: Sources::Listed(&poison),
                convert: None,
            }];
            // SAFETY: the poison buffer lives in `case` until the batch after it completed;
            // the slot's previous batch was waited for in the previous round.
            let t = unsafe { ingest.submit(slot, &job)? };
            cases.push((case, t));
        }
        // The real batches, each once its slot's poison landed.
        for (case, t) in cases.iter_mut() {
            wait(ingest, *t)?;
            let jobs: Vec<ImageJob<'_>> = case
                .imgs
                .iter()
                .zip(case.raw.iter().zip(&case.srcs))
                .enumerate()
                .map(|(k, (img, (raw, srcs)))| ImageJob {
                    slot_offset: img.offset,
                    fragments: match img.frag_size {
                        // Every other strided image hands over a pointer array, the others
                        // the `src` fields of their fragment records (read in place).
                        Some(frag_size) => Sources::Strided {
                            srcs: if k % 2 == 0 {
                                SrcPtrs::new(srcs)
                            } else {
                                // SAFETY: a plain field projection.
                                unsafe { SrcPtrs::fields(raw, |f| &f.src) }
                            },
                            frag_size,
                            total: img.data.len(),
                        },
                        None => Sources::Listed(raw),
                    },
                    convert: img.convert,
                })
                .collect();
            // SAFETY: the arena and the pointer arrays live in `case` until this batch was
            // waited for below.
            *t = unsafe { ingest.submit(case.slot, &jobs)? };
        }
        for (i, (case, t)) in cases.iter().enumerate() {
            wait(ingest, *t)?;
            let mut got = vec![0u8; case.check_len];
            ingest.read_slot(case.slot, &mut got)?;
            compare(case, round * slots + i, &got, &mut rep);
        }
    }
    Ok(rep)
}

/// Compares a slot with the oracle: poison, then the images' bytes or converted values.
fn compare(case: &Case, case_no: usize, got: &[u8], rep: &mut SelfCheckReport) {
    let n = case.check_len;
    let mut want = vec![0u8; n];
    want.copy_from_slice(&case.poison.buf[case.poison.base..case.poison.base + n]);
    let mut floats: Vec<(usize, f32, f32)> = Vec::new(); // (slot offset, value, magnitude)
    for img in &case.imgs {
        match &img.convert {
            None => {
                for &(_, len, d) in &img.frags {
                    let at = img.offset + d;
                    want[at..at + len].copy_from_slice(&img.data[d..d + len]);
                }
            }
            Some(norm) => {
                let c = norm.channels as usize;
                let hw = (norm.height * norm.width) as usize;
                for &(_, len, d) in &img.frags {
                    for o in d..d + len {
                        let (p, ch) = (o / c, o % c);
                        let scale = 1.0 / (255.0 * norm.std[ch]);
                        let bias = -norm.mean[ch] / norm.std[ch];
                        let term = f32::from(img.data[o]) * scale;
                        let at = img.offset + 4 * (ch * hw + p);
                        floats.push((at, term + bias, term.abs() + bias.abs()));
                    }
                }
            }
        }
    }
    let mut is_float = vec![false; n];
    for &(at, _, _) in &floats {
        is_float[at..at + 4].fill(true);
    }
    rep.cases += 1;
    rep.images += case.imgs.len();
    rep.converted_images += case.imgs.iter().filter(|i| i.convert.is_some()).count();
    rep.strided_images += case.imgs.iter().filter(|i| i.frag_size.is_some()).count();
    rep.fragments += case.imgs.iter().map(|i| i.frags.len()).sum::<usize>();
    rep.bytes_checked += n as u64;
    let mut record = |offset: usize, found: Found| {
        rep.mismatches += 1;
        rep.first_mismatch.get_or_insert(Mismatch {
            case: case_no,
            slot: case.slot,
            offset,
            found,
        });
    };
    for i in (0..n).filter(|&i| !is_float[i] && got[i] != want[i]) {
        record(
            i,
            Found::Byte {
                expected: want[i],
                got: got[i],
            },
        );
    }
    for &(at, expected, magnitude) in &floats {
        let v = f32::from_ne_bytes(got[at..at + 4].try_into().expect("4 bytes"));
        // NaN (never written, or garbage) fails too.
        let close = (v - expected).abs() <= 1e-6 * magnitude.max(1e-30);
        if !close {
            record(at, Found::F32 { expected, got: v });
        }
    }
}
