//! The plots of `report.html`, built from the report's per-window series (`record::series`) and
//! the endpoints' whole-run histograms.
//!
//! Long series are downsampled by merging adjacent windows (their histograms add exactly, their
//! counts sum), so a plot line never has more than [`MAX_POINTS`] points whatever the run's
//! length; the page says how many windows each point merges.

use hdrhistogram::Histogram;

use super::svg::{Axis, Band, Line, Mark, Plot};
use crate::record::Counts;
use crate::record::series::{Series, Window};
use crate::report::Report;
use crate::rule::fmt_us;

/// Most points on a line over time.
pub const MAX_POINTS: usize = 600;
/// Steps of log10(1/(1−q)) along the spectrum (20 per decade).
const SPECTRUM_STEP: f64 = 0.05;
/// The spectrum stops at p99.9999 even for runs with more answers.
const SPECTRUM_DECADES: f64 = 6.0;

pub struct EndpointPlots {
    pub name: String,
    pub plots: Vec<Plot>,
}

pub struct Drawn {
    /// How the page was drawn from the data (downsampling), or why a plot is missing.
    pub note: String,
    pub endpoints: Vec<EndpointPlots>,
}

/// Adjacent windows merged `k` at a time: `(start_s, window)` per point.
fn downsample(s: &Series, e: usize, k: usize) -> Vec<(f64, Window)> {
    let w = s.window.as_secs_f64();
    s.windows
        .chunks(k.max(1))
        .enumerate()
        .map(|(i, chunk)| {
            let mut merged = Window::default();
            for win in chunk {
                if let Some(x) = win.get(e) {
                    // Both sides are auto-resizing two-digit histograms: adding cannot fail.
                    let _ = merged.hist.add(&x.hist);
                    merged.counts.merge(&x.counts);
                }
            }
            (i as f64 * w * k as f64, merged)
        })
        .collect()
}

fn decode(s: Option<&crate::record::series::SeriesReport>) -> Result<Option<Series>, String> {
    match s {
        None => Ok(None),
        Some(s) => Series::from_report(s).map(Some).map_err(|e| e.to_string()),
    }
}

fn seconds_axis(end: f64) -> Axis {
    if end >= 600.0 {
        let mut a = Axis::linear(end / 60.0, "minutes from the start of load", &|v| {
            format!("{v:.0}")
        });
        a.max = end;
        for t in &mut a.ticks {
            t.0 *= 60.0;
        }
        a
    } else {
        Axis::linear(end, "seconds from the start of load", &|v| {
            format!("{v:.0}")
        })
    }
}

fn latency_at(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else if q >= 1.0 {
        h.max() as f64
    } else {
        h.value_at_quantile(q) as f64
    }
}

/// The class counts of a window, in a fixed order, with the names the plot shows.
fn classes(c: &Counts) -> [(&'static str, &'static str, u64); 6] {
    [
        ("timeout", "#9467bd", c.timeout),
        ("connect", "#8c564b", c.connect),
        ("reset", "#e377c2", c.reset),
        ("4xx", "#bcbd22", c.status_4xx),
        ("5xx", "#d62728", c.status_5xx),
        ("other", "#7f7f7f", c.other),
    ]
}

