//! The Prometheus text exposition format (what a service's `/metrics` serves), parsed into
//! families with their declared type and samples. Enough of the format for checks and gauges:
//! `# TYPE` lines, samples with labels, escaped label values; timestamps are ignored.

use std::collections::BTreeMap;
use std::time::Duration;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name as written: `x_bucket`, `x_sum`, `x_count` for a histogram.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A metric family: its `# TYPE` (absent = `untyped`) and its samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Family {
    pub kind: String,
    pub samples: Vec<Sample>,
}

/// Families by name (histogram and summary samples sit under their base name).
pub type Exposition = BTreeMap<String, Family>;

/// Parses exposition text; a line that does not parse is an error naming it.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut out: Exposition = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.split_whitespace();
            if parts.next() == Some("TYPE")
                && let (Some(name), Some(kind)) = (parts.next(), parts.next())
            {
                out.entry(name.to_owned()).or_default().kind = kind.to_owned();
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|e| format!("line {}: {e}: `{line}`", n + 1))?;
        let family = family_of(&out, &sample.name);
        let f = out.entry(family).or_default();
        if f.kind.is_empty() {
            f.kind = "untyped".into();
        }
        f.samples.push(sample);
    }
    Ok(out)
}

/// The family a series belongs to: `x_bucket` under `x` when `x` is a declared histogram.
fn family_of(out: &Exposition, series: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix)
            && out
                .get(base)
                .is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
        {
            return base.to_owned();
        }
    }
    series.to_owned()
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=').ok_or("label without `=`")?;
            let label = rest[..eq].trim().to_owned();
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("unterminated label value".into()),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            };
            rest = &rest[end + 1..];
            labels.insert(label, value);
        }
    }
    let value = rest.split_whitespace().next().ok_or("no value")?.to_owned();
    let value = match value.as_str() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .map_err(|_| format!("value `{v}` is not a number"))?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Fetches and parses `url` (a `/metrics`), within `timeout`.
pub async fn scrape(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Exposition, String> {
    let resp = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url}: {}", resp.status()));
    }
    let text = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
    parse(&text).map_err(|e| format!("{url}: {e}"))
}

/// The values of a gauge's samples (empty when it has none).
pub fn gauge_values(exp: &Exposition, gauge: &str) -> Vec<f64> {
    exp.get(gauge)
        .map(|f| {
            f.samples
                .iter()
                .filter(|s| s.name == gauge)
                .map(|s| s.value)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_group_under_their_base_name() {
        let text = "# HELP h x\n# TYPE h histogram\nh_bucket{route=\"GET /a\",le=\"0.1\"} 3\n\
                    h_bucket{route=\"GET /a\",le=\"+Inf\"} 4\nh_sum{route=\"GET /a\"} 0.5\n\
                    h_count{route=\"GET /a\"} 4\n# TYPE g gauge\ng{q=\"a \\\"b\\\"\"} 2 1700000000\nu 1\n";
        let e = parse(text).unwrap();
        assert_eq!(e["h"].kind, "histogram");
        assert_eq!(e["h"].samples.len(), 4);
        assert_eq!(e["h"].samples[1].labels["le"], "+Inf");
        assert_eq!(e["h"].samples[1].value, 4.0);
        assert_eq!(
            parse("x +Inf").unwrap()["x"].samples[0].value,
            f64::INFINITY
        );
        assert_eq!(e["g"].samples[0].labels["q"], "a \"b\"");
        assert_eq!(e["u"].kind, "untyped");
        assert_eq!(gauge_values(&e, "g"), vec![2.0]);
        assert!(parse("x{a=b} 1").unwrap_err().contains("line 1"));
    }
}
