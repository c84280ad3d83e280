//! `netml run`: the pipeline, on a configuration file or the built-in demo defaults.

use crate::demo::{self, Demo, DemoArgs};
use clap::Args as ClapArgs;
use netml_dpdk::{Eal, Pdump};
use netml_pipeline::config::{ChainAction, Config, IngestTarget};
use netml_pipeline::metrics::Exporter;
use netml_pipeline::report::live_line;
use netml_pipeline::telemetry::Telemetry;
use netml_pipeline::{open_port, Pipeline};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `netml run`; each overrides the same setting of the configuration file.
#[derive(ClapArgs)]
pub struct Args {
    /// Configuration file (TOML); without one, the built-in defaults run the demo.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Rx port: a vdev name, PCI address, or `net_ring_demo` for the built-in demo.
    #[arg(long)]
    port: Option<String>,
    /// Create the rx port as a virtual device with these arguments (e.g. `rx_pcap=in.pcap`).
    #[arg(long)]
    vdev_args: Option<String>,
    /// Rx queues (one worker each).
    #[arg(long)]
    queues: Option<u16>,
    /// Cores for the workers, comma-separated, one per queue.
    #[arg(long, value_delimiter = ',')]
    lcores: Option<Vec<usize>>,
    /// UDP port(s) of the fragment protocol.
    #[arg(long = "udp-port")]
    udp_ports: Vec<u16>,
    /// NF-chain action for other traffic.
    #[arg(long, value_parser = ["drop", "forward"])]
    chain: Option<String>,
    /// Port to forward other traffic to (default: the rx port).
    #[arg(long)]
    chain_port: Option<String>,
    /// Use hugepages: drop `--no-huge` and its `-m` from the EAL arguments (set them up
    /// first: `scripts/hugepages setup`).
    #[arg(long)]
    huge: bool,
    /// Turn DPDK's telemetry socket off (adds `--no-telemetry` to the EAL arguments); on,
    /// `dpdk-telemetry.py -f PREFIX` reads DPDK's and netml's counters (/netml/stats, ...).
    #[arg(long)]
    no_telemetry: bool,
    /// Serve packet capture to `dpdk-dumpcap --file-prefix PREFIX` (needs hugepages:
    /// `--huge` keeps them shared; threads run without lcore ids, so no mempool caches).
    #[arg(long)]
    pdump: bool,
    /// Extra EAL argument (repeatable), appended to the configuration's.
    #[arg(long = "eal", allow_hyphen_values = true)]
    eal: Vec<String>,
    /// Ingest mode: `netml` (resident gather kernel polling a doorbell ring), `launch` (one
    /// gather launch per batch) or `cpu-copy` (memcpy into staging + one DMA: the baseline).
    #[arg(long, value_parser = ["netml", "launch", "cpu-copy"])]
    ingest: Option<String>,
    /// Where the ingest runs: `auto` (a GPU when found), `host` or `gpu`.
    #[arg(long, value_parser = ["auto", "host", "gpu"])]
    ingest_target: Option<String>,
    /// Images per batch at most.
    #[arg(long)]
    max_batch: Option<usize>,
    /// Serve an inference function: `ID=MODEL.onnx[,slo_ms=50][,max_batch=8][,instances=1]
    /// [,share=K][,parallel=split|engine][,top_k=5][,input=f32|u8][,profile=CSV][,name=NAME]
    /// [,admission=on|off][,policy=slab|fixed:N|max_delay:N,D_us]`
    /// (repeatable; `policy` goes last). Adds to the configuration's `[[functions]]`.
    #[arg(long = "function", value_name = "ID=PATH[,key=value]")]
    functions: Vec<String>,
    /// Write the serving stage's decision record to this file (JSON lines) for
    /// `netml simulate`'s replay.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Do not send result messages.
    #[arg(long)]
    no_responses: bool,
    /// Seconds between live statistics lines (0: none).
    #[arg(long)]
    stats_interval: Option<f64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Stop once no packet has arrived for this many milliseconds (after the first).
    #[arg(long)]
    until_idle_ms: Option<u64>,
    /// Write the final report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Serve Prometheus metrics on http://ADDR:PORT/metrics (e.g. `127.0.0.1:9464`).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<String>,
    /// After the run, keep serving the final counters on `--metrics` for this many seconds
    /// before exiting (a signal ends the wait).
    #[arg(long, value_name = "S")]
    metrics_linger_s: Option<f64>,
    #[command(flatten)]
    demo: DemoArgs,
}

