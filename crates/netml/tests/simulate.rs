//! `netml simulate`: the table, CSV, JSON and plots on a small profile, arrivals from a
//! capture, and SLAB against the baselines on the H100 profile (the targets).

mod common;

use common::{assert_svg, netml, stdout_of, Table};
use netml_wire::fragment::{self, DescriptorRepr, Dtype, Layout};
use netml_wire::frame::Endpoints;
use netml_wire::pcap;
use serde_json::Value;
use std::path::Path;

const TABLE_COLUMNS: [&str; 13] = [
    "load",
    "policy",
    "function",
    "offered/s",
    "admitted",
    "answered",
    "shed",
    "throughput/s",
    "goodput/s",
    "p50 ms",
    "p99 ms",
    "attainment",
    "violations",
];

/// Two models: `fast` (1 ms alone, 4 ms for 32) and `slow` (5 ms alone, 40 ms for 32).
const PROFILE: &str = "# test\nmodel,precision,batch,ms\nfast,fp32,1,1\nfast,fp32,32,4\nslow,fp32,1,5\nslow,fp32,8,12\nslow,fp32,32,40\n";

fn write_profile(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("profile.csv");
    std::fs::write(&p, PROFILE).unwrap();
    p
}

/// A CSV line split at commas outside quotes (the policy `max_delay:N,D` is quoted).
fn split_csv(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[test]
fn table_csv_json_and_plots_on_a_small_profile() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path());
    let (csv, svg) = (dir.path().join("s.csv"), dir.path().join("s.svg"));
    let common = |cmd: &mut std::process::Command| {
        cmd.args(["simulate", "--duration-s", "0.5", "--load", "0.5,1.2"])
            .arg("--profile")
            .arg(&profile)
            .args(["--policies", "slab,fixed:4,max_delay:8,2000"])
            .args(["--function", "fast,slo_ms=20,batch_sizes=1,8,32"]);
        cmd.args(["--function", "slow,model=9,instances=2"]);
    };
    let mut cmd = netml();
    common(&mut cmd);
    let out = stdout_of(cmd.arg("--csv").arg(&csv).arg("--plot").arg(&svg));
    let header = out
        .lines()
        .find(|l| l.starts_with("load "))
        .unwrap_or_else(|| panic!("no table header:\n{out}"));
    let found: Vec<&str> = TABLE_COLUMNS
        .iter()
        .copied()
        .filter(|c| header.contains(c))
        .collect();
    assert_eq!(found, TABLE_COLUMNS, "{header}");
    // 2 loads x 3 policies x 2 functions.
    let rows = out
        .lines()
        .filter(|l| l.starts_with("0.500 ") || l.starts_with("1.200 "));
    assert_eq!(rows.count(), 12, "{out}");
    assert!(out.contains("function slow (model 9)"), "{out}");
    assert!(
        out.contains("load 1.2") && out.contains("slab/best other"),
        "{out}"
    );

    let text = std::fs::read_to_string(&csv).unwrap();
    let t = Table::parse(&text);
    for c in [
        "load",
        "policy",
        "function",
        "offered_per_s",
        "admitted",
        "answered",
        "shed",
        "throughput_per_s",
        "goodput_per_s",
        "p50_ms",
        "p99_ms",
        "attainment",
        "violations",
    ] {
        t.col(c);
    }
    let rows: Vec<Vec<String>> = text.lines().skip(1).map(split_csv).collect();
    assert_eq!(rows.len(), 12);
    for r in &rows {
        assert_eq!(r.len(), t.header.len(), "{r:?}");
        let num = |c: &str| -> f64 { r[t.col(c)].parse().unwrap() };
        assert!(num("answered") + num("shed") <= num("offered"), "{r:?}");
        assert!(num("goodput_per_s") <= num("offered_per_s") + 1e-6, "{r:?}");
        assert!((0.0..=1.0).contains(&num("attainment")));
        assert_eq!(num("violations"), num("answered") - num("within_slo"));
    }
    let policies: Vec<&str> = rows.iter().map(|r| r[t.col("policy")].as_str()).collect();
    assert!(policies.contains(&"max_delay:8,2000"), "{policies:?}");
    // The fast function at load 0.5 has 20 ms of SLO and capacity 32/4 ms = 8000/s.
    let fast = &rows[0];
    assert_eq!(
        (
            fast[t.col("function")].as_str(),
            fast[t.col("slo_ms")].as_str()
        ),
        ("fast", "20.000")
    );
    assert_eq!(fast[t.col("capacity_per_s")], "8000.0");
    assert_svg(&std::fs::read_to_string(&svg).unwrap());
    let p99 = std::fs::read_to_string(dir.path().join("s-p99.svg")).unwrap();
    assert_svg(&p99);
    assert!(p99.contains("max_delay:8,2000"), "{p99}");

    let mut cmd = netml();
    common(&mut cmd);
    let doc: Value = serde_json::from_str(&stdout_of(cmd.arg("--json"))).unwrap();
    assert_eq!(doc["runs"].as_array().unwrap().len(), 6);
    assert_eq!(doc["functions"][1]["model"], 9);
    assert_eq!(doc["runs"][0]["functions"][0]["function"], "fast");
    assert_eq!(doc["summary"].as_array().unwrap().len(), 2);
}

