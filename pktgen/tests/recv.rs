//! Receive mode: result messages sent over loopback by the test itself, and a full
//! send-and-collect run against a tiny fake pipeline.

mod common;

use common::{pktgen, result_message, scratch};
use netml_pktgen::manifest::Entry;
use netml_pktgen::pace::realtime_ns;
use netml_pktgen::recv::{self, Listener};
use netml_wire::checksum::tensor_crc32;
use netml_wire::fragment;
use netml_wire::result::{self, Status, STAGES};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An `ok` result with `top` first.
fn result_bytes(model: u8, image: u32, crc32: u32, ts: u64, top: (u32, f32)) -> Vec<u8> {
    result_message(result::Repr {
        model,
        image,
        status: Status::Ok,
        arrived: 0,
        crc32,
        sender_timestamp: ts,
        stages: [0; STAGES],
        top_k: vec![top, (1, 0.01)],
    })
}

/// A result with another status: no top-k, no CRC (docs/protocol.md §9).
fn status_bytes(model: u8, image: u32, status: Status, arrived: u16, ts: u64) -> Vec<u8> {
    result_message(result::Repr {
        model,
        image,
        status,
        arrived,
        crc32: 0,
        sender_timestamp: ts,
        stages: [0; STAGES],
        top_k: Vec::new(),
    })
}

fn entry(model: u8, image: u32, src: SocketAddr, crc32: u32, intact: bool, ts: u64) -> Entry {
    Entry {
        model,
        image,
        src,
        crc32,
        fragments: 3,
        intact,
        sender_timestamp: ts,
        input: None,
        expected_class: None,
    }
}

#[test]
fn results_are_matched_by_image_and_flow() {
    // Two "flow" sockets: image ids repeat across flows, the socket tells them apart.
    let flow_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let flow_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (a, b) = (flow_a.local_addr().unwrap(), flow_b.local_addr().unwrap());
    let ts = realtime_ns() - 2_000_000;
    let manifest = vec![
        entry(1, 7, a, 0xaaaa, true, ts),
        entry(1, 7, b, 0xbbbb, true, ts),
        entry(2, 8, a, 0xcccc, true, ts),  // never answered: lost
        entry(2, 9, a, 0xdddd, false, ts), // damaged on purpose: not lost
    ];
    let listener = Listener::spawn(vec![flow_a, flow_b]).unwrap();
    let pipeline = UdpSocket::bind("127.0.0.1:0").unwrap();
    pipeline
        .send_to(&result_bytes(1, 7, 0xbbbb, ts, (281, 0.75)), b)
        .unwrap();
    pipeline
        .send_to(&result_bytes(1, 7, 0xaaaa, ts, (5, 0.5)), a)
        .unwrap();
    pipeline
        .send_to(&result_bytes(1, 7, 0xaaaa, ts, (5, 0.5)), a)
        .unwrap(); // duplicate
    pipeline
        .send_to(&result_bytes(3, 1, 0, ts, (0, 0.0)), a)
        .unwrap(); // unexpected
    pipeline.send_to(b"garbage", a).unwrap(); // malformed
    let report = recv::collect(
        &listener,
        manifest,
        Instant::now() + Duration::from_millis(500),
        Duration::ZERO,
    );
    listener.stop();

    assert_eq!(report.answers.len(), 2);
    let by_entry: HashMap<usize, &recv::Answer> =
        report.answers.iter().map(|x| (x.entry, x)).collect();
    assert_eq!(by_entry[&0].top1, Some((5, 0.5)));
    assert_eq!(by_entry[&1].top1, Some((281, 0.75)));
    assert!(report
        .answers
        .iter()
        .all(|x| x.crc_match == Some(true) && x.status == Status::Ok));
    assert_eq!(report.lost(), vec![2]);
    assert_eq!(
        (report.duplicates, report.unexpected, report.malformed),
        (1, 1, 1)
    );
    let l = report.latency().unwrap();
    assert_eq!(l.count, 2);
    assert!(l.p50 >= 2_000_000 && l.max < 5_000_000_000, "{l:?}");
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(
        (
            v["matched"].as_u64(),
            v["lost"].as_u64(),
            v["expected"].as_u64()
        ),
        (Some(2), Some(1), Some(3))
    );
    assert_eq!(v["lost_images"][0]["image"], 8);
    assert!(report.to_text().contains("1 lost"));
}

