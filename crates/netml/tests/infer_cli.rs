//! `netml infer` on a seed model written by scripts/models/export.py: the cpu and reference
//! backends agree on the top class, and bad requests are one clear line.

use std::path::{Path, PathBuf};
use std::process::Command;

fn netml() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netml"))
}

/// Writes the small AlexNet into `dir`; `None` (test skipped) when Python's onnx package is
/// missing, unless NETML_REQUIRE_MODELS is set (CI), where that is a failure.
fn small_alexnet(dir: &Path) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg(root.join("scripts/models/export.py"))
        .args(["--small"])
        .arg(dir)
        .arg("alexnet")
        .output();
    match out {
        Ok(o) if o.status.success() => Some(dir.join("alexnet_small.onnx")),
        other => {
            let why = format!("{other:?}");
            assert!(
                std::env::var_os("NETML_REQUIRE_MODELS").is_none(),
                "cannot export models: {why}"
            );
            eprintln!("SKIPPED: cannot export models (pip install -r scripts/models/requirements.txt): {why}");
            None
        }
    }
}

fn top1(json: &[u8]) -> Vec<u64> {
    let doc: serde_json::Value = serde_json::from_slice(json).unwrap();
    doc["top5"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[0]["class"].as_u64().unwrap())
        .collect()
}

#[test]
fn cpu_and_reference_backends_agree_and_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = small_alexnet(dir.path()) else {
        return;
    };
    let run = |backend: &str| {
        let o = netml()
            .args(["infer", "--batch", "3", "--json", "--backend", backend])
            .arg(&model)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        top1(&o.stdout)
    };
    let cpu = run("cpu");
    assert_eq!(cpu.len(), 3);
    assert_eq!(cpu, run("reference"));

    let npy = dir.path().join("out.npy");
    let o = netml()
        .args(["infer", "--output"])
        .arg(&npy)
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(&std::fs::read(&npy).unwrap()[..6], b"\x93NUMPY");

    for (args, needle) in [
        (vec!["--backend", "gpu"], "no CUDA driver ("),
        (vec!["--backend", "cpu", "--precision", "fp16"], "fp32 only"),
        (vec!["--backend", "tpu"], "--backend"),
    ] {
        let o = netml()
            .arg("infer")
            .args(&args)
            .arg(&model)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(needle) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}
