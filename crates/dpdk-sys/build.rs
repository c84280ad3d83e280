//! Build script for `netml-dpdk-sys`.
//!
//! 1. Finds DPDK with pkg-config (`libdpdk`, at least 22.11).
//! 2. Compiles `csrc/shim.c` (out-of-line wrappers of DPDK's static-inline functions) with
//!    pkg-config's cflags, which DPDK requires (`-include rte_config.h -march=...`).
//! 3. Runs bindgen over `csrc/wrapper.h` with an allowlist of exactly what netml uses.
//! 4. Emits link lines:
//!    - default: dynamic, `pkg-config --libs libdpdk` plus `rte_net_ring` (for
//!      `rte_eth_from_rings`) and `rte_bus_vdev` (for `rte_vdev_init`); the other PMDs are
//!      loaded at run time by the EAL from its plugin directory.
//!    - `NETML_DPDK_STATIC=1`: `pkg-config --static --libs libdpdk`, linking the `.a`
//!      archives; driver archives (bus, mempool, net, ... PMDs) are linked with
//!      `+whole-archive` so that their constructors, which register the drivers, are kept.
//!      `NETML_DPDK_STATIC_DRIVERS` picks which driver archives (comma-separated stems such
//!      as `net_ring,net_pcap`, or `all`); the default is a small software set (see
//!      `DEFAULT_STATIC_DRIVERS`), since linking all of Debian's PMDs needs many more system
//!      libraries (rdma-core providers, isa-l, ipsec-mb, ...).
//!
//! Environment: `PKG_CONFIG` (pkg-config binary), `PKG_CONFIG_PATH` (as usual),
//! `NETML_DPDK_STATIC`, `NETML_DPDK_STATIC_DRIVERS`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Driver archives linked (whole-archive) in static mode unless `NETML_DPDK_STATIC_DRIVERS`
/// says otherwise: the virtual-device bus, PCI bus, ring/stack mempool handlers and the
/// software PMDs netml tests and runs with.
const DEFAULT_STATIC_DRIVERS: &[&str] = &[
    "bus_vdev",
    "bus_pci",
    "mempool_ring",
    "mempool_stack",
    "net_null",
    "net_ring",
    "net_pcap",
    "net_af_packet",
];

/// Functions bindgen generates bindings for (regexes, anchored by bindgen).
const FUNCTIONS: &[&str] = &[
    // EAL, lcores, errors, time
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_process_type",
    "rte_lcore_count",
    "rte_get_main_lcore",
    "rte_socket_id",
    "rte_strerror",
    "rte_get_tsc_hz",
    "rte_thread_register",
    "rte_thread_unregister",
    // memory
    "rte_memseg_walk",
    "rte_memseg_list_walk",
    "rte_memseg_contig_walk",
    "rte_mem_virt2iova",
    // mempools and mbufs
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_lookup",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_free_bulk",
    // rings
    "rte_ring_create",
    "rte_ring_free",
    // ethdev
    "rte_eth_dev_count_avail",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_dev_info_get",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_promiscuous_enable",
    "rte_eth_promiscuous_disable",
    "rte_eth_promiscuous_get",
    "rte_eth_macaddr_get",
    "rte_eth_link_get_nowait",
    "rte_eth_dev_rss_hash_conf_get",
    // net_ring and the vdev bus
    "rte_eth_from_rings",
    "rte_vdev_init",
    "rte_vdev_uninit",
    // telemetry: commands of our own, answered with rte_tel_data dicts and arrays
    "rte_telemetry_register_cmd",
    "rte_tel_data_start_dict",
    "rte_tel_data_start_array",
    "rte_tel_data_string",
    "rte_tel_data_add_dict_string",
    "rte_tel_data_add_dict_int",
    "rte_tel_data_add_dict_u64",
    "rte_tel_data_add_dict_container",
    "rte_tel_data_add_array_string",
    "rte_tel_data_add_array_u64",
    "rte_tel_data_alloc",
    "rte_tel_data_free",
    // packet capture by secondary processes (dpdk-dumpcap, dpdk-pdump)
    "rte_pdump_init",
    "rte_pdump_uninit",
    // the C shim
    "netml_shim_.*",
];

/// Types generated even if no allowlisted function mentions them.
const TYPES: &[&str] = &[
    "rte_mbuf",
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_stats",
    "rte_eth_link",
    "rte_ether_addr",
    "rte_eth_rss_conf",
    "rte_eth_rxconf",
    "rte_eth_txconf",
    "rte_eth_rx_mq_mode",
    "rte_eth_tx_mq_mode",
    "rte_memseg",
    "rte_memseg_list",
    "rte_proc_type_t",
    "rte_iova_t",
    "rte_tel_value_type",
];

