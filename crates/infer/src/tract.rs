//! The `cpu` backend: tract-onnx running the original (unfused) ONNX graph,
//! optimized by tract for a fixed batch size. It accepts any model tract
//! supports, not only the planner's operator set, and is both the
//! pipeline's no-GPU inference path and the oracle the reference executor
//! is checked against.

use std::path::Path;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::engine::{Engine, Output};
use crate::error::{Error, Result};
use crate::onnx::Model;
use crate::plan::Precision;

type Runnable = TypedRunnableModel<TypedModel>;

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
    /// Loads an ONNX file for batches of up to `batch`.
    pub fn load(path: impl AsRef<Path>, batch: usize) -> Result<Tract> {
        let proto = crate::onnx::read_proto(path)?;
        Tract::from_proto(&proto, batch)
    }

    /// Builds the engine from a decoded protobuf.
    pub fn from_proto(proto: &pb::ModelProto, batch: usize) -> Result<Tract> {
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
        let model = model.into_runnable().map_err(terr)?;
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
        let view = out[0].to_array_view::<f32>().map_err(terr)?;
        let per_out: usize = self.output_shape.iter().product();
        let mut data: Vec<f32> = view.iter().copied().collect();
        data.truncate(batch * per_out);
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.output_shape);
        Ok(Output { shape, data })
    }
}
