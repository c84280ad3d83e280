//! `netml-pktgen`: see `netml-pktgen --help` and pktgen/README.md.

mod cli;

use clap::Parser;
use cli::{Cli, Command, RecvArgs, SendArgs};
use netml_pktgen::error::Context;
use netml_pktgen::expected::Expected;
use netml_pktgen::faults::Faults;
use netml_pktgen::flows::{self, FlowConfig};
use netml_pktgen::images::{self, Format};
use netml_pktgen::manifest::Entry;
use netml_pktgen::output::{InterfaceSink, PcapSink, Sink, UdpSink};
use netml_pktgen::pace::Rate;
use netml_pktgen::recv::{self, Listener};
use netml_pktgen::send::{self, Limit};
use netml_pktgen::slo::Slo;
use netml_pktgen::tensor::{self, Tensor};
use netml_pktgen::{bail, npy, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Default synthetic input: one ImageNet-sized f32 image.
const DEFAULT_SHAPE: &str = "1x3x224x224";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Recv(a)) => recv_main(&a),
        Some(Command::Send(a)) => send_main(&a),
        None => send_main(&cli.send),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netml-pktgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_tensors(a: &SendArgs) -> Result<Vec<Tensor>> {
    if !a.image.is_empty() {
        let (h, w) = images::parse_size(&a.size)?;
        let format: Format = a.format.parse()?;
        a.image
            .iter()
            .map(|p| images::load(p, h, w, format))
            .collect()
    } else if !a.npy.is_empty() {
        a.npy.iter().map(|p| npy::load(p)).collect()
    } else {
        let shape = tensor::parse_shape(a.synthetic.as_deref().unwrap_or(DEFAULT_SHAPE))?;
        let dtype = tensor::parse_dtype(&a.dtype)?;
        if a.variants == 0 {
            bail!("--variants must be at least 1");
        }
        tensor::synthetic(&shape, dtype, a.variants, a.seed)
    }
}

fn flow_config(a: &SendArgs) -> Result<FlowConfig> {
    let mut f = FlowConfig::new(
        flows::parse_socket_addr(&a.src).map_err(|e| e.context("--src"))?,
        flows::parse_socket_addr(&a.dst).map_err(|e| e.context("--dst"))?,
    );
    f.flows = a.flows;
    f.src_ips = a.src_ips;
    f.dst_mac = flows::parse_mac(&a.dst_mac).map_err(|e| e.context("--dst-mac"))?;
    f.src_mac = match (&a.src_mac, &a.iface) {
        (Some(m), _) => flows::parse_mac(m).map_err(|e| e.context("--src-mac"))?,
        (None, Some(iface)) => flows::interface_mac(iface).unwrap_or(flows::DEFAULT_SRC_MAC),
        (None, None) => flows::DEFAULT_SRC_MAC,
    };
    f.vlan_tci = a.vlan.as_deref().map(flows::parse_tci).transpose()?;
    Ok(f)
}

