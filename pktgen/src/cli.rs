//! Command-line arguments of the `netml-pktgen` binary.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Generates netml fragment traffic (pcap, live interface or UDP) with seeded fault
/// injection, and collects the pipeline's results.
///
/// Without a subcommand, `send` is assumed: `netml-pktgen --pcap out.pcap` writes the four
/// seeded synthetic 1x3x224x224 f32 tensors once.
#[derive(Debug, Parser)]
#[command(name = "netml-pktgen", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Send options (when no subcommand is given).
    #[command(flatten)]
    pub send: SendArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send images as fragments (the default).
    Send(Box<SendArgs>),
    /// Collect result messages and match them against a manifest.
    Recv(RecvArgs),
}

/// Options of `send`.
#[derive(Debug, Args, Default)]
pub struct SendArgs {
    // Inputs.
    /// PNG/JPEG files to send (cycled over).
    #[arg(long, num_args = 1.., value_name = "FILE", help_heading = "Inputs",
          conflicts_with_all = ["npy", "synthetic"])]
    pub image: Vec<PathBuf>,
    /// Image size after resizing, HxW.
    #[arg(
        long,
        default_value = "224x224",
        value_name = "HxW",
        help_heading = "Inputs"
    )]
    pub size: String,
    /// Image tensor format: f32-chw (ImageNet-normalised NCHW) or u8-hwc (raw NHWC).
    #[arg(long, default_value = "f32-chw", help_heading = "Inputs")]
    pub format: String,
    /// .npy files to send ('<f4', '<f2' or '|u1', C order).
    #[arg(long, num_args = 1.., value_name = "FILE", help_heading = "Inputs",
          conflicts_with = "synthetic")]
    pub npy: Vec<PathBuf>,
    /// Shape of seeded synthetic tensors (the default input).
    #[arg(long, value_name = "SHAPE", help_heading = "Inputs")]
    pub synthetic: Option<String>,
    /// Element type of synthetic tensors: f32, f16 or u8.
    #[arg(long, default_value = "f32", help_heading = "Inputs")]
    pub dtype: String,
    /// Distinct synthetic tensors (cycled over).
    #[arg(long, default_value_t = 4, help_heading = "Inputs")]
    pub variants: usize,

    // Streams and addresses.
    /// Model id; repeat (or comma-separate) to send images round-robin over models.
    #[arg(long, value_delimiter = ',', help_heading = "Streams")]
    pub model: Vec<u8>,
    /// Flows: distinct source ports (src port, +1, ...), so that NIC RSS spreads them.
    #[arg(long, default_value_t = 1, help_heading = "Streams")]
    pub flows: u16,
    /// Distinct source addresses (src IP, +1, ...), assigned to flows round-robin.
    #[arg(long, default_value_t = 1, help_heading = "Streams")]
    pub src_ips: u32,
    /// Destination (the pipeline), IP:PORT or [IPv6]:PORT.
    #[arg(long, default_value = netml_pktgen::flows::DEFAULT_DST, help_heading = "Streams")]
    pub dst: String,
    /// First source address and port.
    #[arg(long, default_value = netml_pktgen::flows::DEFAULT_SRC, help_heading = "Streams")]
    pub src: String,
    /// Source MAC (default: the interface's with --iface, else 02:00:00:00:00:01).
    #[arg(long, help_heading = "Streams")]
    pub src_mac: Option<String>,
    /// Destination MAC.
    #[arg(long, default_value = "02:00:00:00:00:02", help_heading = "Streams")]
    pub dst_mac: String,
    /// Add an 802.1Q tag with this TCI (decimal or 0x hex).
    #[arg(long, value_name = "TCI", help_heading = "Streams")]
    pub vlan: Option<String>,
    /// Nominal tensor bytes per fragment (max 1386 for IPv4, 1366 for IPv6 at MTU 1500).
    #[arg(long, default_value_t = netml_pktgen::fragmenter::DEFAULT_FRAG_SIZE, help_heading = "Streams")]
    pub frag_size: u16,
    /// IP MTU that every fragment must fit in.
    #[arg(long, default_value_t = netml_pktgen::fragmenter::DEFAULT_MTU, help_heading = "Streams")]
    pub mtu: usize,
    /// Image id of the first image of every (flow, model).
    #[arg(long, default_value_t = 0, help_heading = "Streams")]
    pub first_image: u32,

    // Faults.
    /// Seed of every random choice (faults, shuffles, synthetic data).
    #[arg(long, default_value_t = 1, help_heading = "Faults")]
    pub seed: u64,
    /// Probability that a fragment is dropped.
    #[arg(long, default_value_t = 0.0, value_name = "P", help_heading = "Faults")]
    pub loss: f64,
    /// Probability that a fragment's frame is cut short.
    #[arg(long, default_value_t = 0.0, value_name = "P", help_heading = "Faults")]
    pub truncate: f64,
    /// Probability that a fragment header bit is flipped (header checksum fails).
    #[arg(long, default_value_t = 0.0, value_name = "P", help_heading = "Faults")]
    pub corrupt: f64,
    /// Probability that a delivered fragment is sent twice.
    #[arg(long, default_value_t = 0.0, value_name = "P", help_heading = "Faults")]
    pub dup: f64,
    /// Shuffle frames within windows of W frames.
    #[arg(long, default_value_t = 0, value_name = "W", help_heading = "Faults")]
    pub reorder: usize,
    /// Fraction of images that withhold their last fragment(s).
    #[arg(long, default_value_t = 0.0, value_name = "P", help_heading = "Faults")]
    pub incomplete: f64,

    // Output.
    /// Write a pcap file.
    #[arg(long, value_name = "FILE", help_heading = "Output", conflicts_with_all = ["iface", "udp"])]
    pub pcap: Option<PathBuf>,
    /// Send on this Linux interface (AF_PACKET; needs root or CAP_NET_RAW).
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "Output",
        conflicts_with = "udp"
    )]
    pub iface: Option<String>,
    /// Send only UDP payloads through UDP sockets bound to the flow sources (loopback tests).
    #[arg(long, help_heading = "Output")]
    pub udp: bool,
    /// Live outputs: frames per sendmmsg(2) call (1: one frame per system call). Paced
    /// runs send what is batched before waiting for the next frame's time.
    #[arg(
        long,
        default_value_t = netml_pktgen::mmsg::DEFAULT_BATCH,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1024),
        help_heading = "Output"
    )]
    pub batch: u16,
    /// With --iface: hand frames straight to the driver (PACKET_QDISC_BYPASS): no queueing
    /// discipline, and captures on the sending interface do not see them.
    #[arg(long, requires = "iface", help_heading = "Output")]
    pub qdisc_bypass: bool,
    /// Frames per second.
    #[arg(long, help_heading = "Output", conflicts_with_all = ["mbps", "ips"])]
    pub pps: Option<f64>,
    /// Megabits per second (Ethernet frame bytes).
    #[arg(long, help_heading = "Output", conflicts_with = "ips")]
    pub mbps: Option<f64>,
    /// Images per second.
    #[arg(long, help_heading = "Output")]
    pub ips: Option<f64>,
    /// Passes over the inputs (default 1).
    #[arg(long, help_heading = "Output", conflicts_with = "count")]
    pub loops: Option<u64>,
    /// Total images to send.
    #[arg(long, help_heading = "Output")]
    pub count: Option<u64>,
    /// Stop after this many seconds (virtual time for pcap files).
    #[arg(long, value_name = "SECS", help_heading = "Output")]
    pub duration: Option<f64>,
    /// Print a progress line every second even when stderr is not a terminal.
    #[arg(long, help_heading = "Output")]
    pub progress: bool,
    /// Do not print the summary on stdout.
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    /// Write the summary as JSON.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub summary: Option<PathBuf>,
    /// Write one JSON line per image.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub manifest: Option<PathBuf>,
    /// With --udp: after sending, collect results on the flow sockets for up to SECS.
    #[arg(long, value_name = "SECS", requires = "udp", help_heading = "Output")]
    pub collect: Option<f64>,
    /// With --collect: write the result report as JSON.
    #[arg(
        long,
        value_name = "FILE",
        requires = "collect",
        help_heading = "Output"
    )]
    pub report: Option<PathBuf>,
}

/// Options of `recv`.
#[derive(Debug, Args)]
pub struct RecvArgs {
    /// Address to listen on (the senders' source address); repeatable.
    #[arg(long, required = true, value_name = "IP:PORT")]
    pub listen: Vec<String>,
    /// Also listen on the next N-1 ports of every --listen address (one per sender flow).
    #[arg(long, default_value_t = 1)]
    pub flows: u16,
    /// The manifest written by `send --manifest`.
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// Give up after this many seconds (stops earlier once every image is answered, or
    /// --linger after every intact one is).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,
    /// Once every intact image is answered, wait this long for the `incomplete` answers of
    /// damaged images.
    #[arg(long, default_value_t = netml_pktgen::recv::DEFAULT_LINGER.as_secs_f64(), value_name = "SECS")]
    pub linger: f64,
    /// Latency SLO for SLO attainment: MS for every model, or MODEL=MS for one (repeatable).
    #[arg(long, value_name = "[MODEL=]MS")]
    pub slo_ms: Vec<String>,
    /// CSV of expected top-1 classes (header `model,image,class`, optional `src` column, or
    /// `model,input,class`), checked against `ok` answers.
    #[arg(long, value_name = "FILE")]
    pub expected: Option<std::path::PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}
