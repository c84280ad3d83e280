//! DPDK's own tools (Debian's `dpdk-dev`) against a running `netml run`:
//!
//! - `dpdk-telemetry.py -f PREFIX` lists DPDK's ethdev and mempool endpoints and netml's
//!   `/netml/stats`, `/netml/verifier`, `/netml/functions`; once the traffic (a pktgen
//!   capture on net_pcap, one inference function) has been taken in, netml's counters read
//!   over telemetry equal the final JSON report's.
//! - `dpdk-dumpcap --file-prefix PREFIX -i net_ring_demo` captures the demo's fragments from
//!   netml's rx port (netml `--huge --pdump` on a hugetlbfs this test mounts); tshark reads
//!   the pcapng: fragments to UDP port 9000 (rx) and netml's results (tx), each parsed by
//!   netml's own parsers.
//!
//! Without the tools (or, for dumpcap, without root or hugepages) the tests say why and
//! pass, unless `NETML_REQUIRE_DPDK_TOOLS=1` (CI sets it), which makes that a failure.

use netml_e2e::*;
use netml_wire::frame::{self, Classified};
use serde_json::Value;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `Some(reason)` turns into a skip, or a failure under `NETML_REQUIRE_DPDK_TOOLS=1`.
fn unavailable(reason: Option<String>) -> bool {
    let Some(reason) = reason else {
        return false;
    };
    assert!(
        std::env::var("NETML_REQUIRE_DPDK_TOOLS").map_or(true, |v| v != "1"),
        "NETML_REQUIRE_DPDK_TOOLS=1 but {reason}"
    );
    eprintln!("skipped: {reason}");
    true
}

fn missing_tools(tools: &[&str]) -> Option<String> {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} not found (Debian: apt-get install dpdk-dev tshark)",
            missing.join(", ")
        )
    })
}

/// The EAL runtime directory of file prefix `prefix`.
fn runtime_dir(prefix: &str) -> PathBuf {
    eal_runtime_dir(0).with_file_name(prefix)
}