/// Every endpoint's plots.
pub fn endpoints(r: &Report) -> Drawn {
    let mut notes = Vec::new();
    let cand = decode(r.series.as_ref()).unwrap_or_else(|e| {
        notes.push(format!(
            "The series could not be read ({e}); plots over time are left out."
        ));
        None
    });
    let base = decode(
        r.comparison
            .as_ref()
            .and_then(|c| c.baseline_series.as_ref()),
    )
    .unwrap_or_else(|e| {
        notes.push(format!("The baseline's series could not be read ({e})."));
        None
    });
    let n_windows = cand.as_ref().map_or(0, |s| s.windows.len());
    let k = n_windows.div_ceil(MAX_POINTS).max(1);
    let window_s = cand.as_ref().map_or(1.0, |s| s.window.as_secs_f64());
    if cand.is_none() && r.series.is_none() {
        notes
            .push("This report carries no per-window series: plots over time are left out.".into());
    } else if cand.is_some() {
        notes.push(if k > 1 {
            format!(
                "Each point over time merges {k} adjacent {} s windows (histograms added, counts summed), \
                 so a line has at most {MAX_POINTS} points; {n_windows} windows in all.",
                trim(window_s)
            )
        } else {
            format!(
                "Each point over time is one {} s window by due time ({n_windows} windows).",
                trim(window_s)
            )
        });
    }
    notes.push(
        "Latency is corrected for coordinated omission (measured from the intended send time). \
         Grey along the bottom: load phases as planned; shaded red: fault windows as applied; red marks: trigger firings. The spectrum's x axis is \
         log10(1/(1−q)): 90 %, 99 %, 99.9 % … are equally spaced."
            .into(),
    );

    let mut end = r.elapsed_s.max(0.0);
    if let Some(s) = &cand {
        end = end.max(s.windows.len() as f64 * window_s);
    }
    let phases: Vec<Band> = r
        .load_phases
        .iter()
        .map(|p| Band {
            from: p.start_s,
            to: p.end_s,
            label: p.label.clone(),
            color: "#555",
        })
        .collect();
    let mut bands = Vec::new();
    for f in &r.faults {
        let (a, b) = match (f.applied_at_s, f.reverted_at_s) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) => (a, end),
            _ => (f.planned_start_s, f.planned_end_s),
        };
        end = end.max(b);
        bands.push(Band {
            from: a,
            to: b,
            label: f.name.clone(),
            color: "#d33",
        });
    }
    let mut marks = Vec::new();
    if let Some(t) = &r.triggers {
        for x in &t.triggers {
            for (a, _) in &x.firing_s {
                marks.push(Mark {
                    at: *a,
                    label: format!("{} ({}) fired at {a:.1} s", x.name, x.source),
                });
            }
            if x.firing_s.is_empty()
                && let Some(a) = x.fired_at_s
            {
                marks.push(Mark {
                    at: a,
                    label: format!("{} ({}) fired at {a:.1} s", x.name, x.source),
                });
            }
        }
    }
    let end = if end > 0.0 { end } else { 1.0 };

    let names: Vec<String> = match &cand {
        Some(s) => s.endpoints.clone(),
        None => r.endpoints.iter().map(|e| e.name.clone()).collect(),
    };
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let id = format!("e{i}");
        let mut plots = Vec::new();
        let cand_pts = cand.as_ref().map(|s| downsample(s, i, k));
        let base_pts = base.as_ref().and_then(|s| {
            s.endpoints
                .iter()
                .position(|n| n == name)
                .map(|j| downsample(s, j, k))
        });
        if let Some(pts) = &cand_pts {
            let mid = window_s * k as f64 / 2.0;
            let mut lines = Vec::new();
            for (label, q, color) in [
                ("p50", 0.5, "#1f77b4"),
                ("p90", 0.9, "#2ca02c"),
                ("p99", 0.99, "#ff7f0e"),
                ("max", 1.0, "#d62728"),
            ] {
                lines.push(Line {
                    name: label.into(),
                    color,
                    dashed: false,
                    points: pts
                        .iter()
                        .map(|(t, w)| (t + mid, latency_at(&w.hist, q)))
                        .collect(),
                });
            }
            if let Some(bp) = &base_pts {
                for (label, q, color) in [
                    ("baseline p50", 0.5, "#6baed6"),
                    ("baseline p99", 0.99, "#fdae6b"),
                ] {
                    lines.push(Line {
                        name: label.into(),
                        color,
                        dashed: true,
                        points: bp
                            .iter()
                            .map(|(t, w)| (t + mid, latency_at(&w.hist, q)))
                            .collect(),
                    });
                }
            }
            let (lo, hi) = range(&lines);
            plots.push(Plot {
                id: format!("{id}-latency"),
                title: format!("{name}: latency percentiles per window"),
                x: seconds_axis(end),
                y: Axis::latency_log(lo, hi, "latency"),
                lines,
                phases: phases.clone(),
                bands: bands.clone(),
                marks: marks.clone(),
            });

            let per_s = 1.0 / (window_s * k as f64);
            let mut lines = vec![Line {
                name: "answers/s".into(),
                color: "#1f77b4",
                dashed: false,
                points: pts
                    .iter()
                    .map(|(t, w)| (t + mid, w.counts.total() as f64 * per_s))
                    .collect(),
            }];
            for c in 0..6 {
                if pts.iter().all(|(_, w)| classes(&w.counts)[c].2 == 0) {
                    continue;
                }
                let (label, color, _) = classes(&Counts::default())[c];
                lines.push(Line {
                    name: format!("{label}/s"),
                    color,
                    dashed: false,
                    points: pts
                        .iter()
                        .map(|(t, w)| (t + mid, classes(&w.counts)[c].2 as f64 * per_s))
                        .collect(),
                });
            }
            if let Some(bp) = &base_pts {
                lines.push(Line {
                    name: "baseline answers/s".into(),
                    color: "#9ecae1",
                    dashed: true,
                    points: bp
                        .iter()
                        .map(|(t, w)| (t + mid, w.counts.total() as f64 * per_s))
                        .collect(),
                });
            }
            let (_, hi) = range(&lines);
            plots.push(Plot {
                id: format!("{id}-throughput"),
                title: format!("{name}: throughput and errors by class, per second"),
                x: seconds_axis(end),
                y: Axis::linear(hi * 1.05, "per second", &|v| trim(v)),
                lines,
                phases: phases.clone(),
                bands: bands.clone(),
                marks: marks.clone(),
            });
        }

        // The spectrum: the whole run's histogram (three digits) of the report's endpoint,
        // and the baseline's merged windows in a comparison.
        let mut lines = Vec::new();
        if let Some(h) = r
            .endpoints
            .iter()
            .find(|e| &e.name == name)
            .and_then(|e| crate::record::decode_histogram(&e.histogram).ok())
        {
            lines.push(spectrum(
                &h,
                if base_pts.is_some() {
                    "candidate"
                } else {
                    "latency"
                },
                "#1f77b4",
                false,
            ));
        }
        if let Some(bp) = &base_pts {
            let mut all = Window::default();
            for (_, w) in bp {
                let _ = all.hist.add(&w.hist);
            }
            lines.push(spectrum(&all.hist, "baseline", "#ff7f0e", true));
        }
        if !lines.is_empty() {
            let xmax = lines
                .iter()
                .flat_map(|l| l.points.iter().map(|p| p.0))
                .fold(1.0f64, f64::max)
                .ceil()
                .max(2.0);
            let mut ticks = Vec::new();
            let mut d = 0.0;
            while d <= xmax {
                ticks.push((d, quantile_label(d)));
                d += 1.0;
            }
            let x = Axis {
                min: 0.0,
                max: xmax,
                scale: super::svg::Scale::Linear,
                ticks,
                label: "percentile (log10 of 1/(1−q))".into(),
            };
            let (_, hi) = range(&lines);
            plots.push(Plot {
                id: format!("{id}-spectrum"),
                title: format!("{name}: latency by percentile, whole run"),
                x,
                y: Axis::linear(hi * 1.05, "latency", &|v| fmt_us(v.round() as u64)),
                lines,
                phases: Vec::new(),
                bands: Vec::new(),
                marks: Vec::new(),
            });
        }
        out.push(EndpointPlots {
            name: name.clone(),
            plots,
        });
    }
    Drawn {
        note: notes.join(" "),
        endpoints: out,
    }
}

