//! The `tract` backend: tract-onnx running the original (unfused) ONNX graph,
//! optimized by tract for a fixed batch size. It accepts any model tract
//! supports, not only the planner's operator set, and is both the pure-Rust
//! fallback of the `cpu` backend (when ONNX Runtime is missing) and the oracle
//! the reference executor is checked against. With more than one thread its
//! matrix products run on a rayon pool of its own.

use std::path::Path;

use tract_linalg::multithread::Executor;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::RunOptions;

use crate::engine::{Engine, Output};
use crate::error::{Error, Result};
use crate::onnx::Model;
use crate::plan::Precision;

type Runnable = Arc<TypedRunnableModel>;

/// tract-onnx engine (fp32).
#[derive(Debug)]
pub struct Tract {
    model: Runnable,
    batch: usize,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
}

fn terr(e: impl std::fmt::Display) -> Error {
    Error::Tract(format!("{e:#}"))
}

impl Tract {
    /// Loads an ONNX file for batches of up to `batch` (one thread).
    pub fn load(path: impl AsRef<Path>, batch: usize) -> Result<Tract> {
        Tract::load_threads(path, batch, 1)
    }

    /// Loads an ONNX file for batches of up to `batch`, computing on `threads` threads.
    pub fn load_threads(path: impl AsRef<Path>, batch: usize, threads: usize) -> Result<Tract> {
        let proto = crate::onnx::read_proto(path)?;
        Tract::from_proto_threads(&proto, batch, threads)
    }

    /// Builds the engine from a decoded protobuf (one thread).
    pub fn from_proto(proto: &pb::ModelProto, batch: usize) -> Result<Tract> {
        Tract::from_proto_threads(proto, batch, 1)
    }

    /// Builds the engine from a decoded protobuf, computing on `threads` threads.
    pub fn from_proto_threads(
        proto: &pb::ModelProto,
        batch: usize,
        threads: usize,
    ) -> Result<Tract> {
        if batch == 0 {
            return Err(Error::BadInputShape {
                expected: "a batch size of at least 1".into(),
                got: "0".into(),
            });
        }
        // Read the input's declared shape with our own loader (which does
        // not check operators here).
        let ir = Model::from_proto(proto)?;
        if ir.inputs.len() != 1 {
            return Err(Error::InvalidModel(format!(
                "expected exactly one runtime input, found {}",
                ir.inputs.len()
            )));
        }
        let shape = ir.inputs[0].batched_shape(batch)?;

        let model = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .model_for_proto_model(proto)
            .map_err(terr)?
            .with_input_fact(0, f32::fact(shape.clone()).into())
            .map_err(terr)?
            .into_optimized()
            .map_err(terr)?;
        let out_fact = model.output_fact(0).map_err(terr)?;
        let out_shape: Vec<usize> = out_fact
            .shape
            .as_concrete()
            .ok_or_else(|| Error::DynamicShape {
                tensor: "output".into(),
                detail: format!(
                    "tract could not resolve the output shape {:?}",
                    out_fact.shape
                ),
            })?
            .to_vec();
        if out_shape.first() != Some(&batch) {
            return Err(Error::InvalidModel(format!(
                "the output shape {out_shape:?} is not batch-first"
            )));
        }
        let options = RunOptions {
            executor: (threads > 1)
                .then(|| Executor::multithread_with_name(threads, "netml-tract")),
            ..RunOptions::default()
        };
        let model = model.into_runnable_with_options(&options).map_err(terr)?;
        Ok(Tract {
            model,
            batch,
            input_shape: shape[1..].to_vec(),
            output_shape: out_shape[1..].to_vec(),
        })
    }
}

impl Engine for Tract {
    fn name(&self) -> &str {
        "cpu (tract)"
    }

    fn precision(&self) -> Precision {
        Precision::Fp32
    }

    fn max_batch(&self) -> usize {
        self.batch
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn run(&mut self, input: &[f32], batch: usize) -> Result<Output> {
        crate::engine::check_input(self, input, batch)?;
        let per_in: usize = self.input_shape.iter().product();
        let mut full = vec![self.batch];
        full.extend_from_slice(&self.input_shape);
        let padded = crate::engine::pad_batch(input, self.batch * per_in);
        let tensor = Tensor::from_shape(&full, &padded).map_err(terr)?;
        let out = self.model.run(tvec!(tensor.into())).map_err(terr)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(terr)?;
        let per_out: usize = self.output_shape.iter().product();
        let mut data: Vec<f32> = view.iter().copied().collect();
        data.truncate(batch * per_out);
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.output_shape);
        Ok(Output { shape, data })
    }
}
