//! The receiver's report for a serving pipeline: answers per status and per model, latency
//! of `ok` answers, SLO attainment and top-1 checks against expected classes, from literal
//! result messages with exact arrival times (no sockets).

mod common;

use common::result_message;
use netml_pktgen::expected::Expected;
use netml_pktgen::manifest::Entry;
use netml_pktgen::recv::{Arrival, Matcher, Report};
use netml_pktgen::slo::Slo;
use netml_wire::result::{self, Status, STAGES};
use std::net::SocketAddr;

const SRC: &str = "10.0.0.1:40000";
/// Sender timestamp of every image; arrivals are `T0 + latency`.
const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn src() -> SocketAddr {
    SRC.parse().unwrap()
}

fn entry(model: u8, image: u32, intact: bool, expected_class: Option<u32>) -> Entry {
    Entry {
        model,
        image,
        src: src(),
        crc32: 0x1000 + image,
        fragments: 3,
        intact,
        sender_timestamp: T0,
        input: Some(format!("synthetic#{image}")),
        expected_class,
    }
}

/// One result as it arrives `latency_ms` after `T0`.
struct Res {
    model: u8,
    image: u32,
    status: Status,
    arrived: u16,
    top1: Option<u32>,
    /// Echoed timestamp (0 for an `incomplete` image without fragment 0).
    ts: u64,
    latency_ms: u64,
}

fn res(model: u8, image: u32, status: Status, top1: Option<u32>, latency_ms: u64) -> Res {
    Res {
        model,
        image,
        status,
        arrived: 0,
        top1,
        ts: T0,
        latency_ms,
    }
}

fn arrival(r: &Res) -> Arrival {
    let ok = r.status == Status::Ok;
    let data = result_message(result::Repr {
        model: r.model,
        image: r.image,
        status: r.status,
        arrived: r.arrived,
        // The pipeline computes a CRC only for `ok` images (§9).
        crc32: if ok { 0x1000 + r.image } else { 0 },
        sender_timestamp: r.ts,
        stages: [0; STAGES],
        top_k: r
            .top1
            .map(|c| vec![(c, 0.5), (c + 1, 0.25)])
            .unwrap_or_default(),
    });
    Arrival {
        local: src(),
        peer: "10.0.0.2:9000".parse().unwrap(),
        recv_ns: T0 + r.latency_ms * MS,
        data,
    }
}

/// Model 1: four `ok` answers (two in time, one late; one match, one mismatch, one of each
/// unchecked kind) and one `overloaded`. Model 2: every other status, a lost image, an
/// `incomplete` damaged image without fragment 0, and a damaged image answered `ok`.
fn serving_report(slo: &[&str]) -> Report {
    let manifest = vec![
        entry(1, 0, true, Some(10)),
        entry(1, 1, true, Some(11)),
        entry(1, 2, true, Some(12)),
        entry(1, 3, true, Some(13)),
        entry(1, 4, true, None),
        entry(2, 0, true, None),
        entry(2, 1, true, None),
        entry(2, 2, false, None),
        entry(2, 3, true, None),
        entry(2, 4, true, None),
        entry(2, 5, false, None),
    ];
    let results = [
        res(1, 0, Status::Ok, Some(10), 2),
        res(1, 1, Status::Ok, Some(99), 8),
        res(1, 2, Status::Ok, Some(12), 15),
        res(1, 3, Status::Overloaded, None, 1),
        res(1, 4, Status::Ok, Some(7), 10),
        res(2, 0, Status::UnknownModel, None, 1),
        Res {
            arrived: 2,
            ts: 0,
            ..res(2, 2, Status::Incomplete, None, 503)
        },
        res(2, 3, Status::Failed, None, 30),
        res(2, 4, Status::ShapeMismatch, None, 1),
        res(2, 5, Status::Ok, Some(1), 3),
    ];
    let mut m = Matcher::new(manifest);
    for r in &results {
        m.add(&arrival(r));
    }
    let mut report = m.into_report();
    report.slo = Slo::parse(slo).unwrap();
    report
}

