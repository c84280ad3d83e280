//! `--function NAME[,key=value...]` of `netml place`, and the demands of one rate level.

use netml_serve::place::Demand;
use netml_serve::{Profile, ShareCurve};

/// Default latency objective, ms (as `netml simulate`).
const SLO_MS: f64 = 50.0;

/// One `--function` as given.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FunctionArg {
    /// The profile's model name.
    pub name: String,
    /// Model id in the fragment header.
    pub model: u8,
    /// Its own images/s (`None`: the level's).
    pub rate: Option<f64>,
    pub slo_ms: f64,
    pub precision: String,
}

impl FunctionArg {
    /// Parses `NAME[,key=value...]`, keys `rate`, `slo_ms`, `precision`, `model`; `index`
    /// is its place in the list (the default model id is `index + 1`).
    fn parse(arg: &str, index: usize) -> Result<FunctionArg, String> {
        let bad = |why: String| format!("--function {arg:?}: {why}");
        let mut parts = arg.split(',').map(str::trim);
        let name = parts
            .next()
            .filter(|n| !n.is_empty() && !n.contains('='))
            .ok_or_else(|| bad("starts with the model name".into()))?;
        let mut f = FunctionArg {
            name: name.to_string(),
            model: u8::try_from(index + 1).map_err(|_| bad("more than 255 functions".into()))?,
            rate: None,
            slo_ms: SLO_MS,
            precision: "fp32".into(),
        };
        for kv in parts {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("{kv:?} is not key=value")))?;
            let positive = || {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| bad(format!("{k}={v}: not a positive number")))
            };
            match k {
                "rate" => f.rate = Some(positive()?),
                "slo_ms" => f.slo_ms = positive()?,
                "precision" => f.precision = v.to_string(),
                "model" => {
                    f.model = v
                        .parse()
                        .map_err(|_| bad(format!("model={v}: not 0..=255")))?
                }
                _ => return Err(bad(format!("unknown key {k:?}"))),
            }
        }
        Ok(f)
    }
}

/// The `--function`s, or every model of the profile; model ids must differ.
pub(super) fn args(given: &[String], profile: &Profile) -> Result<Vec<FunctionArg>, String> {
    let named: Vec<String> = if given.is_empty() {
        profile.models().into_iter().map(String::from).collect()
    } else {
        given.to_vec()
    };
    let fs: Vec<FunctionArg> = named
        .iter()
        .enumerate()
        .map(|(i, a)| FunctionArg::parse(a, i))
        .collect::<Result<_, _>>()?;
    for (i, f) in fs.iter().enumerate() {
        if fs[..i].iter().any(|g| g.model == f.model) {
            return Err(format!("two functions have model id {}", f.model));
        }
    }
    if fs.is_empty() {
        return Err("no functions: the profile has no models".into());
    }
    Ok(fs)
}

/// The models to place at a level of `rate` images/s (for those without their own).
pub(super) fn demands(
    fs: &[FunctionArg],
    profile: &Profile,
    rate: f64,
) -> Result<Vec<Demand>, String> {
    fs.iter()
        .map(|f| {
            let curve =
                ShareCurve::from_profile(profile, &f.name, &f.precision).ok_or_else(|| {
                    format!(
                        "the profile has no {} rows for {:?} (its models: {})",
                        f.precision,
                        f.name,
                        profile.models().join(", ")
                    )
                })?;
            Ok(Demand {
                name: f.name.clone(),
                rate: f.rate.unwrap_or(rate),
                slo_ns: (f.slo_ms * 1e6) as u64,
                curve,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_arguments_parse_with_defaults() {
        let p = Profile::parse("model,precision,batch,ms\nm,fp32,1,1\nn,fp32,1,2\n").unwrap();
        let fs = args(&["m,rate=500,slo_ms=20".into(), "n".into()], &p).unwrap();
        assert_eq!(
            (fs[0].model, fs[0].rate, fs[0].slo_ms),
            (1, Some(500.0), 20.0)
        );
        assert_eq!((fs[1].model, fs[1].rate, fs[1].slo_ms), (2, None, 50.0));
        let d = demands(&fs, &p, 100.0).unwrap();
        assert_eq!(
            (d[0].rate, d[1].rate, d[0].slo_ns),
            (500.0, 100.0, 20_000_000)
        );
        assert_eq!(args(&[], &p).unwrap().len(), 2);
        for bad in ["", "rate=1", "m,rate=0", "m,k=1", "m,model=300"] {
            assert!(args(&[bad.into()], &p).is_err(), "{bad}");
        }
        assert!(args(&["m,model=2".into(), "n".into()], &p).is_err());
        assert!(demands(&args(&["x".into()], &p).unwrap(), &p, 1.0).is_err());
    }
}
