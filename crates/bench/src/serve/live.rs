//! The live progress line of a `bench serve` case, on stderr once a second.

use super::case::{function, Sample, Setup};

/// The once-a-second progress line: per function sent, ok and shed per second, the mean
/// batch and the serving CPU per batch over the last second.
pub(super) fn progress(s: &Setup, t: f64, a: &Sample, b: &Sample, in_use: u32) {
    let dt = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
    let mut line = format!("[case {}/{} {} {:5.1}s]", s.n + 1, s.of, s.policy, t);
    for (i, f) in s.functions.iter().enumerate() {
        let (Some(x), Some(y)) = (function(&a.snap, f.model), function(&b.snap, f.model)) else {
            continue;
        };
        let (x, y) = (&x.stats, &y.stats);
        let batches = y.batches.saturating_sub(x.batches);
        line += &format!(
            " {} sent {:.0}/s ok {:.0}/s shed {:.0}/s batch {:.1} |",
            f.name,
            rate(a.sent[i], b.sent[i]),
            rate(x.answered, y.answered),
            rate(x.shed(), y.shed()),
            y.batched_images.saturating_sub(x.batched_images) as f64 / batches.max(1) as f64,
        );
    }
    let (k0, k1) = (&a.snap.sink, &b.snap.sink);
    let batches = k1.batches.saturating_sub(k0.batches).max(1) as f64;
    eprintln!(
        "{line} serve {:.1} us/batch (limit 20) | mbufs in use {in_use}",
        k1.serve_ns.saturating_sub(k0.serve_ns) as f64 / batches / 1e3
    );
}