#[test]
fn crc_mismatch_is_reported() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let listener = Listener::spawn(vec![s]).unwrap();
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(&result_bytes(0, 0, 0x1234, realtime_ns(), (3, 0.9)), addr)
        .unwrap();
    let report = recv::collect(
        &listener,
        vec![entry(0, 0, addr, 0x4321, true, 0)],
        Instant::now() + Duration::from_secs(5),
        Duration::ZERO,
    );
    listener.stop();
    assert_eq!((report.answers.len(), report.crc_mismatches()), (1, 1));
}

/// A free loopback address to listen on.
fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Runs `netml-pktgen recv --listen LISTEN ARGS`, sending `datagrams` to it (again and
/// again: it may not be listening yet) until it exits, within 10 s.
fn run_recv(listen: SocketAddr, args: &[&str], datagrams: &[Vec<u8>]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netml-pktgen"))
        .args(["recv", "--listen", &listen.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = Instant::now();
    loop {
        for d in datagrams {
            tx.send_to(d, listen).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let exited = child.try_wait().unwrap().is_some();
        if exited || start.elapsed() > Duration::from_secs(10) {
            break child.wait_with_output().unwrap();
        }
    }
}

/// Parses the JSON `recv` printed, after checking it succeeded.
fn recv_json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn recv_subcommand_prints_json() {
    let dir = scratch("recv-cli");
    let listen = free_addr();
    let man = dir.join("m.jsonl");
    let ts = realtime_ns();
    let lines: Vec<String> = (0..3)
        .map(|i| entry(1, i, listen, 100 + i, true, ts).to_json())
        .collect();
    std::fs::write(&man, lines.join("\n") + "\n").unwrap();
    let results: Vec<Vec<u8>> = (0..3)
        .map(|i| result_bytes(1, i, 100 + i, ts, (i, 0.5)))
        .collect();
    let out = run_recv(
        listen,
        &[
            "--manifest",
            man.to_str().unwrap(),
            "--timeout",
            "10",
            "--json",
        ],
        &results,
    );
    let v = recv_json(&out);
    assert_eq!(
        (
            v["matched"].as_u64(),
            v["lost"].as_u64(),
            v["crc_mismatches"].as_u64()
        ),
        (Some(3), Some(0), Some(0))
    );
    assert_eq!(v["answers"].as_array().unwrap().len(), 3);
    assert!(v["latency_ns"]["p99"].as_i64().unwrap() >= 0);
}

/// `--slo-ms` and `--expected` end to end: every status of §9, two models, a damaged image
/// answered `incomplete` (so that every image is answered and `recv` stops at once).
#[test]
fn recv_subcommand_reports_statuses_slo_and_expected_classes() {
    let dir = scratch("recv-serving");
    let listen = free_addr();
    let ts = realtime_ns();
    let mut manifest: Vec<Entry> = (0..6)
        .map(|i| entry(1 + (i % 2) as u8, i, listen, 100 + i, i != 5, ts))
        .collect();
    manifest[0].expected_class = Some(7); // from the manifest; the CSV overrides it
    let man = dir.join("m.jsonl");
    let lines: Vec<String> = manifest.iter().map(Entry::to_json).collect();
    std::fs::write(&man, lines.join("\n") + "\n").unwrap();
    let csv = dir.join("expected.csv");
    std::fs::write(&csv, "model,image,class\n1,0,40\n1,2,41\n2,9,1\n").unwrap();
    let results = vec![
        result_bytes(1, 0, 100, ts, (40, 0.9)), // model 1: ok, match
        result_bytes(2, 1, 101, ts, (3, 0.9)),  // model 2: ok, unchecked
        result_bytes(1, 2, 102, ts, (8, 0.9)),  // model 1: ok, mismatch
        status_bytes(2, 3, Status::Overloaded, 0, ts), // model 2
        status_bytes(1, 4, Status::ShapeMismatch, 0, ts), // model 1
        status_bytes(2, 5, Status::Incomplete, 2, 0), // model 2, damaged
    ];
    let out = run_recv(
        listen,
        &[
            "--manifest",
            man.to_str().unwrap(),
            "--expected",
            csv.to_str().unwrap(),
            "--slo-ms",
            "60000",
            "--slo-ms",
            "2=0.001",
            "--timeout",
            "10",
            "--json",
        ],
        &results,
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("1 rows of") && err.contains("match no image"),
        "{err}"
    );
    let v = recv_json(&out);
    assert_eq!(
        (v["matched"].as_u64(), v["lost"].as_u64()),
        (Some(6), Some(0))
    );
    assert_eq!(v["answered_damaged"], 0);
    assert_eq!(v["status"]["ok"], 3);
    assert_eq!(v["status"]["incomplete"], 1);
    let (m1, m2) = (&v["models"][0], &v["models"][1]);
    assert_eq!(
        (m1["model"].as_u64(), m1["sent"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(m1["status"]["shape_mismatch"], 1);
    assert_eq!(m1["slo_ms"], 60000.0);
    assert_eq!(m1["within_slo"], 2);
    assert_eq!(m1["slo_attainment_ok"], 1.0);
    assert_eq!(m1["top1"]["matches"], 1);
    assert_eq!(m1["top1"]["mismatches"], 1);
    assert_eq!(m1["top1"]["first_mismatches"][0]["expected"], 41);
    // Nothing comes back within a microsecond.
    assert_eq!(
        (m2["slo_ms"].as_f64(), m2["within_slo"].as_u64()),
        (Some(0.001), Some(0))
    );
    assert_eq!(m2["slo_attainment"], 0.0);
    assert_eq!(m2["status"]["overloaded"], 1);
    assert_eq!(m2["top1"]["unchecked"], 1);
    let inc = v["answers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == "incomplete")
        .unwrap();
    assert_eq!(inc["arrived"], 2);
    assert!(
        inc["latency_ns"].as_i64().unwrap() >= 0,
        "manifest time used: {inc}"
    );
}

#[test]
fn recv_refuses_a_bad_expected_file_or_slo() {
    let dir = scratch("recv-bad-args");
    let man = dir.join("m.jsonl");
    std::fs::write(&man, entry(1, 0, free_addr(), 1, true, 1).to_json() + "\n").unwrap();
    let csv = dir.join("expected.csv");
    std::fs::write(&csv, "model,image,class\n1,0,3\n1,zero,3\n").unwrap();
    let listen = free_addr().to_string();
    let base = [
        "recv",
        "--listen",
        &listen,
        "--manifest",
        man.to_str().unwrap(),
    ];
    let out = common::pktgen_raw(&[&base[..], &["--expected", csv.to_str().unwrap()]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("{}: line 3: bad image \"zero\"", csv.display())),
        "{err}"
    );
    let out = common::pktgen_raw(&[&base[..], &["--slo-ms", "1=-5"]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--slo-ms"));
}

#[test]
fn collect_lingers_for_the_incomplete_answers_of_damaged_images() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let listener = Listener::spawn(vec![s]).unwrap();
    let ts = realtime_ns();
    let manifest = vec![
        entry(1, 0, addr, 10, true, ts),
        entry(1, 1, addr, 11, false, ts),
        entry(1, 2, addr, 12, false, ts),
    ];
    // The intact image is answered at once; one damaged image is evicted (and answered) a
    // little later, the other never.
    let pipeline = UdpSocket::bind("127.0.0.1:0").unwrap();
    pipeline
        .send_to(&result_bytes(1, 0, 10, ts, (3, 0.5)), addr)
        .unwrap();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        pipeline
            .send_to(&status_bytes(1, 1, Status::Incomplete, 2, ts), addr)
            .unwrap();
    });
    let start = Instant::now();
    let linger = Duration::from_millis(800);
    let report = recv::collect(&listener, manifest, start + Duration::from_secs(20), linger);
    let waited = start.elapsed();
    late.join().unwrap();
    listener.stop();
    assert_eq!(report.answers.len(), 2);
    assert_eq!(report.answers[1].status, Status::Incomplete);
    assert_eq!(report.answered_damaged(), 0);
    assert!(
        waited >= linger && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}

/// Reassembles fragments per (source, model, image) and answers every complete image with
/// its CRC and echoed sender timestamp, like the pipeline does.
fn fake_pipeline(sock: UdpSocket, stop: Arc<AtomicBool>) -> u64 {
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    // Per image: the fragments so far and fragment 0's sender timestamp.
    type Partial = (Vec<Option<Vec<u8>>>, u64);
    let mut images: HashMap<(SocketAddr, u8, u32), Partial> = HashMap::new();
    let mut answered = 0;
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let pkt = fragment::Packet::new_unchecked(&buf[..n]);
        let Ok(h) = fragment::Repr::parse(&pkt) else {
            continue;
        };
        if Some(pkt.payload().len()) != h.expected_payload_len() {
            continue;
        }
        let slot = images
            .entry((from, h.model, h.image))
            .or_insert_with(|| (vec![None; h.count as usize], 0));
        slot.0[h.index as usize] = Some(pkt.payload().to_vec());
        if let Some(d) = h.descriptor {
            slot.1 = d.timestamp;
        }
        if slot.0.iter().all(Option::is_some) {
            let data: Vec<u8> = slot.0.iter().flatten().flatten().copied().collect();
            let crc = tensor_crc32([data.as_slice()]);
            sock.send_to(
                &result_bytes(h.model, h.image, crc, slot.1, (h.image % 1000, 0.5)),
                from,
            )
            .unwrap();
            images.remove(&(from, h.model, h.image));
            answered += 1;
        }
    }
    answered
}

#[test]
fn send_and_collect_against_a_fake_pipeline() {
    let dir = scratch("combined");
    let pipe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = pipe.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let fake = std::thread::spawn(move || fake_pipeline(pipe, stop2));
    let base = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .min(60000);
    let (man, report, summary) = (dir.join("m.jsonl"), dir.join("r.json"), dir.join("s.json"));
    pktgen(&[
        "--udp",
        "--src",
        &format!("127.0.0.1:{base}"),
        "--dst",
        &dst.to_string(),
        "--flows",
        "2",
        "--model",
        "3,4",
        "--synthetic",
        "1x3x16x16",
        "--count",
        "24",
        "--incomplete",
        "0.25",
        "--seed",
        "3",
        "--pps",
        "20000",
        "--collect",
        "3",
        "--report",
        report.to_str().unwrap(),
        "--manifest",
        man.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
    ]);
    stop.store(true, Ordering::Relaxed);
    let answered = fake.join().unwrap();
    let r = common::json(&report);
    let s = common::json(&summary);
    assert!(s["withheld"].as_u64().unwrap() > 0);
    assert_eq!(r["expected"], s["images_intact"]);
    assert_eq!(r["matched"], s["images_intact"]);
    assert_eq!(answered, s["images_intact"].as_u64().unwrap());
    assert_eq!(
        (
            r["lost"].as_u64(),
            r["crc_mismatches"].as_u64(),
            r["unexpected"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
    let srcs: std::collections::BTreeSet<String> = common::manifest(&man)
        .iter()
        .map(|e| e["src"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(srcs.len(), 2);
}
