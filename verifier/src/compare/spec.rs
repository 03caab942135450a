//! The `compare:` section: the baseline (and optionally the candidate) of a paired run, the
//! change the gate allows per statistic, and the judge's settings.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use crate::scenario::FieldError;
use crate::scenario::locate::Seg;

/// A paired comparison: every journey goes to the baseline or the candidate by a seeded,
/// balanced assignment, so both see the same load at the same instants on the same machine.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareSpec {
    /// What runs in production (side A).
    pub baseline: SideSpec,
    /// The release under test (side B). By default the scenario's own target (or `--target`),
    /// or the service its `testcontainers` environment starts.
    #[serde(default)]
    pub candidate: Option<SideSpec>,
    /// The change each statistic may show on every endpoint, e.g. `{p50: +5%, p99: +10%,
    /// error_rate: +0.5pp}`. Latency and throughput changes are percentages of the baseline,
    /// `error_rate` in percentage points. Default: p50 +5 %, p99 +10 %, error_rate +0.5pp.
    #[serde(default)]
    pub allow: BTreeMap<Statistic, Change>,
    /// Per endpoint (step name): statistics allowed differently from `allow`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, BTreeMap<Statistic, Change>>,
    /// Confidence of each interval, e.g. 0.95: a regression is called only when the whole
    /// interval lies beyond the allowed change.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Seed of the journey assignment and of the judge's resampling: the same seed, the same
    /// split.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Arrivals per balanced block: each block sends exactly half its journeys to each side,
    /// in random order.
    #[serde(default = "default_block")]
    pub block: u32,
    /// Bootstrap resamples per endpoint.
    #[serde(default = "default_resamples")]
    pub resamples: u32,
    /// The `report.json` of an A/A run of this scenario (the same build on both sides): its noise
    /// floor is compared with `allow` before the run starts.
    #[serde(default)]
    pub calibration: Option<String>,
}

fn default_confidence() -> f64 {
    0.95
}
fn default_seed() -> u64 {
    1
}
fn default_block() -> u32 {
    8
}
fn default_resamples() -> u32 {
    1000
}

/// One side of the comparison.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SideSpec {
    /// The side's base URL, e.g. `http://127.0.0.1:8081`.
    #[serde(default)]
    pub target: Option<String>,
    /// With a `testcontainers` environment: this side's service, started beside the candidate
    /// against the same dependencies, with the candidate's environment plus `env`.
    #[serde(default)]
    pub service: Option<SideService>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SideService {
    /// Program and arguments, e.g. `[target/compare/3f2a1c0/service]`.
    pub command: Vec<String>,
    /// Variables added to (or replacing) the candidate service's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// A statistic the judge compares per endpoint.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    JsonSchema,
    serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    P50,
    P90,
    P95,
    P99,
    Mean,
    ErrorRate,
    Throughput,
}

impl Statistic {
    pub const ALL: [Statistic; 7] = [
        Statistic::P50,
        Statistic::P90,
        Statistic::P95,
        Statistic::P99,
        Statistic::Mean,
        Statistic::ErrorRate,
        Statistic::Throughput,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Statistic::P50 => "p50",
            Statistic::P90 => "p90",
            Statistic::P95 => "p95",
            Statistic::P99 => "p99",
            Statistic::Mean => "mean",
            Statistic::ErrorRate => "error_rate",
            Statistic::Throughput => "throughput",
        }
    }

    /// The latency quantile, for the percentiles.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Statistic::P50 => Some(0.5),
            Statistic::P90 => Some(0.9),
            Statistic::P95 => Some(0.95),
            Statistic::P99 => Some(0.99),
            _ => None,
        }
    }

    /// Whether a larger value is worse (latency, errors) or better (throughput).
    pub fn higher_is_worse(self) -> bool {
        self != Statistic::Throughput
    }

    /// Error rates change by percentage points; everything else by a ratio.
    pub fn in_points(self) -> bool {
        self == Statistic::ErrorRate
    }
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An allowed change: `+5%` (of the baseline) or `+0.5pp` (percentage points, for rates).
#[derive(Debug, Clone, Copy, PartialEq, JsonSchema)]
#[schemars(with = "String")]
pub struct Change {
    /// The change as a fraction: +5% → 0.05, +0.5pp → 0.005.
    pub value: f64,
    pub points: bool,
}

