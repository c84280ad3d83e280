//! `netml simulate --replay FILE`: a live run's decision record through the simulator, and
//! whether it decides every batch as the live run did.

use netml_serve::record::{decisions, Decision};
use netml_serve::{sim, Record, RecordFile};
use std::path::Path;
use std::process::ExitCode;

/// Replays `path`; exit 0 when every batch decision agrees, 1 otherwise.
pub(super) fn run(path: &Path) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = RecordFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let names: Vec<String> = file.functions.iter().map(|f| f.0.name.clone()).collect();
    let live = decisions(&file.records);
    let simulated = decisions(&sim::replay(file.functions, &file.records)?);
    let offers = file
        .records
        .iter()
        .filter(|r| matches!(r, Record::Offer { .. }))
        .count();
    println!(
        "replay of {}: {} functions ({}), {offers} arrivals, {} live batches, {} simulated",
        path.display(),
        names.len(),
        names.join(", "),
        live.len(),
        simulated.len()
    );
    let same = live
        .iter()
        .zip(&simulated)
        .take_while(|(a, b)| a == b)
        .count();
    if same == live.len() && same == simulated.len() {
        println!("every batch decision agrees (function, instance, images, engine batch)");
        return Ok(ExitCode::SUCCESS);
    }
    let show = |d: Option<&Decision>| {
        d.map_or("none".to_string(), |&(f, i, n, e)| {
            format!("{} instance {i}: {n} images as batch {e}", names[f])
        })
    };
    println!(
        "the first {same} decisions agree; decision {}: live {}, simulated {}",
        same + 1,
        show(live.get(same)),
        show(simulated.get(same))
    );
    Ok(ExitCode::from(1))
}
