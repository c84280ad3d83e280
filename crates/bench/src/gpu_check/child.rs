//! One process per GPU section. A GPU run can hang in ways no code of ours can interrupt (a
//! kernel that never stops, after which `cuMemFree`, `cuModuleUnload` or `cudnnDestroy` wait
//! on the device forever), and the device tool kills the whole command at its limit, taking
//! every later section with it. So the parent runs each section as `netml gpu-check --section
//! NAME` with a time limit, kills it when the limit passes (process exit ends its context and
//! its kernels) and goes on with the next section; the child appends every row to a file as
//! it is known, so the rows before a hang survive it. A child that sees an ingest leak its
//! GPU memory ([`Rows::exit_if_leaked`]) reports it and exits at once, without the frees that
//! would hang.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use netml_gpu::cuda::{self, ingest::leaked_kernels};
use serde_json::{json, Value};

use super::{guarded, table, Args, Env, Row, SECTIONS};

/// A child's exit status after it reported a leak ([`Rows::exit_if_leaked`]).
const LEAKED_EXIT: i32 = 4;

/// Where a section's rows go as they come: printed, kept, and in a child appended to the
/// rows file the parent reads.
pub struct Rows {
    section: &'static str,
    file: Option<File>,
    rows: Vec<Row>,
}

impl Rows {
    /// Rows that are only printed and kept (the parent's own sections, the dry run).
    pub fn printed(section: &'static str) -> Rows {
        Rows {
            section,
            file: None,
            rows: Vec::new(),
        }
    }

    /// Prints `r`, appends it to the rows file (if any) and keeps it.
    pub fn push(&mut self, r: Row) {
        table::print_row(&r);
        if let Some(f) = &mut self.file {
            let line = json!([r.section, r.check, r.ok, r.figure, r.limit]).to_string();
            // A failed write loses this row in the parent's table; it was printed above.
            let _ = writeln!(f, "{line}").and_then(|()| f.flush());
        }
        self.rows.push(r);
    }

    /// Every row pushed so far.
    pub fn into_rows(self) -> Vec<Row> {
        self.rows
    }

    /// After an ingest was dropped: if any ingest of this process leaked GPU memory (its
    /// kernel did not stop), report it and end the process now. Everything still owned would
    /// be freed on the way out, and freeing waits on the device, which never finishes.
    pub fn exit_if_leaked(&mut self) {
        let n = leaked_kernels();
        if n == 0 {
            return;
        }
        self.push(Row::failed(
            self.section,
            "a GPU kernel did not stop",
            format!(
                "{n} ingest(s) leaked their memory (stuck kernel); the section ends here and \
                 its process exits without freeing anything (the rest would wait forever)"
            ),
        ));
        std::process::exit(LEAKED_EXIT);
    }
}

/// Parses one line of a rows file.
fn parse_row(line: &str) -> Option<Row> {
    let v: Value = serde_json::from_str(line).ok()?;
    let s = |i: usize| v.get(i)?.as_str().map(String::from);
    Some(Row {
        section: s(0)?,
        check: s(1)?,
        ok: v.get(2)?.as_bool(),
        figure: s(3)?,
        limit: s(4)?,
    })
}

/// The rows a child wrote (complete lines only: a killed child may leave half a line).
fn read_rows(path: &Path) -> Vec<Row> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter_map(parse_row).collect())
        .unwrap_or_default()
}

