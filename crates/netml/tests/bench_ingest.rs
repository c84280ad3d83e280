//! `netml bench ingest --quick`: one CSV row per mode, job form and batch size, with positive
//! figures, and an SVG plot.

mod common;

use common::{assert_svg, netml, stdout_of, Table};

#[test]
fn quick_run_writes_a_row_per_mode_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("ingest.csv");
    let svg = dir.path().join("ingest.svg");
    let stdout = stdout_of(
        netml()
            .args(["bench", "ingest", "--quick", "--shape", "3x32x32", "--csv"])
            .arg(&csv)
            .arg("--plot")
            .arg(&svg),
    );
    assert!(stdout.contains("NOT counted"), "{stdout}");
    assert!(stdout.contains("memcpy of the same payloads"), "{stdout}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let t = Table::parse(&text);
    t.assert_rectangular();
    let mut seen = Vec::new();
    for r in &t.rows {
        for name in [
            "cpu_us_per_image",
            "images_per_s",
            "gb_per_s",
            "latency_p50_us",
            "latency_p99_us",
            "memcpy_us_per_image",
        ] {
            let v = t.num(r, name);
            assert!(v > 0.0 && v.is_finite(), "{name} = {v} in {r:?}");
        }
        assert!(t.num(r, "cpu_copy_over_netml") > 0.0);
        seen.push((
            t.get(r, "mode").to_string(),
            t.get(r, "batch").parse::<usize>().unwrap(),
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
    assert_svg(&plot);
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
