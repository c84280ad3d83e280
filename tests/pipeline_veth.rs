//! `netml run` on a real interface: one end of a veth pair, whose other end sits in a
//! network namespace that plays the client. tcpreplay sends a pktgen capture (duplicated
//! and reordered fragments, several flows) into the pipeline, the pipeline answers every
//! image back through the veth, and `netml-pktgen recv` in the namespace matches the
//! answers against pktgen's manifest. Frames that are not the protocol's (DNS over IPv4
//! and IPv6, UDP to another port, ARP) are mixed into the replay and must end up as
//! `rx.other`, dropped by the chain.
//!
//! IPv6 is off on both veth ends: otherwise the namespace's kernel sends neighbour and
//! router solicitations and MLD reports by itself (5 frames in the first 4 s after the link
//! comes up); one of them arriving before the replay starts `--until-idle-ms`'s clock, and
//! on a loaded machine netml then stops before or during the replay. Without them every
//! frame on the wire is known and all counters are asserted exactly.
//!
//! Needs root and `ip netns`; skipped (with a message) otherwise.

use netml_e2e::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::fs::File;
use std::time::Duration;

/// The namespace end gets the capture's source address and MAC, so that its kernel takes
/// the results addressed back to the sender.
const NS_CIDR: &str = "10.0.0.1/24";
const NS_MAC: &str = "02:00:00:00:00:01";
const CLIENT_IP: &str = "10.0.0.1";
const FIRST_PORT: u16 = 40000;
/// Frames of other traffic mixed into the replay.
const OTHER: usize = 20;

struct Setup<'a> {
    /// Namespace/interface name suffix (unique within this test binary).
    tag: &'a str,
    /// DPDK port name.
    port: &'a str,
    /// Vdev arguments; `{if}` is replaced by the root-namespace veth end.
    vdev_args: &'a str,
    queues: u16,
    flows: u16,
    images: u32,
}

struct Outcome {
    traffic: Traffic,
    report: Value,
    recv: Value,
    /// Frames tcpreplay says it sent.
    sent: u64,
    /// Holds the capture, which the checks read again.
    _dir: tempfile::TempDir,
}

fn skip() -> bool {
    if let Some(why) = netns_unavailable() {
        eprintln!("skipping: {why}");
        return true;
    }
    assert!(
        have("tcpreplay"),
        "tcpreplay is not installed (apt-get install tcpreplay)"
    );
    false
}

fn run(s: &Setup) -> Outcome {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let traffic = Traffic::generate(
        d,
        "veth",
        &[
            "--synthetic",
            "1x3x32x32",
            "--variants",
            "6",
            "--count",
            &s.images.to_string(),
            "--flows",
            &s.flows.to_string(),
            "--model",
            "1,2",
            "--seed",
            "5",
            "--dup",
            "0.03",
            "--reorder",
            "16",
        ],
    );
    let sm = &traffic.summary;
    assert_eq!(n(&sm["images_intact"]), s.images as u64, "{sm}");
    assert!(n(&sm["duplicated"]) > 0 && n(&sm["reordered"]) > 0, "{sm}");

    let replay_pcap = d.join("replay.pcap");
    mix_into(&traffic.pcap, &other_frames(OTHER), &replay_pcap);

    let ns = Netns::veth(s.tag, NS_CIDR, NS_MAC);

    // The client's receiver first, so that no result can arrive before it listens.
    let recv_out = d.join("recv.json");
    let recv_err = d.join("recv.err");
    let recv = Background::spawn(
        ns.exec(bin("netml-pktgen"))
            .args(["recv", "--listen", &format!("{CLIENT_IP}:{FIRST_PORT}")])
            .args(["--flows", &s.flows.to_string(), "--timeout", "20", "--json"])
            .arg("--manifest")
            .arg(traffic.manifest_path())
            .stdout(File::create(&recv_out).unwrap())
            .stderr(File::create(&recv_err).unwrap()),
    );
    assert!(
        ns.wait_udp_listening(FIRST_PORT + s.flows - 1, Duration::from_secs(10)),
        "netml-pktgen recv does not listen: {}",
        read_log(&recv_err)
    );

    let vdev = s.vdev_args.replace("{if}", &ns.root_if);
    let queues = s.queues.to_string();
    let mut netml = NetmlRun::spawn(
        d,
        "report",
        &[
            OsStr::new("--port"),
            OsStr::new(s.port),
            OsStr::new("--vdev-args"),
            OsStr::new(&vdev),
            OsStr::new("--queues"),
            OsStr::new(&queues),
            OsStr::new("--until-idle-ms"),
            OsStr::new("2000"),
        ],
    );
    netml.wait_running();

    let sent = tcpreplay(&ns, &replay_pcap, 20000);

    let recv_status = recv.wait(Duration::from_secs(40)).status;
    let report = netml.finish(Duration::from_secs(40));
    assert!(
        recv_status.success(),
        "netml-pktgen recv failed ({recv_status}): {}",
        read_log(&recv_err)
    );
    let recv: Value = serde_json::from_str(&read_log(&recv_out))
        .unwrap_or_else(|e| panic!("recv output: {e}: {}", read_log(&recv_out)));
    drop(ns);
    Outcome {
        traffic,
        report,
        recv,
        sent,
        _dir: dir,
    }
}

