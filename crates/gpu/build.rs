//! Compiles the host build of `cuda-kernels/gather.cuh` (through `host_gather.cpp`).

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let kernels = manifest.join("../../cuda-kernels");
    let shim = kernels.join("host_gather.cpp");
    let header = kernels.join("gather.cuh");
    println!("cargo:rerun-if-changed={}", shim.display());
    println!("cargo:rerun-if-changed={}", header.display());
    cc::Build::new()
        .cpp(true)
        .std("c++20")
        .file(&shim)
        .include(&kernels)
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-fno-exceptions")
        .flag_if_supported("-fno-rtti")
        .compile("netml_host_gather");
}