/// Frames of one 128-byte image (two 64-byte fragments) of `model`.
fn image(ep: &Endpoints, model: u8, image: u32) -> Vec<Vec<u8>> {
    let data = [model; 128];
    let crc = netml_wire::checksum::tensor_crc32([&data[..]]);
    let desc = DescriptorRepr::new(Dtype::U8, Layout::Plain, &[128], 0, crc);
    (0..2u16)
        .map(|index| {
            let h = fragment::Repr {
                model,
                image,
                index,
                count: 2,
                frag_size: 64,
                total_bytes: 128,
                descriptor: (index == 0).then_some(desc),
            };
            ep.build(h.header_len() + 64, |b| {
                h.emit(&mut fragment::Packet::new_unchecked(&mut *b));
                b[h.header_len()..].fill(model);
            })
        })
        .collect()
}

#[test]
fn a_capture_gives_the_arrivals_and_model_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ep = Endpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlan_tci: None,
        src: "10.0.0.1:5000".parse().unwrap(),
        dst: "10.0.0.2:9000".parse().unwrap(),
    };
    let path = dir.path().join("t.pcap");
    let mut w = pcap::Writer::new(std::fs::File::create(&path).unwrap()).unwrap();
    let t0 = 1_700_000_000_000_000_000u64;
    // 30 images of model 1 and 10 of model 2 over 100 ms, one of model 5 (no function), and
    // image 0's fragment 0 again (a duplicate, not a new image).
    for i in 0..40u32 {
        let model = if i % 4 == 3 { 2 } else { 1 };
        let f = image(&ep, model, i);
        let at = t0 + i as u64 * 2_500_000;
        // Fragment 1 first: the arrival is fragment 0's.
        w.write(at, &f[1]).unwrap();
        w.write(at + 1000, &f[0]).unwrap();
    }
    w.write(t0 + 50_000_000, &image(&ep, 5, 99)[0]).unwrap();
    w.write(t0 + 60_000_000, &image(&ep, 1, 0)[0]).unwrap();
    drop(w.into_inner().unwrap());
    let out = stdout_of(
        netml()
            .args(["simulate", "--profile"])
            .arg(write_profile(dir.path()))
            .args([
                "--function",
                "fast",
                "--function",
                "slow",
                "--policies",
                "slab",
                "--json",
            ])
            .arg("--trace")
            .arg(format!("pcap:{}", path.display())),
    );
    let doc: Value = serde_json::from_str(&out).unwrap();
    let run = &doc["runs"][0];
    assert_eq!(run["level"], "capture");
    assert_eq!(run["unknown_model"], 1);
    let offered: Vec<u64> = (0..2)
        .map(|i| run["functions"][i]["offered"].as_u64().unwrap())
        .collect();
    assert_eq!(offered, vec![30, 10]);
    // 97.5 ms from the first fragment 0 to the last: 30 images are 307.7/s.
    let rate = run["functions"][0]["offered_per_s"].as_f64().unwrap();
    assert!((rate - 30.0 / 0.0975).abs() < 0.1, "{rate}");
}

/// (goodput/s, late answers, attainment) of every function together, per run, by (load,
/// policy).
fn outcome(doc: &Value, level: &str, policy: &str) -> (f64, u64, f64) {
    let run = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["level"] == level && r["policy"] == policy)
        .unwrap_or_else(|| panic!("no run {policy} at {level}"));
    let (mut late, mut answered, mut good) = (0, 0, 0);
    for f in run["functions"].as_array().unwrap() {
        late += f["violations"].as_u64().unwrap();
        answered += f["answered"].as_u64().unwrap();
        good += f["within_slo"].as_u64().unwrap();
    }
    let att = good as f64 / answered.max(1) as f64;
    (run["goodput_per_s"].as_f64().unwrap(), late, att)
}

#[test]
fn slab_meets_its_targets_and_beats_the_baselines_on_the_h100_profile() {
    // The setting (the four models, SLO 50 ms, Poisson) at one load under capacity
    // and one over it, 1 s of arrivals per run to keep a debug build quick.
    let out = stdout_of(netml().args([
        "simulate",
        "--duration-s",
        "1",
        "--load",
        "0.5,1.5",
        "--json",
    ]));
    let doc: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = doc["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alexnet", "mobilenet_v2", "resnet50", "vgg19"]);
    for level in ["load 0.5", "load 1.5"] {
        let (good, late, att) = outcome(&doc, level, "slab");
        eprintln!("{level}: slab goodput {good:.0}/s, {late} late, attainment {att:.4}");
        if level == "load 0.5" {
            assert_eq!(late, 0, "{level}: SLAB answered admitted images late");
        } else {
            assert!(att >= 0.99, "{level}: SLAB attainment {att}");
        }
        for p in ["fixed:1", "fixed:32", "max_delay:32,5000"] {
            let (other, ..) = outcome(&doc, level, p);
            eprintln!("{level}: {p} goodput {other:.0}/s");
            assert!(good >= other, "{level}: slab {good}/s < {p} {other}/s");
        }
    }
}
