//! What the benchmarks write beside their text reports: CSV rows appended to a file that
//! several runs share, SVG plots, and the load average they print.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Where a benchmark's `--csv` and `--plot` go, when asked for.
pub(super) struct Files {
    /// The CSV file its rows are appended to.
    pub csv: Option<PathBuf>,
    /// The SVG plot, written anew.
    pub plot: Option<PathBuf>,
}

impl Files {
    /// Appends the CSV rows (`rows()`, under `header`) and writes the plot (`svg()`, and
    /// says where), each only when asked for, so that neither is built for nothing.
    pub(super) fn write(
        &self,
        header: &str,
        rows: impl FnOnce() -> String,
        svg: impl FnOnce() -> String,
    ) -> Result<(), String> {
        if let Some(path) = &self.csv {
            append_csv(path, header, &rows())?;
        }
        if let Some(path) = &self.plot {
            write_file(path, &svg())?;
            println!("plot: {}", path.display());
        }
        Ok(())
    }
}

/// Appends `rows` (whole lines) to the CSV file at `path`, with `header` as its first line
/// when the file is new or empty, so that runs of several modes or machines can share one
/// file. The error names the file.
pub fn append_csv(path: &Path, header: &str, rows: &str) -> Result<(), String> {
    let at = |e: std::io::Error| format!("{}: {e}", path.display());
    let fresh = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(at)?;
    let mut out = String::new();
    if fresh {
        out.push_str(header);
        out.push('\n');
    }
    out.push_str(rows);
    // One write, so that a failure leaves no header without its rows.
    f.write_all(out.as_bytes()).map_err(at)
}

/// Writes `text` (a plot) to `path`; the error names the file.
pub fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Where a second plot goes beside `--plot FILE.svg`: `FILE-<suffix>.svg` (`fallback` is
/// the stem when the path has none).
pub fn beside(plot: &Path, suffix: &str, fallback: &str) -> PathBuf {
    let stem = plot
        .file_stem()
        .map_or_else(|| fallback.into(), |s| s.to_string_lossy().into_owned());
    plot.with_file_name(format!("{stem}-{suffix}.svg"))
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The 1, 5 and 15 minute load averages, or `?` where /proc has none: a report shows them
/// so that a figure taken on a busy machine is seen as such.
pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_once_then_rows_appended_and_fields_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "").unwrap();
        append_csv(&p, "a,b", "1,2\n").unwrap();
        append_csv(&p, "a,b", "3,4\n5,6\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,b\n1,2\n3,4\n5,6\n");
        let err = append_csv(&dir.path().join("no/x.csv"), "a", "").unwrap_err();
        assert!(err.contains("no/x.csv"), "{err}");
        assert_eq!(
            csv_field("2 cores, AMD \"x\""),
            "\"2 cores, AMD \"\"x\"\"\""
        );
        assert_eq!(csv_field("plain"), "plain");
    }
}
