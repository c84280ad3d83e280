//! Latency objectives per model (`recv --slo-ms`), against which the report measures SLO
//! attainment.

use crate::{bail, Result};
use std::collections::BTreeMap;

/// SLOs in milliseconds: one per model, and one for every other model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slo {
    /// The SLO of models without their own.
    pub default_ms: Option<f64>,
    /// SLO per model id.
    pub per_model: BTreeMap<u8, f64>,
}

impl Slo {
    /// Parses `--slo-ms` values: `MS` (every model) or `MODEL=MS`, each model at most once
    /// and `MS` at most once.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Slo> {
        let mut slo = Slo::default();
        for v in values {
            let v = v.as_ref().trim();
            let ms = |s: &str| -> Result<f64> {
                match s.trim().parse::<f64>() {
                    Ok(ms) if ms.is_finite() && ms > 0.0 => Ok(ms),
                    _ => bail!("--slo-ms {v:?}: expected a positive number of milliseconds"),
                }
            };
            match v.split_once('=') {
                Some((model, rest)) => {
                    let Ok(model) = model.trim().parse::<u8>() else {
                        bail!("--slo-ms {v:?}: model id {model:?} is not 0..=255");
                    };
                    if slo.per_model.insert(model, ms(rest)?).is_some() {
                        bail!("--slo-ms: model {model} given twice");
                    }
                }
                None => {
                    if slo.default_ms.replace(ms(v)?).is_some() {
                        bail!("--slo-ms: more than one SLO for every model ({v:?})");
                    }
                }
            }
        }
        Ok(slo)
    }

    /// The SLO of `model` in ms, if it has one.
    pub fn for_model(&self, model: u8) -> Option<f64> {
        self.per_model.get(&model).copied().or(self.default_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_per_model() {
        let s = Slo::parse(&["50", "3=20", " 4 = 7.5 "]).unwrap();
        assert_eq!(
            (s.for_model(3), s.for_model(4), s.for_model(9)),
            (Some(20.0), Some(7.5), Some(50.0))
        );
        assert_eq!(Slo::parse::<&str>(&[]).unwrap().for_model(0), None);
        assert_eq!(Slo::parse(&["1=5"]).unwrap().for_model(2), None);
    }

    #[test]
    fn errors() {
        let e = |v: &[&str]| Slo::parse(v).unwrap_err().0;
        assert_eq!(e(&["3=5", "3=6"]), "--slo-ms: model 3 given twice");
        assert!(e(&["5", "6"]).contains("more than one SLO"));
        assert!(e(&["300=5"]).contains("not 0..=255"));
        assert!(e(&["0"]).contains("positive number"));
        assert!(e(&["1=x"]).contains("positive number"));
        assert!(e(&["inf"]).contains("positive number"));
    }
}