impl Change {
    pub fn parse(s: &str) -> Result<Change, String> {
        let t = s.trim();
        let (num, points) = if let Some(n) = t.strip_suffix("pp") {
            (n, true)
        } else if let Some(n) = t.strip_suffix('%') {
            (n, false)
        } else {
            return Err(format!(
                "`{s}` is not a change: write a percentage such as `+5%` (of the baseline), or \
                 percentage points such as `+0.5pp` for error_rate"
            ));
        };
        let v: f64 = num.trim().parse().map_err(|_| {
            format!("`{s}` is not a change: the number before `%`/`pp` does not parse")
        })?;
        if !v.is_finite() || !(-100.0..=1000.0).contains(&v) {
            return Err(format!(
                "`{s}` is out of range: a change lies between -100% and +1000%"
            ));
        }
        Ok(Change {
            value: v / 100.0,
            points,
        })
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value * 100.0;
        let unit = if self.points { "pp" } else { "%" };
        if v >= 0.0 {
            write!(f, "+{}{unit}", trim(v))
        } else {
            write!(f, "{}{unit}", trim(v))
        }
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(f64),
        }
        match Raw::deserialize(d)? {
            Raw::S(s) => Change::parse(&s).map_err(serde::de::Error::custom),
            Raw::N(n) => Err(serde::de::Error::custom(format!(
                "`{n}` has no unit: write `+{n}%` (of the baseline) or `+{n}pp` (for error_rate)"
            ))),
        }
    }
}

/// The allowed changes when a section declares none.
pub fn default_allow() -> BTreeMap<Statistic, Change> {
    BTreeMap::from([
        (
            Statistic::P50,
            Change {
                value: 0.05,
                points: false,
            },
        ),
        (
            Statistic::P99,
            Change {
                value: 0.10,
                points: false,
            },
        ),
        (
            Statistic::ErrorRate,
            Change {
                value: 0.005,
                points: true,
            },
        ),
    ])
}

impl CompareSpec {
    /// The section for `--baseline-target URL` alone: default allowances and settings.
    pub fn for_baseline(url: &str) -> CompareSpec {
        CompareSpec {
            baseline: SideSpec {
                target: Some(url.to_owned()),
                service: None,
            },
            candidate: None,
            allow: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            confidence: default_confidence(),
            seed: default_seed(),
            block: default_block(),
            resamples: default_resamples(),
            calibration: None,
        }
    }

    /// What each endpoint is judged on: `allow` (or the defaults), overridden per endpoint.
    pub fn allowances(&self, endpoints: &[String]) -> Vec<(String, Statistic, Change)> {
        let base = if self.allow.is_empty() {
            default_allow()
        } else {
            self.allow.clone()
        };
        let mut out = Vec::new();
        for e in endpoints {
            let mut m = base.clone();
            if let Some(own) = self.endpoints.get(e) {
                m.extend(own.iter().map(|(k, v)| (*k, *v)));
            }
            out.extend(m.into_iter().map(|(s, c)| (e.clone(), s, c)));
        }
        out
    }

