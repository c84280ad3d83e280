//! Latency profiles: batch latency per model, precision and batch size, read from CSV.
//!
//! The columns are found by name in the header line (lines starting with `#` are comments):
//! `model`, `precision`, `batch` and one latency column in ms, `latency_ms`, `ms` or `p50_ms`
//! (`netml bench infer --csv` writes the last). Optional: `gpu_share_pct` (rows for a share
//! of the GPU other than 100 are kept for placement and ignored by [`Profile::points`]), or,
//! without it, `threads` (a CPU profile, `netml bench infer --threads 1,2,...`): each row's
//! share is its threads over the file's largest thread count, whose rows are the whole device.

use std::path::Path;

/// One measured case.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Model name, e.g. `resnet50`.
    pub model: String,
    /// `fp32` or `fp16`.
    pub precision: String,
    /// Batch size.
    pub batch: usize,
    /// Share of the GPU it ran on, percent.
    pub share_pct: u32,
    /// Batch latency, ms.
    pub ms: f64,
}

/// A set of measured cases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// The rows, in file order.
    pub rows: Vec<Row>,
    /// A CPU profile's largest thread count (its whole device); `None` for a GPU profile.
    pub threads: Option<u32>,
}

impl Profile {
    /// Reads a profile file.
    pub fn load(path: &Path) -> Result<Profile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Profile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses profile CSV text.
    pub fn parse(text: &str) -> Result<Profile, String> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let (_, header) = lines.next().ok_or("no header line")?;
        let cols: Vec<&str> = header.split(',').map(str::trim).collect();
        let find = |names: &[&str]| cols.iter().position(|c| names.contains(c));
        let need = |names: &[&str]| {
            find(names).ok_or_else(|| format!("header has no {} column", names.join(" or ")))
        };
        let (model, precision, batch) =
            (need(&["model"])?, need(&["precision"])?, need(&["batch"])?);
        let ms = need(&["latency_ms", "ms", "p50_ms"])?;
        let share = find(&["gpu_share_pct"]);
        let threads = find(&["threads"]).filter(|_| share.is_none());
        let mut rows = Vec::new();
        for (n, line) in lines {
            let fields = split_fields(line);
            let f: Vec<&str> = fields.iter().map(|s| s.trim()).collect();
            let at = |i: usize| {
                f.get(i)
                    .copied()
                    .ok_or_else(|| format!("line {}: too few fields", n + 1))
            };
            let num = |i: usize, what: &str| -> Result<f64, String> {
                at(i)?
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| format!("line {}: bad {what} {:?}", n + 1, f.get(i)))
            };
            let b = num(batch, "batch")?;
            if b < 1.0 || b.fract() != 0.0 {
                return Err(format!("line {}: bad batch {b}", n + 1));
            }
            let t = match threads {
                Some(i) => Some(num(i, "threads")?.max(1.0) as u32),
                None => None,
            };
            rows.push((
                Row {
                    model: at(model)?.to_string(),
                    precision: at(precision)?.to_string(),
                    batch: b as usize,
                    share_pct: match share {
                        Some(i) => num(i, "gpu_share_pct")? as u32,
                        None => 100,
                    },
                    ms: num(ms, "latency")?,
                },
                t,
            ));
        }
        let most = rows.iter().filter_map(|r| r.1).max().unwrap_or(1);
        Ok(Profile {
            rows: rows
                .into_iter()
                .map(|(mut r, t)| {
                    if let Some(t) = t {
                        r.share_pct = (t * 100).div_ceil(most).min(100);
                    }
                    r
                })
                .collect(),
            threads: (threads.is_some()).then_some(most),
        })
    }

    /// `(batch, ns)` points of `model` at `precision` on a whole device, by batch.
    pub fn points(&self, model: &str, precision: &str) -> Vec<(usize, f64)> {
        let mut v: Vec<(usize, f64)> = self
            .rows
            .iter()
            .filter(|r| r.model == model && r.precision == precision && r.share_pct == 100)
            .map(|r| (r.batch, r.ms * 1e6))
            .collect();
        v.sort_by_key(|p| p.0);
        v.dedup_by_key(|p| p.0);
        v
    }

    /// Model names, in first-seen order.
    pub fn models(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !v.contains(&r.model.as_str()) {
                v.push(&r.model);
            }
        }
        v
    }
}

/// The fields of one CSV line; a field in double quotes may hold commas (`""` is a quote).
fn split_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().expect("one field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().expect("one field").push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reference_and_the_bench_layouts() {
        let p = Profile::parse(
            "# comment\nmodel,precision,batch,gpu_share_pct,latency_ms\nalexnet,fp32,1,100,0.43\nalexnet,fp32,8,100,0.52\nalexnet,fp32,8,50,0.9\nvgg19,fp16,1,100,1.16\n",
        )
        .unwrap();
        assert_eq!(
            p.points("alexnet", "fp32"),
            vec![(1, 430_000.0), (8, 520_000.0)]
        );
        assert_eq!(p.models(), vec!["alexnet", "vgg19"]);
        let b = Profile::parse("model,backend,engine,precision,batch,runs,ms_per_batch,images_per_s,p50_ms\nresnet50_small,cpu,tract,fp32,8,200,1.5,5000,1.4\n").unwrap();
        assert_eq!(b.points("resnet50_small", "fp32"), vec![(8, 1_400_000.0)]);
        assert_eq!(b.threads, None);
        // A CPU profile at 1 and 2 threads: 2 is the whole device, 1 half of it.
        let c = Profile::parse(
            "model,precision,batch,threads,p50_ms\nm,fp32,8,1,4.0\nm,fp32,8,2,2.2\n",
        )
        .unwrap();
        assert_eq!(c.threads, Some(2));
        assert_eq!(c.points("m", "fp32"), vec![(8, 2_200_000.0)]);
        assert_eq!(c.rows[0].share_pct, 50);
        // What `netml bench infer --csv` writes: the engine field quoted, with a comma.
        let q = Profile::parse(
            "model,engine,precision,batch,threads,p50_ms\nm,\"ort (1.31, 2 threads)\",fp32,8,2,2.5\n",
        )
        .unwrap();
        assert_eq!(q.points("m", "fp32"), vec![(8, 2_500_000.0)]);
    }

    #[test]
    fn bad_files_name_the_line() {
        assert!(Profile::parse("").unwrap_err().contains("header"));
        assert!(Profile::parse("model,batch,ms\n")
            .unwrap_err()
            .contains("precision"));
        let e = Profile::parse("model,precision,batch,ms\na,fp32,x,1\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("batch"), "{e}");
        let e = Profile::parse("model,precision,batch,ms\na,fp32,1\n").unwrap_err();
        assert!(e.contains("too few"), "{e}");
        assert!(Profile::parse("model,precision,batch,ms\na,fp32,0,1\n").is_err());
        assert!(Profile::parse("model,precision,batch,ms\na,fp32,1,-1\n").is_err());
    }
}
