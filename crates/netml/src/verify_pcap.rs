//! `netml verify-pcap`: the verifier over a capture file.

use clap::Args as ClapArgs;
use netml_verify::{receive, Config, Image, Push, Rx, RxCounters, Verifier};
use netml_wire::{checksum, pcap};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufReader, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `netml verify-pcap`.
#[derive(ClapArgs)]
pub struct Args {
    /// Capture file (classic pcap, Ethernet).
    file: PathBuf,
    /// UDP destination port(s) that carry the fragment protocol.
    #[arg(long = "port", default_values_t = [9000])]
    ports: Vec<u16>,
    /// An image not complete this long after its first fragment (capture time) is evicted.
    #[arg(long, default_value_t = 500)]
    timeout_ms: u64,
    /// Most incomplete images held at once.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Most fragments per image.
    #[arg(long, default_value_t = 4096)]
    max_fragments: u16,
    /// Most finished images remembered for the late window (`--timeout-ms`); beyond it the
    /// oldest are forgotten early (counted as forgotten_early).
    #[arg(long, default_value_t = Config::DEFAULT_MAX_FINISHED)]
    max_finished: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Leave out the per-image lines.
    #[arg(long)]
    no_images: bool,
    /// Exit non-zero if any completed image's bytes do not match its sender's CRC.
    #[arg(long)]
    strict: bool,
}

/// A captured frame and where its tensor bytes are.
struct Captured {
    frame: Vec<u8>,
    payload: Range<usize>,
}

struct Completed {
    image: Image<Captured>,
    crc32: u32,
}

impl Completed {
    fn crc_ok(&self) -> bool {
        self.crc32 == self.image.descriptor.crc32
    }

    fn to_json(&self) -> Value {
        let i = &self.image;
        json!({
            "source": i.key.source.to_string(),
            "model": i.key.model,
            "image": i.key.image,
            "fragments": i.fragments.len(),
            "bytes": i.total_bytes,
            "dtype": format!("{:?}", i.descriptor.dtype).to_lowercase(),
            "layout": format!("{:?}", i.descriptor.layout).to_lowercase(),
            "shape": i.descriptor.shape(),
            "crc32": format!("{:08x}", self.crc32),
            "crc_ok": self.crc_ok(),
            "sender_timestamp_ns": i.descriptor.timestamp,
            "first_arrival_ns": i.first_arrival,
            "completed_ns": i.completed_at,
        })
    }
}

/// Runs the capture through the verifier.
pub fn run(a: Args) -> Result<ExitCode, String> {
    let file = File::open(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let mut reader = pcap::Reader::new(BufReader::new(file))
        .map_err(|e| format!("{}: {e}", a.file.display()))?;
    if reader.linktype != pcap::LINKTYPE_ETHERNET {
        return Err(format!(
            "{}: link type {} is not Ethernet",
            a.file.display(),
            reader.linktype
        ));
    }
    let cfg = Config {
        max_in_flight: a.max_in_flight,
        max_fragments: a.max_fragments,
        timeout_ns: a.timeout_ms.saturating_mul(1_000_000),
        max_finished: a.max_finished,
    };
    let mut verifier = Verifier::new(cfg);
    let mut rx = RxCounters::default();
    let mut done = Vec::new();
    let mut now = 0;
    while let Some(rec) = reader
        .next_record()
        .map_err(|e| format!("{}: {e}", a.file.display()))?
    {
        now = now.max(rec.timestamp_ns);
        verifier.expire(now);
        // Split the borrow: classify the bytes, then move them into the handle.
        let classified = receive(&mut rx, &rec.data, (), |p| a.ports.contains(&p));
        if let Rx::Fragment(f, payload) = classified {
            let handle = Captured {
                frame: rec.data,
                payload,
            };
            let f = netml_verify::Fragment {
                source: f.source,
                header: f.header,
                payload_len: f.payload_len,
                handle,
            };
            if let Push::Complete(image) = verifier.push(f, now) {
                let parts = image.fragments.iter().map(|c| &c.frame[c.payload.clone()]);
                let crc32 = checksum::tensor_crc32(parts);
                done.push(Completed { image, crc32 });
            }
        }
    }
    verifier.evict_all(now);
    let mismatches = done.iter().filter(|c| !c.crc_ok()).count();
    let out = std::io::stdout();
    let mut out = out.lock();
    let w = if a.json {
        let obj = |fields: &[(&str, u64)]| {
            Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect(),
            )
        };
        let mut doc = json!({
            "file": a.file.display().to_string(),
            "rx": obj(&rx.fields()),
            "verifier": obj(&verifier.counters().fields()),
            "crc_mismatch": mismatches,
        });
        if !a.no_images {
            doc["images"] = done.iter().map(Completed::to_json).collect();
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("json"))
    } else {
        print_text(&mut out, &a, &rx, verifier.counters(), &done, mismatches)
    };
    w.map_err(|e| format!("stdout: {e}"))?;
    Ok(if a.strict && mismatches > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_text(
    out: &mut impl Write,
    a: &Args,
    rx: &RxCounters,
    v: &netml_verify::Counters,
    done: &[Completed],
    mismatches: usize,
) -> std::io::Result<()> {
    writeln!(out, "file: {}", a.file.display())?;
    let line = |fields: &[(&str, u64)]| {
        fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    writeln!(out, "rx:       {}", line(&rx.fields()))?;
    writeln!(out, "verifier: {}", line(&v.fields()))?;
    writeln!(
        out,
        "images:   completed={} crc_ok={} crc_mismatch={mismatches}",
        done.len(),
        done.len() - mismatches
    )?;
    if a.no_images || done.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:>5} {:>10} {:>6} {:>9} {:>8}  crc",
        "source", "model", "image", "frags", "bytes", "crc32"
    )?;
    for c in done {
        let i = &c.image;
        writeln!(
            out,
            "{:<24} {:>5} {:>10} {:>6} {:>9} {:08x}  {}",
            i.key.source.to_string(),
            i.key.model,
            i.key.image,
            i.fragments.len(),
            i.total_bytes,
            c.crc32,
            if c.crc_ok() { "ok" } else { "MISMATCH" }
        )?;
    }
    Ok(())
}
