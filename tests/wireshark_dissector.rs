//! The Wireshark dissector `tools/wireshark/netml.lua` decodes real captures as `netml-wire`
//! parses them: fragments made by `netml-pktgen` (header fields, descriptor, header
//! checksum status, also for a frame with a corrupted header and on a port other than 9000,
//! found by the heuristic) and result messages built with `netml_wire::result::Repr::emit`.
//! Skipped (with a message) when `tshark` is not installed.

use netml_e2e::*;
use netml_wire::fragment;
use netml_wire::frame::{self, Classified, Endpoints};
use netml_wire::result::{self, Status};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fields the test reads, in this order.
const FIELDS: &[&str] = &[
    "netml.type",
    "netml.model",
    "netml.image",
    "netml.index",
    "netml.count",
    "netml.frag_size",
    "netml.total_bytes",
    "netml.checksum",
    "netml.checksum.status",
    "netml.checksum.calculated",
    "netml.desc.dtype",
    "netml.desc.layout",
    "netml.desc.rank",
    "netml.desc.dim",
    "netml.desc.timestamp",
    "netml.desc.crc32",
    "netml.data.len",
    "netml.result.status",
    "netml.result.k",
    "netml.result.arrived",
    "netml.result.crc32",
    "netml.result.sender_timestamp",
    "netml.result.stage.rx_first",
    "netml.result.stage.sent",
    "netml.result.class",
    "netml.result.score",
    "_ws.col.Info",
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/wireshark/netml.lua")
}

/// One row per frame: field name -> value as tshark prints it ("" when absent).
struct Row(Vec<String>);

impl Row {
    fn get(&self, field: &str) -> &str {
        let i = FIELDS.iter().position(|f| *f == field).unwrap();
        &self.0[i]
    }
    fn num(&self, field: &str) -> u64 {
        let v = self.get(field);
        let parsed = match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        };
        parsed.unwrap_or_else(|e| panic!("{field} = {v:?}: {e}"))
    }
}

fn tshark_rows(pcap: &Path) -> Vec<Row> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-X")
        .arg(format!("lua_script:{}", script().display()))
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = run_ok(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Lua") && !stderr.to_lowercase().contains("error"),
        "tshark stderr: {stderr}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| Row(l.split('\t').map(str::to_owned).collect()))
        .inspect(|r| assert_eq!(r.0.len(), FIELDS.len(), "{:?}", r.0))
        .collect()
}

