//! `netml bench rx --rounds`: the pipeline's worker and the floor alternate, each round is
//! reported with its own ratio, the verdict is the median round's, and the CSV has one row
//! per receiver and round, the plot a bar group per round; every counter stays clean (no
//! drop, no leak).

mod common;

use common::{assert_svg, netml, stdout_of, Table};

#[test]
fn rounds_alternate_and_the_verdict_is_the_median_round() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("rx.csv");
    let plot = dir.path().join("rx.svg");
    let stdout = stdout_of(
        netml()
            .args([
                "bench",
                "rx",
                "--seconds",
                "0.3",
                "--warmup",
                "0.1",
                "--rounds",
                "3",
            ])
            .args(["--shape", "1x3x32x32", "--ring", "1024", "--csv"])
            .arg(&csv)
            .arg("--plot")
            .arg(&plot),
    );
    for line in [
        "rounds (alternating, --seconds each):",
        "  round 1: rx ",
        "  round 2: rx ",
        "  round 3: rx ",
        "netml vs floor (median of 3 rounds): ",
        "mbufs leaked 0",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }

    let text = std::fs::read_to_string(&csv).unwrap();
    let t = Table::parse(&text);
    t.assert_rectangular();
    let modes: Vec<&str> = t.rows.iter().map(|r| t.get(r, "mode")).collect();
    assert_eq!(
        modes,
        ["rx-no-huge", "floor-no-huge"].repeat(3),
        "one row per receiver and round, in the order they ran"
    );
    let mut ratios = Vec::new();
    for pair in t.rows.chunks(2) {
        let (rx, floor) = (&pair[0], &pair[1]);
        let ratio = t.num(rx, "vs_floor");
        let expected = t.num(rx, "ns_per_packet") / t.num(floor, "ns_per_packet");
        assert!(
            (ratio - expected).abs() <= 0.01 * expected,
            "a round's ratio is its own: {ratio} vs {expected}"
        );
        assert_eq!(t.get(floor, "vs_floor"), "", "the ratio is on the rx row");
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("netml vs floor (median of 3 rounds): "))
        .unwrap();
    let shown: f64 = verdict
        .split(" = ")
        .nth(1)
        .and_then(|r| r.split("x the floor").next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no ratio in {verdict}"));
    assert!(
        (shown - ratios[1]).abs() <= 0.011,
        "the verdict is the median round ({ratios:?}): {verdict}"
    );

    // The plot: per round, a bar for each receiver and one for the target, labelled with
    // the round's ratio.
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert_svg(&svg);
    assert!(svg.trim_end().ends_with("</svg>"));
    for (k, pair) in t.rows.chunks(2).enumerate() {
        let start = format!(">{} (", k + 1);
        let shown: f64 = svg
            .split(&start)
            .nth(1)
            .and_then(|r| r.split("x)<").next())
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no label {start:?}..x)< in the plot"));
        let ratio = t.num(&pair[0], "vs_floor");
        assert!(
            (shown - ratio).abs() <= 0.006,
            "round {}: {shown} vs {ratio}",
            k + 1
        );
    }
    for name in ["netml worker", "floor", "target (1.5x floor)"] {
        assert_eq!(
            svg.matches(&format!("<title>{name}: ")).count(),
            3,
            "a {name} bar per round"
        );
    }
}
