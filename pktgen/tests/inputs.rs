//! Image and .npy inputs through the binary, and the capture as other tools see it.

mod common;

use common::{json, manifest, pktgen, pktgen_raw, read_capture, scratch};
use image::{Rgb, RgbImage};
use netml_wire::checksum::tensor_crc32;
use netml_wire::fragment::{Dtype, Layout};
use std::process::Command;

fn test_image(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 30) as u8, (y * 20) as u8, ((x + y) * 7) as u8])
    })
}

/// The single image in a one-image capture.
fn only_image(pcap: &std::path::Path) -> common::Seen {
    let mut c = read_capture(pcap, 9000);
    assert_eq!(c.images.len(), 1);
    c.images.pop_first().unwrap().1
}

#[test]
fn png_u8_hwc_is_the_raw_pixels() {
    let dir = scratch("png-u8");
    let png = dir.join("a.png");
    let img = test_image(8, 6);
    img.save(&png).unwrap();
    let pcap = dir.join("a.pcap");
    pktgen(&[
        "--image",
        png.to_str().unwrap(),
        "--size",
        "6x8",
        "--format",
        "u8-hwc",
        "--frag-size",
        "50",
        "--pcap",
        pcap.to_str().unwrap(),
        "--quiet",
    ]);
    let seen = only_image(&pcap);
    let d = seen.descriptor.unwrap();
    assert_eq!(
        (d.dtype, d.layout, d.shape()),
        (Dtype::U8, Layout::Nhwc, &[1, 6, 8, 3][..])
    );
    assert_eq!(seen.tensor().unwrap(), img.into_raw());
}

#[test]
fn png_and_jpeg_f32_chw_are_normalised_and_resized() {
    let dir = scratch("png-f32");
    let png = dir.join("a.png");
    let jpg = dir.join("b.jpg");
    test_image(4, 4).save(&png).unwrap();
    test_image(40, 30).save(&jpg).unwrap();
    let (pcap, man) = (dir.join("a.pcap"), dir.join("m.jsonl"));
    pktgen(&[
        "--image",
        png.to_str().unwrap(),
        jpg.to_str().unwrap(),
        "--size",
        "4x4",
        "--pcap",
        pcap.to_str().unwrap(),
        "--manifest",
        man.to_str().unwrap(),
        "--quiet",
    ]);
    let c = read_capture(&pcap, 9000);
    assert_eq!(c.images.len(), 2);
    for seen in c.images.values() {
        let d = seen.descriptor.unwrap();
        assert_eq!(
            (d.dtype, d.layout, d.shape()),
            (Dtype::F32, Layout::Nchw, &[1, 3, 4, 4][..])
        );
        assert_eq!(seen.crc32(), Some(d.crc32));
    }
    let m = manifest(&man);
    // Image 0 is the PNG: check pixel (0, 1) of the green plane against the formula.
    let png_seen = &c.images.iter().find(|(k, _)| k.2 == 0).unwrap().1;
    let t = png_seen.tensor().unwrap();
    let px = |c: usize, y: usize, x: usize| {
        let at = (c * 16 + y * 4 + x) * 4;
        f32::from_le_bytes(t[at..at + 4].try_into().unwrap())
    };
    let expect = (20.0 / 255.0 - 0.456) / 0.224;
    assert!(
        (px(1, 1, 0) - expect).abs() < 1e-6,
        "{} vs {expect}",
        px(1, 1, 0)
    );
    assert_eq!(
        m[0]["crc32"].as_u64(),
        Some(tensor_crc32([t.as_slice()]) as u64)
    );
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn npy_inputs_keep_shape_and_bytes() {
    let dir = scratch("npy");
    let data: Vec<u8> = (0..2 * 3 * 5 * 7 * 4)
        .map(|i| (i * 13 % 251) as u8)
        .collect();
    let f = dir.join("a.npy");
    std::fs::write(&f, npy("<f4", "(2, 3, 5, 7)", &data)).unwrap();
    let h = dir.join("b.npy");
    std::fs::write(&h, npy("<f2", "(11,)", &data[..22])).unwrap();
    let u = dir.join("c.npy");
    std::fs::write(&u, npy("|u1", "(3, 9)", &data[..27])).unwrap();
    for (path, dtype, layout, shape, bytes) in [
        (
            &f,
            Dtype::F32,
            Layout::Nchw,
            &[2u32, 3, 5, 7][..],
            &data[..],
        ),
        (&h, Dtype::F16, Layout::Plain, &[11][..], &data[..22]),
        (&u, Dtype::U8, Layout::Plain, &[3, 9][..], &data[..27]),
    ] {
        let pcap = dir.join("x.pcap");
        pktgen(&[
            "--npy",
            path.to_str().unwrap(),
            "--frag-size",
            "100",
            "--pcap",
            pcap.to_str().unwrap(),
            "--quiet",
        ]);
        let seen = only_image(&pcap);
        let d = seen.descriptor.unwrap();
        assert_eq!((d.dtype, d.layout, d.shape()), (dtype, layout, shape));
        assert_eq!(seen.tensor().unwrap(), bytes);
    }
    let bad = dir.join("bad.npy");
    std::fs::write(&bad, npy("<f8", "(2,)", &[0; 16])).unwrap();
    let out = pktgen_raw(&[
        "--npy",
        bad.to_str().unwrap(),
        "--pcap",
        dir.join("y.pcap").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unsupported dtype"), "{err}");
}

#[test]
fn tshark_reads_the_pcap_as_udp() {
    if Command::new("tshark").arg("-v").output().is_err() {
        eprintln!("note: tshark is not installed; skipping tshark_reads_the_pcap_as_udp");
        return;
    }
    let dir = scratch("tshark");
    let (pcap, summary) = (dir.join("t.pcap"), dir.join("s.json"));
    pktgen(&[
        "--synthetic",
        "1x3x16x16",
        "--count",
        "2",
        "--pcap",
        pcap.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(json(&summary)["frames_written"], 6);
    let out = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap(), "-c", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    for l in lines {
        assert!(
            l.contains("UDP") && l.contains("10.0.0.1") && l.contains("9000"),
            "{l}"
        );
    }
}

#[test]
fn user_errors_are_one_line_and_nonzero() {
    let dir = scratch("errors");
    let pcap = dir.join("e.pcap");
    let p = pcap.to_str().unwrap();
    for (args, needle) in [
        (vec!["--synthetic", "4"], "choose an output"),
        (
            vec!["--image", "/nonexistent.png", "--pcap", p],
            "/nonexistent.png",
        ),
        (vec!["--synthetic", "2x0", "--pcap", p], "bad shape"),
        (
            vec!["--loss", "0.7", "--corrupt", "0.5", "--pcap", p],
            "must not exceed 1",
        ),
        (vec!["--src", "10.0.0.1", "--pcap", p], "--src"),
        (
            vec!["--synthetic", "300000", "--frag-size", "1", "--pcap", p],
            "65535",
        ),
    ] {
        let out = pktgen_raw(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
