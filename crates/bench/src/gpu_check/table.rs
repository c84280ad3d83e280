//! The result table of `netml gpu-check`: one line per row as it comes, a text table at the
//! end, and the same as CSV and markdown in the output directory.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::Row;
use crate::output::csv_field;

fn result(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "ok",
        Some(false) => "FAILED",
        None => "-",
    }
}

/// One line as a section finishes a check.
pub fn print_row(r: &Row) {
    let limit = if r.limit == "-" || r.limit.is_empty() {
        String::new()
    } else {
        format!(" (limit: {})", r.limit)
    };
    println!(
        "gpu-check: [{}] {}: {} {}{}",
        r.section,
        r.check,
        result(r.ok),
        r.figure,
        limit
    );
}

/// The final table, columns padded to their widest cell.
pub fn text(rows: &[Row]) -> String {
    let head = ["section", "check", "result", "figure", "limit"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.section.clone(),
                r.check.clone(),
                result(r.ok).to_string(),
                r.figure.clone(),
                r.limit.clone(),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, c: &[String; 5]| {
        let parts: Vec<String> = c
            .iter()
            .zip(width)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, &head.map(String::from));
    line(&mut out, &width.map(|w| "-".repeat(w)));
    for c in &cells {
        line(&mut out, c);
    }
    out
}

/// CSV with a header line.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from("section,check,result,figure,limit\n");
    for r in rows {
        let f = [&r.section, &r.check, result(r.ok), &r.figure, &r.limit];
        let f: Vec<String> = f.iter().map(|s| csv_field(s)).collect();
        let _ = writeln!(out, "{}", f.join(","));
    }
    out
}

/// A markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out =
        String::from("| section | check | result | figure | limit |\n|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&r.section),
            cell(&r.check),
            result(r.ok),
            cell(&r.figure),
            cell(&r.limit)
        );
    }
    out
}

/// `gpu-check.csv` and `gpu-check.md` in the output directory, written section by section:
/// a run cut short (the command's time limit, a hang) still leaves every finished section.
pub struct Writer {
    dir: PathBuf,
}

impl Writer {
    /// Creates both files with their headers (replacing earlier ones).
    pub fn create(dir: &Path) -> std::io::Result<Writer> {
        std::fs::write(dir.join("gpu-check.csv"), csv(&[]))?;
        std::fs::write(dir.join("gpu-check.md"), markdown(&[]))?;
        Ok(Writer { dir: dir.into() })
    }

    /// Appends `rows` to both files.
    pub fn append(&self, rows: &[Row]) -> std::io::Result<()> {
        // `create` wrote the headers: one CSV line, two markdown lines.
        let (csv, md) = (csv(rows), markdown(rows));
        for (file, text) in [
            ("gpu-check.csv", after_lines(&csv, 1)),
            ("gpu-check.md", after_lines(&md, 2)),
        ] {
            let mut f = OpenOptions::new().append(true).open(self.dir.join(file))?;
            f.write_all(text.as_bytes())?;
        }
        Ok(())
    }
}

/// `s` after its first `n` lines.
fn after_lines(s: &str, n: usize) -> &str {
    s.splitn(n + 1, '\n').nth(n).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row::check("nvrtc", "compile", true, "12.3 ms".into(), "-"),
            Row::figure(
                "copy",
                "pinned H2D",
                "54.1 GB/s".into(),
                "55 GB/s, a, \"b\"",
            ),
            Row::failed("green", "create", "CUDA_ERROR_NOT_SUPPORTED | x"),
        ]
    }

    #[test]
    fn csv_quotes_fields_with_commas_and_quotes() {
        let c = csv(&rows());
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines[0], "section,check,result,figure,limit");
        assert_eq!(lines[1], "nvrtc,compile,ok,12.3 ms,-");
        assert_eq!(
            lines[2],
            "copy,pinned H2D,-,54.1 GB/s,\"55 GB/s, a, \"\"b\"\"\""
        );
        assert_eq!(
            lines[3],
            "green,create,FAILED,CUDA_ERROR_NOT_SUPPORTED | x,-"
        );
    }

    #[test]
    fn writer_appends_section_by_section_to_the_whole_table() {
        let dir = tempfile::tempdir().unwrap();
        let all = rows();
        let w = Writer::create(dir.path()).unwrap();
        w.append(&all[..1]).unwrap();
        // What a cut run leaves: the header and the first section.
        let csv_part = std::fs::read_to_string(dir.path().join("gpu-check.csv")).unwrap();
        assert_eq!(csv_part, csv(&all[..1]));
        w.append(&all[1..]).unwrap();
        w.append(&[]).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("gpu-check.csv"), csv(&all));
        assert_eq!(read("gpu-check.md"), markdown(&all));
    }

    #[test]
    fn markdown_escapes_pipes_and_text_aligns_columns() {
        let m = markdown(&rows());
        assert!(m.contains("| green | create | FAILED | CUDA_ERROR_NOT_SUPPORTED \\| x | - |"));
        let t = text(&rows());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5);
        let col = lines[0].find("result").unwrap();
        assert_eq!(&lines[2][col..col + 2], "ok");
        assert_eq!(&lines[4][col..col + 6], "FAILED");
    }
}