    /// Checks the section against the scenario's endpoints; paths are relative to `compare`.
    pub fn validate(&self, endpoints: &[String]) -> Result<(), FieldError> {
        let k = |s: &str| Seg::Key(s.to_owned());
        if self.baseline.target.is_none() && self.baseline.service.is_none() {
            return Err(FieldError::new(
                vec![k("baseline")],
                "the baseline needs a `target` (a URL) or a `service` (a command to start)",
            ));
        }
        for (side, spec) in [
            ("baseline", Some(&self.baseline)),
            ("candidate", self.candidate.as_ref()),
        ] {
            let Some(spec) = spec else { continue };
            if let Some(t) = &spec.target {
                crate::scenario::check_target(t)
                    .map_err(|m| FieldError::new(vec![k(side), k("target")], m))?;
            }
            if spec.target.is_some() && spec.service.is_some() {
                return Err(FieldError::new(
                    vec![k(side)],
                    "give either `target` or `service`, not both",
                ));
            }
            if let Some(s) = &spec.service
                && s.command.is_empty()
            {
                return Err(FieldError::new(
                    vec![k(side), k("service"), k("command")],
                    "the service needs a command to start",
                ));
            }
        }
        let check_map = |m: &BTreeMap<Statistic, Change>, at: Vec<Seg>| {
            for (stat, c) in m {
                let mut p = at.clone();
                p.push(k(stat.name()));
                if stat.in_points() && !c.points {
                    return Err(FieldError::new(
                        p,
                        format!(
                            "error_rate changes in percentage points: write e.g. `+0.5pp`, not `{c}`"
                        ),
                    ));
                }
                if !stat.in_points() && c.points {
                    return Err(FieldError::new(
                        p,
                        format!("{stat} changes by a percentage of the baseline: write e.g. `+5%`"),
                    ));
                }
            }
            Ok(())
        };
        check_map(&self.allow, vec![k("allow")])?;
        for (e, m) in &self.endpoints {
            if !endpoints.contains(e) {
                return Err(FieldError::new(
                    vec![k("endpoints"), k(e)],
                    format!(
                        "no step is called `{e}`; the scenario records {}",
                        endpoints.join(", ")
                    ),
                ));
            }
            check_map(m, vec![k("endpoints"), k(e)])?;
        }
        if !self.block.is_multiple_of(2) {
            return Err(FieldError::new(
                vec![k("block")],
                format!(
                    "{} arrivals cannot be split evenly between two sides: use an even number",
                    self.block
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_and_print() {
        assert_eq!(Change::parse("+5%").unwrap().value, 0.05);
        assert_eq!(Change::parse("-2.5%").unwrap().value, -0.025);
        let pp = Change::parse("+0.5pp").unwrap();
        assert!(pp.points && (pp.value - 0.005).abs() < 1e-12);
        assert_eq!(pp.to_string(), "+0.5pp");
        assert_eq!(Change::parse("10%").unwrap().to_string(), "+10%");
        assert!(Change::parse("5").unwrap_err().contains("+5%"));
        assert!(Change::parse("+5 ms").is_err());
        assert!(
            Change::parse("+5000%")
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn allowances_default_and_override() {
        let spec: CompareSpec = serde_norway::from_str(
            "baseline: { target: 'http://127.0.0.1:1' }\nendpoints: { b: { p99: +20% } }\n",
        )
        .unwrap();
        let eps = vec!["a".to_owned(), "b".to_owned()];
        spec.validate(&eps).unwrap();
        let got = spec.allowances(&eps);
        assert!(got.contains(&("a".into(), Statistic::P99, Change::parse("+10%").unwrap())));
        assert!(got.contains(&("b".into(), Statistic::P99, Change::parse("+20%").unwrap())));
        assert_eq!(got.len(), 6);
    }

    #[test]
    fn bad_sections_name_the_field() {
        let eps = vec!["a".to_owned()];
        let bad = |y: &str| {
            let s: CompareSpec = serde_norway::from_str(y).unwrap();
            s.validate(&eps).unwrap_err()
        };
        let e =
            bad("baseline: { target: 'http://127.0.0.1:1' }\nendpoints: { nope: { p50: +1% } }");
        assert!(
            e.message.contains("no step is called `nope`"),
            "{}",
            e.message
        );
        let e = bad("baseline: { target: 'http://127.0.0.1:1' }\nallow: { error_rate: +1% }");
        assert!(e.message.contains("percentage points"), "{}", e.message);
        let e = bad("baseline: {}");
        assert!(e.message.contains("`target`"), "{}", e.message);
        let e = bad("baseline: { target: 'http://127.0.0.1:1' }\nblock: 3");
        assert!(e.message.contains("even"), "{}", e.message);
        let unknown: Result<CompareSpec, _> = serde_norway::from_str(
            "baseline: { target: 'http://127.0.0.1:1' }\nallow: { p75: +1% }",
        );
        assert!(unknown.unwrap_err().to_string().contains("p50"));
    }
}
