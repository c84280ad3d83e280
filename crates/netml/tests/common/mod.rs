//! What the netml binary's integration tests share: running the binary, reading the CSV
//! files it writes, and exporting the small seed models they run on.

// Each test file compiles its own copy and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A command for the netml binary under test.
pub fn netml() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netml"))
}

/// Runs `cmd` and returns its stdout; fails the test, showing stdout and stderr, when it
/// does not exit 0.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out: Output = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A CSV file as the benchmarks write it: a header line, then rows split at every comma
/// (a quoted field with a comma in it, such as bench infer's machine, is split too: read
/// the columns before it).
pub struct Table<'a> {
    /// The column names.
    pub header: Vec<&'a str>,
    /// The rows after the header, in file order.
    pub rows: Vec<Vec<&'a str>>,
}

impl<'a> Table<'a> {
    /// Splits `text` into the header and the rows.
    pub fn parse(text: &'a str) -> Table<'a> {
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().expect("a header line").split(',').collect();
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        Table { header, rows }
    }

    /// Fails the test where a row's length differs from the header's (a file with no
    /// quoted fields).
    pub fn assert_rectangular(&self) {
        for r in &self.rows {
            assert_eq!(r.len(), self.header.len(), "{r:?}");
        }
    }

    /// The index of column `name`; fails the test where there is none.
    pub fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    /// Column `name` of `row`.
    pub fn get(&self, row: &[&'a str], name: &str) -> &'a str {
        row[self.col(name)]
    }

    /// Column `name` of `row` as a number; fails the test where it is not one.
    pub fn num(&self, row: &[&'a str], name: &str) -> f64 {
        let v = self.get(row, name);
        v.parse()
            .unwrap_or_else(|_| panic!("{name} = {v:?} is not a number in {row:?}"))
    }
}

/// Fails the test unless `text` is an SVG document.
pub fn assert_svg(text: &str) {
    assert!(
        text.starts_with("<svg") || text.starts_with("<?xml"),
        "{}",
        &text[..80.min(text.len())]
    );
}

/// The small variant of seed model `name` in `dir` (`None`: skipped; see
/// [`netml_infer::fixtures::small_model`]).
pub fn small_model(dir: &Path, name: &str) -> Option<PathBuf> {
    netml_infer::fixtures::small_model(dir, name)
}
