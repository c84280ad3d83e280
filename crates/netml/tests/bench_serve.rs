//! `netml bench serve` briefly (two rates, two policies, the two small seed models): the
//! table, summary and CSV carry their columns, every image sent was answered (ok +
//! overloaded + failed + other = sent), no mbuf leaked, and the plot names each policy. No
//! timing is asserted: a debug build on a shared machine answers what it can.

mod common;

use common::{assert_svg, netml, stdout_of, Table};

#[test]
fn short_run_answers_every_image_without_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("serve.csv");
    let svg = dir.path().join("serve.svg");
    let stdout = stdout_of(
        netml()
            .args([
                "bench",
                "serve",
                "--rates",
                "5,10",
                "--policies",
                "slab,fixed:2",
                "--max-batch",
                "2",
                "--seconds",
                "1",
                "--warmup",
                "0.3",
                "--csv",
            ])
            .arg(&csv)
            .arg("--plot")
            .arg(&svg),
    );
    for needle in [
        "capacity of resnet50_small (model 1)",
        "capacity of mobilenet_v2_small (model 2)",
        "serving path adds <= 20 us CPU per batch",
        "good/s",
        "serve us",
        "SLAB / best other",
        "images lost without a trace: 0",
        "mbufs leaked: 0",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let t = Table::parse(&text);
    t.assert_rectangular();
    assert_eq!(
        t.rows.len(),
        8,
        "2 rates x 2 policies x 2 functions:\n{text}"
    );
    let policies: Vec<&str> = t.rows.iter().map(|r| t.get(r, "policy")).collect();
    assert!(policies.contains(&"slab"), "{text}");
    assert!(policies.contains(&"fixed:2"), "{text}");
    for r in &t.rows {
        let num = |name: &str| t.num(r, name);
        assert!([5.0, 10.0].contains(&num("offered_per_s")), "{r:?}");
        assert_eq!(num("slo_ms"), 50.0, "{r:?}");
        assert_eq!(num("serve_limit_us"), 20.0, "{r:?}");
        assert!(num("capacity_per_s") > 0.0, "{r:?}");
        assert!(num("sent") > 0.0, "{r:?}");
        let answered = num("ok") + num("overloaded") + num("failed") + num("other");
        // A result message the pipeline could not send (the reader had no CPU and the tx
        // ring filled) is counted by it, per case; every other image has its result.
        assert_eq!(answered + num("unanswered"), num("sent"), "{r:?}");
        assert!(num("unanswered") <= num("results_dropped"), "{r:?}");
        assert_eq!(num("leaked_mbufs"), 0.0, "{r:?}");
        assert!(num("goodput_per_s") <= num("ok_per_s"), "{r:?}");
        for name in [
            "attainment",
            "mean_batch",
            "latency_p99_ms",
            "engine_batch_ms",
        ] {
            assert!(num(name) >= 0.0, "{name} in {r:?}");
        }
    }
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert_svg(&plot);
    for name in ["slab", "fixed:2", "offered"] {
        assert!(plot.contains(name), "plot lacks {name}");
    }
}
