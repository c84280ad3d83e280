//! What checks of the executors run on, shared by this crate's tests and `netml gpu-check`:
//! the names of the seed models (`scripts/models/export.py`) and seeded random inputs that
//! are the same on every machine (no `rand` dependency).

/// The seed models `scripts/models/export.py` writes, in its order; the small variant of
/// model `m` is `{m}_small.onnx`, the full-size one `{m}.onnx`.
pub const SEED_MODELS: [&str; 6] = [
    "alexnet",
    "mobilenet_v2",
    "resnet50",
    "vgg19",
    "resnext50",
    "densenet121",
];

/// A seeded splitmix64 generator: the same sequence for a seed everywhere.
pub struct Rng(u64);

impl Rng {
    /// The generator for `seed` (mixed, so that nearby seeds give unrelated sequences).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) ^ 0xD1B54A32D192ED03)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }

    /// `n` standard normal values: an input batch for a check.
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
}

/// Writes the small variant of seed model `name` (`scripts/models/export.py --small`) into
/// `dir` and returns its path; `None` (the caller's test is skipped, with a line saying why)
/// when python3 or its onnx package is missing, unless NETML_REQUIRE_MODELS is set (CI),
/// where that is a failure.
pub fn small_model(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/models/export.py"))
        .arg("--small")
        .arg(dir)
        .arg(name)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(dir.join(format!("{name}_small.onnx"))),
        other => {
            let why = format!("{other:?}");
            assert!(
                std::env::var_os("NETML_REQUIRE_MODELS").is_none(),
                "cannot export models: {why}"
            );
            eprintln!("SKIPPED: cannot export models (pip install -r scripts/models/requirements.txt): {why}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_repeat_per_seed_and_look_standard_normal() {
        assert_eq!(Rng::new(7).normals(16), Rng::new(7).normals(16));
        assert_ne!(Rng::new(7).normals(16), Rng::new(8).normals(16));
        let v = Rng::new(1).normals(20_000);
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        let u = Rng::new(2).uniform();
        assert!((0.0..1.0).contains(&u));
    }
}
