//! Serving inside `netml run`: a pktgen capture with faults, two inference functions on the
//! CPU, traffic for an unknown model and tensors of the wrong shape, through a net_pcap
//! vdev. Every complete image is answered exactly once, with the right status; classified
//! images carry the top-1 class `netml infer`'s engine gives for the same tensor.

use netml_e2e::*;
use netml_wire::result::Status;
use serde_json::Value;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The small seed models `resnet50_small` and `mobilenet_v2_small` (3x32x32 in, 10 classes).
fn models(dir: &Path) -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    run_ok(
        Command::new("python3")
            .arg(root.join("scripts/models/export.py"))
            .arg("--small")
            .arg(dir)
            .args(["resnet50", "mobilenet_v2"]),
    );
    (
        dir.join("resnet50_small.onnx"),
        dir.join("mobilenet_v2_small.onnx"),
    )
}

/// Writes `n` seeded f32 tensors of 1x3x32x32 as .npy files; returns paths and values.
fn tensors(dir: &Path, n: usize) -> Vec<(PathBuf, Vec<f32>)> {
    let mut rng = netml_infer::fixtures::Rng::new(11);
    (0..n)
        .map(|i| {
            let values = rng.normals(3 * 32 * 32);
            let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 32, 32), }";
            let mut h = header.to_string();
            while !(10 + h.len() + 1).is_multiple_of(64) {
                h.push(' ');
            }
            h.push('\n');
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
            bytes.extend_from_slice(h.as_bytes());
            for v in &values {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            let p = dir.join(format!("t{i}.npy"));
            std::fs::write(&p, bytes).unwrap();
            (p, values)
        })
        .collect()
}

fn crc(values: &[f32]) -> u32 {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    netml_wire::checksum::tensor_crc32([&bytes[..]])
}

fn top1(model: &Path, values: &[f32]) -> u32 {
    let mut e = netml_infer::open(
        model,
        netml_infer::Backend::Cpu,
        1,
        netml_infer::Precision::Fp32,
    )
    .unwrap();
    e.run(values, 1).unwrap().top_k(0, 1)[0].0 as u32
}

/// `count` images of model 1 cycling over `tensors`, in `dir/burst.pcap`.
fn burst(dir: &Path, tensors: &[(PathBuf, Vec<f32>)], count: usize) -> PathBuf {
    let input = dir.join("burst.pcap");
    let count = count.to_string();
    let mut args = vec!["--npy"];
    args.extend(tensors.iter().map(|t| t.0.to_str().unwrap()));
    args.extend([
        "--model",
        "1",
        "--count",
        &count,
        "--pcap",
        input.to_str().unwrap(),
    ]);
    pktgen(&args);
    input
}

fn assert_no_leak(report: &Value) {
    let m = &report["mempool"];
    assert_eq!(
        n(&m["in_use_at_end"]),
        n(&m["in_use_at_start"]),
        "mbuf leak"
    );
}

fn pktgen(args: &[&str]) {
    run_ok(Command::new(bin("netml-pktgen")).arg("send").args(args));
}

/// `netml run` on net_pcap0 reading `input`, with `functions` and the top-level TOML lines
/// `toml`; the report and the result messages in the tx captures.
fn run_serving(
    dir: &Path,
    input: &Path,
    functions: &[String],
    toml: &str,
) -> (Value, Vec<netml_wire::result::Repr>) {
    let cfg = dir.join("netml.toml");
    let toml = format!("{toml}[verifier]\ntimeout_ms = 60000\n");
    std::fs::write(&cfg, toml).unwrap();
    let (tx0, tx1) = (dir.join("tx0.pcap"), dir.join("tx1.pcap"));
    let vdev = format!(
        "rx_pcap={},tx_pcap={},tx_pcap={}",
        input.display(),
        tx0.display(),
        tx1.display()
    );
    let mut a: Vec<&OsStr> = vec![
        OsStr::new("--config"),
        cfg.as_os_str(),
        OsStr::new("--port"),
        OsStr::new("net_pcap0"),
        OsStr::new("--vdev-args"),
        OsStr::new(&vdev),
        OsStr::new("--until-idle-ms"),
        OsStr::new("3000"),
    ];
    for f in functions {
        a.extend([OsStr::new("--function"), OsStr::new(f)]);
    }
    let report = netml_run(dir, "report", &a);
    let results = results_in_pcaps(&[&tx0, &tx1])
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    (report, results)
}