/// Waits until the telemetry socket of `prefix` exists.
fn wait_for_socket(prefix: &str) {
    let socket = runtime_dir(prefix).join("dpdk_telemetry.v2");
    let t0 = Instant::now();
    while !socket.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{} did not appear",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `dpdk-telemetry.py -f PREFIX` with `commands` on its stdin (one a line, as an
/// operator types them) and returns each reply's value.
fn telemetry(prefix: &str, commands: &[&str]) -> Vec<Value> {
    let mut child = Command::new("dpdk-telemetry.py")
        .args(["-f", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(commands.join("\n").as_bytes()).unwrap();
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let replies: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        replies.len(),
        commands.len(),
        "dpdk-telemetry.py -f {prefix} answered {commands:?} with:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    commands
        .iter()
        .zip(replies)
        .map(|(c, r)| {
            let name = c.split(',').next().unwrap();
            r.get(name)
                .cloned()
                .unwrap_or_else(|| panic!("reply to {c} has no {name}: {r}"))
        })
        .collect()
}

/// The counters of `section` that stay put once the traffic is taken in (thread CPU times
/// and the serving stage's own clocks go on while idle).
fn stable(section: &Value) -> Vec<(String, u64)> {
    section
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {section}"))
        .iter()
        .filter(|(k, v)| !k.ends_with("_ns") && v.is_u64())
        .map(|(k, v)| (k.clone(), n(v)))
        .collect()
}

#[test]
fn telemetry_lists_dpdk_and_netml_endpoints_and_agrees_with_the_report() {
    if unavailable(missing_tools(&["dpdk-telemetry.py", "python3"])) {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    run_ok(
        Command::new("python3")
            .arg(root.join("scripts/models/export.py"))
            .arg("--small")
            .arg(dir.path())
            .arg("mobilenet_v2"),
    );
    let model = dir.path().join("mobilenet_v2_small.onnx");
    // 120 images for model 1 (served) and 2 (answered unknown_model), 12 fragments each.
    let t = Traffic::generate(
        dir.path(),
        "tel",
        &[
            "--synthetic",
            "1x3x32x32",
            "--count",
            "120",
            "--model",
            "1,2",
            "--flows",
            "2",
        ],
    );
    let fragments = 120 * 12;
    let cfg = dir.path().join("netml.toml");
    std::fs::write(&cfg, "[verifier]\ntimeout_ms = 60000\n").unwrap();
    let vdev = format!(
        "rx_pcap={},tx_pcap={},tx_pcap={}",
        t.pcap.display(),
        dir.path().join("tx0.pcap").display(),
        dir.path().join("tx1.pcap").display()
    );
    let prefix = format!("netml-tel-{}", std::process::id());
    let function = format!("1={},name=mobilenet-small,slo_ms=5000", model.display());
    let eal_prefix = format!("--eal=--file-prefix={prefix}");
    let args: Vec<&OsStr> = [
        OsStr::new("--config"),
        cfg.as_os_str(),
        OsStr::new("--port"),
        OsStr::new("net_pcap0"),
        OsStr::new("--vdev-args"),
        OsStr::new(&vdev),
        OsStr::new("--function"),
        OsStr::new(&function),
        OsStr::new(&eal_prefix),
        // Long enough to read the counters a few times once the capture is taken in.
        OsStr::new("--until-idle-ms"),
        OsStr::new("6000"),
    ]
    .to_vec();
    let mut run = NetmlRun::spawn(dir.path(), "tel", &args);
    run.wait_running();
    wait_for_socket(&prefix);

    let endpoints = &telemetry(&prefix, &["/"])[0];
    for e in [
        "/ethdev/list",
        "/ethdev/stats",
        "/mempool/list",
        "/mempool/info",
        "/netml/stats",
        "/netml/verifier",
        "/netml/functions",
    ] {
        assert!(
            endpoints.as_array().unwrap().iter().any(|x| x == e),
            "{e} missing from {endpoints}"
        );
    }
    // Until every fragment is counted and both samples in a row agree.
    let t0 = Instant::now();
    let mut previous = Value::Null;
    let replies = loop {
        let r = telemetry(
            &prefix,
            &[
                "/netml/stats",
                "/netml/verifier",
                "/netml/functions",
                "/ethdev/list",
                "/ethdev/stats,0",
                "/mempool/list",
            ],
        );
        let stats = &r[0];
        // The function's counters come from the serving stage's own snapshot, which may
        // trail the totals by a tick: wait for both.
        let function = &r[2]["mobilenet_small"];
        let settled = stats.is_object()
            && n(&stats["rx"]["fragments"]) == fragments
            && n(&stats["sink"]["ok"]) + n(&stats["sink"]["unknown_model"]) == 120
            && function.is_object()
            && n(&function["answered"]) == n(&stats["sink"]["ok"])
            && previous.is_object()
            && stable(&stats["sink"]) == stable(&previous["sink"]);
        if settled {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the counters did not settle: {stats}"
        );
        previous = stats.clone();
        std::thread::sleep(Duration::from_millis(300));
    };
    let (stats, verifier, functions) = (&replies[0], &replies[1], &replies[2]);
    assert_eq!(replies[3], serde_json::json!([0]), "one ethdev port");
    assert_eq!(n(&replies[4]["ipackets"]), fragments, "{}", replies[4]);
    let pools = replies[5].as_array().unwrap();
    assert!(
        pools
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("netml_rx_")),
        "{pools:?}"
    );
    assert_eq!(stats["finished"], 0, "read while running");
    assert_eq!(stats["port"]["name"], "net_pcap0");

    let report = run.finish(Duration::from_secs(60));
    let total = &report["total"];
    assert_eq!(stable(&stats["rx"]), stable(&total["rx"]));
    assert_eq!(stable(&stats["verifier"]), stable(&total["verifier"]));
    assert_eq!(stable(&stats["sink"]), stable(&report["sink"]));
    for k in [
        "chain_dropped",
        "backpressure_images",
        "backpressure_unanswered",
    ] {
        assert_eq!(stats["chain"][k], total[k], "{k}");
    }
    assert_eq!(
        n(&stats["port"]["ipackets"]),
        n(&report["ports"][0]["ipackets"])
    );
    assert_eq!(stats["mempool"]["capacity"], report["mempool"]["capacity"]);
    assert_eq!(stats["ingest_target"], report["ingest_target"]);
    let served = t.manifest.iter().filter(|m| m["model"] == 1).count() as u64;
    assert!(0 < served && served < 120, "pktgen sends to models 1 and 2");
    assert_eq!(
        n(&stats["sink"]["ok"]),
        served,
        "model 1's images classified"
    );
    assert_eq!(
        n(&stats["sink"]["unknown_model"]),
        120 - served,
        "model 2 is not served"
    );

    for (k, v) in report["workers"][0]["verifier"].as_object().unwrap() {
        assert_eq!(verifier["q0"][k], *v, "verifier q0 {k}");
    }
    assert_eq!(n(&verifier["total"]["images_completed"]), 120);

    let f = &functions["mobilenet_small"];
    let rf = &report["functions"][0];
    assert_eq!(f["name"], "mobilenet-small");
    for k in [
        "offered",
        "admitted",
        "answered",
        "within_slo",
        "failed",
        "batches",
    ] {
        assert_eq!(f[k], rf[k], "function counter {k}");
    }
    assert_eq!(n(&f["offered"]), served);
    assert_eq!(n(&f["slo_us"]), 5_000_000);
    let _ = std::fs::remove_dir(runtime_dir(&prefix));
}

/// 2 MiB hugepages for one test: reserved (only as many as are missing) and mounted on a
/// private hugetlbfs; unmounted and given back on drop.
struct Hugepages {
    mount: PathBuf,
    restore: Option<u64>,
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

impl Hugepages {
    fn setup(mount: PathBuf, pages: u64) -> Result<Hugepages, String> {
        if !is_root() {
            return Err("not running as root (hugepages, hugetlbfs mount)".into());
        }
        let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
        let meminfo_free = || -> Result<u64, String> {
            let m = read("/proc/meminfo")?;
            m.lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| "no HugePages_Free in /proc/meminfo".to_string())
        };
        let total: u64 = read(NR_HUGEPAGES)?.trim().parse().unwrap();
        let mut h = Hugepages {
            mount,
            restore: None,
        };
        let free = meminfo_free()?;
        if free < pages {
            std::fs::write(NR_HUGEPAGES, (total + pages - free).to_string())
                .map_err(|e| format!("{NR_HUGEPAGES}: {e}"))?;
            h.restore = Some(total);
            let now = meminfo_free()?;
            if now < pages {
                return Err(format!(
                    "asked the kernel for {pages} free 2 MiB hugepages, got {now}"
                ));
            }
        }
        std::fs::create_dir_all(&h.mount).unwrap();
        let out = Command::new("mount")
            .args(["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev"])
            .arg(&h.mount)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t hugetlbfs: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(h)
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        if let Some(n) = self.restore {
            let _ = std::fs::write(NR_HUGEPAGES, n.to_string());
        }
    }
}

#[test]
fn dumpcap_captures_netml_fragments_from_the_rx_port() {
    if unavailable(missing_tools(&[
        "dpdk-dumpcap",
        "dpdk-telemetry.py",
        "tshark",
    ])) {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // netml's 8191 mbufs, dumpcap's 4096 and their rings take about 30 MB: 96 pages is
    // plenty.
    let huge = match Hugepages::setup(dir.path().join("huge"), 96) {
        Ok(h) => h,
        Err(e) => {
            assert!(!unavailable(Some(e)));
            return;
        }
    };
    let cfg = dir.path().join("netml.toml");
    std::fs::write(&cfg, "[mempool]\nmbufs = 8191\n").unwrap();
    let prefix = format!("netml-pdump-{}", std::process::id());
    let (eal_dir, eal_prefix) = (
        format!("--eal=--huge-dir={}", huge.mount.display()),
        format!("--eal=--file-prefix={prefix}"),
    );
    // The demo: 400 images of 12 fragments over 10 s, so the capture finds traffic.
    let args: Vec<&OsStr> = [
        "--config",
        cfg.to_str().unwrap(),
        "--huge",
        "--pdump",
        &eal_dir,
        &eal_prefix,
        "--demo-images",
        "400",
        "--demo-ips",
        "40",
        "--demo-shape",
        "1x3x32x32",
    ]
    .into_iter()
    .map(OsStr::new)
    .collect();
    let mut run = NetmlRun::spawn(dir.path(), "pdump", &args);
    run.wait_running();
    wait_for_socket(&prefix);
    assert_eq!(
        telemetry(&prefix, &["/ethdev/list"])[0],
        serde_json::json!([0])
    );

    let list =
        run_ok(Command::new("dpdk-dumpcap").args([&format!("--file-prefix={prefix}"), "-D"]));
    let interfaces = String::from_utf8_lossy(&list.stdout);
    assert!(
        interfaces.contains("0. net_ring_demo"),
        "dpdk-dumpcap -D:\n{interfaces}"
    );
    let capture = dir.path().join("rx.pcapng");
    let dumpcap = Background::spawn(
        Command::new("dpdk-dumpcap")
            .arg(format!("--file-prefix={prefix}"))
            .args(["-i", "net_ring_demo", "-c", "48", "-w"])
            .arg(&capture)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait(Duration::from_secs(30));
    assert!(
        dumpcap.status.success(),
        "dpdk-dumpcap failed:\n{}\n{}",
        String::from_utf8_lossy(&dumpcap.stdout),
        String::from_utf8_lossy(&dumpcap.stderr)
    );
    let report = run.finish(Duration::from_secs(60));
    assert_eq!(
        report["mempool"]["in_use_at_end"],
        report["mempool"]["in_use_at_start"]
    );

    // tshark reads dumpcap's pcapng: the rx port's both directions, so fragments to UDP port
    // 9000 and the results netml sends back from it.
    let fields = run_ok(Command::new("tshark").arg("-r").arg(&capture).args([
        "-T",
        "fields",
        "-e",
        "udp.srcport",
        "-e",
        "udp.dstport",
    ]));
    let ports: Vec<String> = String::from_utf8_lossy(&fields.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(ports.len() >= 48, "{} packets captured", ports.len());
    let to_9000 = ports.iter().filter(|p| p.ends_with("\t9000")).count();
    let from_9000 = ports.iter().filter(|p| p.starts_with("9000\t")).count();
    assert_eq!(to_9000 + from_9000, ports.len(), "{ports:?}");
    assert!(to_9000 > 0, "no fragment captured: {ports:?}");
    // ...and by netml's own parsers: fragments (header checksum included) and results.
    let pcap = dir.path().join("rx.pcap");
    run_ok(
        Command::new("tshark")
            .arg("-r")
            .arg(&capture)
            .args(["-F", "pcap", "-w"])
            .arg(&pcap),
    );
    let records = read_pcap(&pcap);
    let mut fragments = 0;
    for r in &records {
        if let Classified::Fragment { header, .. } = frame::classify(&r.data, |p| p == 9000) {
            assert!([1, 2].contains(&header.model), "model {}", header.model);
            assert_eq!(header.total_bytes, 3 * 32 * 32 * 4);
            fragments += 1;
        }
    }
    let results = results_in_pcaps(&[&pcap]).len();
    assert_eq!((fragments, results), (to_9000, from_9000));
    assert_eq!(fragments + results, records.len());
    eprintln!("dpdk-dumpcap: {fragments} fragments and {results} results captured");
    drop(huge);
    // Shared configuration files stay after a primary exits (a later primary reuses them).
    let _ = std::fs::remove_dir_all(runtime_dir(&prefix));
}
