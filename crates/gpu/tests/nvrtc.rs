//! netml-gpu's NVRTC layer against the real NVRTC 13.0 library, no GPU needed: the embedded
//! kernels compile for sm_80 and sm_90, errors and warnings come back with NVRTC's log.
//!
//! Without libnvrtc the tests say why and pass, unless NETML_REQUIRE_NVRTC=1 (CI sets it;
//! `scripts/check-kernels`, run first by `scripts/test`, installs NVRTC into
//! target/cuda-tools, where `load_library` looks).

use netml_gpu::cuda::nvrtc;

/// Whether NVRTC is loadable; panics instead of skipping when CI requires it.
fn nvrtc_available() -> bool {
    match nvrtc::load_library() {
        Ok(path) => {
            eprintln!("using {}", path.display());
            true
        }
        Err(e) if std::env::var("NETML_REQUIRE_NVRTC").as_deref() == Ok("1") => {
            panic!("NETML_REQUIRE_NVRTC=1 but NVRTC cannot be loaded: {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e} (run scripts/check-kernels to install NVRTC)");
            false
        }
    }
}

#[test]
fn version_is_13() {
    if !nvrtc_available() {
        return;
    }
    let (major, minor) = nvrtc::version().unwrap();
    assert_eq!(
        major, 13,
        "NVRTC {major}.{minor}: the binary targets CUDA 13"
    );
}

#[test]
fn gather_compiles_for_sm80_and_sm90() {
    if !nvrtc_available() {
        return;
    }
    for arch in [80, 90] {
        let ptx = nvrtc::gather_ptx(arch).unwrap_or_else(|e| panic!("sm_{arch}: {e}"));
        let text = ptx.to_src();
        for entry in nvrtc::GATHER_ENTRIES {
            assert!(
                text.contains(&format!(".entry {entry}(")),
                "sm_{arch}: no .entry {entry}"
            );
        }
        assert!(
            text.contains(&format!(".target sm_{arch}")),
            "sm_{arch}: wrong .target"
        );
    }
}

#[test]
fn headers_are_resolved_by_include_name() {
    if !nvrtc_available() {
        return;
    }
    let src = "#include \"k.cuh\"\nextern \"C\" __global__ void k(int* p) { *p = K_VALUE; }\n";
    let ptx = nvrtc::compile("k.cu", src, &[("k.cuh", "#define K_VALUE 1234567\n")], 90)
        .unwrap_or_else(|e| panic!("{e}"));
    let text = ptx.to_src();
    assert!(text.contains(".entry k("), "{text}");
    assert!(
        text.contains("1234567"),
        "the header's value is not in the PTX"
    );
}

#[test]
fn compile_error_carries_the_log() {
    if !nvrtc_available() {
        return;
    }
    let src = "extern \"C\" __global__ void k(int* p) { *p = no_such_name; }\n";
    let err = nvrtc::compile("broken.cu", src, &[], 80).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("broken.cu (compute_80): NVRTC error"),
        "{text}"
    );
    assert!(
        text.contains("identifier \"no_such_name\" is undefined"),
        "log line missing: {text}"
    );
    assert!(err.log().contains("broken.cu(1)"), "{}", err.log());
}

#[test]
fn a_warning_fails_the_compile() {
    if !nvrtc_available() {
        return;
    }
    // Compiles cleanly without the unused local, so the failure is the warning alone.
    let clean = "extern \"C\" __global__ void k(int* p) { *p = 1; }\n";
    nvrtc::compile("clean.cu", clean, &[], 90).unwrap_or_else(|e| panic!("{e}"));
    let src = "extern \"C\" __global__ void k(int* p) { int unused_local; *p = 1; }\n";
    let err = nvrtc::compile("warn.cu", src, &[], 90).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("NVRTC warnings"), "{text}");
    assert!(text.contains("unused_local"), "log line missing: {text}");
}

/// What the binary loads: SASS for the device's own architecture, an ELF the driver loads
/// without its PTX JIT, compiled once per process.
#[test]
fn gather_cubins_for_sm80_and_sm90_are_elf_and_cached() {
    if !nvrtc_available() {
        return;
    }
    for arch in [80, 90] {
        let t = std::time::Instant::now();
        let cubin =
            nvrtc::compile_cubin(&nvrtc::GATHER, arch).unwrap_or_else(|e| panic!("sm_{arch}: {e}"));
        eprintln!(
            "gather.cu sm_{arch}: {} bytes of cubin in {:.0} ms",
            cubin.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
        assert_eq!(&cubin[..4], b"\x7fELF", "sm_{arch}: not an ELF cubin");
        // The entry points are in the cubin's symbol table.
        for entry in nvrtc::GATHER_ENTRIES {
            assert!(
                cubin.windows(entry.len()).any(|w| w == entry.as_bytes()),
                "sm_{arch}: no symbol {entry}"
            );
        }
        let again = nvrtc::compile_cubin(&nvrtc::GATHER, arch).unwrap();
        assert!(
            std::sync::Arc::ptr_eq(&cubin, &again),
            "sm_{arch}: not cached"
        );
    }
}

#[test]
fn a_cubin_compile_error_names_the_real_architecture() {
    if !nvrtc_available() {
        return;
    }
    let broken = nvrtc::CudaSource {
        name: "broken_sass.cu",
        source: "extern \"C\" __global__ void k(int* p) { *p = no_such_name; }\n",
        headers: &[],
    };
    let err = nvrtc::compile_cubin(&broken, 90).unwrap_err().to_string();
    assert!(err.contains("broken_sass.cu (sm_90): NVRTC error"), "{err}");
}
