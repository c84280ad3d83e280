//! Compiles the host build of `cuda-kernels/infer_ops.cu` (through `src/gpu/host_ops.cpp`),
//! which the tests use to run the GPU executor's kernels on the CPU.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let kernels = manifest.join("../../cuda-kernels");
    let shim = manifest.join("src/gpu/host_ops.cpp");
    for f in [
        shim.clone(),
        kernels.join("infer_ops.cu"),
        kernels.join("infer_ops.cuh"),
    ] {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    cc::Build::new()
        .cpp(true)
        .std("c++20")
        .file(&shim)
        .include(&kernels)
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-fno-rtti")
        .compile("netml_infer_host_ops");
}
