//! `netml run --metrics` scraped by a real Prometheus server: the built-in demo serving two
//! small CNNs runs to its end and holds its final counters (`--metrics-linger-s`);
//! Prometheus scrapes every second; every counter of the JSON report, read back through
//! Prometheus's HTTP API, equals the report's. `promtool check metrics` passes on the
//! body, and every PromQL expression of the Grafana dashboard names metrics the endpoint
//! serves and is accepted by Prometheus.
//!
//! Needs `prometheus` and `promtool` (Debian's `prometheus` package, installed by
//! `scripts/install-deps`); without them it skips, unless `NETML_REQUIRE_PROMETHEUS=1`
//! (CI) makes it fail.

use netml_e2e::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `Some(reason)` when the Prometheus binaries are missing and that is allowed here.
fn prometheus_missing() -> Option<String> {
    let missing: Vec<&str> = ["prometheus", "promtool"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let why = format!(
        "{} not found (Debian: apt-get install prometheus, or scripts/install-deps)",
        missing.join(" and ")
    );
    assert!(
        std::env::var_os("NETML_REQUIRE_PROMETHEUS").is_none(),
        "NETML_REQUIRE_PROMETHEUS is set: {why}"
    );
    Some(why)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET path` from `127.0.0.1:port`: status and body (HTTP/1.0: no chunked answer).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server scraping `127.0.0.1:target` every second.
struct Prometheus {
    _process: Background,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target: u16) -> Prometheus {
        let cfg = dir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: netml\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        run_ok(Command::new("promtool").args(["check", "config"]).arg(&cfg));
        let port = free_port();
        let log = dir.join("prometheus.log");
        let process = Background::spawn(
            Command::new("prometheus")
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap()),
        );
        let p = Prometheus {
            _process: process,
            port,
            log,
        };
        let t0 = Instant::now();
        while !http_get(port, "/-/ready").is_ok_and(|(s, _)| s == 200) {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "prometheus did not get ready:\n{}",
                read_log(&p.log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// An instant query's answer (`data`), panicking on an error status.
    fn api(&self, query: &str) -> Value {
        let path = format!("/api/v1/query?query={}", url_encode(query));
        let (status, body) = http_get(self.port, &path).expect("prometheus query");
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{query}: {e}: {body}"));
        assert!(
            status == 200 && v["status"] == "success",
            "{query}: HTTP {status}: {body}"
        );
        v["data"].clone()
    }

    /// An instant query's samples: name with its labels (no `job`, `instance`) -> value.
    fn samples(&self, query: &str) -> BTreeMap<String, f64> {
        let data = self.api(query);
        data["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|r| {
                let value: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
                (series_key(&r["metric"]), value)
            })
            .collect()
    }
}

/// `name{k="v",...}` with the labels sorted, without the ones Prometheus adds.
fn series_key(metric: &Value) -> String {
    let m = metric.as_object().expect("labels");
    let labels: BTreeMap<&str, &str> = m
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "__name__" | "job" | "instance"))
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    key(
        m["__name__"].as_str().unwrap(),
        &labels.into_iter().collect::<Vec<_>>(),
    )
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort();
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", l.join(","))
}

/// The small seed models as two functions, model ids 1 and 2.
fn function_args(dir: &Path) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    run_ok(
        Command::new("python3")
            .arg(root.join("scripts/models/export.py"))
            .arg("--small")
            .arg(dir)
            .args(["resnet50", "mobilenet_v2"]),
    );
    ["1=resnet50_small", "2=mobilenet_v2_small"]
        .iter()
        .flat_map(|f| {
            let (id, name) = f.split_once('=').unwrap();
            [
                "--function".to_string(),
                format!("{id}={}/{name}.onnx,slo_ms=50", dir.display()),
            ]
        })
        .collect()
}

#[test]
fn prometheus_reads_back_the_final_report() {
    if let Some(why) = prometheus_missing() {
        eprintln!("skipping: {why}");
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let metrics_port = free_port();
    let prom = Prometheus::start(dir, metrics_port);

    let report_path = dir.join("report.json");
    let (out, err) = (dir.join("netml.out"), dir.join("netml.err"));
    let mut netml = Background::netml(
        Command::new(bin("netml"))
            .args(["--log", "info", "run", "--stats-interval", "0"])
            .args(["--demo-shape", "1x3x32x32", "--demo-images", "400"])
            .args(["--demo-ips", "200"])
            .args(function_args(dir))
            .arg("--metrics")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .args(["--metrics-linger-s", "120", "--json"])
            .arg(&report_path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap()),
    );
    let logs = || format!("{}\n{}", read_log(&out), read_log(&err));

    // The report is written before the linger: the run is over, its counters final.
    let t0 = Instant::now();
    let report = loop {
        if let Ok(v) =
            serde_json::from_slice::<Value>(&std::fs::read(&report_path).unwrap_or_default())
        {
            break v;
        }
        assert!(
            netml.running(),
            "netml ended before its report:\n{}",
            logs()
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no report:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Prometheus has scraped the final sample, and (one more interval) nothing after it
    // can differ.
    let t0 = Instant::now();
    while prom.samples("netml_run_finished == 1").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "prometheus never scraped the final sample:\n{}\n{}",
            read_log(&prom.log),
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let got = prom.samples(r#"{__name__=~"netml_.+|process_.+"}"#);

    let (status, body) = http_get(metrics_port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    promtool_is_clean(dir, &body);
    compare(&report, &got);
    dashboard_uses_served_metrics(&prom, &body);

    netml.signal("TERM");
    let status = netml.wait(Duration::from_secs(30)).status;
    assert!(status.success(), "netml failed ({status}):\n{}", logs());
}

fn promtool_is_clean(dir: &Path, body: &str) {
    let path = dir.join("metrics.txt");
    std::fs::write(&path, body).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}\n--- body:\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What Prometheus holds against the JSON report, counter by counter.
fn compare(report: &Value, got: &BTreeMap<String, f64>) {
    let all = || format!("report: {report:#}\nprometheus: {got:#?}");
    let get = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let k = key(name, labels);
        *got.get(&k)
            .unwrap_or_else(|| panic!("{k} missing\n{}", all()))
    };
    let exact = |name: &str, labels: &[(&str, &str)], want: u64| {
        let v = get(name, labels);
        assert_eq!(
            v,
            want as f64,
            "{} vs the report's {want}",
            key(name, labels)
        );
    };
    let seconds = |name: &str, labels: &[(&str, &str)], ns: &Value| {
        let v = get(name, labels);
        assert_eq!(v, n(ns) as f64 / 1e9, "{} vs {ns} ns", key(name, labels));
    };
    // Floats the report rounds or prints: equal to 12 digits.
    let close = |name: &str, labels: &[(&str, &str)], want: f64, tolerance: f64| {
        let v = get(name, labels);
        assert!(
            (v - want).abs() <= tolerance.max(want.abs() * 1e-12),
            "{} = {v}, the report says {want}",
            key(name, labels)
        );
    };
    exact("netml_run_finished", &[], 1);
    close(
        "netml_run_elapsed_seconds",
        &[],
        report["elapsed_s"].as_f64().unwrap(),
        0.0,
    );
    let target = report["ingest_target"].as_str().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    exact(
        "netml_run_info",
        &[("ingest_target", target), ("version", version)],
        1,
    );
    let m = &report["mempool"];
    exact("netml_mempool_capacity", &[], n(&m["capacity"]));
    exact("netml_mempool_in_use", &[], n(&m["in_use_at_end"]));
    exact(
        "netml_mempool_in_use_at_start",
        &[],
        n(&m["in_use_at_start"]),
    );

    for p in report["ports"].as_array().unwrap() {
        let port = p["name"].as_str().unwrap();
        for (field, metric) in [
            ("ipackets", "rx_packets"),
            ("ibytes", "rx_bytes"),
            ("imissed", "rx_missed"),
            ("ierrors", "rx_errors"),
            ("rx_nombuf", "rx_nombuf"),
            ("opackets", "tx_packets"),
            ("obytes", "tx_bytes"),
            ("oerrors", "tx_errors"),
        ] {
            exact(
                &format!("netml_port_{metric}_total"),
                &[("port", port)],
                n(&p[field]),
            );
        }
        for (q, v) in p["q_ipackets"].as_array().unwrap().iter().enumerate() {
            let q = q.to_string();
            exact(
                "netml_port_queue_rx_packets_total",
                &[("port", port), ("queue", &q)],
                n(v),
            );
        }
    }

    let workers = report["workers"].as_array().unwrap();
    assert!(!workers.is_empty());
    for (i, w) in workers.iter().enumerate() {
        let q = i.to_string();
        let queue = [("queue", q.as_str())];
        for (field, v) in w.as_object().unwrap() {
            match field.as_str() {
                "rx" | "verifier" => {
                    for (k, v) in v.as_object().unwrap() {
                        exact(&format!("netml_{field}_{k}_total"), &queue, n(v));
                    }
                }
                "in_flight" => exact("netml_in_flight_images", &queue, n(v)),
                "held_fragments" => exact("netml_held_fragments", &queue, n(v)),
                "cpu_ns" => seconds("netml_worker_cpu_seconds_total", &queue, v),
                _ => exact(&format!("netml_{field}_total"), &queue, n(v)),
            }
        }
    }
    // The report's `total` is the sum over the queues: what `sum()` gives in PromQL.
    let total = &report["total"]["verifier"]["images_completed"];
    let summed: f64 = (0..workers.len())
        .map(|i| {
            get(
                "netml_verifier_images_completed_total",
                &[("queue", &i.to_string())],
            )
        })
        .sum();
    assert_eq!(summed, n(total) as f64);

    let statuses = [
        "ok",
        "unknown_model",
        "shape_mismatch",
        "overloaded",
        "failed",
        "incomplete",
    ];
    for (field, v) in report["sink"].as_object().unwrap() {
        let f = field.as_str();
        match f {
            _ if statuses.contains(&f) => exact("netml_answers_total", &[("status", f)], n(v)),
            "images" | "bytes" | "batches" => exact(&format!("netml_gather_{f}_total"), &[], n(v)),
            "gather_ns" => seconds("netml_gather_seconds_total", &[], v),
            "crc_ns" => seconds("netml_crc_seconds_total", &[], v),
            "serve_ns" => seconds("netml_serve_cpu_seconds_total", &[], v),
            "cpu_ns" => seconds("netml_sink_cpu_seconds_total", &[], v),
            _ => exact(&format!("netml_{f}_total"), &[], n(v)),
        }
    }

    let functions = report["functions"].as_array().unwrap();
    assert_eq!(functions.len(), 2, "{}", all());
    for f in functions {
        let name = f["name"].as_str().unwrap();
        let fl = [("function", name)];
        let model = f["model"].to_string();
        let policy = f["policy"].as_str().unwrap();
        exact(
            "netml_function_info",
            &[("function", name), ("model", &model), ("policy", policy)],
            1,
        );
        exact("netml_function_offered_total", &fl, n(&f["offered"]));
        exact("netml_function_admitted_total", &fl, n(&f["admitted"]));
        for status in [
            "answered",
            "shed_admission",
            "shed_queue_full",
            "shed_expired",
            "failed",
        ] {
            exact(
                "netml_function_requests_total",
                &[("function", name), ("status", status)],
                n(&f[status]),
            );
        }
        exact("netml_function_within_slo_total", &fl, n(&f["within_slo"]));
        exact("netml_function_batches_total", &fl, n(&f["batches"]));
        close(
            "netml_function_slo_attainment_ratio",
            &fl,
            f["attainment"].as_f64().unwrap(),
            0.0,
        );
        close(
            "netml_function_prediction_error_ratio",
            &fl,
            f["prediction_error"].as_f64().unwrap(),
            0.0,
        );
        close(
            "netml_function_slo_seconds",
            &fl,
            f["slo_ms"].as_f64().unwrap() / 1e3,
            1e-5,
        );
        close(
            "netml_function_latency_max_seconds",
            &fl,
            f["latency_ms"]["max"].as_f64().unwrap() / 1e3,
            1e-5,
        );
        exact("netml_function_instances", &fl, n(&f["instances"]));
        exact("netml_function_queued_images", &fl, n(&f["queued"]));
        let completed = get("netml_function_completed_batches_total", &fl);
        let batch_s = get("netml_function_batch_duration_seconds_total", &fl);
        assert!(completed > 0.0, "{name}: no batch completed\n{}", all());
        let mean_ms = f["mean_batch_ms"].as_f64().unwrap();
        assert!(
            (batch_s / completed * 1e3 - mean_ms).abs() <= mean_ms * 1e-9,
            "{name}: mean batch"
        );

        // Batch sizes: exact, from the report's [size, batches] pairs.
        let sizes: Vec<(u64, u64)> = f["batch_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (n(&p[0]), n(&p[1])))
            .collect();
        for le in [1u64, 2, 4, 8, 16, 32, 64, 128, 256] {
            let want: u64 = sizes.iter().filter(|(s, _)| *s <= le).map(|(_, c)| c).sum();
            exact(
                "netml_function_batch_size_bucket",
                &[("function", name), ("le", &le.to_string())],
                want,
            );
        }
        exact("netml_function_batch_size_count", &fl, n(&f["batches"]));
        exact(
            "netml_function_batch_size_sum",
            &fl,
            sizes.iter().map(|(s, c)| s * c).sum(),
        );

        // Latency: every answered image counted, buckets cumulative, mean below the max.
        let answered = n(&f["answered"]);
        assert!(answered > 0, "{name}: nothing answered\n{}", all());
        exact("netml_function_latency_seconds_count", &fl, answered);
        exact(
            "netml_function_latency_seconds_bucket",
            &[("function", name), ("le", "+Inf")],
            answered,
        );
        let mut last = 0.0;
        for le in [
            "0.0005", "0.001", "0.002", "0.005", "0.01", "0.02", "0.03", "0.05", "0.075", "0.1",
            "0.2", "0.5", "1", "5",
        ] {
            let c = get(
                "netml_function_latency_seconds_bucket",
                &[("function", name), ("le", le)],
            );
            assert!(c >= last && c <= answered as f64, "{name} le={le}: {c}");
            last = c;
        }
        let mean = get("netml_function_latency_seconds_sum", &fl) / answered as f64;
        let max_s = f["latency_ms"]["max"].as_f64().unwrap() / 1e3;
        assert!(
            mean > 0.0 && mean <= max_s + 1e-5,
            "{name}: mean {mean} max {max_s}"
        );
    }

    assert!(get("netml_metrics_publishes_total", &[]) >= 2.0);
    assert!(get("process_cpu_seconds_total", &[]) > 0.0);
    assert!(get("process_resident_memory_bytes", &[]) > 0.0);
    assert!(get("process_start_time_seconds", &[]) > 1e9);
}

/// Every `expr` of the Grafana dashboard names only metrics the endpoint serves, and
/// Prometheus evaluates it.
fn dashboard_uses_served_metrics(prom: &Prometheus, body: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dashboard = json_file(&root.join("deploy/grafana/netml-dashboard.json"));
    let served: BTreeSet<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(
        exprs.len() >= 8,
        "the dashboard has {} queries",
        exprs.len()
    );
    for expr in exprs {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{expr}: names no metric");
        for name in names {
            assert!(
                served.contains(name.as_str()),
                "{expr}: {name} is not served"
            );
        }
        prom.api(&expr.replace("$__rate_interval", "1m"));
    }
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(e)) = m.get("expr") {
                out.push(e.clone());
            }
            m.values().for_each(|v| collect_exprs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The identifiers of an expression that are metric names (`netml_*`, `process_*`).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("netml_") || w.starts_with("process_"))
        .map(String::from)
        .collect()
}
