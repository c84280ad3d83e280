//! Receive mode: result messages sent over loopback by the test itself, and a full
//! send-and-collect run against a tiny fake pipeline.

mod common;

use common::{pktgen, scratch};
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

fn result_bytes(model: u8, image: u32, crc32: u32, ts: u64, top: (u32, f32)) -> Vec<u8> {
    let r = result::Repr {
        model,
        image,
        status: Status::Ok,
        arrived: 0,
        crc32,
        sender_timestamp: ts,
        stages: [0; STAGES],
        top_k: vec![top, (1, 0.01)],
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b
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
        .all(|x| x.crc_match && x.status == Status::Ok));
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
    );
    listener.stop();
    assert_eq!((report.answers.len(), report.crc_mismatches()), (1, 1));
}

#[test]
fn recv_subcommand_prints_json() {
    let dir = scratch("recv-cli");
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let man = dir.join("m.jsonl");
    let ts = realtime_ns();
    let lines: Vec<String> = (0..3)
        .map(|i| entry(1, i, listen, 100 + i, true, ts).to_json())
        .collect();
    std::fs::write(&man, lines.join("\n") + "\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_netml-pktgen"))
        .args([
            "recv",
            "--listen",
            &listen.to_string(),
            "--manifest",
            man.to_str().unwrap(),
            "--timeout",
            "10",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may not be listening yet: resend until it has everything and exits.
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = Instant::now();
    let out = loop {
        for i in 0..3 {
            tx.send_to(&result_bytes(1, i, 100 + i, ts, (i, 0.5)), listen)
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let exited = child.try_wait().unwrap().is_some();
        if exited || start.elapsed() > Duration::from_secs(10) {
            break child.wait_with_output().unwrap();
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
