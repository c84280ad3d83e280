//! `netml bench infer` on one small seed model: one CSV row per measured case with sane
//! figures, unsupported precisions reported and skipped, both plots written, the baseline
//! ratio filled in.

use std::path::Path;
use std::process::Command;

/// Writes the small ResNet-50 (the quickest small model on tract) into `dir`; `None` (test
/// skipped) when Python's onnx package is missing, unless NETML_REQUIRE_MODELS is set.
fn small_resnet(dir: &Path) -> Option<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg(root.join("scripts/models/export.py"))
        .arg("--small")
        .arg(dir)
        .arg("resnet50")
        .output();
    match out {
        Ok(o) if o.status.success() => Some(dir.join("resnet50_small.onnx")),
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

#[test]
fn bench_infer_writes_csv_rows_plots_and_baseline_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = small_resnet(dir.path()) else {
        return;
    };
    let (csv, svg) = (dir.path().join("b.csv"), dir.path().join("b.svg"));
    let baseline = dir.path().join("torch.csv");
    std::fs::write(
        &baseline,
        "model,batch,precision,ms\nresnet50_small,2,fp32,0.5\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_netml"))
        .args([
            "bench",
            "infer",
            "--batches",
            "1,2",
            "--precision",
            "fp32,fp16",
        ])
        .args(["--runs", "5", "--warmup", "1", "--csv"])
        .arg(&csv)
        .arg("--plot")
        .arg(&svg)
        .arg("--baseline")
        .arg(&baseline)
        .arg(&model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(stdout.matches("fp16 not supported").count(), 2, "{stdout}");
    assert!(stdout.contains("machine: "), "{stdout}");

    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "one row per measured case:\n{text}");
    for (row, batch) in rows.iter().zip(["1", "2"]) {
        let num = |name: &str| row[col(name)].parse::<f64>().unwrap();
        assert_eq!(row[col("model")], "resnet50_small");
        assert_eq!((row[col("batch")], row[col("precision")]), (batch, "fp32"));
        assert_eq!(num("runs"), 5.0);
        assert!(num("ms_per_batch") > 0.0 && num("p50_ms") > 0.0, "{row:?}");
        assert!(num("p99_ms") >= num("p50_ms") && num("max_ms") >= num("p99_ms"));
        assert!(num("images_per_s") > 0.0);
        // Runs another process interrupted are counted; the rest have their own percentiles.
        assert!(num("waited_runs") <= 5.0);
        if num("waited_runs") < 5.0 {
            assert!(num("quiet_p99_ms") >= num("quiet_p50_ms"), "{row:?}");
        }
    }
    let ratio = rows[1][col("p50_over_baseline")].parse::<f64>().unwrap();
    let p50 = rows[1][col("p50_ms")].parse::<f64>().unwrap();
    assert!((ratio - p50 / 0.5).abs() < 1e-3 * ratio, "{ratio} vs {p50}");
    assert_eq!(rows[0][col("baseline_ms")], "");

    for plot in [svg.clone(), dir.path().join("b-latency.svg")] {
        let s = std::fs::read_to_string(&plot).unwrap();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("resnet50_small") && s.contains("batch 2"), "{s}");
    }
}
