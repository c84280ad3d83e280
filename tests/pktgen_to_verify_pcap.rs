//! A pktgen capture with loss, duplication, reordering, truncation, corruption and images
//! that never complete: tshark reads it as UDP, and `netml verify-pcap` reports counters that
//! match what pktgen says it injected, and the CRC of every intact image.

use netml_e2e::*;
use std::collections::HashMap;
use std::process::Command;

#[test]
fn verify_pcap_counts_exactly_what_pktgen_injected() {
    let dir = tempfile::tempdir().unwrap();
    let t = faulty_traffic(dir.path(), "120");
    let (pcap, s) = (&t.pcap, &t.summary);
    assert_eq!(n(&s["images"]), 120);

    if have("tshark") {
        let out = run_ok(Command::new("tshark").arg("-r").arg(pcap).args([
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

    let doc = verify_pcap(pcap);
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
    let intact: HashMap<(u64, u64, String), u64> = t
        .manifest
        .iter()
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
