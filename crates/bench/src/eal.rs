//! EAL arguments shared by the benches that bring up DPDK (`bench rx`, `bench pipeline`).

/// EAL argv: hugepages (`--in-memory`) or 2 GiB of ordinary pages, no PCI scan, no
/// telemetry, then `extra`, and a per-process file prefix unless `extra` names one.
pub(super) fn eal_argv(huge: bool, extra: &[String]) -> Vec<String> {
    let mut argv: Vec<String> = vec!["netml".into()];
    if huge {
        argv.push("--in-memory".into());
    } else {
        argv.extend(["--no-huge", "-m", "2048", "--no-shconf"].map(String::from));
    }
    argv.extend(["--no-pci", "--no-telemetry", "--log-level", "warning"].map(String::from));
    argv.extend(extra.iter().cloned());
    if !extra.iter().any(|s| s.starts_with("--file-prefix")) {
        argv.push(format!("--file-prefix=netml-bench-{}", std::process::id()));
    }
    argv
}

/// Free hugepages over all sizes (sysfs), in bytes.
pub(super) fn free_hugepage_bytes() -> u64 {
    let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let free: u64 = std::fs::read_to_string(e.path().join("free_hugepages"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some(kb * 1024 * free)
        })
        .sum()
}

/// Fails early, with the fix, when `--huge` is asked for and no hugepage is free.
pub(super) fn check_huge(huge: bool) -> Result<(), String> {
    if huge && free_hugepage_bytes() == 0 {
        return Err(
            "--huge: no free hugepages (see /sys/kernel/mm/hugepages); reserve some with \
             `sudo scripts/hugepages setup 1024`, or run without --huge"
                .into(),
        );
    }
    Ok(())
}
