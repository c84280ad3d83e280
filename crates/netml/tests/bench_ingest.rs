//! `netml bench ingest --quick`: one CSV row per mode, job form and batch size, with positive
//! figures, and an SVG plot.

use std::process::Command;

#[test]
fn quick_run_writes_a_row_per_mode_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("ingest.csv");
    let svg = dir.path().join("ingest.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_netml"))
        .args(["bench", "ingest", "--quick", "--shape", "3x32x32", "--csv"])
        .arg(&csv)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("NOT counted"), "{stdout}");
    assert!(stdout.contains("memcpy of the same payloads"), "{stdout}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mut seen = Vec::new();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{r:?}");
        for name in [
            "cpu_us_per_image",
            "images_per_s",
            "gb_per_s",
            "latency_p50_us",
            "latency_p99_us",
            "memcpy_us_per_image",
        ] {
            let v: f64 = r[col(name)].parse().unwrap();
            assert!(v > 0.0 && v.is_finite(), "{name} = {v} in {r:?}");
        }
        assert!(r[col("cpu_copy_over_netml")].parse::<f64>().unwrap() > 0.0);
        seen.push((
            r[col("mode")].to_string(),
            r[col("batch")].parse::<usize>().unwrap(),
        ));
    }
    let mut want = Vec::new();
    for m in ["netml", "launch", "cpu-copy"] {
        for row in [m.to_string(), format!("{m}-listed")] {
            for b in [1, 4, 8, 16, 32] {
                want.push((row.clone(), b));
            }
        }
    }
    assert_eq!(seen, want);
    for form in ["strided", "listed"] {
        assert!(
            stdout.contains(&format!("{form:<7} batch 32: cpu-copy / netml")),
            "{stdout}"
        );
    }
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(
        plot.starts_with("<svg") || plot.starts_with("<?xml"),
        "{}",
        &plot[..80.min(plot.len())]
    );
    for m in [
        "netml",
        "launch",
        "cpu-copy",
        "netml-listed",
        "cpu-copy-listed",
    ] {
        assert!(plot.contains(m), "plot lacks {m}");
    }
}