#[test]
fn two_functions_answer_every_image_once_with_classes_or_a_status() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (resnet, mobilenet) = models(d);
    let ts = tensors(d, 4);
    let npy: Vec<&str> = ts.iter().map(|t| t.0.to_str().unwrap()).collect();
    // Models 1 and 2 are served, 3 is not; faults leave some images incomplete.
    let good = d.join("good.pcap");
    let manifest_path = d.join("m.jsonl");
    let mut args = vec!["--npy"];
    args.extend(&npy);
    args.extend([
        "--model",
        "1,2,3",
        "--count",
        "36",
        "--flows",
        "2",
        "--seed",
        "5",
        "--dup",
        "0.02",
        "--reorder",
        "16",
        "--incomplete",
        "0.1",
        "--pcap",
        good.to_str().unwrap(),
        "--manifest",
        manifest_path.to_str().unwrap(),
    ]);
    pktgen(&args);
    // Tensors of the wrong shape for model 1, from another source.
    let wrong = d.join("wrong.pcap");
    pktgen(&[
        "--synthetic",
        "1x3x16x16",
        "--model",
        "1",
        "--count",
        "3",
        "--src",
        "10.0.0.9:41000",
        "--pcap",
        wrong.to_str().unwrap(),
        "--manifest",
        d.join("w.jsonl").to_str().unwrap(),
    ]);
    let input = d.join("in.pcap");
    let extra: Vec<Vec<u8>> = read_pcap(&wrong).into_iter().map(|r| r.data).collect();
    mix_into(&good, &extra, &input);

    let functions = [
        format!(
            "1={},slo_ms=60000,max_batch=4,admission=off",
            resnet.display()
        ),
        format!(
            "2={},slo_ms=60000,max_batch=4,admission=off",
            mobilenet.display()
        ),
    ];
    let (report, results) = run_serving(d, &input, &functions, "");

    let manifest: Vec<Value> = jsonl_file(&d.join("m.jsonl"));
    let intact: Vec<&Value> = manifest.iter().filter(|m| m["intact"] == true).collect();
    let expected = |m: &Value| match n(&m["model"]) {
        1 | 2 => Status::Ok,
        _ => Status::UnknownModel,
    };
    // Exactly one result per complete image.
    let mut seen: HashMap<(u8, u32, u64), usize> = HashMap::new();
    for r in &results {
        *seen
            .entry((r.model, r.image, r.sender_timestamp))
            .or_default() += 1;
    }
    assert!(
        seen.values().all(|&c| c == 1),
        "an image answered twice: {seen:?}"
    );
    let v = &report["total"]["verifier"];
    let evicted = n(&v["evicted_timeout"]) + n(&v["evicted_pressure"]);
    assert!(evicted > 0, "some images are left incomplete");
    assert_eq!(
        results.len() as u64,
        intact.len() as u64 + 3 + evicted,
        "one result per image: complete ones and evicted ones"
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == Status::Incomplete)
            .count() as u64,
        evicted
    );
    let classes: HashMap<u32, (u32, u32)> = ts
        .iter()
        .map(|(_, v)| (crc(v), (top1(&resnet, v), top1(&mobilenet, v))))
        .collect();
    for m in &intact {
        let r = results
            .iter()
            .find(|r| {
                r.model as u64 == n(&m["model"])
                    && r.image as u64 == n(&m["image"])
                    && r.sender_timestamp == n(&m["sender_timestamp"])
            })
            .unwrap_or_else(|| panic!("no result for {m}"));
        assert_eq!(r.status, expected(m), "{m}");
        if r.status == Status::Ok {
            assert_eq!(r.crc32 as u64, n(&m["crc32"]));
            let (a, b) = classes[&r.crc32];
            let want = if r.model == 1 { a } else { b };
            assert_eq!(r.top_k.len(), 5);
            assert_eq!(r.top_k[0].0, want, "top-1 of {m}");
            assert!(
                r.stages.iter().all(|&s| s > 0),
                "every stage stamped: {:?}",
                r.stages
            );
        }
    }
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == Status::ShapeMismatch)
            .count(),
        3
    );

    let k = &report["sink"];
    let completed = n(&report["total"]["verifier"]["images_completed"]);
    let ok = intact.iter().filter(|m| expected(m) == Status::Ok).count() as u64;
    assert_eq!(n(&k["ok"]), ok);
    assert_eq!(n(&k["unknown_model"]), intact.len() as u64 - ok);
    assert_eq!(n(&k["shape_mismatch"]), 3);
    assert_eq!(
        n(&k["overloaded"]) + n(&k["failed"]) + n(&k["crc_mismatch"]),
        0
    );
    assert_eq!(
        n(&k["ok"]) + n(&k["unknown_model"]) + n(&k["shape_mismatch"]),
        completed
    );
    let f = report["functions"].as_array().unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(n(&f[0]["answered"]) + n(&f[1]["answered"]), ok);
    assert_no_leak(&report);
}

#[test]
fn overload_is_shed_and_admitted_images_keep_their_slo() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (resnet, _) = models(d);
    let ts = tensors(d, 2);
    // 1000 images at once (net_pcap reads the file as fast as it can): far more than one CPU
    // instance runs inside a 300 ms SLO, on a fast machine too.
    let input = burst(d, &ts, 1000);
    let f = [format!("1={},slo_ms=300,max_batch=4", resnet.display())];
    let (report, results) = run_serving(d, &input, &f, "");
    assert_eq!(results.len(), 1000, "every image answered");
    let k = &report["sink"];
    assert_eq!(n(&k["ok"]) + n(&k["overloaded"]), 1000);
    assert!(n(&k["overloaded"]) > 0, "the burst is beyond capacity: {k}");
    let fun = &report["functions"][0];
    let (answered, within) = (n(&fun["answered"]), n(&fun["within_slo"]));
    assert_eq!(answered, n(&k["ok"]));
    // Admitted images keep their SLO; a shared CI machine may delay a batch now and then.
    assert!(
        within as f64 >= 0.95 * answered as f64,
        "{within} of {answered} inside the SLO: {fun}"
    );
    assert_no_leak(&report);
}

