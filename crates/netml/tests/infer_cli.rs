//! `netml infer` on a seed model written by scripts/models/export.py: the cpu and reference
//! backends agree on the top class, and bad requests are one clear line.

mod common;

use common::{netml, small_model};

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
    let Some(model) = small_model(dir.path(), "alexnet") else {
        return;
    };
    let run = |backend: &str| {
        let o = netml()
            .args([
                "infer",
                "--batch",
                "3",
                "--threads",
                "2",
                "--json",
                "--backend",
                backend,
            ])
            .arg(&model)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        top1(&o.stdout)
    };
    let cpu = run("cpu");
    assert_eq!(cpu.len(), 3);
    assert_eq!(cpu, run("reference"));
    // `cpu` is ONNX Runtime when the wheel is installed: tract must agree as well.
    assert_eq!(cpu, run("tract"));

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

#[test]
fn expected_row_is_the_top1_class_as_a_csv_line() {
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = small_model(dir.path(), "alexnet") else {
        return;
    };
    // The model's own output saved as input would be the wrong shape; write a 3x96x96 tensor.
    let input = dir.path().join("x.npy");
    let values: Vec<f32> = (0..3 * 96 * 96)
        .map(|i| ((i % 97) as f32) / 97.0 - 0.5)
        .collect();
    netml_infer::npy::write_f32(&input, &[1, 3, 96, 96], &values).unwrap();
    let json = netml()
        .args(["infer", "--json", "--input"])
        .arg(&input)
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let row = netml()
        .args(["infer", "--expected-row", "7", "--input"])
        .arg(&input)
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        row.status.success(),
        "{}",
        String::from_utf8_lossy(&row.stderr)
    );
    let text = String::from_utf8(row.stdout).unwrap();
    assert_eq!(
        text.trim_end(),
        format!("7,{},{}", input.display(), top1(&json.stdout)[0])
    );
    let no_input = netml()
        .args(["infer", "--expected-row", "7"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(!no_input.status.success());
}

#[test]
fn the_batch_comes_from_an_nchw_input() {
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = small_model(dir.path(), "alexnet") else {
        return;
    };
    let input = dir.path().join("four.npy");
    let values: Vec<f32> = (0..4 * 3 * 96 * 96)
        .map(|i| ((i % 89) as f32) / 89.0)
        .collect();
    netml_infer::npy::write_f32(&input, &[4, 3, 96, 96], &values).unwrap();
    let o = netml()
        .args(["infer", "--json", "--input"])
        .arg(&input)
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        top1(&o.stdout).len(),
        4,
        "one answer per image of the input"
    );
    let o = netml()
        .args(["infer", "--batch", "2", "--input"])
        .arg(&input)
        .arg(&model)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nor a batch of 2"));
}