/// Object-like macros and variables.
const VARS: &[&str] = &[
    "RTE_MAX_ETHPORTS",
    "RTE_MAX_LCORE",
    "RTE_ETHDEV_QUEUE_STAT_CNTRS",
    "RTE_ETH_NAME_MAX_LEN",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MBUF_DEFAULT_DATAROOM",
    "RTE_MEMPOOL_NAMESIZE",
    "RTE_MEMZONE_NAMESIZE",
    "RTE_ETHER_ADDR_LEN",
    "RING_F_SP_ENQ",
    "RING_F_SC_DEQ",
    "RING_F_EXACT_SZ",
    "SOCKET_ID_ANY",
    "RTE_TEL_MAX_STRING_LEN",
    "RTE_TEL_MAX_DICT_ENTRIES",
    "RTE_TEL_MAX_ARRAY_ENTRIES",
    "netml_shim_.*",
];

/// Opaque types: netml only passes pointers to them (their layouts need not be mirrored).
const OPAQUE: &[&str] = &[
    "rte_mempool",
    "rte_ring",
    "rte_device",
    "rte_fbarray",
    "rte_tel_data",
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let csrc = manifest.join("csrc");
    for f in ["wrapper.h", "shim.h", "shim.c"] {
        println!("cargo:rerun-if-changed={}", csrc.join(f).display());
    }
    for v in [
        "NETML_DPDK_STATIC",
        "NETML_DPDK_STATIC_DRIVERS",
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    let statik = env::var("NETML_DPDK_STATIC").is_ok_and(|v| v == "1" || v == "true");

    // Existence and version check, with pkg-config's own error message on failure.
    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
        .unwrap_or_else(|e| panic!("netml-dpdk-sys needs DPDK >= 22.11 (libdpdk-dev): {e}"));
    println!("cargo:rustc-env=NETML_DPDK_VERSION={}", lib.version);
    println!("cargo:version={}", lib.version);

    let cflags = pkg_config_words(&["--cflags", "libdpdk"]);
    let include_dirs: Vec<&str> = cflags.iter().filter_map(|f| f.strip_prefix("-I")).collect();
    println!("cargo:include={}", include_dirs.join(":"));

    // 1. The shim. cc emits `rustc-link-lib=static=netml_dpdk_shim`, which must precede the
    //    DPDK libraries on the link line, so it is compiled before they are emitted.
    let mut build = cc::Build::new();
    build
        .file(csrc.join("shim.c"))
        .include(&csrc)
        .warnings(true)
        .opt_level(3);
    for flag in &cflags {
        build.flag(flag);
    }
    // DPDK's headers trip a few warnings that are not ours.
    build.flag_if_supported("-Wno-unused-parameter");
    build.compile("netml_dpdk_shim");

    // 2. Bindings.
    let mut builder = bindgen::Builder::default()
        .header(csrc.join("wrapper.h").to_string_lossy())
        .clang_args(cflags.iter())
        .clang_arg(format!("-I{}", csrc.display()))
        .derive_default(true)
        .derive_debug(true)
        .impl_debug(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        .size_t_is_usize(true)
        .generate_comments(true)
        .layout_tests(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    for t in OPAQUE {
        builder = builder.opaque_type(t);
    }
    builder
        .generate()
        .expect("bindgen failed on csrc/wrapper.h")
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");

    // 3. Link lines.
    if statik {
        link_static();
    } else {
        link_dynamic();
    }
}

/// Runs pkg-config and splits its output into words (DPDK's .pc files have no quoting).
fn pkg_config_words(args: &[&str]) -> Vec<String> {
    let pc = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let output = Command::new(&pc)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {pc} {}: {e}", args.join(" ")));
    assert!(
        output.status.success(),
        "{pc} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("pkg-config output is not UTF-8")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Default dynamic linking: every `-l` from `pkg-config --libs libdpdk` (rustc links with
/// `--as-needed`, so only libraries we reference end up in DT_NEEDED), plus the two driver
/// libraries whose functions we call directly.
fn link_dynamic() {
    let words = pkg_config_words(&["--libs", "libdpdk"]);
    let mut search: Vec<String> = Vec::new();
    for w in &words {
        if let Some(dir) = w.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
            search.push(dir.to_string());
        }
    }
    // rte_eth_from_rings lives in the net_ring PMD, rte_vdev_init in the vdev bus driver:
    // neither is in libdpdk.pc's Libs, since drivers are normally loaded as EAL plugins.
    // Linking them is harmless: when the EAL later dlopens the same files from its plugin
    // directory, the dynamic loader recognises them as already loaded.
    for extra in ["rte_net_ring", "rte_bus_vdev"] {
        println!("cargo:rustc-link-lib=dylib={extra}");
    }
    for w in &words {
        if let Some(name) = w.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={name}");
        }
    }
}

/// `NETML_DPDK_STATIC=1`: link DPDK's `.a` archives.
fn link_static() {
    let words = pkg_config_words(&["--static", "--libs", "libdpdk"]);
    let selection = env::var("NETML_DPDK_STATIC_DRIVERS").ok();
    let all_drivers = selection.as_deref() == Some("all");
    let chosen: Vec<String> = match &selection {
        Some(s) if s != "all" => s.split(',').map(|d| d.trim().to_string()).collect(),
        _ => DEFAULT_STATIC_DRIVERS
            .iter()
            .map(|d| d.to_string())
            .collect(),
    };

    let mut search: Vec<PathBuf> = Vec::new();
    for w in &words {
        if let Some(dir) = w.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
            search.push(PathBuf::from(dir));
        }
    }
    let libdir = pkg_config_words(&["--variable=libdir", "libdpdk"])
        .into_iter()
        .next()
        .map(PathBuf::from)
        .expect("libdpdk.pc has no libdir");
    println!("cargo:rustc-link-search=native={}", libdir.display());
    search.push(libdir.clone());
    for d in [
        "/usr/lib/x86_64-linux-gnu",
        "/lib/x86_64-linux-gnu",
        "/usr/lib",
        "/lib",
    ] {
        search.push(PathBuf::from(d));
    }

    let mut drivers = Vec::new();
    let mut core = Vec::new();
    let mut system: Vec<String> = Vec::new();
    let mut whole = false;
    for w in &words {
        match w.as_str() {
            "-Wl,--whole-archive" => whole = true,
            "-Wl,--no-whole-archive" => whole = false,
            "-pthread" => push_unique(&mut system, "pthread"),
            _ => {
                if let Some(archive) = w.strip_prefix("-l:") {
                    // e.g. -l:librte_net_ring.a, inside --whole-archive: a driver.
                    let stem = archive
                        .strip_prefix("librte_")
                        .and_then(|a| a.strip_suffix(".a"))
                        .unwrap_or(archive);
                    if whole && (all_drivers || chosen.iter().any(|c| c == stem)) {
                        push_unique(&mut drivers, &format!("rte_{stem}"));
                    }
                } else if let Some(name) = w.strip_prefix("-lrte_") {
                    push_unique(&mut core, &format!("rte_{name}"));
                } else if let Some(name) = w.strip_prefix("-l") {
                    push_unique(&mut system, name);
                }
            }
        }
    }
    for c in &chosen {
        if !all_drivers && !drivers.iter().any(|d| d == &format!("rte_{c}")) {
            println!("cargo:warning=NETML_DPDK_STATIC_DRIVERS: no driver archive librte_{c}.a in pkg-config --static output");
        }
    }
    // Drivers first (whole archive: their constructors register them), then the core
    // libraries in pkg-config's order (users before the libraries they use), then system
    // libraries dynamically.
    for d in &drivers {
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle={d}");
    }
    for c in core.iter().filter(|c| !drivers.contains(c)) {
        println!("cargo:rustc-link-lib=static:-bundle={c}");
    }
    for s in &system {
        // Toolchain libraries live in the compiler's own directories.
        let toolchain = ["c", "m", "dl", "rt", "pthread", "atomic"].contains(&s.as_str());
        if toolchain || lib_exists(&search, s) {
            println!("cargo:rustc-link-lib=dylib={s}");
        } else if all_drivers {
            println!("cargo:warning=static DPDK: system library -l{s} not found; skipped");
        }
    }
    // As DPDK's own static link line does: a plugin loaded with the EAL's `-d` option can
    // then resolve DPDK's symbols from the executable.
    println!("cargo:rustc-link-arg=-Wl,--export-dynamic");
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// Whether `-l{name}` can be resolved (as a shared or static library) in `dirs`.
fn lib_exists(dirs: &[PathBuf], name: &str) -> bool {
    dirs.iter().any(|d| {
        [format!("lib{name}.so"), format!("lib{name}.a")]
            .iter()
            .any(|f| Path::new(d).join(f).exists())
    })
}
