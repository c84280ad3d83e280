//! Section "green": a green context of 8 SMs (the gather kernel's share in the reference
//! measurements: 8 blocks gave 22.7 GB/s), what the driver grants, how long creation takes,
//! and that a stream on it runs work.

use std::time::Instant;

use netml_gpu::cuda::GreenPartition;

use super::{Env, Row, Rows};

const S: &str = "green";
/// SMs asked for.
const SMS: u32 = 8;

/// Create, granted SMs, creation time, a stream that synchronises.
pub fn rows(env: &Env, rows: &mut Rows) {
    let gpu = env.gpu;
    let t = Instant::now();
    let part = match GreenPartition::new(env.ctx, SMS) {
        Ok(p) => p,
        Err(e) => {
            return rows.push(Row::failed(
                S,
                &format!("create {SMS} SMs"),
                format!("{e} (needs compute capability >= 9.0 and driver >= 12.4)"),
            ))
        }
    };
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let granted = part.sm_count();
    for r in [
        Row::check(S, &format!("create {SMS} SMs"), true, "created".into(), "-"),
        Row::check(
            S,
            "SMs granted",
            granted >= SMS && granted <= gpu.sm_count,
            format!("{granted} of {}", gpu.sm_count),
            "asked 8; granularity rounds up (asked 66, got 72)",
        ),
        Row::figure(
            S,
            "creation time",
            format!("{ms:.2} ms"),
            "0.8-1.0 ms (H100 machine)",
        ),
    ] {
        rows.push(r);
    }
    let stream = part.new_stream().and_then(|s| s.synchronize().map(|()| s));
    rows.push(match stream {
        Ok(_) => Row::check(S, "stream create + synchronize", true, "ok".into(), "-"),
        Err(e) => Row::failed(S, "stream create + synchronize", e),
    });
}