/// The child side: one section on a context of its own, rows appended to `--rows`.
pub fn run_one(a: &Args, name: &str) -> Result<ExitCode, String> {
    let &(section_name, section, _) = SECTIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| format!("--section {name}: no such section"))?;
    let file = match &a.rows {
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("{}: {e}", p.display()))?,
        ),
        None => None,
    };
    let mut rows = Rows {
        section: section_name,
        file,
        rows: Vec::new(),
    };
    let gpu = cuda::discover()
        .map_err(|e| e.to_string())?
        .get(a.gpu)
        .cloned()
        .ok_or_else(|| format!("no GPU {}", a.gpu))?;
    match cuda::context(gpu.ordinal) {
        Ok(ctx) => {
            let env = Env {
                ctx: &ctx,
                gpu: &gpu,
                out: &a.out,
                full: a.full,
            };
            guarded(name, &mut rows, |r| section(&env, r));
        }
        Err(e) => rows.push(Row::failed(name, "context", e)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The parent side: runs section `name` in a child for at most `cap` seconds, or what is left
/// of the budget (`left`, less a reserve for the table), and returns its rows plus one with
/// its elapsed time (or why it was cut).
pub fn run_section(a: &Args, name: &str, cap: f64, left: f64) -> Vec<Row> {
    let limit = cap.min(left - 10.0);
    if limit < 5.0 {
        let r = Row::failed(
            name,
            "section",
            format!("skipped: {left:.0} s of the {:.0} s budget left", a.budget),
        );
        table::print_row(&r);
        return vec![r];
    }
    let rows_file = a.out.join(format!(".rows-{name}.jsonl"));
    let _ = std::fs::remove_file(&rows_file);
    println!("gpu-check: section {name} (own process, limit {limit:.0} s)");
    let t = Instant::now();
    let status = spawn_and_wait(a, name, &rows_file, Duration::from_secs_f64(limit));
    let secs = t.elapsed().as_secs_f64();
    let mut rows = read_rows(&rows_file);
    let _ = std::fs::remove_file(&rows_file);
    let end = match status {
        Ok(Some(0)) => Row::figure(
            name,
            "elapsed",
            format!("{secs:.1} s"),
            &format!("limit {limit:.0} s"),
        ),
        Ok(Some(LEAKED_EXIT)) => Row::failed(
            name,
            "elapsed",
            format!("{secs:.1} s; ended early: a GPU kernel did not stop"),
        ),
        Ok(Some(code)) => Row::failed(
            name,
            "elapsed",
            format!("{secs:.1} s; exited with status {code}"),
        ),
        Ok(None) => Row::failed(
            name,
            "elapsed",
            format!(
                "killed after {secs:.1} s (limit {limit:.0} s): hung or too slow; its rows so far \
                 are above"
            ),
        ),
        Err(e) => Row::failed(name, "elapsed", e),
    };
    table::print_row(&end);
    rows.push(end);
    rows
}

/// Spawns `netml gpu-check --section name` and waits up to `limit`; `Ok(None)`: killed.
fn spawn_and_wait(
    a: &Args,
    name: &str,
    rows_file: &PathBuf,
    limit: Duration,
) -> Result<Option<i32>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("gpu-check")
        .arg("--out")
        .arg(&a.out)
        .arg("--gpu")
        .arg(a.gpu.to_string())
        .arg("--section")
        .arg(name)
        .arg("--rows")
        .arg(rows_file);
    if a.full {
        cmd.arg("--full");
    }
    wait_limited(cmd, limit)
}

/// Runs `cmd` for at most `limit`: its exit code (-1 for a signal), or `Ok(None)` when it was
/// killed at the limit.
fn wait_limited(mut cmd: Command, limit: Duration) -> Result<Option<i32>, String> {
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("spawning the section: {e}"))?;
    let t = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(Some(st.code().unwrap_or(-1))),
            Ok(None) if t.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for the section: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_past_its_limit_is_killed_and_exit_codes_come_through() {
        let mut sleeper = Command::new("sleep");
        sleeper.arg("600");
        assert_eq!(wait_limited(sleeper, Duration::from_millis(100)), Ok(None));
        let mut leaked = Command::new("sh");
        leaked.args(["-c", "exit 4"]);
        assert_eq!(
            wait_limited(leaked, Duration::from_secs(600)),
            Ok(Some(LEAKED_EXIT))
        );
        let missing = Command::new("/nonexistent/netml");
        assert!(wait_limited(missing, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn rows_survive_the_file_round_trip_and_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let file = File::create(&path).unwrap();
        let mut rows = Rows {
            section: "ingest",
            file: Some(file),
            rows: Vec::new(),
        };
        let sent = vec![
            Row::check(
                "ingest",
                "a, \"quoted\" check",
                true,
                "1.0 GB/s".into(),
                "-",
            ),
            Row::figure(
                "ingest",
                "latency",
                "p50 5 us\nsecond line".into(),
                "<= 10 us",
            ),
            Row::failed("ingest", "self-check", "CUDA_ERROR_LAUNCH_FAILED | x"),
        ];
        for r in &sent {
            rows.push(r.clone());
        }
        // A child killed in the middle of a write leaves a partial last line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"[\"ingest\",\"cut")
            .unwrap();
        assert_eq!(read_rows(&path), sent);
        assert_eq!(rows.into_rows(), sent);
        assert!(read_rows(&dir.path().join("missing")).is_empty());
    }
}