impl Args {
    fn config(&self) -> Result<Config, String> {
        let mut c = match &self.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        if let Some(p) = &self.port {
            c.rx.port = p.clone();
        }
        if self.vdev_args.is_some() {
            c.rx.vdev_args = self.vdev_args.clone();
        }
        if let Some(q) = self.queues {
            c.rx.queues = q;
        }
        if let Some(l) = &self.lcores {
            c.rx.lcores = l.clone();
        }
        if !self.udp_ports.is_empty() {
            c.rx.udp_ports = self.udp_ports.clone();
        }
        if let Some(a) = &self.chain {
            c.chain.action = if a == "forward" {
                ChainAction::Forward
            } else {
                ChainAction::Drop
            };
        }
        if self.chain_port.is_some() {
            c.chain.tx_port = self.chain_port.clone();
        }
        c.pdump |= self.pdump;
        if self.huge {
            c.eal_args = without_no_huge(&c.eal_args, c.pdump);
        }
        c.eal_args.extend(self.eal.iter().cloned());
        if self.no_telemetry {
            c.eal_args.push("--no-telemetry".into());
        }
        if let Some(m) = &self.ingest {
            c.ingest.mode = m.clone();
        }
        if let Some(t) = &self.ingest_target {
            c.ingest.target = match t.as_str() {
                "host" => IngestTarget::Host,
                "gpu" => IngestTarget::Gpu,
                _ => IngestTarget::Auto,
            };
        }
        if let Some(b) = self.max_batch {
            c.ingest.max_batch = b;
        }
        for f in &self.functions {
            c.functions
                .push(netml_pipeline::config::FunctionConfig::from_arg(f)?);
        }
        if self.record.is_some() {
            c.record = self.record.clone();
        }
        if self.no_responses {
            c.responses.enabled = false;
        }
        if let Some(s) = self.stats_interval {
            c.stats_interval_s = s;
        }
        if self.metrics.is_some() {
            c.metrics.listen = self.metrics.clone();
        }
        if let Some(s) = self.metrics_linger_s {
            c.metrics.linger_s = s;
        }
        c.validate()?;
        Ok(c)
    }
}

/// EAL arguments for hugepages: without `--no-huge`, the `-m N` it needs and `--no-shconf`,
/// and with `--in-memory` (hugepage files are unlinked, so none is left behind) unless
/// `shared`: a capture tool (pdump) maps the hugepage files.
fn without_no_huge(args: &[String], shared: bool) -> Vec<String> {
    let mut out = if shared {
        Vec::new()
    } else {
        vec!["--in-memory".to_string()]
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-huge" | "--no-shconf" | "--in-memory" => {}
            "-m" => {
                it.next();
            }
            _ if a.starts_with("-m=") => {}
            _ => out.push(a.clone()),
        }
    }
    out
}

