//! netml's benchmarks, gpu-check and the SVG plot writer; the `netml` binary parses the
//! arguments and calls each harness's `run` with its clap `Args`.
//!
//! `netml bench`: measurements on in-memory sources, each printing its limit beside the
//! figure: `rx` ([`rx`]: rx + classify + verify per core, beside the floor of a bare
//! receiver), `ingest` ([`ingest`]: the pipeline thread's CPU per image in each ingest
//! mode), `pipeline` ([`pipeline`]: answered vs offered images/s through the whole
//! pipeline), `serve` ([`serve`]: goodput of live inference functions per batching policy)
//! and `infer` ([`infer`]: ms per batch and p50/p99 per model).
//!
//! Shared by the harnesses that drive a net_ring port: [`traffic`] (the fragment frames and
//! their circulation), [`feeder`] (the feeder thread), [`meter`] (the threads' counters and
//! the rates), [`eal`] (the EAL arguments).
//!
//! Beside the benchmarks: [`gpu_check`] (`netml gpu-check`), [`plot`] (the SVG charts),
//! [`output`] (CSV and file helpers) and [`engines`] (opening a model, shared with
//! `netml infer`).

// Module docs link the private modules they are built from, for readers of the source and of
// `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]

mod eal;
pub mod engines;
mod feeder;
pub mod gpu_check;
pub mod infer;
pub mod ingest;
mod meter;
pub mod output;
pub mod pipeline;
pub mod plot;
pub mod rx;
pub mod serve;
mod traffic;
