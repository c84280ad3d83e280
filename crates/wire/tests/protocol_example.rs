//! The worked example of docs/protocol.md, as a golden test: the frames a sender builds for a
//! 40-byte u8 tensor cut into 16-byte fragments, and a result message for it.
//!
//! If the wire format changes, this test fails; regenerate the hex for the spec with
//! `cargo test -p netml-wire --test protocol_example -- --nocapture print_example`.
//!
//! `NETML_WRITE_SEEDS=fuzz/seeds cargo test -p netml-wire --test protocol_example -- --ignored`
//! writes the example frames as seed inputs for the fuzz target (see fuzz/README.md).

use netml_wire::checksum;
use netml_wire::fragment::{self, DescriptorRepr, Dtype, Layout};
use netml_wire::frame::{self, Classified, Endpoints};
use netml_wire::result::{self, Stage, Status};
use std::net::SocketAddr;

const FRAG_SIZE: u16 = 16;

fn endpoints() -> Endpoints {
    Endpoints {
        src_mac: [0x02, 0, 0, 0, 0, 0x01],
        dst_mac: [0x02, 0, 0, 0, 0, 0x02],
        vlan_tci: None,
        src: "10.0.0.1:40000".parse::<SocketAddr>().unwrap(),
        dst: "10.0.0.2:9000".parse::<SocketAddr>().unwrap(),
    }
}

/// The tensor: 40 bytes 0x00..=0x27, u8, NHWC shape [1, 2, 4, 5].
fn tensor() -> Vec<u8> {
    (0u8..40).collect()
}

/// The three frames of image 0x01020304 for model 7.
fn frames() -> Vec<Vec<u8>> {
    let t = tensor();
    let total = t.len() as u32;
    let count = fragment::fragment_count(total as u64, FRAG_SIZE) as u16;
    let crc = checksum::tensor_crc32([&t[..]]);
    let desc = DescriptorRepr::new(Dtype::U8, Layout::Nhwc, &[1, 2, 4, 5], 1_000_000_000, crc);
    (0..count)
        .map(|i| {
            let h = fragment::Repr {
                model: 7,
                image: 0x0102_0304,
                index: i,
                count,
                frag_size: FRAG_SIZE,
                total_bytes: total,
                descriptor: (i == 0).then_some(desc),
            };
            let start = h.tensor_offset();
            let end = (start + FRAG_SIZE as usize).min(t.len());
            let chunk = &t[start..end];
            assert_eq!(h.expected_payload_len(), Some(chunk.len()));
            endpoints().build(h.header_len() + chunk.len(), |b| {
                h.emit(&mut fragment::Packet::new_unchecked(&mut b[..]));
                b[h.header_len()..].copy_from_slice(chunk);
            })
        })
        .collect()
}

/// A result message for the image: status Ok, top-2.
fn result_repr() -> result::Repr {
    result::Repr {
        model: 7,
        image: 0x0102_0304,
        status: Status::Ok,
        arrived: 0,
        crc32: checksum::tensor_crc32([&tensor()[..]]),
        sender_timestamp: 1_000_000_000,
        stages: [5_000, 5_800, 6_000, 7_500, 950_000, 951_000],
        top_k: vec![(3, 0.75), (1, 0.125)],
    }
}

fn result_bytes() -> Vec<u8> {
    let r = result_repr();
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hex dump in the layout the spec uses: 16 bytes a line, offset first.
fn dump(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, line) in b.chunks(16).enumerate() {
        let bytes: Vec<String> = line.iter().map(|x| format!("{x:02x}")).collect();
        s.push_str(&format!("{:04x}  {}\n", i * 16, bytes.join(" ")));
    }
    s
}