/// The verbose tree of one frame.
fn tshark_verbose(pcap: &Path, frame_no: usize) -> String {
    let out = run_ok(
        Command::new("tshark")
            .arg("-X")
            .arg(format!("lua_script:{}", script().display()))
            .arg("-r")
            .arg(pcap)
            .args(["-O", "netml", "-V", "-Y"])
            .arg(format!("frame.number == {frame_no}")),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// UDP payload range of a frame.
fn udp_payload(frame: &[u8]) -> std::ops::Range<usize> {
    frame::parse_udp(frame).unwrap().unwrap().payload
}

fn result_frame(ep: &Endpoints, r: &result::Repr) -> Vec<u8> {
    ep.build(r.buffer_len(), |b| r.emit(b))
}

#[test]
fn dissector_decodes_fragments_and_results_as_netml_wire_parses_them() {
    if !have("tshark") {
        eprintln!("tshark not installed: skipping the Wireshark dissector test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 1x3x8x8 f32 = 768 bytes in 3 fragments of 256, 3 images to model 1.
    let t = Traffic::generate(
        dir.path(),
        "frags",
        &[
            "--synthetic",
            "1x3x8x8",
            "--count",
            "3",
            "--model",
            "1",
            "--frag-size",
            "256",
        ],
    );
    let mut frames: Vec<Vec<u8>> = read_pcap(&t.pcap).into_iter().map(|r| r.data).collect();
    assert_eq!(frames.len(), 9);
    let n_pktgen = frames.len();

    // A copy of fragment 1 of image 0 with one header byte flipped (image id): a header
    // checksum failure, for netml-wire and for the dissector.
    let mut bad = frames[1].clone();
    let p = udp_payload(&bad);
    bad[p.start + 7] ^= 0x40;
    assert_eq!(
        frame::classify(&bad, |port| port == 9000),
        Classified::Invalid(netml_wire::Error::Checksum)
    );
    let mut fixed = bad[p.clone()].to_vec();
    fragment::Packet::new_unchecked(&mut fixed[..]).fill_checksum();
    let should_be = u16::from_be_bytes([fixed[18], fixed[19]]);
    let bad_at = frames.len();
    frames.push(bad);

    // Fragment 0 of image 2 re-sent between other ports: found by the heuristic.
    let other = Endpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlan_tci: None,
        src: "10.0.0.1:5555".parse().unwrap(),
        dst: "10.0.0.2:6666".parse().unwrap(),
    };
    let frag0 = frames[6][udp_payload(&frames[6])].to_vec();
    let heur_frag_at = frames.len();
    frames.push(other.build(frag0.len(), |b| b.copy_from_slice(&frag0)));

    // Result messages from the receiver (port 9000) back to the sender, and one between
    // other ports.
    let reply = Endpoints {
        src_mac: [2, 0, 0, 0, 0, 2],
        dst_mac: [2, 0, 0, 0, 0, 1],
        vlan_tci: None,
        src: "10.0.0.2:9000".parse().unwrap(),
        dst: "10.0.0.1:40000".parse().unwrap(),
    };
    let results = [
        result::Repr {
            model: 1,
            image: 42,
            status: Status::Ok,
            arrived: 0,
            crc32: 0x0DA6_2E3C,
            sender_timestamp: 1_000_000_000,
            stages: [5000, 5800, 6000, 7500, 950_000, 951_000],
            top_k: vec![(281, 0.93), (285, 0.05), (7, 0.125)],
        },
        result::Repr {
            model: 2,
            image: 43,
            status: Status::Incomplete,
            arrived: 2,
            crc32: 0,
            sender_timestamp: 77,
            stages: [100, 0, 0, 0, 0, 200],
            top_k: vec![],
        },
        result::Repr {
            model: 3,
            image: 0xFFFF_FFFF,
            status: Status::ShapeMismatch,
            arrived: 0,
            crc32: 0,
            sender_timestamp: u64::MAX,
            stages: [1, 2, 3, 0, 0, 9],
            top_k: vec![],
        },
        result::Repr {
            model: 1,
            image: 7,
            status: Status::Overloaded,
            arrived: 0,
            crc32: 0,
            sender_timestamp: 5,
            stages: [1, 2, 3, 0, 0, 4],
            top_k: vec![],
        },
    ];
    let results_at = frames.len();
    for r in &results {
        frames.push(result_frame(&reply, r));
    }
    let heur_result = result::Repr {
        model: 9,
        image: 9,
        status: Status::UnknownModel,
        arrived: 0,
        crc32: 0,
        sender_timestamp: 0,
        stages: [1, 0, 0, 0, 0, 2],
        top_k: vec![],
    };
    frames.push(result_frame(&other.reversed(), &heur_result));
    // Something that is neither: not decoded as netml.
    let not_netml_at = frames.len();
    frames.push(other.build(30, |b| b.fill(0x4E)));

    let pcap = dir.path().join("all.pcap");
    write_pcap(&pcap, &frames, 1_700_000_000_000_000_000);
    let rows = tshark_rows(&pcap);
    assert_eq!(rows.len(), frames.len());

    // Fragments: every field as netml-wire parses it.
    let mut fragment_rows: Vec<usize> = (0..n_pktgen).collect();
    fragment_rows.push(heur_frag_at);
    for &i in &fragment_rows {
        let (row, fr) = (&rows[i], &frames[i]);
        let Classified::Fragment {
            header, payload, ..
        } = frame::classify(fr, |_| true)
        else {
            panic!("frame {i} is no fragment")
        };
        let p = udp_payload(fr);
        let ctx = format!("frame {} {:?}", i + 1, row.0);
        assert_eq!(row.get("netml.type"), "0", "{ctx}");
        assert_eq!(row.num("netml.model"), header.model as u64, "{ctx}");
        assert_eq!(row.num("netml.image"), header.image as u64, "{ctx}");
        assert_eq!(row.num("netml.index"), header.index as u64, "{ctx}");
        assert_eq!(row.num("netml.count"), header.count as u64, "{ctx}");
        assert_eq!(row.num("netml.count"), 3, "{ctx}");
        assert_eq!(row.num("netml.frag_size"), 256, "{ctx}");
        assert_eq!(row.num("netml.total_bytes"), 768, "{ctx}");
        let stored = u16::from_be_bytes([fr[p.start + 18], fr[p.start + 19]]);
        assert_eq!(row.num("netml.checksum"), stored as u64, "{ctx}");
        assert_eq!(row.get("netml.checksum.status"), "1", "good: {ctx}");
        assert_eq!(row.num("netml.checksum.calculated"), stored as u64, "{ctx}");
        assert_eq!(row.num("netml.data.len"), payload.len() as u64, "{ctx}");
        assert_eq!(row.num("netml.data.len"), 256, "{ctx}");
        let info = format!(
            "netml frag {}/{} model {} image {}",
            header.index, header.count, header.model, header.image
        );
        assert!(row.get("_ws.col.Info").starts_with(&info), "{ctx}");
        match header.descriptor {
            Some(d) => {
                assert_eq!(header.index, 0);
                assert_eq!(row.num("netml.desc.dtype"), d.dtype as u64, "{ctx}");
                assert_eq!(row.num("netml.desc.dtype"), 3, "f32: {ctx}");
                assert_eq!(row.num("netml.desc.layout"), d.layout as u64, "{ctx}");
                assert_eq!(row.num("netml.desc.rank"), d.rank as u64, "{ctx}");
                assert_eq!(row.get("netml.desc.dim"), "1,3,8,8", "{ctx}");
                assert_eq!(row.num("netml.desc.timestamp"), d.timestamp, "{ctx}");
                assert_eq!(row.num("netml.desc.crc32"), d.crc32 as u64, "{ctx}");
                assert!(row.get("_ws.col.Info").contains("f32 1x3x8x8"), "{ctx}");
            }
            None => {
                assert_ne!(header.index, 0);
                assert_eq!(row.get("netml.desc.dim"), "", "{ctx}");
            }
        }
    }
    // The manifest's CRC-32 is the descriptor's.
    for m in &t.manifest {
        let crc = n(&m["crc32"]);
        assert!(
            rows[..n_pktgen]
                .iter()
                .any(|r| !r.get("netml.desc.crc32").is_empty() && r.num("netml.desc.crc32") == crc),
            "no descriptor with CRC-32 {crc:#x}"
        );
    }

    // The corrupted header: checksum status bad, with the value netml-wire computes.
    let row = &rows[bad_at];
    assert_eq!(row.get("netml.checksum.status"), "0", "bad: {:?}", row.0);
    assert_eq!(row.num("netml.checksum.calculated"), should_be as u64);
    assert!(
        row.get("_ws.col.Info").contains("BAD CHECKSUM"),
        "{:?}",
        row.0
    );
    let tree = tshark_verbose(&pcap, bad_at + 1);
    assert!(
        tree.contains(&format!("[incorrect, should be 0x{should_be:04x}]")),
        "{tree}"
    );
    assert!(tree.contains("Bad header checksum"), "{tree}");
    let tree = tshark_verbose(&pcap, 2);
    assert!(tree.contains("[correct]"), "{tree}");

    // Results: as emitted.
    let mut result_rows: Vec<(usize, &result::Repr)> = results
        .iter()
        .enumerate()
        .map(|(j, r)| (results_at + j, r))
        .collect();
    result_rows.push((results_at + results.len(), &heur_result));
    for (i, r) in result_rows {
        let row = &rows[i];
        let ctx = format!("frame {} {:?}", i + 1, row.0);
        // netml-wire reads the frame back as what was emitted.
        let back = result::Repr::parse(&result::Packet::new_unchecked(
            &frames[i][udp_payload(&frames[i])],
        ))
        .unwrap();
        assert_eq!(&back, r);
        assert_eq!(row.get("netml.type"), "1", "{ctx}");
        assert_eq!(row.num("netml.model"), r.model as u64, "{ctx}");
        assert_eq!(row.num("netml.image"), r.image as u64, "{ctx}");
        assert_eq!(row.num("netml.result.status"), r.status as u64, "{ctx}");
        assert_eq!(row.num("netml.result.k"), r.top_k.len() as u64, "{ctx}");
        assert_eq!(row.num("netml.result.arrived"), r.arrived as u64, "{ctx}");
        assert_eq!(row.num("netml.result.crc32"), r.crc32 as u64, "{ctx}");
        assert_eq!(
            row.num("netml.result.sender_timestamp"),
            r.sender_timestamp,
            "{ctx}"
        );
        assert_eq!(row.num("netml.result.stage.rx_first"), r.stages[0], "{ctx}");
        assert_eq!(row.num("netml.result.stage.sent"), r.stages[5], "{ctx}");
        let classes: Vec<String> = r.top_k.iter().map(|(c, _)| c.to_string()).collect();
        assert_eq!(row.get("netml.result.class"), classes.join(","), "{ctx}");
        let scores: Vec<f32> = row
            .get("netml.result.score")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let sent: Vec<f32> = r.top_k.iter().map(|(_, s)| *s).collect();
        assert_eq!(scores, sent, "{ctx}");
        let info = format!(
            "netml result model {} image {} {}",
            r.model,
            r.image,
            r.status.name()
        );
        assert!(row.get("_ws.col.Info").starts_with(&info), "{ctx}");
    }
    assert_eq!(
        rows[results_at].get("_ws.col.Info"),
        "netml result model 1 image 42 ok top1 281 (0.93)"
    );
    assert_eq!(
        rows[results_at + 1].get("_ws.col.Info"),
        "netml result model 2 image 43 incomplete arrived 2"
    );
    let tree = tshark_verbose(&pcap, results_at + 1);
    for text in [
        "Status: ok (0)",
        "rx_first (ns): 5000",
        "inferred (ns): 950000",
        "Top-1: class 281, score 0.93",
        "Top-3: class 7, score 0.125",
    ] {
        assert!(tree.contains(text), "{text:?} not in {tree}");
    }

    // Other UDP traffic is left alone.
    assert_eq!(rows[not_netml_at].get("netml.type"), "");
}
