//! The `ort` backend (ONNX Runtime loaded at run time) against the reference executor, for
//! every small seed model: full batches of 1 and 8, a short batch (3 images on an engine
//! for 8), on 1 and 2 threads; fp32 thresholds as in `models.rs` (relative L2 <= 1e-4,
//! top-1 100 %).
//!
//! Without ONNX Runtime (no `onnxruntime` wheel, no `ORT_DYLIB_PATH`) the tests say why and
//! pass, unless `NETML_REQUIRE_ORT=1` (CI sets it; scripts/install-deps installs the
//! wheel), which fails them.

mod common;

use std::path::Path;

use netml_infer::metrics::{rel_l2, top1_agreement};
use netml_infer::onnxruntime::{self, OnnxRuntime};
use netml_infer::{open_threads, Backend, Engine, Error, Plan, Precision, Reference};

const FP32_REL_L2: f64 = 1e-4;

/// Whether ONNX Runtime loads; `false` (after saying why) lets a test pass without it.
fn runtime_present() -> bool {
    match onnxruntime::runtime() {
        Ok(rt) => {
            eprintln!("ONNX Runtime {} from {}", rt.version, rt.library.display());
            true
        }
        Err(why) if std::env::var("NETML_REQUIRE_ORT").is_ok_and(|v| v == "1") => {
            panic!("NETML_REQUIRE_ORT=1 but ONNX Runtime is not available: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: ONNX Runtime not available ({why}); pip install onnxruntime");
            false
        }
    }
}

/// Runs `images` of `batch` through ONNX Runtime and the reference executor; checks shape,
/// relative L2 and top-1.
fn check(path: &Path, name: &str, batch: usize, images: usize, threads: usize) {
    let mut ort = OnnxRuntime::load(path, batch, threads).unwrap_or_else(|e| panic!("{name}: {e}"));
    let plan = Plan::load(path, images, Precision::Fp32).unwrap();
    let mut reference = Reference::new(plan);
    let per: usize = ort.input_shape().iter().product();
    assert_eq!(ort.input_shape(), reference.input_shape(), "{name}");
    assert_eq!(ort.output_shape(), reference.output_shape(), "{name}");
    let input = common::Rng::new(31 * batch as u64 + images as u64).normals(images * per);
    let got = ort.run(&input, images).unwrap();
    let want = reference.run(&input, images).unwrap();
    assert_eq!(got.shape, want.shape, "{name} {images} of {batch}");
    let classes: usize = want.shape[1..].iter().product();
    let err = rel_l2(&got.data, &want.data);
    let (agree, total) = top1_agreement(&got.data, &want.data, classes);
    eprintln!(
        "{name:>13} {images}/{batch} images, {threads} threads: rel-L2 {err:.2e}, top-1 {agree}/{total}"
    );
    assert!(
        err <= FP32_REL_L2,
        "{name} {images}/{batch}: rel-L2 {err:.3e} > {FP32_REL_L2:e}"
    );
    assert_eq!(agree, total, "{name} {images}/{batch}: top-1 disagrees");
}

macro_rules! model_test {
    ($test:ident, $name:literal) => {
        #[test]
        fn $test() {
            if !runtime_present() {
                return;
            }
            let Some(dir) = common::small_models() else {
                return;
            };
            let path = dir.join(concat!($name, "_small.onnx"));
            for (batch, images, threads) in [(1, 1, 1), (8, 8, 2), (8, 3, 1)] {
                check(&path, $name, batch, images, threads);
            }
        }
    };
}

model_test!(alexnet_matches_reference, "alexnet");
model_test!(mobilenet_v2_matches_reference, "mobilenet_v2");
model_test!(resnet50_matches_reference, "resnet50");
model_test!(vgg19_matches_reference, "vgg19");
model_test!(resnext50_matches_reference, "resnext50");
model_test!(densenet121_matches_reference, "densenet121");

#[test]
fn cpu_backend_picks_onnxruntime_when_present() {
    if !runtime_present() {
        return;
    }
    let Some(dir) = common::small_models() else {
        return;
    };
    let path = dir.join("mobilenet_v2_small.onnx");
    assert_eq!(Backend::Cpu.resolve(), Backend::Ort);
    let cpu = open_threads(&path, Backend::Cpu, 2, Precision::Fp32, 2).unwrap();
    assert!(cpu.name().contains("onnxruntime"), "{}", cpu.name());
    assert_eq!(cpu.max_batch(), 2);
    let tract = open_threads(&path, Backend::Tract, 2, Precision::Fp32, 2).unwrap();
    assert_eq!(tract.name(), "cpu (tract)");
    assert!(matches!(
        open_threads(&path, Backend::Ort, 2, Precision::Fp16, 1).err(),
        Some(Error::Backend(_))
    ));
}
