//! netml inference engine.
//!
//! ONNX CNNs are compiled into a [`Plan`]: shapes inferred for a fixed
//! batch, BatchNormalization folded into convolutions, conv+bias+activation
//! (+residual add) fused, Dropout removed, a layout chosen per precision
//! (NCHW for fp32, NHWC for fp16) and every activation placed in one arena by
//! liveness analysis. Each [`Step`] is what one cuDNN/cuBLAS call (or one
//! small kernel) will do in the GPU executor.
//!
//! Layers:
//! * [`onnx`] — loading (prost types from `tract-onnx`) into a small IR and
//!   the operator check;
//! * [`plan`] — the compiler (no GPU code);
//! * [`reference`](mod@reference) — a plain CPU executor of a plan inside its arena, the
//!   proof that fusion, folding, layouts and arena aliasing are right;
//! * [`onnxruntime`] — the `ort` backend, ONNX Runtime loaded at run time (what the
//!   `cpu` backend picks when the library is found);
//! * [`tract`] — the `tract` backend, tract-onnx on the original graph (pure Rust, the
//!   `cpu` fallback);
//! * [`engine`] — the [`Engine`] trait over backends and [`open`].
//!
//! ```no_run
//! use netml_infer::{open, Backend, Precision};
//! let mut engine = open("resnet50.onnx", Backend::Cpu, 8, Precision::Fp32)?;
//! let per_image: usize = engine.input_shape().iter().product();
//! let out = engine.run(&vec![0.0; 2 * per_image], 2)?;
//! println!("{:?}", out.top_k(0, 5));
//! # Ok::<(), netml_infer::Error>(())
//! ```

// Module docs link the private modules they are built from, for readers of the source and of
// `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]
#![warn(missing_docs)]

pub mod engine;
pub mod error;
pub mod fixtures;
pub mod gpu;
pub mod metrics;
pub mod npy;
pub mod onnx;
pub mod onnxruntime;
pub mod plan;
pub mod reference;
pub mod tract;

pub use engine::{cpu_choice, open, open_threads, top_k, Backend, Engine, Output};
pub use error::{Error, Result};
pub use onnx::Model;
pub use plan::{Plan, Precision, Step};
pub use reference::Reference;
pub use tract::Tract;
