//! `netml bench pipeline` on small images: one CSV row per mode x rate, every case answered
//! (status Ok, CRC right), no mbuf leaked, and a plot naming each mode and the y = x line.

use std::process::Command;

#[test]
fn short_run_answers_every_case_without_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("pipeline.csv");
    let svg = dir.path().join("pipeline.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_netml"))
        .current_dir(dir.path())
        .args([
            "bench",
            "pipeline",
            "--modes",
            "netml,cpu-copy",
            "--rates",
            "200",
            "--seconds",
            "1",
            "--warmup",
            "0.2",
            "--shape",
            "1x3x32x32",
            "--csv",
        ])
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
    assert!(
        stdout.contains("host threads stand in for the GPU"),
        "{stdout}"
    );
    assert!(stdout.contains("limit, same run"), "{stdout}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let modes: Vec<&str> = rows.iter().map(|r| r[col("mode")]).collect();
    assert_eq!(modes, ["netml", "cpu-copy"], "{text}");
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{r:?}");
        let num = |name: &str| r[col(name)].parse::<f64>().unwrap();
        assert_eq!(num("offered_per_s"), 200.0);
        assert!(num("answered_per_s") > 0.0, "{r:?}");
        // Paced at 200/s, a 12-fragment image is far below any limit: nearly all answered.
        assert!(num("answered_per_s") > 0.5 * num("sent_per_s"), "{r:?}");
        assert_eq!(num("leaked_mbufs"), 0.0, "{r:?}");
        assert_eq!(num("bad_results"), 0.0, "{r:?}");
        for name in [
            "sink_cpu_us_per_image",
            "rx_cpu_us_per_image",
            "latency_p50_us",
        ] {
            let v = num(name);
            assert!(v > 0.0 && v.is_finite(), "{name} = {v} in {r:?}");
        }
        assert!(num("latency_p99_us") >= num("latency_p50_us"), "{r:?}");
    }
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") || plot.starts_with("<?xml"));
    for name in ["netml", "cpu-copy", "offered"] {
        assert!(plot.contains(name), "plot lacks {name}");
    }
}
