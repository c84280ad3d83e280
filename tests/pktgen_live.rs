//! `netml-pktgen` live on a veth pair delivers every frame exactly, with batched sending
//! (`sendmmsg`, a batch size that does not divide the image, and with PACKET_QDISC_BYPASS):
//! pktgen sends from the root namespace; in the namespace, the veth end's rx counter and a
//! tcpdump capture (incoming frames only) hold exactly the frames pktgen says it sent, and
//! `netml verify-pcap` reassembles every image with its sender's CRC-32 and no duplicate,
//! late or invalid fragment.
//!
//! The namespace end's MAC is not the frames' destination, so its IP stack drops them
//! without answering; IPv6 is off on both ends, so nothing else crosses the pair.
//!
//! Needs root and `ip netns`; skipped (with a message) otherwise.

use netml_e2e::*;
use serde_json::Value;
use std::collections::HashSet;
use std::fs::File;
use std::process::Command;
use std::time::Duration;

const NS_CIDR: &str = "10.0.0.2/24";
/// Not pktgen's destination MAC (02:00:00:00:00:02): the frames are another host's.
const NS_MAC: &str = "02:00:00:00:00:09";

/// One live pktgen run: its arguments besides the output, and what it must send.
struct Send {
    args: &'static [&'static str],
    first_image: u32,
}

/// Images per send, and fragments per image (1x3x64x64 f32 in 1 KiB fragments).
const IMAGES: u64 = 30;
const FRAGMENTS: u64 = 48;

const SENDS: [Send; 2] = [
    // 30 images x 48 fragments in batches of 64.
    Send {
        args: &["--batch", "64"],
        first_image: 0,
    },
    // Batches of 7 (never aligned with an image), straight to the driver.
    Send {
        args: &["--batch", "7", "--qdisc-bypass"],
        first_image: 1000,
    },
];

fn rx_packets(ns: &Netns) -> u64 {
    let out = run_ok(
        ns.exec("cat")
            .arg(format!("/sys/class/net/{}/statistics/rx_packets", ns.ns_if)),
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn batched_live_sending_delivers_every_frame_exactly() {
    if let Some(why) = netns_unavailable() {
        eprintln!("skipping: {why}");
        return;
    }
    assert!(
        have("tcpdump"),
        "tcpdump is not installed (scripts/install-deps)"
    );
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ns = Netns::veth("pk", NS_CIDR, NS_MAC);

    // tcpdump stops by itself once it has read every frame expected (frames still in its
    // buffer when it is interrupted would be lost to the capture, not to the wire).
    let expected = SENDS.len() as u64 * IMAGES * FRAGMENTS;
    let capture = d.join("capture.pcap");
    let dump_err = d.join("tcpdump.err");
    let mut dump = Background::spawn(
        ns.exec("tcpdump")
            .args(["-i", &ns.ns_if, "-Q", "in", "-n", "-U", "-B", "65536"])
            .args(["-c", &expected.to_string(), "-w"])
            .arg(&capture)
            .stderr(File::create(&dump_err).unwrap()),
    );
    assert!(
        wait_for_text(&dump_err, "listening on", Duration::from_secs(10), || dump
            .running()),
        "tcpdump does not listen: {}",
        read_log(&dump_err)
    );
    let before = rx_packets(&ns);

    let mut frames = 0;
    let mut images = 0;
    let mut manifest = Vec::new();
    for (k, s) in SENDS.iter().enumerate() {
        let summary = d.join(format!("send{k}.json"));
        let manifest_path = d.join(format!("send{k}.jsonl"));
        run_ok(
            Command::new(bin("netml-pktgen"))
                .args([
                    "--synthetic",
                    "1x3x64x64",
                    "--variants",
                    "3",
                    "--count",
                    "30",
                ])
                .args(["--flows", "3", "--quiet", "--iface", &ns.root_if])
                .args(["--first-image", &s.first_image.to_string()])
                .args(s.args)
                .arg("--summary")
                .arg(&summary)
                .arg("--manifest")
                .arg(&manifest_path),
        );
        let sm = json_file(&summary);
        assert_eq!(n(&sm["images_intact"]), IMAGES, "{sm}");
        assert_eq!(n(&sm["frames_written"]), IMAGES * FRAGMENTS, "{sm}");
        frames += n(&sm["frames_written"]);
        images += n(&sm["images"]);
        manifest.extend(jsonl_file(&manifest_path));
    }

    assert_eq!(frames, expected);
    let out = dump.wait(Duration::from_secs(30));
    assert!(out.status.success(), "tcpdump: {}", read_log(&dump_err));
    // Anything beyond the expected frames would have arrived by now as well.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        rx_packets(&ns) - before,
        frames,
        "frames counted by the receiving veth end"
    );
    let log = read_log(&dump_err);
    assert!(
        log.contains(&format!("{frames} packets captured")),
        "tcpdump:\n{log}"
    );
    assert!(
        log.contains("0 packets dropped by kernel"),
        "tcpdump:\n{log}"
    );

    let v = verify_pcap(&capture);
    let (rx, ver) = (&v["rx"], &v["verifier"]);
    assert_eq!(n(&rx["frames"]), frames, "{v}");
    assert_eq!(n(&rx["fragments"]), frames, "{v}");
    assert_eq!(n(&ver["accepted"]), frames, "{v}");
    for k in ["duplicate", "late", "inconsistent", "out_of_range"] {
        assert_eq!(n(&ver[k]), 0, "verifier.{k}: {v}");
    }
    assert_eq!(n(&ver["images_completed"]), images, "{v}");
    assert_eq!(n(&v["crc_mismatch"]), 0, "{v}");
    let sent: HashSet<(String, u64, String)> = manifest.iter().map(key).collect();
    let got: HashSet<(String, u64, String)> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["source"].as_str().unwrap().to_string(),
                n(&i["image"]),
                i["crc32"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, sent, "images reassembled vs images sent");
}

/// Source, image id and CRC-32 (as verify-pcap writes it) of a manifest line.
fn key(m: &Value) -> (String, u64, String) {
    (
        m["src"].as_str().unwrap().to_string(),
        n(&m["image"]),
        format!("{:08x}", n(&m["crc32"])),
    )
}
