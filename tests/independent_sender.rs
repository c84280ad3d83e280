//! A sender written by someone else from `docs/protocol.md` alone
//! (`scripts/examples/send_tensor.py`, Python standard library only, no code shared with
//! `crates/wire` or pktgen) produces traffic that netml counts exactly as that sender says it
//! should:
//!
//! - the script's own check against the worked example of the specification (§10);
//! - its captures (IPv4; IPv6 with two VLAN tags; f32, f16 and u8 tensors; fragments in
//!   order, reversed and shuffled; in-flight and late duplicates; header bit flips; a
//!   restarted sender reusing its image ids with new timestamps, and images replayed with the
//!   same ones, §7) read by `netml verify-pcap`: every counter equals the script's summary and
//!   every image is reassembled with the script's CRC-32;
//! - the same kind of capture replayed by tcpreplay into a veth pair that `netml run` reads
//!   with the af_packet PMD: the report's counters are exact, the mempool is balanced, and
//!   the script, listening in the namespace, gets one `ok` result per image with its CRC-32
//!   (and `arrived` 0, §9).
//!
//! Skipped (with a message) without python3; the veth part also without root or `ip netns`.

use netml_e2e::*;
use serde_json::Value;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/examples/send_tensor.py")
}

/// `Some(reason)` when the script cannot run here.
fn python_unavailable() -> Option<String> {
    if !have("python3") {
        return Some("python3 is not installed".into());
    }
    None
}

