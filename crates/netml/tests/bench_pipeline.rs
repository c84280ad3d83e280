//! `netml bench pipeline` on small images: one CSV row per mode x rate, every case answered
//! (status Ok, CRC right), no mbuf leaked, and a plot naming each mode and the y = x line.

mod common;

use common::{assert_svg, netml, stdout_of, Table};

#[test]
fn short_run_answers_every_case_without_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("pipeline.csv");
    let svg = dir.path().join("pipeline.svg");
    let stdout = stdout_of(
        netml()
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
            .arg(&svg),
    );
    assert!(
        stdout.contains("host threads stand in for the GPU"),
        "{stdout}"
    );
    assert!(stdout.contains("limit, same run"), "{stdout}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let t = Table::parse(&text);
    t.assert_rectangular();
    let modes: Vec<&str> = t.rows.iter().map(|r| t.get(r, "mode")).collect();
    assert_eq!(modes, ["netml", "cpu-copy"], "{text}");
    for r in &t.rows {
        let num = |name: &str| t.num(r, name);
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
    assert_svg(&plot);
    for name in ["netml", "cpu-copy", "offered"] {
        assert!(plot.contains(name), "plot lacks {name}");
    }
}