// The bytes docs/protocol.md shows (section "Worked example").
const FRAME0: &str = concat!(
    "02000000000202000000000108004500008200004000401126690a0000010a00",
    "00029c402328006ef3664e4d1107010203040000000300100000002855df0000",
    "0102040000000001000000020000000400000005000000000000000000000000",
    "3b9aca000da62e3c000000000000000000000000000000000000000000000000",
    "000102030405060708090a0b0c0d0e0f",
);
const FRAME1: &str = concat!(
    "02000000000202000000000108004500004200004000401126a90a0000010a00",
    "00029c402328002e73664e4d100701020304000100030010000000289d690000",
    "101112131415161718191a1b1c1d1e1f",
);
const FRAME2: &str = concat!(
    "02000000000202000000000108004500003a00004000401126b10a0000010a00",
    "00029c40232800269fa64e4d100701020304000200030010000000289d680000",
    "2021222324252627",
);
const RESULT: &str = concat!(
    "4e52100701020304000200000da62e3c000000003b9aca000000000000001388",
    "00000000000016a800000000000017700000000000001d4c00000000000e7ef0",
    "00000000000e82d8000000033f400000000000013e000000",
);

#[test]
fn print_example() {
    for (i, f) in frames().iter().enumerate() {
        println!("frame {i} ({} bytes):\n{}", f.len(), dump(f));
        println!("frame {i} hex: {}\n", hex(f));
    }
    let r = result_bytes();
    println!("result message ({} bytes):\n{}", r.len(), dump(&r));
    println!("result hex: {}", hex(&r));
    println!(
        "tensor crc32: {:#010x}",
        checksum::tensor_crc32([&tensor()[..]])
    );
}

#[test]
fn frames_match_the_spec() {
    let f = frames();
    assert_eq!(f.len(), 3);
    for (got, want) in f.iter().zip([FRAME0, FRAME1, FRAME2]) {
        assert_eq!(hex(got), want);
    }
    assert_eq!(hex(&result_bytes()), RESULT);
}

#[test]
fn frames_classify_and_reassemble() {
    let mut tensor_out = vec![0u8; 40];
    for (i, f) in frames().iter().enumerate() {
        match frame::classify(f, |p| p == 9000) {
            Classified::Fragment {
                source,
                header,
                payload,
            } => {
                assert_eq!(source, endpoints().src);
                assert_eq!(header.index as usize, i);
                assert_eq!(payload.start, if i == 0 { 128 } else { 64 });
                assert_eq!(Some(payload.len()), header.expected_payload_len());
                let at = header.tensor_offset();
                tensor_out[at..at + payload.len()].copy_from_slice(&f[payload]);
            }
            other => panic!("frame {i}: {other:?}"),
        }
    }
    assert_eq!(tensor_out, tensor());
    let r = result_bytes();
    assert_eq!(
        result::Repr::parse(&result::Packet::new_unchecked(&r[..])).unwrap(),
        result_repr()
    );
    assert_eq!(
        result::Packet::new_unchecked(&r[..]).stage(Stage::Inferred),
        950_000
    );
}

/// Writes the example frames (and a VLAN/IPv6 variant of fragment 0) as fuzz seeds.
#[test]
#[ignore = "writes files; run explicitly with NETML_WRITE_SEEDS=<dir>"]
fn write_fuzz_seeds() {
    let Ok(dir) = std::env::var("NETML_WRITE_SEEDS") else {
        eprintln!("NETML_WRITE_SEEDS not set; nothing written");
        return;
    };
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let f = frames();
    std::fs::write(dir.join("ipv4-frag0"), &f[0]).unwrap();
    std::fs::write(dir.join("ipv4-frag1"), &f[1]).unwrap();
    // Fragment 2 of the example, re-framed with a VLAN tag over IPv6.
    let ep = Endpoints {
        vlan_tci: Some(100),
        src: "[fd00::1]:40000".parse().unwrap(),
        dst: "[fd00::2]:9000".parse().unwrap(),
        ..endpoints()
    };
    let udp = &f[2][42..];
    std::fs::write(
        dir.join("vlan-ipv6-frag2"),
        ep.build(udp.len(), |b| b.copy_from_slice(udp)),
    )
    .unwrap();
    std::fs::write(dir.join("result"), result_bytes()).unwrap();
    let mut w = netml_wire::pcap::Writer::new(Vec::new()).unwrap();
    w.write(1_000_000_000, &f[0]).unwrap();
    w.write(1_000_001_000, &f[1]).unwrap();
    std::fs::write(dir.join("capture.pcap"), w.into_inner().unwrap()).unwrap();
}
