//! `netml run` configuration: a TOML file, overridable from the command line, with
//! built-in defaults that run the demo on virtual devices without hugepages or a GPU.

use serde::Deserialize;
use std::path::Path;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// EAL arguments passed through as they are (after the program name). A
    /// `--file-prefix` is added when missing, so that several instances coexist.
    pub eal_args: Vec<String>,
    /// Serve packet capture to `dpdk-dumpcap` (`rte_pdump_init`). Needs hugepages with
    /// shared files: no `--no-huge`, `--in-memory` or `--no-shconf` in `eal_args`. The
    /// pipeline's threads then run without DPDK lcore ids (no per-lcore mempool caches).
    pub pdump: bool,
    /// The port fragments arrive on.
    pub rx: RxConfig,
    /// What happens to traffic that is not ours.
    pub chain: ChainConfig,
    /// Where results go.
    pub responses: ResponseConfig,
    /// Verifier limits (per rx queue).
    pub verifier: VerifierConfig,
    /// Packet memory.
    pub mempool: MempoolConfig,
    /// How complete images reach the batch buffers.
    pub ingest: IngestSection,
    /// Complete images queued between the rx workers and the gather stage; beyond this
    /// images are dropped (counted as backpressure).
    pub dispatch_queue: usize,
    /// Seconds between live statistics lines (0: only at exit).
    pub stats_interval_s: f64,
    /// Write the serving stage's decision record here at the end (JSON lines: the functions
    /// with their starting latency models, then every offer, batch and completion), for
    /// replaying the run through the simulator.
    pub record: Option<std::path::PathBuf>,
    /// Online resizing of the CPU functions' shares (`[controller]`).
    pub controller: ControllerSection,
    /// Inference functions served; images of other models are answered `unknown_model`.
    /// Empty: no inference, every image is gathered and answered with its CRC-32.
    pub functions: Vec<FunctionConfig>,
    /// The Prometheus endpoint (`[metrics]`).
    pub metrics: crate::metrics::MetricsConfig,
}

/// The receive port.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RxConfig {
    /// DPDK port name: a vdev name (`net_pcap0`), a PCI address, or `net_ring_<name>`.
    pub port: String,
    /// Virtual device arguments to create it with (`rx_pcap=in.pcap,tx_pcap=out.pcap`);
    /// empty for PCI ports or vdevs given in `eal_args`.
    pub vdev_args: Option<String>,
    /// Rx queues, one worker each.
    pub queues: u16,
    /// Cores to pin the workers to (one per queue, optional).
    pub lcores: Vec<usize>,
    /// UDP destination ports that carry the fragment protocol.
    pub udp_ports: Vec<u16>,
    /// Rx descriptors per queue.
    pub rx_desc: u16,
    /// Packets per rx burst.
    pub burst: usize,
    /// Spread flows over queues with RSS (needs a NIC or PMD that supports it).
    pub rss: bool,
}

/// The NF-chain action for traffic that is not ours.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChainAction {
    /// Free it (counted).
    Drop,
    /// Send it out of the tx port (counted; drops when the tx queue is full are counted).
    Forward,
}

/// Where other traffic goes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// Drop or forward.
    pub action: ChainAction,
    /// Port to forward to (default: the rx port itself).
    pub tx_port: Option<String>,
}

/// Result messages.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// Send a result message to each image's sender.
    pub enabled: bool,
    /// Top-k entries per result.
    pub top_k: usize,
}

/// Verifier limits.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VerifierConfig {
    /// Incomplete images held per rx queue.
    pub max_in_flight: usize,
    /// Fragments per image at most.
    pub max_fragments: u16,
    /// Milliseconds an image may take from its first to its last fragment; also the late
    /// window after an image finished.
    pub timeout_ms: u64,
    /// Finished images remembered per rx queue for the late window (docs/protocol.md §8.2).
    pub max_finished: usize,
}

/// The packet mempool.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    /// Mbufs in the pool (2^n - 1 is most efficient).
    pub mbufs: u32,
    /// Per-lcore cache.
    pub cache: u32,
}

/// Where the ingest runs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IngestTarget {
    /// The first GPU when one is found, else the host.
    Auto,
    /// Host threads stand in for the GPU (the no-GPU path).
    Host,
    /// GPU 0; fails to start without one.
    Gpu,
}

