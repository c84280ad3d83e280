//! `--trace pcap:FILE`: arrivals read from a capture. Each image arrives when its fragment 0
//! was captured (the fragment that carries the descriptor; the verifier would complete the
//! image later, but the sender's intent is what the simulation replays), with the model id
//! of its header; times are relative to the first.

use netml_serve::sim::trace::Arrival;
use netml_verify::{receive, Rx, RxCounters};
use netml_wire::pcap;
use netml_wire::source::Source;
use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Opens a classic Ethernet capture; errors name the file.
pub(crate) fn open(path: &Path) -> Result<pcap::Reader<BufReader<File>>, String> {
    let at = |e: std::io::Error| format!("{}: {e}", path.display());
    let reader = pcap::Reader::new(BufReader::new(File::open(path).map_err(at)?)).map_err(at)?;
    if reader.linktype != pcap::LINKTYPE_ETHERNET {
        return Err(format!(
            "{}: link type {} is not Ethernet",
            path.display(),
            reader.linktype
        ));
    }
    Ok(reader)
}

/// The images of the capture at `path` on UDP `ports`, in time order: one arrival per
/// distinct (sender, model, image id) whose fragment 0 is in it (a duplicate fragment 0 is
/// the same image).
pub(super) fn arrivals(path: &Path, ports: &[u16]) -> Result<Vec<Arrival>, String> {
    let mut reader = open(path)?;
    let mut rx = RxCounters::default();
    let mut seen: HashSet<(Source, u8, u32)> = HashSet::new();
    let mut found: Vec<(u64, u8)> = Vec::new();
    while let Some(rec) = reader
        .next_record()
        .map_err(|e| format!("{}: {e}", path.display()))?
    {
        if let Rx::Fragment(f, _) = receive(&mut rx, &rec.data, (), |p| ports.contains(&p)) {
            let h = f.header;
            if h.index == 0 && seen.insert((f.source, h.model, h.image)) {
                found.push((rec.timestamp_ns, h.model));
            }
        }
    }
    if found.is_empty() {
        return Err(format!(
            "{}: no image's fragment 0 on UDP port(s) {ports:?} ({} frames, {} fragments)",
            path.display(),
            rx.frames,
            rx.fragments
        ));
    }
    // A capture's records are in capture order, which a merged file need not keep.
    found.sort_by_key(|a| a.0);
    let t0 = found[0].0;
    Ok(found
        .into_iter()
        .map(|(t, model)| Arrival { at: t - t0, model })
        .collect())
}
