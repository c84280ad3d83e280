//! A pktgen capture with loss, duplication, reordering, truncation, corruption and images
//! that never complete: tshark reads it as UDP, and `netml verify-pcap` reports counters that
//! match what pktgen says it injected, and the CRC of every intact image.

use netml_e2e::*;
use std::collections::HashMap;
use std::process::Command;

#[test]
fn verify_pcap_counts_exactly_what_pktgen_injected() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("faults.pcap");
    let summary = dir.path().join("summary.json");
    let manifest = dir.path().join("manifest.jsonl");
    run_ok(
        Command::new(bin("netml-pktgen"))
            .args([
                "send",
                "--synthetic",
                "1x3x64x64",
                "--variants",
                "8",
                "--count",
                "120",
                "--flows",
                "3",
                "--model",
                "1,2",
                "--seed",
                "7",
                "--loss",
                "0.002",
                "--dup",
                "0.02",
                "--reorder",
                "32",
                "--truncate",
                "0.002",
                "--corrupt",
                "0.002",
                "--incomplete",
                "0.05",
                "--pps",
                "200000",
                "--quiet",
            ])
            .arg("--pcap")
            .arg(&pcap)
            .arg("--summary")
            .arg(&summary)
            .arg("--manifest")
            .arg(&manifest),
    );
    let s = json_file(&summary);
    assert_eq!(n(&s["images"]), 120);
    for fault in [
        "lost",
        "duplicated",
        "truncated",
        "corrupted",
        "withheld",
        "reordered",
    ] {
        assert!(n(&s[fault]) > 0, "seed 7 should inject some {fault}: {s}");
    }

    if have("tshark") {
        let out = run_ok(Command::new("tshark").arg("-r").arg(&pcap).args([
            "-c",
            "5",
            "-T",
            "fields",
            "-e",
            "udp.dstport",
        ]));
        let ports = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            ports.lines().filter(|l| l.trim() == "9000").count(),
            5,
            "tshark: {ports}"
        );
    } else {
        eprintln!("tshark not installed: skipping the tshark check");
    }

    let out = run_ok(
        Command::new(bin("netml"))
            .args(["verify-pcap", "--json", "--strict", "--timeout-ms", "60000"])
            .arg(&pcap),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (rx, v) = (&doc["rx"], &doc["verifier"]);
    assert_eq!(n(&rx["frames"]), n(&s["frames_written"]));
    assert_eq!(n(&rx["truncated"]), n(&s["truncated"]));
    assert_eq!(n(&rx["bad_checksum"]), n(&s["corrupted"]));
    assert_eq!(
        n(&rx["unrecognized"]) + n(&rx["malformed"]) + n(&rx["other"]),
        0
    );
    assert_eq!(
        n(&rx["fragments"]),
        n(&s["delivered"]) + n(&s["duplicated"])
    );
    assert_eq!(n(&v["accepted"]), n(&s["delivered"]));
    assert_eq!(n(&v["duplicate"]) + n(&v["late"]), n(&s["duplicated"]));
    assert_eq!(n(&v["out_of_range"]) + n(&v["inconsistent"]), 0);
    assert_eq!(n(&v["images_completed"]), n(&s["images_intact"]));
    assert_eq!(
        n(&v["fragments_evicted"]),
        n(&v["accepted"]) - n(&v["fragments_completed"])
    );
    assert_eq!(n(&doc["crc_mismatch"]), 0);

    // Every intact image of the manifest was reassembled with the sender's CRC, and no other.
    let intact: HashMap<(u64, u64, String), u64> = jsonl_file(&manifest)
        .into_iter()
        .filter(|m| m["intact"] == true)
        .map(|m| {
            (
                (
                    n(&m["model"]),
                    n(&m["image"]),
                    m["src"].as_str().unwrap().to_string(),
                ),
                n(&m["crc32"]),
            )
        })
        .collect();
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), intact.len());
    for img in images {
        let key = (
            n(&img["model"]),
            n(&img["image"]),
            img["source"].as_str().unwrap().to_string(),
        );
        let crc = u64::from_str_radix(img["crc32"].as_str().unwrap(), 16).unwrap();
        assert_eq!(intact.get(&key), Some(&crc), "image {key:?}");
    }
}
