//! Whole runs written to pcap, checked frame by frame with `netml_wire::frame::classify`.

mod common;

use common::{json, manifest, manifest_key, pktgen, read_capture, scratch};

#[test]
fn clean_run_reassembles_exactly() {
    let dir = scratch("clean");
    let (pcap, summary, man) = (dir.join("a.pcap"), dir.join("s.json"), dir.join("m.jsonl"));
    pktgen(&[
        "--synthetic",
        "1x3x40x40",
        "--variants",
        "3",
        "--count",
        "6",
        "--frag-size",
        "1000",
        "--pcap",
        pcap.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
        "--manifest",
        man.to_str().unwrap(),
        "--quiet",
    ]);
    let c = read_capture(&pcap, 9000);
    let s = json(&summary);
    // 1x3x40x40 f32 = 19200 bytes = 20 fragments of 1000 (the last one 200).
    assert_eq!(s["fragments"], 6 * 20);
    assert_eq!(c.records, 120);
    assert_eq!(
        (c.fragments, c.truncated, c.checksum, c.other),
        (120, 0, 0, 0)
    );
    let m = manifest(&man);
    assert_eq!(m.len(), 6);
    for e in &m {
        let seen = &c.images[&manifest_key(e)];
        let d = seen.descriptor.unwrap();
        assert_eq!(d.shape(), &[1, 3, 40, 40]);
        assert_eq!(seen.crc32(), Some(d.crc32));
        assert_eq!(e["crc32"].as_u64(), Some(d.crc32 as u64));
        assert_eq!(e["sender_timestamp"].as_u64(), Some(d.timestamp));
        assert_eq!(
            seen.ts0,
            Some(d.timestamp),
            "descriptor stamp = pcap stamp of fragment 0"
        );
        assert_eq!(e["intact"], true);
        assert_eq!(e["fragments"], 20);
    }
    // Images 0..5 cycle over 3 variants: images 0 and 3 carry the same tensor.
    assert_eq!(m[0]["crc32"], m[3]["crc32"]);
    assert_ne!(m[0]["crc32"], m[1]["crc32"]);
}

#[test]
fn fault_counters_are_exact() {
    let dir = scratch("faults");
    let (pcap, summary, man) = (dir.join("f.pcap"), dir.join("s.json"), dir.join("m.jsonl"));
    let args = [
        "--synthetic",
        "1x3x24x24",
        "--count",
        "240",
        "--flows",
        "3",
        "--model",
        "4,5",
        "--loss",
        "0.05",
        "--truncate",
        "0.04",
        "--corrupt",
        "0.03",
        "--dup",
        "0.06",
        "--reorder",
        "16",
        "--incomplete",
        "0.1",
        "--seed",
        "42",
        "--pps",
        "1000000",
        "--pcap",
        pcap.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
        "--manifest",
        man.to_str().unwrap(),
        "--quiet",
    ];
    pktgen(&args);
    let s = json(&summary);
    let n = |k: &str| s[k].as_u64().unwrap();
    let c = read_capture(&pcap, 9000);

    assert_eq!(c.records, n("frames_written"));
    assert_eq!(c.truncated, n("truncated"));
    assert_eq!(c.checksum, n("corrupted"));
    assert_eq!(c.fragments, n("delivered") + n("duplicated"));
    assert_eq!(c.other, 0);
    assert_eq!(
        n("fragments"),
        n("delivered") + n("lost") + n("truncated") + n("corrupted") + n("withheld")
    );
    for k in [
        "lost",
        "truncated",
        "corrupted",
        "duplicated",
        "withheld",
        "reordered",
    ] {
        assert!(n(k) > 0, "{k} should be exercised: {s}");
    }
    // Timestamps are paced at 1 Mpps (1 µs apart) and monotonic despite the reordering.
    assert!(c.timestamps.windows(2).all(|w| w[1] - w[0] == 1000));

    // Intact images are exactly those that reassemble completely, with the right CRC.
    let m = manifest(&man);
    assert_eq!(m.len() as u64, n("images"));
    let mut intact = 0;
    for e in &m {
        let crc = c.images.get(&manifest_key(e)).and_then(|seen| seen.crc32());
        if e["intact"] == true {
            intact += 1;
            assert_eq!(crc, e["crc32"].as_u64().map(|v| v as u32), "{e}");
        } else {
            assert_eq!(crc, None, "a damaged image must not reassemble: {e}");
        }
    }
    assert_eq!(intact, n("images_intact"));
    // Image ids count per (flow, model): 240 images over 3 flows x 2 models = 40 each.
    assert!(m.iter().all(|e| e["image"].as_u64().unwrap() < 40));

    // The same seed gives the same faults.
    let again = dir.join("s2.json");
    let mut args2 = args.to_vec();
    let i = args2
        .iter()
        .position(|a| *a == summary.to_str().unwrap())
        .unwrap();
    let again_s = again.to_str().unwrap().to_string();
    args2[i] = &again_s;
    pktgen(&args2);
    let s2 = json(&again);
    for k in [
        "images_intact",
        "lost",
        "truncated",
        "corrupted",
        "duplicated",
        "withheld",
        "reordered",
        "bytes",
    ] {
        assert_eq!(s[k], s2[k], "{k}");
    }
}

#[test]
fn ipv6_vlan_and_rate_limits() {
    let dir = scratch("v6");
    let (pcap, summary) = (dir.join("v6.pcap"), dir.join("s.json"));
    pktgen(&[
        "--synthetic",
        "3000",
        "--dtype",
        "u8",
        "--src",
        "[fd00::1]:5000",
        "--dst",
        "[fd00::2]:9100",
        "--vlan",
        "0x2064",
        "--frag-size",
        "1366",
        "--ips",
        "100",
        "--duration",
        "0.1",
        "--pcap",
        pcap.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
        "--quiet",
    ]);
    let s = json(&summary);
    // 100 images/s over 0.1 s of pcap time.
    assert_eq!(s["images"], 10);
    let c = read_capture(&pcap, 9100);
    assert_eq!((c.fragments, c.records), (30, 30));
    let span = c.timestamps.last().unwrap() - c.timestamps[0];
    assert!((90_000_000..100_000_000).contains(&span), "{span}");
    assert!(c.images.values().all(|i| i.crc32().is_some()));

    let out = common::pktgen_raw(&[
        "--src",
        "[fd00::1]:5000",
        "--dst",
        "[fd00::2]:9100",
        "--frag-size",
        "1367",
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maximum for IPv6 is 1366"), "{err}");
}
