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

/// Frames of one image of `len` bytes (u8 tensor) in 64-byte fragments.
fn image_frames(ep: &Endpoints, image: u32, len: usize) -> (Vec<Vec<u8>>, u32) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + image as usize) as u8).collect();
    let crc = checksum::tensor_crc32([&data[..]]);
    let count = fragment::fragment_count(len as u64, 64) as u16;
    let desc = DescriptorRepr::new(Dtype::U8, Layout::Plain, &[len as u32], 42, crc);
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
