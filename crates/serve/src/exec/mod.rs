//! Instances that run batches in the live pipeline, each with engine plans per batch size
//! and reading its input in place from its ingest slot: CPU worker threads on a share of
//! cores ([`cpu`]) or a GPU stream, on a green-context partition or the whole device
//! ([`gpu`]). The serving loop starts a batch and polls for its end; nothing blocks it and
//! nothing calls back. [`shadow`] moves an instance to a new share without stopping it.

pub mod cpu;
pub mod gpu;
pub mod shadow;

pub use cpu::{BuildEngine, CpuInstance, CpuShare, Parallel};
pub use gpu::GpuInstance;
pub use shadow::{Prepared, Reshare, ResizeStats, Resized, Shadowed};

/// Top-k `(class, score)` of each image of a batch, best first.
pub type Answers = Vec<Vec<(u32, f32)>>;

/// A batch's input: `images × per_image` f32 values, contiguous.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    /// Address of the first value: host memory for a CPU instance, device memory of the
    /// instance's context for a GPU one.
    pub ptr: u64,
    /// Images in the batch.
    pub images: usize,
    /// Engine batch to run them as.
    pub engine_batch: usize,
}

/// The `k` best classes of each of `images` rows of `classes` scores.
pub(crate) fn top_k_rows(scores: &[f32], images: usize, classes: usize, k: usize) -> Answers {
    (0..images)
        .map(|i| {
            netml_infer::top_k(&scores[i * classes..(i + 1) * classes], k)
                .into_iter()
                .map(|(c, s)| (c as u32, s))
                .collect()
        })
        .collect()
}