/// Runs the script with `args` and returns the JSON it prints.
fn send_tensor(args: &[&OsStr]) -> Value {
    let out = run_ok(Command::new("python3").arg(script()).args(args));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "send_tensor.py printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Writes `DIR/NAME.pcap` with the script and returns its path and summary.
fn write_capture(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, Value) {
    let pcap = dir.join(format!("{name}.pcap"));
    let mut a: Vec<&OsStr> = vec![OsStr::new("--pcap"), pcap.as_os_str()];
    a.extend(args.iter().map(OsStr::new));
    let summary = send_tensor(&a);
    (pcap, summary)
}

/// An image as the script and netml name it: (source, model, image id, sender timestamp).
/// The timestamp tells a restarted sender's new incarnation of an id from the first one.
type ImageId = (String, u64, u64, u64);

/// The script's images that a receiver completes, by [`ImageId`].
fn images_of(summary: &Value) -> HashMap<ImageId, &Value> {
    let list: Vec<&Value> = summary["image_list"]
        .as_array()
        .expect("image_list")
        .iter()
        .filter(|im| im["completes"] == true)
        .collect();
    let map: HashMap<_, _> = list
        .iter()
        .map(|im| {
            (
                (
                    im["source"].as_str().unwrap().to_string(),
                    n(&im["model"]),
                    n(&im["image"]),
                    n(&im["sender_timestamp"]),
                ),
                *im,
            )
        })
        .collect();
    assert_eq!(map.len(), list.len(), "images repeat: {summary}");
    map
}

#[test]
fn sender_matches_the_worked_example() {
    if let Some(why) = python_unavailable() {
        eprintln!("skipping: {why}");
        return;
    }
    let doc = send_tensor(&[OsStr::new("--self-test")]);
    assert_eq!(doc["self_test"], "pass", "{doc:#}");
}

/// `netml verify-pcap` on a capture of the script: every counter as the script predicts,
/// every image with its CRC-32, size, fragment count and sender timestamp.
fn check_verify_pcap(name: &str, args: &[&str]) {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (pcap, s) = write_capture(dir.path(), name, args);
    let e = &s["expect"];
    // The faults asked for are in the capture.
    for (fault, key) in [
        ("--dup", "duplicates"),
        ("--late-dup", "late_duplicates"),
        ("--corrupt", "corrupted"),
    ] {
        if let Some(i) = args.iter().position(|a| *a == fault) {
            assert_eq!(n(&s[key]).to_string(), args[i + 1], "{key}: {s}");
        }
    }

    if have("tshark") {
        // tshark checks the script's UDP (and IPv4 header) checksums: all good, even on the
        // frames whose fragment header has a flipped bit.
        let out = run_ok(Command::new("tshark").arg("-r").arg(&pcap).args([
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "udp.dstport",
            "-e",
            "udp.checksum.status",
            "-e",
            "ip.checksum.status",
        ]));
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, n(&s["frames"]), "tshark:\n{text}");
        for l in lines {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f[0], "9000", "tshark: {l}");
            assert_eq!(f[1], "1", "tshark: UDP checksum not good: {l}");
            assert!(f[2] == "1" || f[2].is_empty(), "tshark: IPv4 checksum: {l}");
        }
    } else {
        eprintln!("tshark not installed: skipping the tshark check");
    }

    let doc = verify_pcap(&pcap);
    let (rx, v) = (&doc["rx"], &doc["verifier"]);
    let ctx = || format!("verify-pcap: {doc:#}\nscript: {s}");
    let eq = |a: &Value, b: &Value, what: &str| assert_eq!(n(a), n(b), "{what}\n{}", ctx());
    eq(&rx["frames"], &s["frames"], "rx.frames");
    eq(&rx["frames"], &e["frames"], "rx.frames (expect)");
    eq(&rx["fragments"], &e["fragment"], "rx.fragments");
    eq(&rx["bad_checksum"], &s["corrupted"], "rx.bad_checksum");
    eq(
        &rx["bad_checksum"],
        &e["checksum"],
        "rx.bad_checksum (expect)",
    );
    for k in ["truncated", "unrecognized", "malformed", "other"] {
        eq(&rx[k], &e[k], &format!("rx.{k}"));
    }
    eq(&v["duplicate"], &s["duplicates"], "verifier.duplicate");
    for k in [
        "accepted",
        "duplicate",
        "late",
        "out_of_range",
        "inconsistent",
        "images_completed",
        "fragments_completed",
        "fragments_evicted",
    ] {
        eq(&v[k], &e[k], &format!("verifier.{k} (expect)"));
    }
    // verify-pcap evicts what is incomplete at the end of the capture as timed out.
    eq(
        &v["evicted_timeout"],
        &e["evicted"],
        "verifier.evicted_timeout",
    );
    assert_eq!(n(&v["evicted_pressure"]), 0, "evicted_pressure\n{}", ctx());
    assert_eq!(n(&v["forgotten_early"]), 0, "forgotten_early\n{}", ctx());
    assert_eq!(n(&doc["crc_mismatch"]), 0, "crc_mismatch\n{}", ctx());

    // Every image of the script, reassembled once, with the script's CRC-32.
    let want = images_of(&s);
    let got = doc["images"].as_array().expect("images");
    assert_eq!(got.len(), want.len(), "images\n{}", ctx());
    let mut seen = std::collections::HashSet::new();
    for img in got {
        let key = (
            img["source"].as_str().unwrap().to_string(),
            n(&img["model"]),
            n(&img["image"]),
            n(&img["sender_timestamp_ns"]),
        );
        let w = want.get(&key).unwrap_or_else(|| {
            panic!(
                "verify-pcap reports an image the script did not send: {img}\n{}",
                ctx()
            )
        });
        assert!(seen.insert(key.clone()), "{key:?} reported twice");
        let crc = u64::from_str_radix(img["crc32"].as_str().unwrap(), 16).unwrap();
        assert_eq!(crc, n(&w["crc32"]), "CRC-32 of {key:?}\n{}", ctx());
        assert_eq!(img["crc_ok"], true, "{key:?}");
        assert_eq!(n(&img["bytes"]), n(&w["total_bytes"]), "bytes of {key:?}");
        assert_eq!(
            n(&img["fragments"]),
            n(&w["fragments"]),
            "fragments of {key:?}"
        );
        assert_eq!(img["dtype"], s["dtype"], "{key:?}");
        assert_eq!(img["layout"], s["layout"], "{key:?}");
    }
}

