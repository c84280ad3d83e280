//! The process's own figures, as every Prometheus client library exports them
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), from `getrusage`
//! and `/proc`.

/// The process now.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Process {
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
    /// Resident set size, bytes.
    pub resident_bytes: f64,
    /// Start time since the Unix epoch, seconds.
    pub start_time_s: f64,
    /// Threads.
    pub threads: f64,
}

/// Reads them; a figure the system does not give stays 0.
pub(super) fn read() -> Process {
    let mut p = Process {
        cpu_s: cpu_seconds(),
        ..Process::default()
    };
    // /proc/self/stat: the fields after the command name, which ends at the last ')'.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // Field n of proc(5) is fields[n - 3] here (pid and comm come before).
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK) as f64,
            libc::sysconf(libc::_SC_PAGESIZE) as f64,
        )
    };
    p.threads = field(20).unwrap_or(0.0);
    p.resident_bytes = field(24).map_or(0.0, |pages| pages * page);
    if let (Some(start), Some(boot)) = (field(22), boot_time_s()) {
        if ticks > 0.0 {
            p.start_time_s = boot + start / ticks;
        }
    }
    p
}

fn cpu_seconds() -> f64 {
    // SAFETY: a zeroed rusage is a valid out value, and the pointer is valid for the call.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Boot time since the Unix epoch (`btime` of `/proc/stat`).
fn boot_time_s() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_has_run_and_holds_memory() {
        let p = super::read();
        assert!(p.threads >= 1.0, "{p:?}");
        assert!(p.resident_bytes > 0.0, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(p.start_time_s > 0.0 && p.start_time_s <= now + 1.0, "{p:?}");
        assert!(p.cpu_s >= 0.0, "{p:?}");
    }
}
