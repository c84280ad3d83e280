//! `netml bench infer` on one small seed model: one CSV row per measured case with sane
//! figures, unsupported precisions reported and skipped, both plots written, the baseline
//! ratio filled in; with `--compare-ort`, ONNX Runtime on the same input per thread count.

mod common;

use common::{netml, small_model, stdout_of, Table};

#[test]
fn bench_infer_writes_csv_rows_plots_and_baseline_ratios() {
    let dir = tempfile::tempdir().unwrap();
    // The small ResNet-50: the quickest small model on tract.
    let Some(model) = small_model(dir.path(), "resnet50") else {
        return;
    };
    let (csv, svg) = (dir.path().join("b.csv"), dir.path().join("b.svg"));
    let baseline = dir.path().join("torch.csv");
    std::fs::write(
        &baseline,
        "model,batch,precision,ms\nresnet50_small,2,fp32,0.5\n",
    )
    .unwrap();
    let stdout = stdout_of(
        netml()
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
            .arg(&model),
    );
    assert_eq!(stdout.matches("fp16 not supported").count(), 2, "{stdout}");
    assert!(stdout.contains("machine: "), "{stdout}");

    let text = std::fs::read_to_string(&csv).unwrap();
    let t = Table::parse(&text);
    let rows = &t.rows;
    assert_eq!(rows.len(), 2, "one row per measured case:\n{text}");
    for (row, batch) in rows.iter().zip(["1", "2"]) {
        let num = |name: &str| t.num(row, name);
        assert_eq!(t.get(row, "model"), "resnet50_small");
        assert_eq!(
            (t.get(row, "batch"), t.get(row, "precision")),
            (batch, "fp32")
        );
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
    let ratio = t.num(&rows[1], "p50_over_baseline");
    let p50 = t.num(&rows[1], "p50_ms");
    assert!((ratio - p50 / 0.5).abs() < 1e-3 * ratio, "{ratio} vs {p50}");
    assert_eq!(t.get(&rows[0], "baseline_ms"), "");

    for plot in [svg.clone(), dir.path().join("b-latency.svg")] {
        let s = std::fs::read_to_string(&plot).unwrap();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("resnet50_small") && s.contains("batch 2"), "{s}");
    }
}

/// Whether the `onnxruntime` wheel imports; `false` (after saying why) skips a test, unless
/// `NETML_REQUIRE_ORT=1` (CI), which fails it.
fn onnxruntime_wheel() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var("NETML_REQUIRE_ORT").is_ok_and(|v| v == "1") {
        panic!("NETML_REQUIRE_ORT=1 but python3 cannot import onnxruntime");
    }
    if !ok {
        eprintln!("SKIPPED: python3 cannot import onnxruntime (pip install onnxruntime)");
    }
    ok
}

#[test]
fn bench_infer_compares_with_onnx_runtime_per_thread_count() {
    if !onnxruntime_wheel() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = small_model(dir.path(), "resnet50") else {
        return;
    };
    let csv = dir.path().join("b.csv");
    // tract against ONNX Runtime: two engines, so the outputs' agreement means something.
    let stdout = stdout_of(
        netml()
            .args(["bench", "infer", "--backend", "tract", "--batches", "2"])
            .args(["--precision", "fp32", "--threads", "1,2", "--compare-ort"])
            .args(["--runs", "3", "--warmup", "1", "--csv"])
            .arg(&csv)
            .arg(&model),
    );
    assert!(stdout.contains("vs ONNX Runtime"), "{stdout}");
    assert_eq!(stdout.matches("cpu (tract)").count(), 4, "{stdout}");

    let text = std::fs::read_to_string(&csv).unwrap();
    let t = Table::parse(&text);
    assert_eq!(t.rows.len(), 2, "{text}");
    for (row, threads) in t.rows.iter().zip(["1", "2"]) {
        assert_eq!(t.get(row, "threads"), threads);
        let ours = t.num(row, "images_per_s");
        let theirs = t.num(row, "ort_images_per_s");
        assert!(ours > 0.0 && theirs > 0.0, "{row:?}");
        let ratio = t.num(row, "ours_over_ort");
        // Written with 4 decimals.
        assert!(
            (ratio - ours / theirs).abs() <= 1e-4 + 1e-3 * ratio,
            "{row:?}"
        );
        assert!(t.num(row, "ort_rel_l2") < 1e-4, "{row:?}");
    }
}