/// Runs the pipeline until a signal, `--duration`, `--until-idle-ms`, or (demo) the end of
/// the generated traffic.
pub fn run(a: Args) -> Result<ExitCode, String> {
    let cfg = a.config()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let mut metrics = Exporter::start(&cfg.metrics)?;
    let argv = cfg.eal_argv();
    tracing::info!("EAL: {}", argv.join(" "));
    let _eal = Eal::init(&argv).map_err(|e| format!("EAL init: {e}"))?;
    // Before any pipeline thread registers with DPDK (which would refuse capture tools).
    let _pdump = cfg
        .pdump
        .then(Pdump::init)
        .transpose()
        .map_err(|e| format!("pdump: {e}"))?;
    // Published at the live-statistics interval, and at least once a second.
    let publish = match cfg.stats_interval_s {
        s if s > 0.0 => s.min(1.0),
        _ => 1.0,
    };
    let mut telemetry = cfg
        .telemetry()
        .then(|| Telemetry::register(Duration::from_secs_f64(publish)))
        .transpose()?;

    let is_demo = cfg.rx.port == format!("net_ring_{}", demo::PORT) && cfg.rx.vdev_args.is_none();
    let (rx_port, rings) = if is_demo {
        let (port, rx, tx) = demo::create_port(cfg.rx.queues)?;
        (port, Some((rx, tx)))
    } else {
        (open_port(&cfg.rx.port, cfg.rx.vdev_args.as_deref())?, None)
    };
    let chain_port = match (&cfg.chain.tx_port, cfg.chain.action) {
        (Some(name), ChainAction::Forward) if name != &cfg.rx.port => Some(open_port(name, None)?),
        _ => None,
    };
    let mut pipeline = Pipeline::start(&cfg, rx_port, chain_port)?;
    tracing::info!(
        "running: port {} with {} rx queue(s), UDP port(s) {:?}, chain {:?}",
        cfg.rx.port,
        cfg.rx.queues,
        cfg.rx.udp_ports,
        cfg.chain.action
    );
    let demo = match rings {
        Some((rx, tx)) => {
            tracing::info!(
                "demo: generating {} images of {} over {} flows into {}",
                a.demo.demo_images,
                a.demo.demo_shape,
                a.demo.demo_flows,
                cfg.rx.port
            );
            Some(Demo::start(&a.demo, pipeline.mempool().clone(), rx, tx)?)
        }
        None => None,
    };

    let started = Instant::now();
    let interval = Duration::from_secs_f64(if cfg.stats_interval_s > 0.0 {
        cfg.stats_interval_s
    } else {
        3600.0
    });
    let mut prev = pipeline.snapshot();
    let mut port_prev = pipeline.rx_port().stats().unwrap_or_default();
    let mut last_print = Instant::now();
    let mut last_rx = (0u64, Instant::now());
    let mut demo_settled: Option<Instant> = None;
    let mut interrupted = false;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(t) = telemetry.as_mut() {
            t.tick(&pipeline);
        }
        if let Some(m) = metrics.as_mut() {
            m.tick(&pipeline);
        }
        if stop.load(Ordering::Relaxed) {
            tracing::info!("signal received: stopping");
            interrupted = true;
            break;
        }
        let port_now = pipeline.rx_port().stats().unwrap_or_default();
        if port_now.ipackets != last_rx.0 {
            last_rx = (port_now.ipackets, Instant::now());
        }
        if cfg.stats_interval_s > 0.0 && last_print.elapsed() >= interval {
            let cur = pipeline.snapshot();
            let line = live_line(
                started.elapsed().as_secs_f64(),
                &prev,
                &cur,
                &port_prev,
                &port_now,
                pipeline.mempool().in_use(),
            );
            eprintln!("{line}");
            (prev, port_prev, last_print) = (cur, port_now.clone(), Instant::now());
        }
        if a.duration
            .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        if let Some(ms) = a.until_idle_ms {
            if last_rx.0 > 0 && last_rx.1.elapsed() >= Duration::from_millis(ms) {
                break;
            }
        }
        if let Some(d) = &demo {
            // Done when the generator has finished and every intact image is answered, or
            // nothing more arrives for a second.
            if d.generator_done() {
                let (intact, answered) = d.progress();
                let settled = *demo_settled.get_or_insert_with(Instant::now);
                if answered >= intact || settled.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
        }
    }
    let mut report = pipeline.stop();
    let mut ok = true;
    let mut demo_json = None;
    if let Some(d) = demo {
        // The receiver drains the last results before the mempool is checked.
        let (summary, mut results) = d.finish()?;
        // The receiver judges latency against each function's SLO.
        for f in &cfg.functions {
            results.slo.per_model.insert(f.model, f.slo_ms);
        }
        report.mempool_in_use_at_end = pipeline.mempool().in_use();
        println!("{}", report.to_text().trim_end());
        match &summary {
            Some(s) => println!("demo sender: {}", s.to_string().trim_end()),
            None => println!("demo sender: stopped before it sent every image"),
        }
        let text = results.to_text();
        let summary_lines = text.lines().filter(|l| !l.starts_with("image "));
        println!(
            "demo results: {}",
            summary_lines.collect::<Vec<_>>().join("\n  ")
        );
        let classified: Vec<String> = results
            .answers
            .iter()
            .filter_map(|a| {
                let (class, score) = a.top1?;
                let e = &results.manifest[a.entry];
                Some(format!(
                    "model {} image {}: class {class} ({score:.3})",
                    e.model, e.image
                ))
            })
            .take(6)
            .collect();
        if !classified.is_empty() {
            println!(
                "demo classes (first {}): {}",
                classified.len(),
                classified.join("; ")
            );
        }
        // Images still in flight when the run was cut short are not failures.
        ok &= results.crc_mismatches() == 0 && (interrupted || results.lost().is_empty());
        demo_json = Some(serde_json::json!({
            "summary": summary.map(|s| serde_json::from_str::<serde_json::Value>(&s.to_json()).unwrap_or_default()),
            "results": serde_json::from_str::<serde_json::Value>(&results.to_json()).unwrap_or_default(),
        }));
    } else {
        println!("{}", report.to_text().trim_end());
    }
    if report.mempool_in_use_at_end != report.mempool_in_use_at_start {
        ok = false;
        eprintln!(
            "netml: {} mbufs still in use after draining (started with {})",
            report.mempool_in_use_at_end, report.mempool_in_use_at_start
        );
    }
    if let Some(m) = metrics.as_mut() {
        m.finish(&report);
    }
    if let Some(t) = telemetry.as_mut() {
        t.finish(&report);
    }
    let mut doc = report.to_json();
    if let Some(d) = demo_json {
        doc["demo"] = d;
    }
    drop(pipeline);
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&doc).expect("json"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(m) = &metrics {
        m.linger(&stop);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