fn spectrum(h: &Histogram<u64>, name: &str, color: &'static str, dashed: bool) -> Line {
    let mut points = Vec::new();
    if !h.is_empty() {
        // Beyond 1 − 1/n a quantile is the maximum: stop at the run's own resolution.
        let top = (h.len() as f64).log10().clamp(0.0, SPECTRUM_DECADES);
        let steps = (top / SPECTRUM_STEP).floor() as usize;
        for i in 0..=steps {
            let x = i as f64 * SPECTRUM_STEP;
            let q = 1.0 - 10f64.powf(-x);
            points.push((x, h.value_at_quantile(q) as f64));
        }
        points.push((top.max(SPECTRUM_STEP), h.max() as f64));
    }
    Line {
        name: name.into(),
        color,
        dashed,
        points,
    }
}

fn quantile_label(decades: f64) -> String {
    match decades as usize {
        0 => "0 %".into(),
        1 => "90 %".into(),
        2 => "99 %".into(),
        d => format!("99.{} %", "9".repeat(d - 2)),
    }
}

fn range(lines: &[Line]) -> (f64, f64) {
    let ys = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    (if lo.is_finite() { lo } else { 1.0 }, hi.max(1.0))
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.trim_end_matches(".0").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectrum_labels_and_points() {
        assert_eq!(quantile_label(0.0), "0 %");
        assert_eq!(quantile_label(1.0), "90 %");
        assert_eq!(quantile_label(2.0), "99 %");
        assert_eq!(quantile_label(3.0), "99.9 %");
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let l = spectrum(&h, "x", "#000", false);
        // log10(1000) = 3 decades in steps of 0.05, plus the maximum.
        assert_eq!(l.points.len(), 62);
        assert!(l.points.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(l.points.last().unwrap().1 as u64, h.max());
    }
}