/// The ingest stage (`[ingest]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// `netml` (resident gather kernel), `launch` (one launch per batch) or `cpu-copy`.
    pub mode: String,
    /// `auto`, `host` or `gpu`.
    pub target: IngestTarget,
    /// Images per batch at most (a batch is whatever is queued, up to this).
    pub max_batch: usize,
    /// Largest image in bytes; larger images are answered `Rejected` (counted `oversize`).
    pub max_image_bytes: usize,
    /// Batch slots (gathering batch k+1 overlaps the use of batch k).
    pub slots: usize,
    /// Gather blocks (CUDA blocks, or host threads standing in for them); 0 picks 8 on a
    /// GPU and 1 on the host.
    pub blocks: u32,
    /// Read each batch back and check every image's CRC-32 against its sender's.
    pub check_crc: bool,
}

impl IngestSection {
    /// The parsed mode.
    pub fn mode(&self) -> Result<netml_gpu::IngestMode, String> {
        self.mode.parse().map_err(|e| format!("ingest.mode: {e}"))
    }
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            mode: "netml".into(),
            target: IngestTarget::Auto,
            max_batch: 8,
            max_image_bytes: 3 * 224 * 224 * 4,
            slots: 4,
            blocks: 0,
            check_crc: true,
        }
    }
}

/// One inference function (`[[functions]]`): a model served under a latency SLO.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionConfig {
    /// Name, for statistics.
    pub name: String,
    /// Model id in the fragment header.
    pub model: u8,
    /// The ONNX model it runs.
    pub model_file: std::path::PathBuf,
    /// `fp32` or `fp16` (fp16 needs a GPU instance).
    pub precision: String,
    /// Latency objective from the image complete in the receiver to its answer, ms.
    pub slo_ms: f64,
    /// Largest batch (engine plans for powers of two up to it, unless `batch_sizes`).
    pub max_batch: usize,
    /// Engine batch sizes; empty: powers of two up to `max_batch`.
    pub batch_sizes: Vec<usize>,
    /// Instances (CPU worker threads, or GPUs), each running one batch at a time.
    pub instances: usize,
    /// Compute share of each instance, in the device's units (SMs of its GPU, or cores of
    /// the CPU), one per instance (`netml place` writes them); empty: none set.
    pub shares: Vec<u32>,
    /// How a CPU instance uses the threads of its share: `split` (each batch split across
    /// them, a single-threaded engine each) or `engine` (one engine computing on all of them).
    pub parallel: String,
    /// `auto` (a GPU when the ingest is on one, else the CPU), `cpu` or `gpu:N`.
    pub target: String,
    /// Classes per answer (at most 32).
    pub top_k: usize,
    /// `slab`, `fixed:N` or `max_delay:N,D_us`.
    pub policy: String,
    /// Admission control: refuse images that cannot finish inside the SLO. Default: on for
    /// `slab`, off for the two baselines.
    pub admission: Option<bool>,
    /// Latency profile CSV seeding the scheduler (`model,precision,batch,ms` columns);
    /// without one it learns from the first batches.
    pub profile: Option<std::path::PathBuf>,
    /// The model's name in the profile (default: the file stem of `model_file`).
    pub profile_model: Option<String>,
    /// Tensor the senders send: `f32` (the model's input as it is, NCHW) or `u8` (HWC
    /// pixels, turned into normalised f32 CHW by the gather).
    pub input: String,
    /// Per-channel mean for `u8` input, on the 0..1 scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation for `u8` input, on the 0..1 scale.
    pub std: [f32; 3],
    /// Most images queued (beyond it images are answered `overloaded`).
    pub queue_limit: usize,
}

/// The GSLICE controller over the CPU functions' shares: every period it resizes each
/// function's instances (threads per instance) from its rate, latency and SLO, through a
/// shadow instance. Needs every CPU function to have `shares`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerSection {
    /// Resize online (off: shares stay as configured).
    pub enabled: bool,
    /// Time between decisions, ms.
    pub period_ms: f64,
}

impl Default for ControllerSection {
    fn default() -> Self {
        ControllerSection {
            enabled: false,
            period_ms: 100.0,
        }
    }
}

impl Default for FunctionConfig {
    fn default() -> Self {
        FunctionConfig {
            name: String::new(),
            model: 0,
            model_file: Default::default(),
            precision: "fp32".into(),
            slo_ms: 50.0,
            max_batch: 8,
            batch_sizes: Vec::new(),
            instances: 1,
            shares: Vec::new(),
            parallel: "split".into(),
            target: "auto".into(),
            top_k: 5,
            policy: "slab".into(),
            admission: None,
            profile: None,
            profile_model: None,
            input: "f32".into(),
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            queue_limit: 4096,
        }
    }
}

