//! `netml verify-pcap` on a capture whose every fault is known.

mod common;

use netml_wire::fragment::{self, DescriptorRepr, Dtype, Layout};
use netml_wire::frame::Endpoints;
use netml_wire::{checksum, pcap};
use serde_json::Value;

fn endpoints(port: u16) -> Endpoints {
    Endpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlan_tci: None,
        src: format!("10.0.0.1:{port}").parse().unwrap(),
        dst: "10.0.0.2:9000".parse().unwrap(),
    }
}

/// Frames of one image of `len` bytes (u8 tensor, model 2, sender timestamp 42) in 64-byte
/// fragments.
fn image_frames(ep: &Endpoints, image: u32, len: usize) -> (Vec<Vec<u8>>, u32) {
    timed_image_frames(ep, image, len, 42)
}

/// The same with another sender timestamp.
fn timed_image_frames(
    ep: &Endpoints,
    image: u32,
    len: usize,
    timestamp: u64,
) -> (Vec<Vec<u8>>, u32) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + image as usize) as u8).collect();
    let crc = checksum::tensor_crc32([&data[..]]);
    let count = fragment::fragment_count(len as u64, 64) as u16;
    let desc = DescriptorRepr::new(Dtype::U8, Layout::Plain, &[len as u32], timestamp, crc);
    let frames = (0..count)
        .map(|index| {
            let h = fragment::Repr {
                model: 2,
                image,
                index,
                count,
                frag_size: 64,
                total_bytes: len as u32,
                descriptor: (index == 0).then_some(desc),
            };
            let at = h.tensor_offset();
            let chunk = &data[at..at + h.expected_payload_len().unwrap()];
            ep.build(h.header_len() + chunk.len(), |b| {
                h.emit(&mut fragment::Packet::new_unchecked(&mut *b));
                b[h.header_len()..].copy_from_slice(chunk);
            })
        })
        .collect();
    (frames, crc)
}

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

/// Writes `(capture time, frame)` records to DIR/NAME.pcap and runs `netml verify-pcap
/// --json ARGS` on it.
fn verify(frames: &[(u64, Vec<u8>)], args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.pcap");
    let mut w = pcap::Writer::new(std::fs::File::create(&path).unwrap()).unwrap();
    for (t, f) in frames {
        w.write(*t, f).unwrap();
    }
    w.into_inner().unwrap();
    let out = common::netml()
        .args(["verify-pcap", "--json"])
        .args(args)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The verifier counters that the late window and new incarnations decide.
fn late_counters(doc: &Value) -> [u64; 7] {
    let v = &doc["verifier"];
    [
        "accepted",
        "late",
        "images_completed",
        "evicted_timeout",
        "fragments_evicted",
        "forgotten_early",
        "duplicate",
    ]
    .map(|k| v[k].as_u64().unwrap())
}

/// docs/protocol.md §7 on four flows that reuse an image id (3 fragments) within the late
/// window: a fragment 0 with a new timestamp starts a new incarnation (also after an
/// eviction); the same timestamp, or fragments before fragment 0, are late.
#[test]
fn reused_image_ids_follow_the_new_incarnation_rule() {
    let id = 0xFFFF_FFFF;
    let flow = |port: u16| Endpoints {
        src: format!("10.0.1.1:{port}").parse().unwrap(),
        ..endpoints(port)
    };
    let (a, b, c, d) = (flow(40100), flow(40101), flow(40102), flow(40103));
    let img = |ep: &Endpoints, ts: u64| timed_image_frames(ep, id, 150, ts).0;
    let mut frames = Vec::new();
    let mut at = |t: u64, fs: Vec<Vec<u8>>| frames.extend(fs.into_iter().map(|f| (t, f)));
    at(T0, img(&a, 7));
    at(T0, img(&b, 7));
    at(T0, img(&c, 7));
    at(T0, img(&d, 7)[..2].to_vec()); // fragment 2 lost: evicted at T0 + 500 ms
                                      // 100 ms later: a new timestamp, fragment 0 first (completes); the same timestamp
                                      // (late); a new timestamp but fragments 1 and 2 first (late; 0 opens an image that
                                      // cannot complete and is evicted at T0 + 600 ms).
    at(T0 + 100 * MS, img(&a, 8));
    at(T0 + 100 * MS, img(&b, 7));
    let mut c2 = img(&c, 8);
    c2.rotate_left(1);
    at(T0 + 100 * MS, c2);
    // 100 ms after its eviction, flow d resends with a new timestamp: a new image.
    at(T0 + 600 * MS, img(&d, 8));

    let doc = verify(&frames, &[]);
    // accepted, late, images_completed, evicted_timeout, fragments_evicted,
    // forgotten_early, duplicate
    assert_eq!(late_counters(&doc), [18, 5, 5, 2, 3, 0, 0], "{doc:#}");
    let mut got: Vec<(String, u64)> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["image"], id);
            assert_eq!(i["crc_ok"], true);
            let src = i["source"].as_str().unwrap().to_string();
            (src, i["sender_timestamp_ns"].as_u64().unwrap())
        })
        .collect();
    got.sort();
    let want: Vec<(String, u64)> = [
        ("10.0.1.1:40100", 7),
        ("10.0.1.1:40100", 8),
        ("10.0.1.1:40101", 7),
        ("10.0.1.1:40102", 7),
        ("10.0.1.1:40103", 8),
    ]
    .map(|(s, t)| (s.to_string(), t))
    .to_vec();
    assert_eq!(got, want);
}

