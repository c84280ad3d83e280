//! `netml place`: the tables, the CSV, the `netml run` configurations it writes (read back
//! by the pipeline's own parser), `--evaluate` through the device simulator, and the exit
//! status when our placement needs more GPUs than given.

mod common;

use common::{netml, stdout_of, Table};
use netml_pipeline::config::Config;

/// The summary's GPUs per strategy at one rate, from the `GPUs needed` table.
fn gpus_needed(out: &str, strategy: &str) -> usize {
    let summary = out.split("GPUs needed").nth(1).expect("a summary");
    let row = summary
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(strategy))
        .unwrap_or_else(|| panic!("no {strategy} row in {summary}"));
    row.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn writes_configs_the_pipeline_loads_and_beats_one_model_per_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, configs) = (dir.path().join("place.csv"), dir.path().join("configs"));
    let out = stdout_of(
        netml()
            .args(["place", "--rate", "800", "--model-dir", "/srv/models"])
            .arg("--csv")
            .arg(&csv)
            .arg("--write")
            .arg(&configs),
    );
    assert!(
        out.contains("shares modelled (the profile has no share rows"),
        "{out}"
    );
    let (ours, lets, alone) = (
        gpus_needed(&out, "ours"),
        gpus_needed(&out, "gpu-lets"),
        gpus_needed(&out, "one-per-gpu"),
    );
    assert_eq!(alone, 4, "{out}");
    assert!(ours <= lets && ours < alone, "{out}");

    let text = std::fs::read_to_string(&csv).unwrap();
    let t = Table::parse(&text);
    t.assert_rectangular();
    let ours_rows: Vec<_> = t
        .rows
        .iter()
        .filter(|r| t.get(r, "strategy") == "ours")
        .collect();
    for r in &ours_rows {
        assert!(2.0 * t.num(r, "latency_ms") <= t.num(r, "slo_ms"), "{r:?}");
        assert!(t.num(r, "planned_per_s") <= t.num(r, "capacity_per_s") + 1e-3);
        assert_eq!(t.get(r, "shares"), "modelled");
    }

    // One configuration per GPU of our placement, each read by netml run's parser; the
    // instances and shares in them are the CSV's, and every model's rate is placed.
    let mut planned_units = 0u32;
    let mut models = std::collections::BTreeSet::new();
    for g in 0..ours {
        let path = configs.join(format!("gpu{g}.toml"));
        let c = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let used: u32 = c.functions.iter().flat_map(|f| f.shares.iter()).sum();
        assert!(used <= 124, "{}: {used} SMs", path.display());
        for f in &c.functions {
            assert_eq!(f.shares.len(), f.instances);
            assert_eq!(f.target, "gpu:0");
            assert_eq!(
                f.model_file,
                std::path::Path::new("/srv/models").join(format!("{}.onnx", f.name))
            );
            models.insert(f.model);
        }
        planned_units += used;
    }
    assert!(!configs.join(format!("gpu{ours}.toml")).exists());
    assert_eq!(models.len(), 4, "every model placed");
    let csv_units: f64 = ours_rows.iter().map(|r| t.num(r, "share_units")).sum();
    assert_eq!(planned_units as f64, csv_units);
}

#[test]
fn evaluated_placements_meet_the_slo_and_too_few_gpus_is_exit_1() {
    let out = stdout_of(netml().args([
        "place",
        "--rate",
        "300",
        "--evaluate",
        "--duration-s",
        "1",
        "--strategies",
        "gpu-lets,ours",
    ]));
    let summary = out.split("GPUs needed").nth(1).unwrap();
    assert!(summary.contains("attainment"), "{out}");
    for line in summary
        .lines()
        .filter(|l| l.contains(" ours ") || l.contains(" gpu-lets "))
    {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 9 {
            continue; // the "ours: N GPU(s) against ..." line
        }
        let attainment: f64 = cols[7].parse().unwrap();
        assert!(attainment >= 0.99, "{line}");
    }

    let status = netml()
        .args([
            "place",
            "--rate",
            "2000",
            "--gpus",
            "1",
            "--strategies",
            "ours",
        ])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stdout).contains("more than the 1 given"));
    let bad = netml()
        .args(["place", "--function", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nosuch"));
}
