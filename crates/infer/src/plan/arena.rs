//! The activation arena: buffer lifetimes from the step order, greedy
//! placement, and [`Plan::check_arena`], the independent check of both.
//!
//! Offsets are fixed at plan time so a GPU executor allocates the arena
//! once and can record the whole step sequence into a CUDA graph. Steps
//! never run in place: a step's inputs and output are all live at that
//! step, so they never share bytes.

use super::{Plan, Step, TensorId, TensorInfo};
use crate::error::{Error, Result};

/// Alignment of every buffer offset in the arena, in bytes (cudaMalloc's
/// guarantee, enough for cuDNN/cuBLAS vectorised access).
pub const ARENA_ALIGN: usize = 256;

/// Index of a buffer in [`Plan::buffers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(pub usize);

/// A region of the arena and the steps during which it is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffer {
    /// Byte offset in the arena (multiple of [`ARENA_ALIGN`]).
    pub offset: usize,
    /// Size in bytes.
    pub bytes: usize,
    /// First step that needs it (0 for the input, which is written before
    /// step 0).
    pub first_step: usize,
    /// Last step that needs it (`steps.len()` for the output, which is read
    /// after the last step). Live interval is inclusive at both ends.
    pub last_step: usize,
}

impl Buffer {
    /// True if the two live intervals share a step.
    pub fn lifetime_overlaps(&self, other: &Buffer) -> bool {
        self.first_step <= other.last_step && other.first_step <= self.last_step
    }

    /// True if the two byte ranges share a byte.
    pub fn bytes_overlap(&self, other: &Buffer) -> bool {
        self.offset < other.offset + other.bytes && other.offset < self.offset + self.bytes
    }
}

/// Computes each of the `nbuffers` buffers' live interval from `steps`,
/// places them in the arena and writes the offsets into `tensors` (views
/// share their source's buffer, so they get its offset). Returns the
/// buffers and the arena size.
pub(super) fn place(
    steps: &[Step],
    tensors: &mut [TensorInfo],
    nbuffers: usize,
    input: TensorId,
    output: TensorId,
) -> (Vec<Buffer>, usize) {
    let nsteps = steps.len();
    let buffer_of = |t: TensorId| tensors[t.0].buffer.0;
    let mut first = vec![usize::MAX; nbuffers];
    let mut last = vec![0usize; nbuffers];
    let mut bytes = vec![0usize; nbuffers];
    for t in tensors.iter() {
        bytes[t.buffer.0] = bytes[t.buffer.0].max(t.bytes);
    }
    // The input is written before step 0.
    first[buffer_of(input)] = 0;
    for (s, st) in steps.iter().enumerate() {
        for t in st.inputs().into_iter().chain([st.output()]) {
            let b = buffer_of(t);
            first[b] = first[b].min(s);
            last[b] = last[b].max(s);
        }
    }
    // The output is read after the last step.
    let out_buf = buffer_of(output);
    first[out_buf] = first[out_buf].min(nsteps);
    last[out_buf] = nsteps;
    let mut buffers: Vec<Buffer> = (0..nbuffers)
        .map(|b| {
            let first_step = if first[b] == usize::MAX { 0 } else { first[b] };
            Buffer {
                offset: 0,
                bytes: bytes[b],
                first_step,
                last_step: last[b].max(first_step),
            }
        })
        .collect();
    let arena_bytes = allocate(&mut buffers);
    for t in tensors.iter_mut() {
        t.offset = buffers[t.buffer.0].offset;
    }
    (buffers, arena_bytes)
}

fn align_up(x: usize) -> usize {
    x.div_ceil(ARENA_ALIGN) * ARENA_ALIGN
}

/// Greedy arena placement: largest buffers first, each at the lowest
/// aligned offset not overlapping any already-placed buffer that is live
/// at the same time. Returns the arena size.
fn allocate(buffers: &mut [Buffer]) -> usize {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by(|&a, &b| {
        buffers[b]
            .bytes
            .cmp(&buffers[a].bytes)
            .then(buffers[a].first_step.cmp(&buffers[b].first_step))
    });
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0usize;
    for &i in &order {
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].lifetime_overlaps(&buffers[i]))
            .map(|&j| (buffers[j].offset, buffers[j].offset + buffers[j].bytes))
            .collect();
        conflicts.sort_unstable();
        let size = buffers[i].bytes;
        let mut offset = 0usize;
        for (start, end) in conflicts {
            if offset + size <= start {
                break;
            }
            offset = offset.max(align_up(end));
        }
        buffers[i].offset = offset;
        arena = arena.max(align_up(offset + size));
        placed.push(i);
    }
    arena
}

impl Plan {
    /// Verifies the arena invariants: every buffer is aligned and inside
    /// the arena, every tensor lies inside its buffer, each step's tensors
    /// are live during the step, and no two buffers with overlapping
    /// lifetimes share a byte.
    pub fn check_arena(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Internal(m));
        for (i, b) in self.buffers.iter().enumerate() {
            if b.offset % ARENA_ALIGN != 0 || b.offset + b.bytes > self.arena_bytes {
                return bad(format!("buffer {i} {b:?} misaligned or outside the arena"));
            }
            if b.first_step > b.last_step {
                return bad(format!("buffer {i} has an empty lifetime {b:?}"));
            }
        }
        for (i, t) in self.tensors.iter().enumerate() {
            let b = &self.buffers[t.buffer.0];
            if t.offset != b.offset || t.bytes > b.bytes {
                return bad(format!("tensor {i} ('{}') does not fit its buffer", t.name));
            }
        }
        for (s, step) in self.steps.iter().enumerate() {
            for t in step.inputs().into_iter().chain([step.output()]) {
                let b = &self.buffers[self.tensor(t).buffer.0];
                if s < b.first_step || s > b.last_step {
                    return bad(format!(
                        "step {s} uses '{}' outside its live interval {}..={}",
                        self.tensor(t).name,
                        b.first_step,
                        b.last_step
                    ));
                }
            }
        }
        for (i, a) in self.buffers.iter().enumerate() {
            for (j, b) in self.buffers.iter().enumerate().skip(i + 1) {
                if a.lifetime_overlaps(b) && a.bytes_overlap(b) {
                    return bad(format!(
                        "buffers {i} {a:?} and {j} {b:?} are live at the same time and overlap"
                    ));
                }
            }
        }
        Ok(())
    }
}