fn seconds(v: f64, flag: &str) -> Result<Duration> {
    if !(v.is_finite() && v >= 0.0) {
        bail!("{flag} must be a non-negative number of seconds, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

fn config(a: &SendArgs) -> Result<send::Config> {
    let mut c = send::Config::new(load_tensors(a)?);
    if !a.model.is_empty() {
        c.models = a.model.clone();
    }
    c.flows = flow_config(a)?;
    c.frag_size = a.frag_size;
    c.mtu = a.mtu;
    c.first_image = a.first_image;
    c.seed = a.seed;
    c.faults = Faults {
        loss: a.loss,
        truncate: a.truncate,
        corrupt: a.corrupt,
        dup: a.dup,
        reorder: a.reorder,
        incomplete: a.incomplete,
    };
    c.rate = match (a.pps, a.mbps, a.ips) {
        (Some(v), _, _) => Rate::Pps(v),
        (_, Some(v), _) => Rate::Mbps(v),
        (_, _, Some(v)) => Rate::Ips(v),
        _ => Rate::Unlimited,
    };
    c.limit = Limit {
        loops: a.loops,
        count: a.count,
        duration: a.duration.map(|d| seconds(d, "--duration")).transpose()?,
    };
    c.progress = a.progress;
    Ok(c)
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => bail!("writing to stdout: {e}"),
        _ => Ok(()),
    }
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    Ok(BufWriter::new(File::create(path).context(path.display())?))
}

fn send_main(a: &SendArgs) -> Result<()> {
    let cfg = config(a)?;
    let collect = a.collect.map(|s| seconds(s, "--collect")).transpose()?;
    let mut listener = None;
    let mut sink: Box<dyn Sink> = match (&a.pcap, &a.iface, a.udp) {
        (Some(p), _, _) => Box::new(PcapSink::create(p)?),
        (_, Some(i), _) => Box::new(InterfaceSink::open(i, a.batch.into(), a.qdisc_bypass)?),
        (_, _, true) => {
            let s = UdpSink::bind(&cfg.flows.endpoints()?, a.batch.into())?;
            if collect.is_some() {
                // Listen before the first image leaves, so no early result is missed.
                listener = Some(Listener::spawn(s.try_clone_sockets()?)?);
            }
            Box::new(s)
        }
        _ => bail!("choose an output: --pcap FILE, --iface NAME or --udp"),
    };
    let mut manifest = a.manifest.as_deref().map(create).transpose()?;
    let mut entries: Vec<Entry> = Vec::new();
    let manifest_name = a.manifest.as_deref().map(Path::display);
    let mut on_image = |e: &Entry| -> Result<()> {
        if let (Some(w), Some(name)) = (manifest.as_mut(), &manifest_name) {
            writeln!(w, "{}", e.to_json()).context(name)?;
        }
        if listener.is_some() {
            entries.push(e.clone());
        }
        Ok(())
    };
    let summary = send::run(&cfg, sink.as_mut(), &mut on_image)?;
    if let (Some(mut w), Some(name)) = (manifest, manifest_name) {
        w.flush().context(name)?;
    }
    if !a.quiet {
        stdout(&format!("{summary}\n"))?;
    }
    if let Some(p) = &a.summary {
        std::fs::write(p, summary.to_json()).context(p.display())?;
    }
    if let (Some(l), Some(wait)) = (listener, collect) {
        let report = recv::collect(&l, entries, Instant::now() + wait, recv::DEFAULT_LINGER);
        l.stop();
        stdout(&report.to_text())?;
        if let Some(p) = &a.report {
            std::fs::write(p, report.to_json() + "\n").context(p.display())?;
        }
    }
    Ok(())
}

fn recv_main(a: &RecvArgs) -> Result<()> {
    let mut manifest = netml_pktgen::manifest::read(&a.manifest)?;
    if let Some(path) = &a.expected {
        let applied = Expected::read(path)?.apply(&mut manifest);
        if applied.unused_rows > 0 {
            eprintln!(
                "netml-pktgen: warning: {} rows of {} match no image of the manifest",
                applied.unused_rows,
                path.display()
            );
        }
    }
    let slo = Slo::parse(&a.slo_ms)?;
    let timeout = seconds(a.timeout, "--timeout")?;
    let linger = seconds(a.linger, "--linger")?;
    if a.flows == 0 {
        bail!("--flows must be at least 1");
    }
    let mut addrs = Vec::new();
    for l in &a.listen {
        let base = flows::parse_socket_addr(l).map_err(|e| e.context("--listen"))?;
        for f in 0..a.flows {
            let Some(port) = base.port().checked_add(f) else {
                bail!("--listen {l} with --flows {} runs past port 65535", a.flows);
            };
            addrs.push(std::net::SocketAddr::new(base.ip(), port));
        }
    }
    let listener = Listener::bind(&addrs)?;
    let mut report = recv::collect(&listener, manifest, Instant::now() + timeout, linger);
    listener.stop();
    report.slo = slo;
    if a.json {
        stdout(&(report.to_json() + "\n"))
    } else {
        stdout(&report.to_text())
    }
}