/// 4,200 single-fragment images 50 us apart (20k images/s), then copies of the 1st and the
/// 101st 210 ms after the first completed: late by the time-based window. With
/// `--max-finished 1000` the oldest are forgotten early, counted, and the copies open new
/// images.
#[test]
fn the_late_window_holds_at_20k_images_per_second() {
    let ep = endpoints(40000);
    let mut frames = Vec::new();
    let mut copies = Vec::new();
    for i in 0..4200u32 {
        let f = image_frames(&ep, i, 64).0.remove(0);
        if i == 0 || i == 100 {
            copies.push((T0 + 210 * MS, f.clone()));
        }
        frames.push((T0 + i as u64 * 50_000, f));
    }
    frames.extend(copies);
    let doc = verify(&frames, &["--no-images"]);
    assert_eq!(late_counters(&doc), [4200, 2, 4200, 0, 0, 0, 0], "{doc:#}");
    let doc = verify(&frames, &["--no-images", "--max-finished", "1000"]);
    assert_eq!(
        late_counters(&doc),
        [4202, 0, 4202, 0, 0, 3202, 0],
        "{doc:#}"
    );
}

#[test]
fn every_fault_lands_in_its_counter() {
    let ep = endpoints(40000);
    let (good, good_crc) = image_frames(&ep, 1, 300); // 5 fragments
    let (mut lossy, _) = image_frames(&ep, 2, 200); // 4 fragments, one lost
    lossy.remove(2);
    let mut truncated = good[1].clone();
    truncated.truncate(70);
    let mut corrupted = good[2].clone();
    corrupted[42 + 5] ^= 0x10; // image id byte inside the fragment header (after UDP)
    let other = endpoints(40001).build(10, |_| {});
    let mut other_port = other.clone();
    other_port[36..38].copy_from_slice(&53u16.to_be_bytes()); // UDP dst port 53

    let mut frames = vec![
        good[0].clone(),
        good[1].clone(),
        good[1].clone(),
        truncated,
        corrupted,
    ];
    frames.extend(good[2..].iter().cloned());
    frames.push(good[4].clone()); // a duplicate after completion: late
    frames.extend(lossy);
    frames.push(other_port);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faults.pcap");
    let mut w = pcap::Writer::new(std::fs::File::create(&path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write(1_700_000_000_000_000_000 + i as u64 * 1000, f)
            .unwrap();
    }
    w.into_inner().unwrap();

    let out = common::netml()
        .args(["verify-pcap", "--json", "--strict"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rx = &doc["rx"];
    assert_eq!(rx["frames"], 13);
    assert_eq!(rx["fragments"], 10);
    assert_eq!(rx["truncated"], 1);
    assert_eq!(rx["bad_checksum"], 1);
    // The UDP checksum no longer matches after the port rewrite, but UDP checksums are not
    // checked: the frame is simply not ours.
    assert_eq!(rx["other"], 1);
    let v = &doc["verifier"];
    assert_eq!(v["accepted"], 5 + 3);
    assert_eq!(v["duplicate"], 1);
    assert_eq!(v["late"], 1);
    assert_eq!(v["images_completed"], 1);
    assert_eq!(v["evicted_timeout"], 1);
    assert_eq!(v["fragments_evicted"], 3);
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["image"], 1);
    assert_eq!(images[0]["crc32"], format!("{good_crc:08x}"));
    assert_eq!(images[0]["crc_ok"], true);
    assert_eq!(doc["crc_mismatch"], 0);
}

#[test]
fn missing_and_foreign_files_are_one_line_errors() {
    let out = common::netml()
        .args(["verify-pcap", "/nonexistent.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("netml: /nonexistent.pcap:"), "{err}");
    assert_eq!(err.lines().count(), 1);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.pcap");
    std::fs::write(&path, "this is not a capture file at all").unwrap();
    let out = common::netml()
        .arg("verify-pcap")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a classic pcap"));
}