/// What holds for every run: every image answered once with the right CRC, all counters
/// exact, the other traffic dropped, mbufs all returned.
fn check(o: &Outcome, queues: usize) {
    let (r, t, sm) = (&o.report, &o.traffic, &o.traffic.summary);
    let ctx = format!("report: {r:#}\nrecv: {}\nsummary: {sm}", o.recv);
    let images = n(&sm["images"]);
    assert_eq!(
        o.sent,
        n(&sm["frames_written"]) + OTHER as u64,
        "tcpreplay sent\n{ctx}"
    );

    let v = &o.recv;
    assert_eq!(n(&v["expected"]), images, "recv expected\n{ctx}");
    assert_eq!(n(&v["matched"]), images, "recv matched\n{ctx}");
    for k in [
        "lost",
        "crc_mismatches",
        "unexpected",
        "duplicates",
        "malformed",
        "answered_damaged",
    ] {
        assert_eq!(n(&v[k]), 0, "recv {k}\n{ctx}");
    }

    assert_report_matches(r, t, OTHER as u64, false);
    assert_eq!(
        n(&r["total"]["verifier"]["images_completed"]),
        images,
        "images_completed\n{ctx}"
    );
    assert_eq!(
        n(&r["ports"][0]["opackets"]),
        images,
        "port opackets\n{ctx}"
    );
    assert_eq!(r["workers"].as_array().unwrap().len(), queues, "{ctx}");
}

/// The pcap PMD on the interface (libpcap): one rx queue reading incoming frames only, two
/// tx queues (the pipeline asks for one per rx queue plus one for results).
#[test]
fn veth_pcap_iface_one_queue() {
    if skip() {
        return;
    }
    let o = run(&Setup {
        tag: "p",
        port: "net_pcap0",
        vdev_args: "rx_iface_in={if},tx_iface={if},tx_iface={if}",
        queues: 1,
        flows: 3,
        images: 30,
    });
    check(&o, 1);
}

/// The af_packet PMD, one queue pair, as documented.
#[test]
fn veth_af_packet_one_queue() {
    if skip() {
        return;
    }
    let o = run(&Setup {
        tag: "a",
        port: "net_af_packet0",
        vdev_args: "iface={if},qpairs=1",
        queues: 1,
        flows: 3,
        images: 30,
    });
    check(&o, 1);
}

/// The af_packet PMD with two queue pairs: PACKET_FANOUT hashing spreads 8 flows over both
/// rx queues, and both workers reassemble their share exactly.
#[test]
fn veth_af_packet_two_queues() {
    if skip() {
        return;
    }
    let o = run(&Setup {
        tag: "b",
        port: "net_af_packet0",
        vdev_args: "iface={if},qpairs=2",
        queues: 2,
        flows: 8,
        images: 64,
    });
    check(&o, 2);
    let r = &o.report;
    eprintln!(
        "per rx queue: packets {}, fragments accepted [{}, {}]",
        r["ports"][0]["q_ipackets"],
        r["workers"][0]["verifier"]["accepted"],
        r["workers"][1]["verifier"]["accepted"]
    );
    for w in 0..2 {
        assert!(
            n(&r["workers"][w]["verifier"]["accepted"]) > 0,
            "worker {w} got no fragments: the flows were not spread\n{r:#}"
        );
        assert!(
            n(&r["ports"][0]["q_ipackets"][w]) > 0,
            "rx queue {w} got nothing\n{r:#}"
        );
    }
    let per_worker: u64 = (0..2).map(|w| n(&r["workers"][w]["rx"]["fragments"])).sum();
    assert_eq!(per_worker, n(&r["total"]["rx"]["fragments"]));
}
