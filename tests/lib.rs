//! Helpers for the end-to-end tests: finding the workspace's binaries and running tools.

use netml_wire::frame::{self, Classified, Datagram};
use netml_wire::result;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Path of a workspace binary built in the same profile as this test
/// (`cargo build --workspace --bins` must have run; `scripts/test` does that).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Runs a command to completion; panics with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether an external tool is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Reads a JSON file.
pub fn json_file(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a JSON-lines file.
pub fn jsonl_file(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A JSON number as u64.
pub fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

// ---------------------------------------------------------------------------------------
// Helpers for the pipeline tests (`netml run` on net_pcap and on veth interfaces).
// ---------------------------------------------------------------------------------------

/// The address pktgen sends to by default; results come from it.
pub const SERVER: &str = "10.0.0.2:9000";
/// pktgen's default source MAC (the client's).
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// pktgen's default destination MAC (the pipeline's side).
pub const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// Serialises the tests of one test binary that run `netml run`: each run busy-polls a
/// core, and this machine may have only two, so parallel runs would starve each other (and
/// a starved worker looks idle to `--until-idle-ms`). Poisoning is ignored: a failed test
/// must not fail the next one.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `Some(reason)` when network namespaces cannot be used here (not root, or no `ip netns`).
pub fn netns_unavailable() -> Option<String> {
    if !is_root() {
        return Some("not running as root".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("`ip` is not available: {e}")),
    }
}

/// A network namespace with one end of a veth pair in it (addressed like pktgen's
/// client) and the other end, up and without an address, in the root namespace. IPv6 is
/// off on both ends, so neither kernel sends anything on its own. Both are deleted on drop,
/// also when the test panics.
pub struct Netns {
    /// Namespace name.
    pub name: String,
    /// The veth end in the root namespace (where the pipeline's port attaches).
    pub root_if: String,
    /// The veth end inside the namespace.
    pub ns_if: String,
}

impl Netns {
    /// Creates `nmt<pid><tag>` with veth `nmn<pid><tag>` inside (IP `ns_cidr`, MAC
    /// `ns_mac`) and `nmr<pid><tag>` in the root namespace.
    pub fn veth(tag: &str, ns_cidr: &str, ns_mac: &str) -> Netns {
        let pid = std::process::id();
        let ns = Netns {
            name: format!("nmt{pid}{tag}"),
            root_if: format!("nmr{pid}{tag}"),
            ns_if: format!("nmn{pid}{tag}"),
        };
        assert!(ns.root_if.len() <= 15, "interface name too long");
        // Leftovers of an earlier run with the same pid would make `add` fail.
        ns.cleanup();
        // From here on, Drop cleans up whatever was created.
        let sh = |args: &[&str]| {
            run_ok(Command::new("ip").args(args));
        };
        sh(&["netns", "add", &ns.name]);
        sh(&[
            "link",
            "add",
            &ns.root_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ]);
        sh(&["link", "set", &ns.ns_if, "netns", &ns.name]);
        sh(&["-n", &ns.name, "link", "set", &ns.ns_if, "address", ns_mac]);
        sh(&["-n", &ns.name, "addr", "add", ns_cidr, "dev", &ns.ns_if]);
        // No IPv6 on either end: the kernel would otherwise send neighbour and router
        // solicitations and MLD reports on its own, at times nobody controls.
        for (netns, dev) in [(Some(&ns.name), &ns.ns_if), (None, &ns.root_if)] {
            let key = format!("net.ipv6.conf.{dev}.disable_ipv6=1");
            if Path::new("/proc/sys/net/ipv6").exists() {
                match netns {
                    Some(n) => run_ok(ns_exec(n, "sysctl").args(["-qw", &key])),
                    None => run_ok(Command::new("sysctl").args(["-qw", &key])),
                };
            }
        }
        sh(&["-n", &ns.name, "link", "set", "lo", "up"]);
        sh(&["-n", &ns.name, "link", "set", &ns.ns_if, "up"]);
        sh(&["link", "set", &ns.root_if, "up"]);
        ns
    }

    /// A command that runs `program` inside the namespace.
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        ns_exec(&self.name, program)
    }

    /// Waits until a UDP socket is bound to `port` inside the namespace.
    pub fn wait_udp_listening(&self, port: u16, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            let out = self
                .exec("ss")
                .args(["-Hunl", &format!("sport = :{port}")])
                .output();
            if out.is_ok_and(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn cleanup(&self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        // Deleting one end deletes the pair; deleting the namespace deletes the end in it.
        quiet(&["link", "del", &self.root_if]);
        quiet(&["netns", "del", &self.name]);
    }
}

fn ns_exec(name: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", name]).arg(program);
    c
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// A background process that is killed (SIGKILL) and reaped on drop unless it was waited
/// for.
pub struct Background {
    child: Option<Child>,
    what: String,
    /// An empty directory to remove once the process has ended.
    leftover_dir: Option<PathBuf>,
}

impl Background {
    /// Spawns `cmd`.
    pub fn spawn(cmd: &mut Command) -> Background {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        Background {
            child: Some(child),
            what: format!("{cmd:?}"),
            leftover_dir: None,
        }
    }

    /// Spawns `netml` with `args`, and removes the EAL runtime directory it leaves behind
    /// once it has ended.
    pub fn netml(cmd: &mut Command) -> Background {
        let mut b = Background::spawn(cmd);
        b.leftover_dir = b.child.as_ref().map(|c| eal_runtime_dir(c.id()));
        b
    }

    /// Sends a signal (`kill -s NAME`) to it.
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            run_ok(Command::new("kill").args(["-s", name, &c.id().to_string()]));
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits up to `timeout` for it to exit and returns its output (stdout and stderr
    /// must have been piped or redirected to files); kills it and panics on timeout.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().expect("not waited yet");
        let t0 = Instant::now();
        while matches!(child.try_wait(), Ok(None)) {
            if t0.elapsed() > timeout {
                let _ = child.kill();
                let out = child.wait_with_output();
                panic!(
                    "{} did not exit within {timeout:?}; killed. Output: {out:?}",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("wait")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(d) = &self.leftover_dir {
            // Only an empty directory goes; a netml that still runs keeps its files.
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The EAL runtime directory of a `netml` process with the default file prefix
/// (`netml-<pid>`): DPDK removes the files in it at exit but leaves the directory.
pub fn eal_runtime_dir(pid: u32) -> PathBuf {
    let base = if is_root() {
        PathBuf::from("/var/run/dpdk")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(|d| PathBuf::from(d).join("dpdk"))
            .unwrap_or_else(|| PathBuf::from("/tmp/dpdk"))
    };
    base.join(format!("netml-{pid}"))
}

/// Polls `path` until it contains `needle`, `alive` says the writer has gone, or `timeout`.
pub fn wait_for_text(
    path: &Path,
    needle: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> bool,
) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle)) {
            return true;
        }
        if !alive() {
            return std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A pcap written by `netml-pktgen send`, with its summary and manifest.
pub struct Traffic {
    /// The capture.
    pub pcap: PathBuf,
    /// `--summary`.
    pub summary: Value,
    /// `--manifest`, one object per image.
    pub manifest: Vec<Value>,
}

impl Traffic {
    /// Runs `netml-pktgen send --quiet --pcap DIR/NAME.pcap --summary .. --manifest ..`
    /// with `args`.
    pub fn generate(dir: &Path, name: &str, args: &[&str]) -> Traffic {
        let pcap = dir.join(format!("{name}.pcap"));
        let summary = dir.join(format!("{name}.summary.json"));
        let manifest = dir.join(format!("{name}.manifest.jsonl"));
        run_ok(
            Command::new(bin("netml-pktgen"))
                .args(["send", "--quiet"])
                .args(args)
                .arg("--pcap")
                .arg(&pcap)
                .arg("--summary")
                .arg(&summary)
                .arg("--manifest")
                .arg(&manifest),
        );
        Traffic {
            summary: json_file(&summary),
            manifest: jsonl_file(&manifest),
            pcap,
        }
    }

    /// Path of the manifest file.
    pub fn manifest_path(&self) -> PathBuf {
        self.pcap.with_extension("manifest.jsonl")
    }

    /// Manifest lines of the intact images.
    pub fn intact(&self) -> Vec<&Value> {
        self.manifest
            .iter()
            .filter(|m| m["intact"] == true)
            .collect()
    }

    /// Images (by source, model, id) that have at least one valid fragment in the capture
    /// but are not intact: the verifier holds them until it evicts them.
    pub fn incomplete_images_seen(&self) -> u64 {
        let intact = self.intact_keys();
        self.images_in_capture()
            .keys()
            .filter(|k| !intact.contains(k))
            .count() as u64
    }

    /// Every image with at least one valid fragment in the capture, with the tensor size
    /// its fragment headers give (`total_bytes`).
    fn images_in_capture(&self) -> HashMap<ImageKey, u64> {
        let mut images = HashMap::new();
        for r in read_pcap(&self.pcap) {
            if let Classified::Fragment { source, header, .. } =
                frame::classify(&r.data, |p| p == 9000)
            {
                images.insert(
                    (source.into(), header.model, header.image),
                    header.total_bytes as u64,
                );
            }
        }
        images
    }

    /// Keys of the intact images.
    fn intact_keys(&self) -> HashSet<ImageKey> {
        self.intact().into_iter().map(image_key).collect()
    }
}

/// A capture with every kind of fault pktgen injects (loss, duplication, reordering,
/// truncation, corruption, images that never complete): `count` images of 8 variants in 3
/// flows to models 1 and 2, seed 7. Asserts that each kind of fault is in it.
pub fn faulty_traffic(dir: &Path, count: &str) -> Traffic {
    let t = Traffic::generate(
        dir,
        "faults",
        &[
            "--synthetic",
            "1x3x64x64",
            "--variants",
            "8",
            "--count",
            count,
            "--flows",
            "3",
            "--model",
            "1,2",
            "--seed",
            "7",
            "--loss",
            "0.002",
            "--dup",
            "0.02",
            "--reorder",
            "32",
            "--truncate",
            "0.002",
            "--corrupt",
            "0.002",
            "--incomplete",
            "0.05",
            "--pps",
            "200000",
        ],
    );
    let s = &t.summary;
    for fault in [
        "lost",
        "duplicated",
        "truncated",
        "corrupted",
        "withheld",
        "reordered",
    ] {
        assert!(n(&s[fault]) > 0, "seed 7 should inject some {fault}: {s}");
    }
    t
}

/// An image's identity: (source, model, image id).
type ImageKey = (SocketAddr, u8, u32);

/// The key of a manifest line.
fn image_key(m: &Value) -> ImageKey {
    (
        m["src"].as_str().unwrap().parse().unwrap(),
        n(&m["model"]) as u8,
        n(&m["image"]) as u32,
    )
}

/// Every record of a pcap file.
pub fn read_pcap(path: &Path) -> Vec<netml_wire::pcap::Record> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    netml_wire::pcap::Reader::new(std::io::BufReader::new(f))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|r| r.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// Writes frames to a pcap file, 1 µs apart from `t0_ns`.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>], t0_ns: u64) {
    let f = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut w = netml_wire::pcap::Writer::new(std::io::BufWriter::new(f)).unwrap();
    for (i, fr) in frames.iter().enumerate() {
        w.write(t0_ns + 1000 * i as u64, fr).unwrap();
    }
    w.into_inner().unwrap();
}

/// Result messages found in the frames of some pcap files (frames that are not UDP from
/// `SERVER` are skipped; a frame from it with a bad UDP checksum or that does not parse as
/// a result panics).
pub fn results_in_pcaps(paths: &[&Path]) -> Vec<(Datagram, result::Repr)> {
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut out = Vec::new();
    for p in paths {
        for r in read_pcap(p) {
            let Ok(Some(d)) = frame::parse_udp(&r.data) else {
                continue;
            };
            if d.src != server {
                continue;
            }
            let udp = netml_wire::udp::Packet::new_unchecked(&r.data[d.payload.start - 8..]);
            assert!(
                udp.verify_checksum(d.src.ip(), d.dst.ip()),
                "{}: result frame with a bad UDP checksum",
                p.display()
            );
            let repr =
                result::Repr::parse(&result::Packet::new_unchecked(&r.data[d.payload.clone()]))
                    .unwrap_or_else(|e| {
                        panic!(
                            "{}: a frame from {server} is no result ({e:?})",
                            p.display()
                        )
                    });
            out.push((d, repr));
        }
    }
    out
}

/// Checks that every intact image of the manifest got exactly one `Ok` result with the
/// manifest's CRC-32 and sender timestamp, sent from `SERVER` (MAC `SERVER_MAC`) to the
/// image's source address (MAC `CLIENT_MAC`); that images that did not arrive whole got at
/// most one `incomplete` result (with the fragments the receiver had, CRC 0); and that
/// nothing else was answered.
pub fn assert_results_match_manifest(results: &[(Datagram, result::Repr)], manifest: &[Value]) {
    let intact: HashMap<ImageKey, &Value> = manifest
        .iter()
        .filter(|m| m["intact"] == true)
        .map(|m| (image_key(m), m))
        .collect();
    let damaged: HashMap<ImageKey, &Value> = manifest
        .iter()
        .filter(|m| m["intact"] != true)
        .map(|m| (image_key(m), m))
        .collect();
    let mut answered: HashMap<ImageKey, usize> = HashMap::new();
    for (d, r) in results {
        let key = (d.dst, r.model, r.image);
        assert_eq!(d.src, SERVER.parse::<SocketAddr>().unwrap(), "{key:?}");
        *answered.entry(key).or_default() += 1;
        if r.status == result::Status::Incomplete {
            let m = damaged.get(&key).unwrap_or_else(|| {
                panic!("incomplete result for an image sent whole: {key:?} {r:?}")
            });
            assert!(
                r.arrived >= 1 && u64::from(r.arrived) < n(&m["fragments"]),
                "{key:?} {r:?}"
            );
            assert_eq!(r.crc32, 0, "{key:?}");
            continue;
        }
        let m = intact
            .get(&key)
            .unwrap_or_else(|| panic!("result for an image that is not intact: {key:?} {r:?}"));
        assert_eq!(r.status, result::Status::Ok, "{key:?}");
        assert_eq!(r.crc32 as u64, n(&m["crc32"]), "CRC of {key:?}");
        assert_eq!(r.sender_timestamp, n(&m["sender_timestamp"]), "{key:?}");
        assert_eq!(
            (d.src_mac, d.dst_mac),
            (SERVER_MAC, CLIENT_MAC),
            "MACs of {key:?}"
        );
    }
    let missing: Vec<_> = intact
        .keys()
        .filter(|k| !answered.contains_key(k))
        .collect();
    assert!(
        missing.is_empty(),
        "intact images without a result: {missing:?}"
    );
    let repeated: Vec<_> = answered.iter().filter(|(_, &c)| c != 1).collect();
    assert!(
        repeated.is_empty(),
        "images answered more than once: {repeated:?}"
    );
}

/// Runs `netml verify-pcap --json --strict --timeout-ms 60000 PCAP` (the timeout long
/// enough that only the end of the capture evicts) and returns its JSON.
pub fn verify_pcap(pcap: &Path) -> Value {
    let out = run_ok(
        Command::new(bin("netml"))
            .args(["verify-pcap", "--json", "--strict", "--timeout-ms", "60000"])
            .arg(pcap),
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("verify-pcap JSON: {e}"))
}

/// Runs `netml --log info run ARGS --stats-interval 0 --json DIR/NAME.json` to completion
/// (at most 60 s), asserts it exited 0, and returns its report.
pub fn netml_run(dir: &Path, name: &str, args: &[&std::ffi::OsStr]) -> Value {
    NetmlRun::spawn(dir, name, args).finish(Duration::from_secs(60))
}

/// `netml --log info run ARGS --stats-interval 0 --json DIR/NAME.json` in the background,
/// its stdout and stderr in `DIR/NAME.out` and `DIR/NAME.err`.
pub struct NetmlRun {
    process: Background,
    cmd: String,
    report: PathBuf,
    out: PathBuf,
    err: PathBuf,
}

impl NetmlRun {
    /// Starts it.
    pub fn spawn(dir: &Path, name: &str, args: &[&std::ffi::OsStr]) -> NetmlRun {
        let report = dir.join(format!("{name}.json"));
        let (out, err) = (
            dir.join(format!("{name}.out")),
            dir.join(format!("{name}.err")),
        );
        let mut cmd = Command::new(bin("netml"));
        cmd.args(["--log", "info", "run", "--stats-interval", "0"])
            .args(args)
            .arg("--json")
            .arg(&report)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        NetmlRun {
            process: Background::netml(&mut cmd),
            cmd: format!("{cmd:?}"),
            report,
            out,
            err,
        }
    }

    /// Waits (up to 30 s) until it logs that it is running; panics if it does not, or if
    /// it has stopped already (an idle timeout on early traffic, say).
    pub fn wait_running(&mut self) {
        let process = &mut self.process;
        let ready = wait_for_text(&self.err, "running:", Duration::from_secs(30), || {
            process.running()
        });
        assert!(ready, "netml did not start:\n{}", read_log(&self.err));
        assert!(
            self.process.running(),
            "netml stopped before the replay (idle timeout on early traffic?):\n{}\n{}",
            read_log(&self.out),
            read_log(&self.err)
        );
    }

    /// Waits up to `timeout` for it to exit, asserts it exited 0, and returns its report.
    pub fn finish(self, timeout: Duration) -> Value {
        let status = self.process.wait(timeout).status;
        assert!(
            status.success(),
            "{} failed ({status}):\n{}\n{}",
            self.cmd,
            read_log(&self.out),
            read_log(&self.err)
        );
        json_file(&self.report)
    }
}

/// The text of a log file, empty when it cannot be read.
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Asserts the report's pipeline counters (`total`, the rx port and the sink) against what
/// pktgen says it wrote into `traffic`, with `other` extra non-protocol frames mixed in
/// that the chain dropped (`forwarded` false) or forwarded (for a capture file as input:
/// nothing else arrives).
pub fn assert_report_matches(report: &Value, t: &Traffic, other: u64, forwarded: bool) {
    let s = &t.summary;
    let total = &report["total"];
    let rx = &total["rx"];
    let ctx = || format!("report: {report:#}\nsummary: {s}");
    let eq = |a: u64, b: u64, what: &str| assert_eq!(a, b, "{what}\n{}", ctx());
    eq(
        n(&rx["frames"]),
        n(&s["frames_written"]) + other,
        "rx.frames",
    );
    eq(n(&rx["other"]), other, "rx.other");
    eq(n(&rx["truncated"]), n(&s["truncated"]), "rx.truncated");
    eq(
        n(&rx["bad_checksum"]),
        n(&s["corrupted"]),
        "rx.bad_checksum",
    );
    eq(
        n(&rx["unrecognized"]) + n(&rx["malformed"]),
        0,
        "rx.unrecognized+malformed",
    );
    eq(
        n(&rx["fragments"]),
        n(&s["delivered"]) + n(&s["duplicated"]),
        "rx.fragments",
    );
    assert_verifier_matches(report, t);
    let (fwd, dropped) = if forwarded { (other, 0) } else { (0, other) };
    eq(n(&total["chain_forwarded"]), fwd, "chain_forwarded");
    eq(n(&total["chain_dropped"]), dropped, "chain_dropped");
    eq(n(&total["chain_tx_full"]), 0, "chain_tx_full");
    let port = &report["ports"][0];
    eq(n(&port["ipackets"]), n(&rx["frames"]), "port ipackets");
    eq(
        n(&port["imissed"]) + n(&port["ierrors"]) + n(&port["rx_nombuf"]),
        0,
        "port imissed+ierrors+rx_nombuf",
    );
    eq(
        n(&port["opackets"]),
        n(&report["sink"]["results_sent"]) + fwd,
        "port opackets",
    );
}

/// Asserts the verifier, sink and mempool counters of a report against pktgen's summary
/// and manifest (the part that holds whatever else arrives on the port).
pub fn assert_verifier_matches(report: &Value, t: &Traffic) {
    let s = &t.summary;
    let total = &report["total"];
    let v = &total["verifier"];
    let ctx = || format!("report: {report:#}\nsummary: {s}");
    let eq = |a: u64, b: u64, what: &str| assert_eq!(a, b, "{what}\n{}", ctx());
    let intact = t.intact();
    let intact_fragments: u64 = intact.iter().map(|m| n(&m["fragments"])).sum();
    eq(n(&v["accepted"]), n(&s["delivered"]), "verifier.accepted");
    eq(
        n(&v["duplicate"]) + n(&v["late"]),
        n(&s["duplicated"]),
        "verifier.duplicate+late",
    );
    eq(
        n(&v["out_of_range"]) + n(&v["inconsistent"]),
        0,
        "verifier.out_of_range+inconsistent",
    );
    eq(
        n(&v["images_completed"]),
        n(&s["images_intact"]),
        "verifier.images_completed",
    );
    eq(
        n(&v["fragments_completed"]),
        intact_fragments,
        "verifier.fragments_completed",
    );
    eq(
        n(&v["fragments_evicted"]),
        n(&v["accepted"]) - n(&v["fragments_completed"]),
        "verifier.fragments_evicted",
    );
    eq(
        n(&v["evicted_timeout"]) + n(&v["evicted_pressure"]),
        t.incomplete_images_seen(),
        "verifier.evicted_timeout+pressure (incomplete images with a fragment in the capture)",
    );
    eq(n(&total["backpressure_images"]), 0, "backpressure_images");
    eq(
        n(&total["in_flight"]) + n(&total["held_fragments"]),
        0,
        "in_flight+held_fragments at the end",
    );
    let k = &report["sink"];
    eq(n(&k["images"]), n(&s["images_intact"]), "sink.images");
    let intact_bytes: u64 = intact_fragments_bytes(t);
    eq(n(&k["bytes"]), intact_bytes, "sink.bytes");
    eq(
        n(&k["crc_mismatch"]) + n(&k["unknown_model"]) + n(&k["shape_mismatch"]),
        0,
        "sink.crc_mismatch+unknown_model+shape_mismatch",
    );
    // Every image the verifier opened is answered: ok when intact, incomplete when evicted.
    let evicted = n(&v["evicted_timeout"]) + n(&v["evicted_pressure"]);
    eq(n(&k["ok"]), n(&s["images_intact"]), "sink.ok");
    eq(
        n(&k["incomplete"]),
        evicted,
        "sink.incomplete = verifier evictions",
    );
    eq(
        n(&k["results_sent"]),
        n(&s["images_intact"]) + evicted,
        "sink.results_sent",
    );
    eq(n(&k["results_dropped"]), 0, "sink.results_dropped");
    let m = &report["mempool"];
    eq(
        n(&m["in_use_at_end"]),
        n(&m["in_use_at_start"]),
        "mempool in use at end vs start (leak)",
    );
    // The per-worker counters add up to the total.
    let workers = report["workers"].as_array().expect("workers");
    for key in ["accepted", "images_completed", "duplicate", "late"] {
        let sum: u64 = workers.iter().map(|w| n(&w["verifier"][key])).sum();
        eq(sum, n(&v[key]), &format!("sum of workers' verifier.{key}"));
    }
}

/// Tensor bytes of the intact images: read from the capture (total_bytes of fragment 0).
fn intact_fragments_bytes(t: &Traffic) -> u64 {
    let intact = t.intact_keys();
    let bytes: Vec<u64> = t
        .images_in_capture()
        .into_iter()
        .filter(|(k, _)| intact.contains(k))
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        bytes.len(),
        intact.len(),
        "every intact image is in the capture"
    );
    bytes.iter().sum()
}

/// Frames that are not the protocol's: UDP to port 53 over IPv4 and IPv6, UDP to port 9001,
/// and ARP requests.
pub fn other_frames(count: usize) -> Vec<Vec<u8>> {
    let v4 = |port: u16, i: usize| frame::Endpoints {
        src_mac: CLIENT_MAC,
        dst_mac: SERVER_MAC,
        vlan_tci: None,
        src: SocketAddr::new([10, 0, 0, 1].into(), 5000 + i as u16),
        dst: SocketAddr::new([10, 0, 0, 2].into(), port),
    };
    let v6 = |i: usize| frame::Endpoints {
        src: format!("[fd00::1]:{}", 5000 + i).parse().unwrap(),
        dst: "[fd00::2]:53".parse().unwrap(),
        ..v4(53, i)
    };
    (0..count)
        .map(|i| {
            let payload = |b: &mut [u8]| {
                b.iter_mut()
                    .enumerate()
                    .for_each(|(k, x)| *x = (i + k) as u8)
            };
            match i % 4 {
                0 => v4(53, i).build(40 + i, payload),
                1 => v6(i).build(60, payload),
                2 => v4(9001, i).build(100, payload),
                _ => {
                    let mut arp = vec![0xff; 6];
                    arp.extend_from_slice(&CLIENT_MAC);
                    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
                    arp.extend_from_slice(&CLIENT_MAC);
                    arp.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, i as u8]);
                    arp.resize(60, 0);
                    arp
                }
            }
        })
        .collect()
}

/// Writes the frames of capture `input` to `out` with `extra` spread evenly through them.
pub fn mix_into(input: &Path, extra: &[Vec<u8>], out: &Path) {
    let records = read_pcap(input);
    let every = records.len() / extra.len();
    let mut frames = Vec::with_capacity(records.len() + extra.len());
    let mut extra_iter = extra.iter();
    for (i, r) in records.into_iter().enumerate() {
        if i % every == every / 2 {
            if let Some(e) = extra_iter.next() {
                frames.push(e.clone());
            }
        }
        frames.push(r.data);
    }
    frames.extend(extra_iter.cloned());
    write_pcap(out, &frames, 1_700_000_000_000_000_000);
}

/// Replays `pcap` with tcpreplay from inside `ns` at `pps` and returns how many packets it
/// says it sent.
pub fn tcpreplay(ns: &Netns, pcap: &Path, pps: u32) -> u64 {
    let replay = run_ok(
        ns.exec("tcpreplay")
            .args(["-i", &ns.ns_if, "--pps", &pps.to_string()])
            .arg(pcap),
    );
    let text = String::from_utf8_lossy(&replay.stdout).to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Successful packets:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no packet count in tcpreplay's output:\n{text}"))
}
