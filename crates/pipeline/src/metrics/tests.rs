//! The rendered body of a made-up sample (names, labels, units, histograms), and the
//! endpoint serving it next to clients that stall.

use super::encode::render;
use super::Sample;
use crate::report::{PortReport, Report};
use crate::stats::{FunctionSnapshot, SinkCounters, WorkerCounters};
use std::sync::Arc;

pub(super) fn sample() -> Sample {
    let mut w = WorkerCounters::default();
    w.rx.frames = 7;
    w.verifier.images_completed = 3;
    w.cpu_ns = 1_500_000_000;
    let mut stats = netml_serve::FunctionStats {
        answered: 3,
        within_slo: 2,
        batches: 2,
        batched_images: 3,
        batch_sizes: vec![0, 1, 1],
        ..Default::default()
    };
    for ns in [400_000, 3_000_000, 60_000_000] {
        stats.latency.record(ns);
    }
    Sample {
        report: Report {
            elapsed_s: 2.5,
            ports: vec![PortReport {
                name: "net_ring_demo".into(),
                stats: netml_dpdk::PortStats {
                    ipackets: 9,
                    q_ipackets: vec![9],
                    ..Default::default()
                },
            }],
            workers: vec![WorkerCounters::default(), w],
            total: w,
            sink: SinkCounters {
                ok: 3,
                gather_ns: 1234,
                ..Default::default()
            },
            functions: vec![FunctionSnapshot {
                name: "mobilenet".into(),
                model: 2,
                slo_ns: 50_000_000,
                policy: "slab".into(),
                queued: 0,
                instances: 1,
                stats,
                shares: None,
            }],
            ingest_target: "host".into(),
            mempool_capacity: 100,
            mempool_in_use_at_start: 10,
            mempool_in_use_at_end: 10,
        },
        finished: true,
        publishes: 4,
        publish_ns: 2_000,
    }
}

#[test]
fn every_part_of_the_report_is_named_by_the_conventions() {
    let body = render(&Arc::new(sample()));
    for line in [
        "# TYPE netml_rx_frames_total counter",
        "netml_rx_frames_total{queue=\"0\"} 0",
        "netml_rx_frames_total{queue=\"1\"} 7",
        "netml_verifier_images_completed_total{queue=\"1\"} 3",
        "netml_worker_cpu_seconds_total{queue=\"1\"} 1.5",
        "netml_port_rx_packets_total{port=\"net_ring_demo\"} 9",
        "netml_port_queue_rx_packets_total{port=\"net_ring_demo\",queue=\"0\"} 9",
        "netml_answers_total{status=\"ok\"} 3",
        "netml_gather_seconds_total 0.000001234",
        "netml_run_finished 1",
        "netml_run_info{ingest_target=\"host\",version=\"0.1.0\"} 1",
        "netml_function_info{function=\"mobilenet\",model=\"2\",policy=\"slab\"} 1",
        "netml_function_requests_total{function=\"mobilenet\",status=\"answered\"} 3",
        "# TYPE netml_function_latency_seconds histogram",
        "netml_function_latency_seconds_bucket{function=\"mobilenet\",le=\"0.0005\"} 1",
        "netml_function_latency_seconds_bucket{function=\"mobilenet\",le=\"0.05\"} 2",
        "netml_function_latency_seconds_bucket{function=\"mobilenet\",le=\"+Inf\"} 3",
        "netml_function_latency_seconds_sum{function=\"mobilenet\"} 0.0634",
        "netml_function_latency_seconds_count{function=\"mobilenet\"} 3",
        "netml_function_batch_size_bucket{function=\"mobilenet\",le=\"1\"} 1",
        "netml_function_batch_size_bucket{function=\"mobilenet\",le=\"2\"} 2",
        "netml_function_batch_size_sum{function=\"mobilenet\"} 3.0",
        "netml_function_slo_attainment_ratio{function=\"mobilenet\"} 0.6666666666666666",
        "netml_mempool_in_use 10",
        "# TYPE process_cpu_seconds_total counter",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} missing in\n{body}");
    }
}

/// `GET path` over HTTP/1.0: the status line and the body.
fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn a_stalled_client_delays_the_next_scrape_by_a_timeout_and_never_the_publisher() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let latest: super::Latest = Arc::default();
    super::http::spawn(listener, latest.clone()).unwrap();
    assert!(
        get(addr, "/metrics").0.contains("503"),
        "nothing published yet"
    );
    *latest.lock().unwrap() = Some(Arc::new(sample()));

    // Connects and sends nothing: the server waits for it, up to its timeout.
    let _silent = std::net::TcpStream::connect(addr).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let t0 = std::time::Instant::now();
    // The publisher's lock is free while the server waits on the client.
    *latest.lock().unwrap() = Some(Arc::new(sample()));
    assert!(t0.elapsed() < std::time::Duration::from_millis(100));
    let (status, body) = get(addr, "/metrics");
    let waited = t0.elapsed();
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("netml_rx_frames_total{queue=\"1\"} 7"),
        "{body}"
    );
    assert!(
        waited < std::time::Duration::from_secs(5),
        "the next scrape waited {waited:?}"
    );
    assert!(get(addr, "/nothing").0.contains("404"));
}

#[test]
fn the_metrics_section_parses_and_rejects_what_cannot_work() {
    use crate::config::Config;
    let c = Config::from_toml("[metrics]\nlisten = \"0.0.0.0:9464\"\nlinger_s = 2.5\n").unwrap();
    assert_eq!(c.metrics.listen.as_deref(), Some("0.0.0.0:9464"));
    assert_eq!(c.metrics.linger_s, 2.5);
    assert_eq!(Config::default().metrics.listen, None);
    let e = Config::from_toml("[metrics]\nlisten = \"localhost\"\n").unwrap_err();
    assert!(
        e.contains("metrics.listen") && e.contains("ADDR:PORT"),
        "{e}"
    );
    let e = Config::from_toml("[metrics]\nlinger_s = -1.0\n").unwrap_err();
    assert!(e.contains("linger_s"), "{e}");
    assert!(Config::from_toml("[metrics]\nport = 1\n").is_err());
}
