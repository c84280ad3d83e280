//! `netml run` on a net_pcap virtual device: the rx queue reads a pktgen capture, results
//! (and forwarded traffic) are written to tx pcap files.
//!
//! Every counter of the final report is checked exactly against what pktgen says it put
//! into the capture (lost, duplicated, reordered, truncated, corrupted fragments and images
//! that never complete), the mbuf pool must be back where it started, and the result
//! messages in the tx capture are matched against pktgen's manifest: one per intact image,
//! with the sender's CRC-32, addressed back to the image's source.
//!
//! net_pcap gives one tx queue per `tx_pcap=` argument. The pipeline asks for one tx queue
//! per rx queue (for the NF chain's forwarding) plus one for results, so these runs pass two
//! `tx_pcap=` files and look for results in both.

use netml_e2e::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::Path;

/// Runs `netml run` on net_pcap0 reading `input` and writing the tx queues to `tx`, with
/// `args` between the port's and `--until-idle-ms 1500`, and returns its report. The
/// configuration's verifier timeout cannot expire while net_pcap reads the file, however
/// slow this machine is: incomplete images are evicted only at shutdown.
fn run_pcap(dir: &Path, input: &Path, tx: &[&Path], args: &[&str]) -> Value {
    let cfg = dir.join("netml.toml");
    std::fs::write(&cfg, "[verifier]\ntimeout_ms = 60000\n").unwrap();
    let mut vdev = format!("rx_pcap={}", input.display());
    for t in tx {
        vdev.push_str(&format!(",tx_pcap={}", t.display()));
    }
    let mut a = vec![
        OsStr::new("--config"),
        cfg.as_os_str(),
        OsStr::new("--port"),
        OsStr::new("net_pcap0"),
        OsStr::new("--vdev-args"),
        OsStr::new(&vdev),
    ];
    a.extend(args.iter().map(OsStr::new));
    a.extend([OsStr::new("--until-idle-ms"), OsStr::new("1500")]);
    netml_run(dir, "report", &a)
}

#[test]
fn faulty_capture_is_counted_exactly_and_every_intact_image_is_answered() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let t = faulty_traffic(dir.path(), "160");
    let (tx0, tx1) = (dir.path().join("tx0.pcap"), dir.path().join("tx1.pcap"));
    let report = run_pcap(dir.path(), &t.pcap, &[&tx0, &tx1], &[]);
    assert_report_matches(&report, &t, 0, false);
    assert!(
        t.incomplete_images_seen() > 0,
        "some images should be evicted"
    );
    assert_eq!(n(&report["total"]["verifier"]["evicted_pressure"]), 0);

    // The tx captures hold the results and nothing else.
    let results = results_in_pcaps(&[&tx0, &tx1]);
    let frames = read_pcap(&tx0).len() + read_pcap(&tx1).len();
    assert_eq!(frames, results.len(), "tx captures hold only results");
    let v = &report["total"]["verifier"];
    let evicted = n(&v["evicted_timeout"]) + n(&v["evicted_pressure"]);
    assert_eq!(
        results.len() as u64,
        n(&t.summary["images_intact"]) + evicted,
        "one result per intact image, one incomplete result per evicted image"
    );
    assert_results_match_manifest(&results, &t.manifest);
}

fn lossy_traffic(dir: &Path, seed: &str) -> Traffic {
    Traffic::generate(
        dir,
        "lossy",
        &[
            "--synthetic",
            "1x3x64x64",
            "--count",
            "100",
            "--flows",
            "2",
            "--model",
            "3",
            "--seed",
            seed,
            "--loss",
            "0.003",
            "--dup",
            "0.03",
            "--reorder",
            "16",
            "--truncate",
            "0.002",
            "--corrupt",
            "0.002",
        ],
    )
}

#[test]
fn other_traffic_is_dropped_by_the_chain() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let t = lossy_traffic(dir.path(), "11");
    let extra = other_frames(40);
    let input = dir.path().join("mixed.pcap");
    mix_into(&t.pcap, &extra, &input);
    let (tx0, tx1) = (dir.path().join("tx0.pcap"), dir.path().join("tx1.pcap"));
    let report = run_pcap(
        dir.path(),
        &input,
        &[&tx0, &tx1],
        &["--queues", "1", "--chain", "drop"],
    );
    assert_report_matches(&report, &t, extra.len() as u64, false);
    assert_eq!(report["workers"].as_array().unwrap().len(), 1);
    assert_eq!(
        n(&report["workers"][0]["chain_dropped"]),
        extra.len() as u64
    );
    let results = results_in_pcaps(&[&tx0, &tx1]);
    let frames = read_pcap(&tx0).len() + read_pcap(&tx1).len();
    assert_eq!(frames, results.len(), "dropped traffic must not be sent");
    assert_results_match_manifest(&results, &t.manifest);
}

#[test]
fn other_traffic_is_forwarded_unchanged_by_the_chain() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let t = lossy_traffic(dir.path(), "12");
    let extra = other_frames(24);
    let input = dir.path().join("mixed.pcap");
    mix_into(&t.pcap, &extra, &input);
    let (fwd, out) = (dir.path().join("fwd.pcap"), dir.path().join("out.pcap"));
    let report = run_pcap(dir.path(), &input, &[&fwd, &out], &["--chain", "forward"]);
    assert_report_matches(&report, &t, extra.len() as u64, true);
    // Tx queue 0 (the worker's) carries the other traffic, byte for byte and in order;
    // tx queue 1 carries the results.
    let forwarded: Vec<Vec<u8>> = read_pcap(&fwd).into_iter().map(|r| r.data).collect();
    assert_eq!(forwarded, extra, "forwarded frames differ from the input's");
    let results = results_in_pcaps(&[&out]);
    assert_eq!(read_pcap(&out).len(), results.len());
    assert_results_match_manifest(&results, &t.manifest);
}

/// The documented invocation, one rx and one tx capture: with the chain dropping, the
/// pipeline needs no forwarding tx queue, only the results'.
#[test]
fn one_tx_capture_is_enough_when_the_chain_drops() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let t = lossy_traffic(dir.path(), "13");
    let out = dir.path().join("out.pcap");
    let report = run_pcap(dir.path(), &t.pcap, &[&out], &[]);
    assert_report_matches(&report, &t, 0, false);
    let results = results_in_pcaps(&[&out]);
    assert_eq!(read_pcap(&out).len(), results.len());
    assert_results_match_manifest(&results, &t.manifest);
}
