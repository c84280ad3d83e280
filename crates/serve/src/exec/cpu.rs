//! A CPU instance: a worker thread with one engine plan per batch size, reading its input in
//! place from the function's (host) ingest slot.

use super::{Answers, Input};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use netml_infer::Engine;
use std::collections::BTreeMap;
use std::thread::JoinHandle;

/// A CPU instance: a worker thread owning one engine per batch size.
pub struct CpuInstance {
    jobs: Option<Sender<Input>>,
    done: Receiver<Result<Answers, String>>,
    worker: Option<JoinHandle<()>>,
    per_image: usize,
}

impl CpuInstance {
    /// Starts the worker `name` with `engines` keyed by their batch size; answers carry the
    /// `top_k` best classes.
    pub fn spawn(
        name: &str,
        engines: BTreeMap<usize, Box<dyn Engine>>,
        top_k: usize,
    ) -> Result<CpuInstance, String> {
        let per_image = engines
            .values()
            .next()
            .map(|e| e.input_shape().iter().product())
            .ok_or_else(|| format!("{name}: no engine"))?;
        let (jobs, job_rx) = crossbeam_channel::bounded::<Input>(1);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let worker = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || work(engines, job_rx, done_tx, top_k))
            .map_err(|e| format!("spawning {name}: {e}"))?;
        Ok(CpuInstance {
            jobs: Some(jobs),
            done,
            worker: Some(worker),
            per_image,
        })
    }

    /// f32 values per image the engines take.
    pub fn per_image(&self) -> usize {
        self.per_image
    }

    /// Starts a batch.
    ///
    /// # Safety
    /// `input.ptr` must point to `input.images * per_image()` readable f32 values that stay
    /// valid and unchanged until [`poll`](Self::poll) has returned this batch's result.
    pub unsafe fn start(&self, input: Input) -> Result<(), String> {
        let jobs = self.jobs.as_ref().ok_or("instance stopped")?;
        jobs.try_send(input)
            .map_err(|_| "instance busy or gone".to_string())
    }

    /// The running batch's result, once it is there.
    pub fn poll(&self) -> Option<Result<Answers, String>> {
        match self.done.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err("the instance's worker exited".into())),
        }
    }
}

impl Drop for CpuInstance {
    fn drop(&mut self) {
        self.jobs = None; // the worker's loop ends with its channel
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn work(
    mut engines: BTreeMap<usize, Box<dyn Engine>>,
    jobs: Receiver<Input>,
    done: Sender<Result<Answers, String>>,
    top_k: usize,
) {
    while let Ok(input) = jobs.recv() {
        let result = run(&mut engines, input, top_k);
        if done.send(result).is_err() {
            return;
        }
    }
}

fn run(
    engines: &mut BTreeMap<usize, Box<dyn Engine>>,
    input: Input,
    k: usize,
) -> Result<Answers, String> {
    let engine = engines
        .get_mut(&input.engine_batch)
        .ok_or_else(|| format!("no engine plan for batch {}", input.engine_batch))?;
    let per: usize = engine.input_shape().iter().product();
    // SAFETY: `CpuInstance::start`'s contract: `images * per` values stay valid until this
    // result has been received.
    let values = unsafe { std::slice::from_raw_parts(input.ptr as *const f32, input.images * per) };
    let out = engine
        .run(values, input.images)
        .map_err(|e| e.to_string())?;
    let classes: usize = engine.output_shape().iter().product();
    Ok(super::top_k_rows(&out.data, input.images, classes, k))
}