#[test]
fn the_simulator_replays_a_live_run_to_the_same_batch_decisions() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (resnet, mobilenet) = models(d);
    let record = d.join("decisions.jsonl");
    // The built-in demo generator paces 600 images/s over two functions: batches of
    // several sizes, waits and completions interleaved.
    let args: Vec<String> = vec![
        "--demo-shape".into(),
        "1x3x32x32".into(),
        "--demo-images".into(),
        "400".into(),
        "--demo-ips".into(),
        "600".into(),
        "--function".into(),
        format!("1={},slo_ms=200,max_batch=8", resnet.display()),
        "--function".into(),
        format!("2={},slo_ms=200,max_batch=8", mobilenet.display()),
        "--record".into(),
        record.to_str().unwrap().into(),
    ];
    let a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let report = netml_run(d, "report", &a);
    assert_eq!(
        n(&report["sink"]["ok"]) + n(&report["sink"]["overloaded"]),
        400
    );

    let file = netml_serve::RecordFile::parse(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(file.functions.len(), 2);
    let records = file.records;
    let functions = file.functions;
    let live = netml_serve::record::decisions(&records);
    let sim =
        netml_serve::record::decisions(&netml_serve::sim::replay(functions, &records).unwrap());
    assert!(live.len() >= 8, "{} batches", live.len());
    assert_eq!(sim, live, "simulated vs live batch decisions");
    // The same through the command line.
    let out = run_ok(
        Command::new(bin("netml"))
            .args(["simulate", "--replay"])
            .arg(&record),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("every batch decision agrees"), "{text}");
}

#[test]
fn images_the_dispatch_queue_refuses_are_answered_overloaded() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (resnet, _) = models(d);
    let ts = tensors(d, 1);
    let input = burst(d, &ts, 1000);
    // A dispatch queue of 1 image in front of one CPU instance: the burst overflows it.
    let f = [format!(
        "1={},slo_ms=60000,max_batch=4,admission=off",
        resnet.display()
    )];
    let (report, results) = run_serving(d, &input, &f, "dispatch_queue = 1\n");
    let t = &report["total"];
    assert!(
        n(&t["backpressure_images"]) > 0,
        "the queue overflowed: {t}"
    );
    assert_eq!(n(&t["backpressure_unanswered"]), 0);
    assert_eq!(results.len(), 1000, "every image answered");
    let k = &report["sink"];
    assert_eq!(n(&k["ok"]) + n(&k["overloaded"]), 1000);
    assert_eq!(n(&k["overloaded"]), n(&t["backpressure_images"]));
    assert_no_leak(&report);
}

/// CPU shares live: a burst overloads a function on a 1-thread share; the controller grows the
/// share through a shadow instance, which takes over at a batch boundary. Every image is
/// answered exactly once across the resize, and the classes stay those of the engine.
#[test]
fn the_controller_resizes_a_cpu_share_without_losing_or_repeating_an_image() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (resnet, _) = models(d);
    let ts = tensors(d, 4);
    let input = burst(d, &ts, 3000);
    let functions = [format!(
        "1={},share=1,slo_ms=100,max_batch=8,policy=max_delay:8,0",
        resnet.display()
    )];
    let controller = "[controller]\nenabled = true\nperiod_ms = 50\n";
    let (report, results) = run_serving(d, &input, &functions, controller);

    let mut seen: HashMap<(u8, u32, u64), usize> = HashMap::new();
    for r in &results {
        *seen
            .entry((r.model, r.image, r.sender_timestamp))
            .or_default() += 1;
    }
    assert!(seen.values().all(|&c| c == 1), "an image answered twice");
    assert_eq!(results.len(), 3000, "one result per image");
    let classes: HashMap<u32, u32> = ts.iter().map(|(_, v)| (crc(v), top1(&resnet, v))).collect();
    let ok: Vec<_> = results.iter().filter(|r| r.status == Status::Ok).collect();
    assert!(!ok.is_empty());
    for r in ok {
        assert_eq!(r.top_k[0].0, classes[&r.crc32], "top-1 across the resize");
    }
    let shares = &report["functions"][0]["shares"];
    eprintln!("shares: {shares}");
    assert_eq!(shares["threads"].as_array().map(Vec::len), Some(1));
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores >= 2 {
        let resizes = shares["resizes"].as_array().expect("resizes listed");
        assert!(!resizes.is_empty(), "an overloaded share grows: {shares}");
        assert_eq!(n(&resizes[0]["from"]), 1);
        assert!(n(&resizes[0]["to"]) >= 2);
    }
    assert_no_leak(&report);
}
