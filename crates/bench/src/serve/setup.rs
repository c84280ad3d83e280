//! What `bench serve` needs before it starts: the models (written by the seed model script
//! when missing) and the batching policies.

use super::Args;
use std::path::{Path, PathBuf};

/// Splits `slab,fixed:1,max_delay:8,5000` into policies: a bare number continues the
/// `max_delay:N` before it (its delay).
pub(super) fn policies(s: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match out.last_mut() {
            Some(last)
                if part.parse::<u64>().is_ok()
                    && last.starts_with("max_delay:")
                    && !last.contains(',') =>
            {
                last.push(',');
                last.push_str(part);
            }
            _ => out.push(part.to_string()),
        }
    }
    for p in &out {
        p.parse::<netml_serve::Policy>()
            .map_err(|e| format!("--policies: {p}: {e}"))?;
    }
    if out.is_empty() {
        return Err("--policies: none given".into());
    }
    Ok(out)
}

/// The models directory: `--models`, else `netml-infer-models/small` in the target directory
/// (`$CARGO_TARGET_DIR`, `./target` or the one this binary was built in, the first that
/// exists), where the seed models are written when a model is missing.
pub(super) fn models_dir(a: &Args) -> Result<PathBuf, String> {
    let dir = a.models_dir.clone().unwrap_or_else(|| {
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from("target"), built.clone()])
            .find(|t| t.is_dir())
            .unwrap_or(built)
            .join("netml-infer-models/small")
    });
    let missing: Vec<&str> = a
        .functions
        .iter()
        .filter(|f| !dir.join(format!("{f}.onnx")).is_file())
        .map(|f| f.strip_suffix("_small").unwrap_or(f))
        .collect();
    if missing.is_empty() {
        return Ok(dir);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/models/export.py");
    eprintln!(
        "writing the seed models {missing:?} into {} (python3 scripts/models/export.py --small)",
        dir.display()
    );
    let ok = std::process::Command::new("python3")
        .arg(&script)
        .arg("--small")
        .arg(&dir)
        .args(&missing)
        .status()
        .is_ok_and(|s| s.success());
    match a
        .functions
        .iter()
        .find(|f| !dir.join(format!("{f}.onnx")).is_file())
    {
        Some(f) => Err(format!(
            "{}: no {f}.onnx{}; write it with `python3 scripts/models/export.py --small {} {}`",
            dir.display(),
            if ok { "" } else { " (export.py failed)" },
            dir.display(),
            missing.join(" ")
        )),
        None => Ok(dir),
    }
}

#[cfg(test)]
mod tests {
    use super::policies;

    #[test]
    fn policies_keep_the_delay_of_max_delay() {
        assert_eq!(
            policies("slab,fixed:1,fixed:8,max_delay:8,5000").unwrap(),
            ["slab", "fixed:1", "fixed:8", "max_delay:8,5000"]
        );
        assert!(policies("slab,bogus").is_err());
        assert!(policies("").is_err());
    }
}