#[test]
fn verify_pcap_ipv4_f32_shuffled_with_faults() {
    if let Some(why) = python_unavailable() {
        eprintln!("skipping: {why}");
        return;
    }
    check_verify_pcap(
        "v4",
        &[
            "--images",
            "24",
            "--flows",
            "3",
            "--model",
            "1,2",
            "--shape",
            "1x3x32x32",
            "--dtype",
            "f32",
            "--seed",
            "11",
            "--order",
            "shuffle",
            "--dup",
            "5",
            "--late-dup",
            "3",
            "--corrupt",
            "4",
        ],
    );
}

/// Both sides of the new-incarnation rule (docs/protocol.md §7): restarted images whose
/// fragment 0 comes first complete again under their old ids; those whose other fragments
/// come first lose them as `late` and are evicted; replays with the old timestamp are late.
#[test]
fn verify_pcap_restarted_sender_and_replays() {
    if let Some(why) = python_unavailable() {
        eprintln!("skipping: {why}");
        return;
    }
    let args = [
        "--images",
        "12",
        "--flows",
        "3",
        "--shape",
        "1x3x16x16",
        "--order",
        "shuffle",
        "--seed",
        "5",
        "--restart",
        "6",
        "--replay",
        "3",
        "--late-dup",
        "2",
    ];
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = write_capture(dir.path(), "probe", &args);
    let restarts: Vec<&Value> = s["image_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|im| im["restart"] == true)
        .collect();
    assert_eq!(restarts.len(), 6);
    assert!(
        restarts.iter().any(|im| im["completes"] == true)
            && restarts.iter().any(|im| im["completes"] == false),
        "the seed must give both kinds of restart: {s}"
    );
    check_verify_pcap("restart", &args);
}

#[test]
fn verify_pcap_ipv6_two_vlan_tags_f16_reversed() {
    if let Some(why) = python_unavailable() {
        eprintln!("skipping: {why}");
        return;
    }
    check_verify_pcap(
        "v6",
        &[
            "--src",
            "[fd00::1]:41000",
            "--dst",
            "[fd00::2]:9000",
            "--vlan",
            "ad:200",
            "--vlan",
            "100",
            "--images",
            "9",
            "--flows",
            "2",
            "--model",
            "3",
            "--shape",
            "2x3x17",
            "--layout",
            "plain",
            "--dtype",
            "f16",
            "--frag-size",
            "100",
            "--order",
            "reverse",
            "--dup",
            "3",
            "--corrupt",
            "3",
            "--seed",
            "12",
        ],
    );
}

#[test]
fn verify_pcap_raw_file_u8_largest_fragments() {
    if let Some(why) = python_unavailable() {
        eprintln!("skipping: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 5000 bytes that are not a multiple of the fragment size: the last fragment is short.
    let file = dir.path().join("tensor.bin");
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let file = file.to_str().unwrap().to_string();
    check_verify_pcap(
        "raw",
        &[
            "--file",
            &file,
            "--frag-size",
            "1344",
            "--images",
            "4",
            "--flows",
            "1",
            "--first-image",
            "4294967294",
            "--dup",
            "2",
            "--late-dup",
            "1",
            "--corrupt",
            "1",
        ],
    );
}

/// The namespace end gets the capture's source address and MAC, so that its kernel takes
/// the results addressed back to the sender (and the script, listening there, gets them).
const NS_CIDR: &str = "10.0.0.1/24";
const NS_MAC: &str = "02:00:00:00:00:01";
const CLIENT: &str = "10.0.0.1:40000";
const FLOWS: u64 = 3;
const IMAGES: u64 = 24;

/// The script's capture, replayed by tcpreplay into a veth pair whose root end `netml run`
/// reads with the af_packet PMD (one queue pair). Every counter of the report is exact, the
/// mempool is balanced, and the script, listening in the namespace on the capture's source
/// ports, gets one `ok` result per image carrying the CRC-32 and timestamp it sent.
#[test]
fn veth_replay_of_the_independent_capture() {
    if let Some(why) = python_unavailable().or_else(netns_unavailable) {
        eprintln!("skipping: {why}");
        return;
    }
    assert!(
        have("tcpreplay"),
        "tcpreplay is not installed (apt-get install tcpreplay)"
    );
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pcap, s) = write_capture(
        d,
        "replay",
        &[
            "--images",
            &IMAGES.to_string(),
            "--flows",
            &FLOWS.to_string(),
            "--src",
            CLIENT,
            "--dst",
            "10.0.0.2:9000",
            "--src-mac",
            NS_MAC,
            "--dst-mac",
            "02:00:00:00:00:02",
            "--model",
            "1,2",
            "--shape",
            "1x3x32x32",
            "--seed",
            "21",
            "--order",
            "shuffle",
            "--dup",
            "4",
            "--late-dup",
            "2",
            "--corrupt",
            "3",
            "--restart",
            "3",
            "--replay",
            "2",
        ],
    );
    let frames = n(&s["frames"]);
    // Images answered: the first ones and the restarted ones whose fragment 0 came first.
    let answered = n(&s["expect"]["images_completed"]);
    // Images evicted at shutdown are answered `incomplete` (§9).
    let evicted = n(&s["expect"]["evicted"]);

    let ns = Netns::veth("i", NS_CIDR, NS_MAC);

    // The script's result receiver first, so that no result can arrive before it listens
    // (and the namespace's kernel never answers a result with an ICMP port unreachable).
    let (recv_out, recv_err) = (d.join("recv.json"), d.join("recv.err"));
    let recv = Background::spawn(
        ns.exec("python3")
            .arg(script())
            .args(["--recv-results", CLIENT, "--flows", &FLOWS.to_string()])
            .args([
                "--expect",
                &(answered + evicted).to_string(),
                "--timeout",
                "25",
            ])
            .stdout(File::create(&recv_out).unwrap())
            .stderr(File::create(&recv_err).unwrap()),
    );
    assert!(
        ns.wait_udp_listening(40000 + FLOWS as u16 - 1, Duration::from_secs(10)),
        "send_tensor.py --recv-results does not listen: {}",
        read_log(&recv_err)
    );

    let cfg = d.join("netml.toml");
    std::fs::write(&cfg, "[verifier]\ntimeout_ms = 60000\n").unwrap();
    let vdev = format!("iface={},qpairs=1", ns.root_if);
    let mut netml = NetmlRun::spawn(
        d,
        "report",
        &[
            OsStr::new("--config"),
            cfg.as_os_str(),
            OsStr::new("--port"),
            OsStr::new("net_af_packet0"),
            OsStr::new("--vdev-args"),
            OsStr::new(&vdev),
            OsStr::new("--until-idle-ms"),
            OsStr::new("2000"),
        ],
    );
    netml.wait_running();

    let sent = tcpreplay(&ns, &pcap, 20000);
    assert_eq!(sent, frames, "tcpreplay sent");

    let recv_status = recv.wait(Duration::from_secs(40)).status;
    let report = netml.finish(Duration::from_secs(40));
    drop(ns);

    let ctx = || format!("report: {report:#}\nscript: {s}");
    let eq = |a: u64, b: u64, what: &str| assert_eq!(a, b, "{what}\n{}", ctx());
    let total = &report["total"];
    let (rx, v, e) = (&total["rx"], &total["verifier"], &s["expect"]);
    eq(n(&rx["frames"]), frames, "rx.frames");
    eq(n(&rx["fragments"]), n(&e["fragment"]), "rx.fragments");
    eq(
        n(&rx["bad_checksum"]),
        n(&s["corrupted"]),
        "rx.bad_checksum",
    );
    for k in ["truncated", "unrecognized", "malformed", "other"] {
        eq(n(&rx[k]), 0, &format!("rx.{k}"));
    }
    eq(
        n(&v["duplicate"]),
        n(&s["duplicates"]),
        "verifier.duplicate",
    );
    for k in [
        "accepted",
        "duplicate",
        "late",
        "out_of_range",
        "inconsistent",
        "images_completed",
        "fragments_completed",
        "fragments_evicted",
    ] {
        eq(n(&v[k]), n(&e[k]), &format!("verifier.{k}"));
    }
    // The restarted images that cannot complete are still in flight at shutdown, which
    // evicts them as timed out.
    eq(
        n(&v["evicted_timeout"]),
        n(&e["evicted"]),
        "evicted_timeout",
    );
    eq(n(&v["evicted_pressure"]), 0, "evicted_pressure");
    eq(n(&v["forgotten_early"]), 0, "forgotten_early");
    eq(n(&total["backpressure_images"]), 0, "backpressure_images");
    eq(
        n(&total["in_flight"]) + n(&total["held_fragments"]),
        0,
        "in_flight+held_fragments at the end",
    );
    eq(
        n(&total["chain_dropped"]) + n(&total["chain_forwarded"]),
        0,
        "chain",
    );
    let k = &report["sink"];
    eq(n(&k["images"]), answered, "sink.images");
    eq(n(&k["bytes"]), n(&s["bytes"]), "sink.bytes");
    eq(n(&k["crc_mismatch"]), 0, "sink.crc_mismatch");
    eq(n(&k["unknown_model"]), 0, "sink.unknown_model");
    eq(n(&k["ok"]), answered, "sink.ok");
    eq(n(&k["incomplete"]), evicted, "sink.incomplete");
    eq(
        n(&k["results_sent"]),
        answered + evicted,
        "sink.results_sent",
    );
    eq(n(&k["results_dropped"]), 0, "sink.results_dropped");
    let m = &report["mempool"];
    eq(
        n(&m["in_use_at_end"]),
        n(&m["in_use_at_start"]),
        "mempool in use at end vs start (leak)",
    );
    let port = &report["ports"][0];
    eq(n(&port["ipackets"]), frames, "port ipackets");
    eq(n(&port["opackets"]), answered + evicted, "port opackets");
    eq(
        n(&port["imissed"]) + n(&port["ierrors"]) + n(&port["rx_nombuf"]),
        0,
        "port imissed+ierrors+rx_nombuf",
    );

    // The script's receiver got every result once: status ok, the CRC-32 and timestamp it
    // sent, addressed to the image's source port.
    assert!(
        recv_status.success(),
        "send_tensor.py --recv-results failed ({recv_status}): {}\n{}",
        read_log(&recv_err),
        read_log(&recv_out)
    );
    let got: Value = serde_json::from_str(&read_log(&recv_out))
        .unwrap_or_else(|err| panic!("recv output: {err}: {}", read_log(&recv_out)));
    let results = got["results"].as_array().expect("results");
    eq(results.len() as u64, answered + evicted, "results received");
    let want = images_of(&s);
    let mut seen = std::collections::HashSet::new();
    let damaged: Vec<&Value> = s["image_list"]
        .as_array()
        .expect("image_list")
        .iter()
        .filter(|im| im["completes"] != true && n(&im["arrived"]) > 0)
        .collect();
    for r in results {
        if r["status"] == "incomplete" {
            assert_eq!(n(&r["crc32"]), 0, "{r}");
            let same = |im: &&&Value| {
                im["source"].as_str() == r["to"].as_str()
                    && n(&im["model"]) == n(&r["model"])
                    && n(&im["image"]) == n(&r["image"])
                    && n(&im["arrived"]) == n(&r["arrived"])
            };
            assert!(
                damaged.iter().any(|im| same(&im)),
                "incomplete result for no evicted image: {r}\n{}",
                ctx()
            );
            continue;
        }
        let key = (
            r["to"].as_str().unwrap().to_string(),
            n(&r["model"]),
            n(&r["image"]),
            n(&r["sender_timestamp"]),
        );
        let w = want
            .get(&key)
            .unwrap_or_else(|| panic!("result for an image not sent: {r}\n{}", ctx()));
        assert!(seen.insert(key.clone()), "{key:?} answered twice");
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(
            n(&r["arrived"]),
            0,
            "arrived is 0 but for incomplete (§9): {r}"
        );
        assert_eq!(r["from"], "10.0.0.2:9000", "{r}");
        assert_eq!(n(&r["crc32"]), n(&w["crc32"]), "CRC-32 of {key:?}: {r}");
    }
}