impl FunctionConfig {
    /// Parses `ID=PATH[,key=value...]` (the `--function` option): keys `name`, `slo_ms`,
    /// `max_batch`, `instances`, `share` (the same share for every instance), `parallel`,
    /// `policy` (with
    /// its own `:` and `,` in `max_delay:N,D`, given last), `top_k`, `input`, `profile`,
    /// `target`, `admission` (`on`/`off`).
    pub fn from_arg(arg: &str) -> Result<FunctionConfig, String> {
        let bad = |why: String| format!("--function {arg:?}: {why}");
        let (id, rest) = arg
            .split_once('=')
            .ok_or_else(|| bad("expected ID=PATH[,key=value...]".into()))?;
        let model: u8 = id
            .trim()
            .parse()
            .map_err(|_| bad(format!("model id {id:?} is not 0..=255")))?;
        let (path, mut opts) = match rest.split_once(',') {
            Some((p, o)) => (p, o),
            None => (rest, ""),
        };
        let mut f = FunctionConfig {
            model,
            model_file: path.into(),
            ..FunctionConfig::default()
        };
        f.name = f.model_file.file_stem().map_or_else(
            || format!("model{model}"),
            |s| s.to_string_lossy().into_owned(),
        );
        let mut share = None;
        while !opts.is_empty() {
            let (kv, more) = match opts.split_once(',') {
                Some((kv, more)) if !kv.starts_with("policy=") => (kv, more),
                _ => (opts, ""),
            };
            opts = more;
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("{kv:?} is not key=value")))?;
            let num = |v: &str| {
                v.parse::<usize>()
                    .map_err(|_| bad(format!("{k}={v} is not a number")))
            };
            match k {
                "name" => f.name = v.into(),
                "slo_ms" => {
                    f.slo_ms = v
                        .parse()
                        .map_err(|_| bad(format!("slo_ms={v} is not a number")))?
                }
                "max_batch" => f.max_batch = num(v)?,
                "instances" => f.instances = num(v)?,
                "share" => share = Some(num(v)? as u32),
                "parallel" => f.parallel = v.into(),
                "top_k" => f.top_k = num(v)?,
                "policy" => f.policy = v.into(),
                "input" => f.input = v.into(),
                "profile" => f.profile = Some(v.into()),
                "target" => f.target = v.into(),
                "admission" => {
                    f.admission = Some(match v {
                        "on" => true,
                        "off" => false,
                        _ => return Err(bad(format!("admission={v}: expected on or off"))),
                    })
                }
                _ => return Err(bad(format!("unknown key {k:?}"))),
            }
        }
        if let Some(s) = share {
            f.shares = vec![s; f.instances];
        }
        f.check().map_err(bad)?;
        Ok(f)
    }

    /// Checks values that parse but cannot work.
    pub fn check(&self) -> Result<(), String> {
        let n = &self.name;
        if self.model_file.as_os_str().is_empty() {
            return Err(format!("function {n:?}: model_file is missing"));
        }
        if !(self.slo_ms > 0.0 && self.slo_ms.is_finite()) {
            return Err(format!("function {n:?}: slo_ms must be positive"));
        }
        self.parallel
            .parse::<netml_serve::exec::Parallel>()
            .map_err(|e| format!("function {n:?}: {e}"))?;
        if self.max_batch == 0 || self.instances == 0 || self.queue_limit == 0 {
            return Err(format!(
                "function {n:?}: max_batch, instances and queue_limit must be at least 1"
            ));
        }
        if !self.shares.is_empty() && self.shares.len() != self.instances
            || self.shares.contains(&0)
        {
            return Err(format!(
                "function {n:?}: shares lists {} shares for {} instances; give one (at least 1) per instance or none",
                self.shares.len(),
                self.instances
            ));
        }
        if self.top_k > netml_wire::result::MAX_TOP_K {
            return Err(format!(
                "function {n:?}: top_k is at most {}",
                netml_wire::result::MAX_TOP_K
            ));
        }
        if !matches!(self.input.as_str(), "f32" | "u8") {
            return Err(format!(
                "function {n:?}: input must be f32 or u8, not {:?}",
                self.input
            ));
        }
        if self.std.iter().any(|&s| s <= 0.0) {
            return Err(format!("function {n:?}: std must be positive"));
        }
        self.policy().map(|_| ())
    }

    /// The batching policy.
    pub fn policy(&self) -> Result<netml_serve::Policy, String> {
        self.policy
            .parse()
            .map_err(|e| format!("function {:?}: {e}", self.name))
    }

    /// Engine batch sizes.
    pub fn engine_batches(&self) -> Vec<usize> {
        if self.batch_sizes.is_empty() {
            netml_serve::FunctionSpec::default_batch_sizes(self.max_batch)
        } else {
            self.batch_sizes.clone()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            eal_args: [
                "--no-huge",
                "-m",
                "1024",
                "--no-pci",
                "--no-shconf",
                "--log-level",
                "warning",
            ]
            .map(String::from)
            .to_vec(),
            pdump: false,
            rx: RxConfig::default(),
            chain: ChainConfig::default(),
            responses: ResponseConfig::default(),
            verifier: VerifierConfig::default(),
            mempool: MempoolConfig::default(),
            ingest: IngestSection::default(),
            dispatch_queue: 1024,
            stats_interval_s: 1.0,
            functions: Vec::new(),
            record: None,
            controller: ControllerSection::default(),
            metrics: Default::default(),
        }
    }
}

