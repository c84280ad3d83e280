//! The built-in demo (`netml run` without a port) stops when it is told to, before its
//! generator has sent everything: on `--duration` and on SIGINT.

use netml_e2e::*;
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

fn demo(dir: &std::path::Path, extra: &[&str]) -> Background {
    Background::netml(
        Command::new(bin("netml"))
            .args(["--log", "info", "run", "--stats-interval", "0"])
            // Far more than fits through in a second, so the run stops mid-generation.
            .args(["--demo-images", "100000", "--demo-shape", "1x3x224x224"])
            .args(extra)
            .arg("--json")
            .arg(dir.join("report.json"))
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("out")).unwrap())
            .stderr(File::create(dir.join("err")).unwrap()),
    )
}

fn check_stopped(dir: &std::path::Path, b: Background) {
    let log = read_log(&dir.join("err"));
    // `wait` kills it and panics when it does not exit in time.
    let _status = b.wait(Duration::from_secs(30)).status;
    let report = json_file(&dir.join("report.json"));
    let m = &report["mempool"];
    assert_eq!(
        n(&m["in_use_at_end"]),
        n(&m["in_use_at_start"]),
        "mbufs leaked when the demo stopped early\n{report:#}\n{log}"
    );
}

#[test]
fn demo_stops_on_duration() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let b = demo(dir.path(), &["--duration", "1"]);
    check_stopped(dir.path(), b);
}

#[test]
fn demo_stops_on_sigint() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut b = demo(dir.path(), &[]);
    assert!(
        wait_for_text(
            &dir.path().join("err"),
            "demo: generating",
            Duration::from_secs(30),
            || b.running()
        ),
        "the demo did not start"
    );
    std::thread::sleep(Duration::from_millis(500));
    b.signal("INT");
    check_stopped(dir.path(), b);
}

/// The demo answers every intact image with the right CRC in each ingest mode (host target:
/// host threads stand in for the GPU), batches are formed, and no mbuf is left behind.
#[test]
fn demo_in_every_ingest_mode() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for mode in ["netml", "launch", "cpu-copy"] {
        let args: Vec<std::ffi::OsString> = [
            "--ingest",
            mode,
            "--ingest-target",
            "host",
            "--max-batch",
            "4",
            "--demo-images",
            "120",
            "--demo-shape",
            "1x3x64x64",
        ]
        .iter()
        .map(Into::into)
        .collect();
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let report = netml_run(dir.path(), mode, &args);
        let sink = &report["sink"];
        let ctx = format!("mode {mode}: {report:#}");
        assert!(n(&sink["images"]) > 0, "{ctx}");
        assert!(n(&sink["batches"]) > 0, "{ctx}");
        assert!(n(&sink["batches"]) <= n(&sink["images"]), "{ctx}");
        assert_eq!(n(&sink["crc_mismatch"]), 0, "{ctx}");
        assert_eq!(n(&sink["ingest_failed"]), 0, "{ctx}");
        assert_eq!(report["ingest_target"], "host", "{ctx}");
        let m = &report["mempool"];
        assert_eq!(n(&m["in_use_at_end"]), n(&m["in_use_at_start"]), "{ctx}");
    }
}