#[test]
fn statuses_latency_and_slo_per_model() {
    let report = serving_report(&["1=10", "50"]);
    let models = report.models();
    assert_eq!(models.len(), 2);
    let (m1, m2) = (&models[0], &models[1]);

    assert_eq!(
        (m1.model, m1.sent, m1.intact, m1.answered, m1.lost),
        (1, 5, 5, 5, 0)
    );
    assert_eq!(m1.status, [4, 1, 0, 0, 0, 0]);
    let l = m1.latency_ok.unwrap();
    assert_eq!((l.count, l.p50, l.max), (4, 8 * MS as i64, 15 * MS as i64));
    // 2, 8 and 10 ms are within 10 ms (inclusive), 15 ms is not; the overloaded image counts
    // among those sent, not among the ok answers.
    assert_eq!((m1.slo_ms, m1.within_slo), (Some(10.0), 3));
    assert_eq!(m1.attainment(), Some(3.0 / 5.0));
    assert_eq!(m1.attainment_ok(), Some(3.0 / 4.0));

    assert_eq!(
        (m2.model, m2.sent, m2.intact, m2.answered, m2.lost),
        (2, 6, 4, 5, 1)
    );
    assert_eq!(m2.status, [1, 0, 1, 1, 1, 1]);
    assert_eq!(m2.count(Status::Incomplete), 1);
    assert_eq!((m2.slo_ms, m2.within_slo), (Some(50.0), 1));
    assert_eq!(m2.attainment(), Some(1.0 / 6.0));

    // Overall: the echoed 0 of the incomplete image falls back to the manifest's timestamp;
    // its CRC (0, not computed) is no mismatch; the damaged image answered ok is flagged.
    let incomplete = report
        .answers
        .iter()
        .find(|a| a.status == Status::Incomplete)
        .unwrap();
    assert_eq!(incomplete.arrived, 2);
    assert_eq!(incomplete.latency_ns, 503 * MS as i64);
    assert_eq!(incomplete.crc_match, None);
    assert_eq!(report.crc_mismatches(), 0);
    assert_eq!(report.answered_damaged(), 1);
    assert_eq!(report.status_counts(), [5, 1, 1, 1, 1, 1]);
    assert_eq!(report.lost(), vec![6]);
}

#[test]
fn top1_against_expected_classes() {
    let report = serving_report(&[]);
    let models = report.models();
    let t = &models[0].top1;
    assert_eq!((t.matches, t.mismatches, t.unchecked), (2, 1, 1));
    assert_eq!(t.accuracy(), Some(2.0 / 3.0));
    assert_eq!(t.first_mismatches.len(), 1);
    let mm = &t.first_mismatches[0];
    assert_eq!(
        (report.manifest[mm.entry].image, mm.expected, mm.got),
        (1, 11, (99, 0.5))
    );
    // Model 2 has no expected classes: its one ok answer is unchecked.
    let t2 = &models[1].top1;
    assert_eq!(
        (t2.matches, t2.mismatches, t2.unchecked, t2.accuracy()),
        (0, 0, 1, None)
    );
    // No SLO given: no attainment.
    assert_eq!((models[0].slo_ms, models[0].attainment()), (None, None));
}

