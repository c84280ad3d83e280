//! `netml gpu-check` on a machine without a GPU: one line with the reason and exit status 3;
//! the library folders run.sh puts on the loader path; and the child-process side refusing an
//! unknown section.

mod common;

use common::netml;

/// Whether this machine has a CUDA driver (then the no-GPU answers do not apply).
fn have_driver() -> bool {
    // SAFETY: only tries to dlopen libcuda's candidate names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

#[test]
fn without_a_driver_the_only_output_is_the_reason() {
    if have_driver() {
        eprintln!("skipped: this machine has a CUDA driver");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = netml()
        .args(["gpu-check", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "gpu-check: no CUDA driver (libcuda.so.1 not found)\n"
    );
}

#[test]
fn library_folders_are_one_line_of_existing_folders() {
    let o = netml()
        .args(["gpu-check", "--print-lib-dirs"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    for d in text.trim_end().split(':').filter(|d| !d.is_empty()) {
        assert!(std::path::Path::new(d).is_dir(), "{d}");
    }
}

#[test]
fn an_unknown_section_is_refused() {
    let o = netml()
        .args(["gpu-check", "--section", "no-such-section"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--section no-such-section: no such section"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