impl Default for RxConfig {
    fn default() -> Self {
        RxConfig {
            port: "net_ring_demo".into(),
            vdev_args: None,
            queues: 1,
            lcores: Vec::new(),
            udp_ports: vec![9000],
            rx_desc: 1024,
            burst: 32,
            rss: false,
        }
    }
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            action: ChainAction::Drop,
            tx_port: None,
        }
    }
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            enabled: true,
            top_k: 5,
        }
    }
}

impl Default for VerifierConfig {
    fn default() -> Self {
        let d = netml_verify::Config::default();
        VerifierConfig {
            max_in_flight: d.max_in_flight,
            max_fragments: d.max_fragments,
            timeout_ms: d.timeout_ns / 1_000_000,
            max_finished: d.max_finished,
        }
    }
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            mbufs: 65535,
            cache: 256,
        }
    }
}

impl VerifierConfig {
    /// The verifier's own configuration.
    pub fn to_verify(&self) -> netml_verify::Config {
        netml_verify::Config {
            max_in_flight: self.max_in_flight,
            max_fragments: self.max_fragments,
            timeout_ns: self.timeout_ms.saturating_mul(1_000_000),
            max_finished: self.max_finished,
        }
    }
}

impl Config {
    /// Reads a TOML file; fields it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        self.metrics.validate()?;
        if self.rx.queues == 0 {
            return Err("rx.queues must be at least 1".into());
        }
        if !self.rx.lcores.is_empty() && self.rx.lcores.len() != self.rx.queues as usize {
            return Err(format!(
                "rx.lcores lists {} cores for {} queues; give one per queue or none",
                self.rx.lcores.len(),
                self.rx.queues
            ));
        }
        if self.rx.udp_ports.is_empty() {
            return Err("rx.udp_ports is empty: no traffic would be ours".into());
        }
        if self.rx.burst == 0 || self.rx.burst > 512 {
            return Err("rx.burst must be 1..=512".into());
        }
        if self.dispatch_queue == 0 {
            return Err("dispatch_queue must be at least 1".into());
        }
        self.ingest.mode()?;
        let mut models = [false; 256];
        for f in &self.functions {
            f.check()?;
            if std::mem::replace(&mut models[f.model as usize], true) {
                return Err(format!("two functions serve model {}", f.model));
            }
        }
        let i = &self.ingest;
        if i.max_batch == 0 || i.slots == 0 || i.max_image_bytes == 0 {
            return Err(
                "ingest.max_batch, ingest.slots and ingest.max_image_bytes must be at least 1"
                    .into(),
            );
        }
        if !matches!(i.max_batch.checked_mul(i.max_image_bytes), Some(b) if b <= u32::MAX as usize)
        {
            return Err("ingest.max_batch x ingest.max_image_bytes must stay below 4 GiB".into());
        }
        let unshared = ["--no-huge", "--in-memory", "--no-shconf"];
        if self.pdump {
            if let Some(a) = self
                .eal_args
                .iter()
                .find(|a| unshared.contains(&a.as_str()))
            {
                return Err(format!(
                    "pdump: a capture tool shares this process's hugepages; remove {a} from \
                     the EAL arguments (`netml run --huge --pdump` does)"
                ));
            }
        }
        Ok(())
    }

    /// EAL arguments with the program name first and a file prefix unique to this process
    /// unless one was given.
    pub fn eal_argv(&self) -> Vec<String> {
        let mut argv = vec!["netml".to_string()];
        argv.extend(self.eal_args.iter().cloned());
        if !self.eal_args.iter().any(|a| a.starts_with("--file-prefix")) {
            argv.push(format!("--file-prefix=netml-{}", std::process::id()));
        }
        argv
    }

    /// Whether DPDK's telemetry socket is on (no `--no-telemetry` among the EAL arguments).
    pub fn telemetry(&self) -> bool {
        !self.eal_args.iter().any(|a| a == "--no-telemetry")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn partial_file_overrides_only_what_it_names() {
        let c = Config::from_toml(
            "eal_args = [\"-l\", \"0-2\"]\n[rx]\nport = \"0000:3b:00.0\"\nqueues = 2\nlcores = [1, 2]\n[chain]\naction = \"forward\"\n",
        )
        .unwrap();
        assert_eq!(c.rx.port, "0000:3b:00.0");
        assert_eq!((c.rx.queues, c.rx.udp_ports.clone()), (2, vec![9000]));
        assert_eq!(c.chain.action, ChainAction::Forward);
        assert_eq!(c.eal_argv()[..3], ["netml", "-l", "0-2"]);
        assert!(c
            .eal_argv()
            .last()
            .unwrap()
            .starts_with("--file-prefix=netml-"));
    }

    #[test]
    fn telemetry_is_on_and_pdump_wants_shared_hugepages() {
        let c = Config::default();
        assert!(c.telemetry() && !c.pdump);
        assert!(!Config::from_toml("eal_args = [\"--no-telemetry\"]")
            .unwrap()
            .telemetry());
        assert!(Config::from_toml("pdump = true")
            .unwrap_err()
            .contains("remove --no-huge"));
        assert!(Config::from_toml("pdump = true\neal_args = [\"--file-prefix=a\"]").is_ok());
    }

    #[test]
    fn mistakes_are_clear_errors() {
        assert!(Config::from_toml("[rx]\nqueus = 2")
            .unwrap_err()
            .contains("unknown field"));
        assert!(Config::from_toml("[rx]\nqueues = 0")
            .unwrap_err()
            .contains("at least 1"));
        assert!(Config::from_toml("[rx]\nqueues = 2\nlcores = [1]")
            .unwrap_err()
            .contains("one per queue"));
        assert!(Config::from_toml("[chain]\naction = \"bounce\"").is_err());
        assert!(Config::from_toml("[ingest]\nmode = \"dma\"")
            .unwrap_err()
            .contains("cpu-copy"));
        assert!(Config::from_toml("[ingest]\ntarget = \"tpu\"").is_err());
        assert!(Config::from_toml("[ingest]\nslots = 0").is_err());
        let f = "[[functions]]\nmodel = 1\nmodel_file = \"m.onnx\"\ninstances = 2\n";
        let c = Config::from_toml(&format!("{f}shares = [64, 32]")).unwrap();
        assert_eq!(c.functions[0].shares, vec![64, 32]);
        assert!(Config::from_toml(&format!("{f}shares = [64]"))
            .unwrap_err()
            .contains("one (at least 1) per instance"));
        assert!(Config::from_toml(&format!("{f}shares = [64, 0]")).is_err());
    }

    #[test]
    fn share_key_gives_every_instance_that_share() {
        let f = FunctionConfig::from_arg("1=m.onnx,share=2,instances=3").unwrap();
        assert_eq!(f.shares, vec![2, 2, 2]);
        assert!(FunctionConfig::from_arg("1=m.onnx")
            .unwrap()
            .shares
            .is_empty());
        assert!(FunctionConfig::from_arg("1=m.onnx,share=0").is_err());
        let f = FunctionConfig::from_arg("1=m.onnx,share=2,parallel=engine").unwrap();
        assert_eq!(f.parallel, "engine");
        assert!(FunctionConfig::from_arg("1=m.onnx,parallel=both")
            .unwrap_err()
            .contains("split or engine"));
        let c = Config::from_toml("[controller]\nenabled = true\nperiod_ms = 50").unwrap();
        assert_eq!(
            c.controller,
            ControllerSection {
                enabled: true,
                period_ms: 50.0
            }
        );
        assert!(!Config::default().controller.enabled);
    }
}