#[test]
fn json_has_every_status_and_the_model_figures() {
    let v: serde_json::Value = serde_json::from_str(&serving_report(&["1=10"]).to_json()).unwrap();
    // The fields tests and scripts read before serving are still there.
    for k in [
        "expected",
        "matched",
        "lost",
        "crc_mismatches",
        "answered_damaged",
        "latency_ns",
    ] {
        assert!(!v[k].is_null(), "{k}: {v:#}");
    }
    assert_eq!(
        (v["matched"].as_u64(), v["lost"].as_u64()),
        (Some(10), Some(1))
    );
    assert_eq!(v["status"]["incomplete"], 1);
    assert_eq!(v["status"]["shape_mismatch"], 1);
    let m1 = &v["models"][0];
    assert_eq!(m1["model"], 1);
    assert_eq!(m1["status"].as_object().unwrap().len(), 6);
    assert_eq!(m1["status"]["ok"], 4);
    assert_eq!(m1["slo_ms"], 10.0);
    assert_eq!(m1["within_slo"], 3);
    assert_eq!(m1["slo_attainment"], 0.6);
    assert_eq!(m1["slo_attainment_ok"], 0.75);
    assert_eq!(m1["latency_ok_ns"]["p50"], 8 * MS);
    assert_eq!(m1["top1"]["matches"], 2);
    assert_eq!(m1["top1"]["first_mismatches"][0]["expected"], 11);
    assert_eq!(m1["top1"]["first_mismatches"][0]["class"], 99);
    let m2 = &v["models"][1];
    assert!(m2["slo_ms"].is_null() && m2["slo_attainment"].is_null());
    let answers = v["answers"].as_array().unwrap();
    let inc = answers
        .iter()
        .find(|a| a["status"] == "incomplete")
        .unwrap();
    assert_eq!(
        (inc["arrived"].as_u64(), inc["crc_match"].is_null()),
        (Some(2), true)
    );
    assert_eq!(answers[0]["expected_class"], 10);
}

#[test]
fn text_names_statuses_arrived_and_mismatches() {
    let text = serving_report(&["1=10"]).to_text();
    for want in [
        "status=incomplete arrived=2/3 top1=- crc=-",
        "top1=99 (0.5000) expected=11 crc=ok",
        "status: ok 5, overloaded 1, unknown_model 1, failed 1, shape_mismatch 1, incomplete 1",
        "model 1: 5 sent (5 intact), 5 answered, 0 lost; ok 4, overloaded 1,",
        "  slo 10 ms: 3 ok within it = 60.0% of 5 sent, 75.0% of 4 ok",
        "  top-1: 2 match, 1 mismatch, 1 unchecked (accuracy 66.7% of 3 checked)",
        "    mismatch: id=1 src=10.0.0.1:40000 expected 11, got 99 (0.5000)",
        "model 2: 6 sent (4 intact), 5 answered, 1 lost;",
        "  slo: none given (--slo-ms)",
        "1 for damaged images",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

#[test]
fn first_mismatches_are_capped() {
    let manifest: Vec<Entry> = (0..9).map(|i| entry(3, i, true, Some(1))).collect();
    let mut m = Matcher::new(manifest);
    for i in 0..9 {
        m.add(&arrival(&res(3, i, Status::Ok, Some(2), 1)));
    }
    let report = m.into_report();
    let t = &report.models()[0].top1;
    assert_eq!(t.mismatches, 9);
    assert_eq!(
        t.first_mismatches.len(),
        netml_pktgen::report::FIRST_MISMATCHES
    );
    // In arrival order.
    assert_eq!(report.manifest[t.first_mismatches[0].entry].image, 0);
}

#[test]
fn expected_csv_fills_the_manifest_before_matching() {
    let mut manifest = vec![entry(1, 0, true, None), entry(1, 1, true, Some(5))];
    let x = Expected::parse("model,input,class\n1,synthetic#0,10\n1,synthetic#1,11\n").unwrap();
    assert_eq!(x.apply(&mut manifest).filled, 2);
    // The CSV replaces the manifest's own value.
    assert_eq!(manifest[1].expected_class, Some(11));
    let mut m = Matcher::new(manifest);
    m.add(&arrival(&res(1, 0, Status::Ok, Some(10), 1)));
    m.add(&arrival(&res(1, 1, Status::Ok, Some(11), 1)));
    let t = &m.into_report().models()[0].top1;
    assert_eq!((t.matches, t.mismatches), (2, 0));
}
