//! Line plots as inline SVG, drawn by hand: axes with ticks, lines, shaded named bands (fault
//! windows), vertical marks (trigger firings) and a legend. No script is needed to see them.
//!
//! Every plot carries `data-series` (the number of lines it draws) and every line
//! `data-role="series"`, so a check in the page (and the browser test) can count what the DOM
//! really holds against what was meant to be drawn (`docs/adr/0006-html-report.md`).

use std::fmt::Write as _;

use super::esc;

pub const WIDTH: f64 = 960.0;
pub const HEIGHT: f64 = 250.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 34.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 40.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    Log10,
}

#[derive(Debug, Clone)]
pub struct Axis {
    pub min: f64,
    pub max: f64,
    pub scale: Scale,
    pub ticks: Vec<(f64, String)>,
    pub label: String,
}

impl Axis {
    fn t(&self, v: f64) -> f64 {
        let (v, lo, hi) = match self.scale {
            Scale::Linear => (v, self.min, self.max),
            Scale::Log10 => (v.max(self.min).log10(), self.min.log10(), self.max.log10()),
        };
        if hi > lo {
            ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }

    /// A linear axis over `[0, max]` with about five round ticks.
    pub fn linear(max: f64, label: &str, fmt: &dyn Fn(f64) -> String) -> Axis {
        let max = if max.is_finite() && max > 0.0 {
            max
        } else {
            1.0
        };
        let step = nice_step(max / 5.0);
        let mut ticks = Vec::new();
        let mut v = 0.0;
        while v <= max * 1.0001 {
            ticks.push((v, fmt(v)));
            v += step;
        }
        Axis {
            min: 0.0,
            max,
            scale: Scale::Linear,
            ticks,
            label: label.to_owned(),
        }
    }

    /// A logarithmic latency axis (µs) from `lo` to `hi`, ticks at 1, 2 and 5 of each decade
    /// when the range is short, at each decade otherwise.
    pub fn latency_log(lo: f64, hi: f64, label: &str) -> Axis {
        let lo_d = lo.max(1.0).log10().floor();
        let hi_d = hi.max(lo.max(1.0) * 10.0).log10().ceil();
        let (min, max) = (10f64.powf(lo_d), 10f64.powf(hi_d));
        let steps: &[f64] = if hi_d - lo_d <= 3.0 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        let mut ticks = Vec::new();
        let mut d = lo_d;
        while d <= hi_d {
            for s in steps {
                let v = s * 10f64.powf(d);
                if v >= min && v <= max {
                    ticks.push((v, crate::rule::fmt_us(v.round() as u64)));
                }
            }
            d += 1.0;
        }
        Axis {
            min,
            max,
            scale: Scale::Log10,
            ticks,
            label: label.to_owned(),
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= raw {
            return m * p;
        }
    }
    10.0 * p
}

#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub color: &'static str,
    pub dashed: bool,
    /// Points in data units; a non-finite `y` breaks the line (a window with no answers).
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub label: String,
    pub color: &'static str,
}

#[derive(Debug, Clone)]
pub struct Mark {
    pub at: f64,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct Plot {
    pub id: String,
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub lines: Vec<Line>,
    /// Load phases: every other one lightly shaded, each named along the bottom.
    pub phases: Vec<Band>,
    /// Fault windows: shaded, named along the top.
    pub bands: Vec<Band>,
    pub marks: Vec<Mark>,
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

impl Plot {
    /// The lines that have at least one point: what the plot draws.
    pub fn drawn(&self) -> impl Iterator<Item = &Line> {
        self.lines
            .iter()
            .filter(|l| l.points.iter().any(|p| p.0.is_finite() && p.1.is_finite()))
    }

    pub fn svg(&self) -> String {
        let pw = WIDTH - LEFT - RIGHT;
        let ph = HEIGHT - TOP - BOTTOM;
        let px = |v: f64| LEFT + self.x.t(v) * pw;
        let py = |v: f64| TOP + (1.0 - self.y.t(v)) * ph;
        let n = self.drawn().count();
        let mut o = String::new();
        let _ = write!(
            o,
            r#"<svg class="plot" id="{}" data-series="{n}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
            esc(&self.id),
            esc(&self.title)
        );
        let _ = write!(
            o,
            r#"<text x="{LEFT}" y="16" class="title">{}</text>"#,
            esc(&self.title)
        );
        // Load phases, then fault bands, under everything else.
        for (i, b) in self.phases.iter().enumerate() {
            let (a, z) = (px(b.from), px(b.to.max(b.from)));
            let _ = write!(
                o,
                r#"<g class="phase"><rect x="{}" y="{TOP}" width="{}" height="{ph}" fill="{}" fill-opacity="{}"><title>{}</title></rect><text x="{}" y="{}" class="phase-label">{}</text></g>"#,
                f1(a),
                f1((z - a).max(0.5)),
                b.color,
                if i % 2 == 0 { "0.07" } else { "0" },
                esc(&b.label),
                f1(a + 3.0),
                TOP + ph - 4.0,
                esc(&b.label)
            );
        }
        for b in &self.bands {
            let (a, z) = (px(b.from), px(b.to.max(b.from)));
            let _ = write!(
                o,
                r#"<g class="band"><rect x="{}" y="{TOP}" width="{}" height="{ph}" fill="{}" fill-opacity="0.16"><title>{}</title></rect><text x="{}" y="{}" class="band-label">{}</text></g>"#,
                f1(a),
                f1((z - a).max(1.0)),
                b.color,
                esc(&b.label),
                f1(a + 3.0),
                TOP + 11.0,
                esc(&b.label)
            );
        }
        // Grid and ticks.
        for (v, label) in &self.y.ticks {
            let y = py(*v);
            let _ = write!(
                o,
                r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                esc(label)
            );
        }
        for (v, label) in &self.x.ticks {
            let x = px(*v);
            let _ = write!(
                o,
                r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                TOP + ph,
                TOP + ph + 15.0,
                esc(label)
            );
        }
        let _ = write!(
            o,
            r#"<rect class="frame" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/><text class="axis-label" x="{}" y="{}" text-anchor="middle">{}</text><text class="axis-label" x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
            LEFT + pw / 2.0,
            HEIGHT - 6.0,
            esc(&self.x.label),
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(&self.y.label)
        );
        for l in self.drawn() {
            let mut d = String::new();
            let mut pen_up = true;
            for &(x, y) in &l.points {
                if !(x.is_finite() && y.is_finite()) {
                    pen_up = true;
                    continue;
                }
                let _ = write!(
                    d,
                    "{}{:.1} {:.1}",
                    if pen_up { "M" } else { "L" },
                    px(x),
                    py(y)
                );
                pen_up = false;
            }
            // A single point is drawn as a dot so it is not lost.
            let single = l.points.iter().filter(|p| p.1.is_finite()).count() == 1;
            let _ = write!(
                o,
                r#"<path data-role="series" data-name="{}" d="{}{}" stroke="{}" fill="none" stroke-width="{}"{}><title>{}</title></path>"#,
                esc(&l.name),
                d,
                if single { "h0.1" } else { "" },
                l.color,
                if single { "5" } else { "1.6" },
                if l.dashed {
                    r#" stroke-dasharray="5 3""#
                } else {
                    ""
                },
                esc(&l.name)
            );
        }
        for m in &self.marks {
            let x = px(m.at);
            let _ = write!(
                o,
                r##"<g class="mark"><line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#b00" stroke-dasharray="2 2"/><path d="M{:.1} {TOP}l5 -7h-10z" fill="#b00"><title>{}</title></path></g>"##,
                TOP + ph,
                x,
                esc(&m.label)
            );
        }
        // Legend along the top right.
        let mut lx = WIDTH - RIGHT;
        for l in self.drawn().collect::<Vec<_>>().into_iter().rev() {
            let w = 24.0 + 6.5 * l.name.chars().count() as f64;
            lx -= w;
            let _ = write!(
                o,
                r#"<g class="legend"><line x1="{:.1}" x2="{:.1}" y1="12" y2="12" stroke="{}" stroke-width="2.5"{}/><text x="{:.1}" y="16">{}</text></g>"#,
                lx,
                lx + 16.0,
                l.color,
                if l.dashed {
                    r#" stroke-dasharray="5 3""#
                } else {
                    ""
                },
                lx + 19.0,
                esc(&l.name)
            );
        }
        o.push_str("</svg>");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot(lines: Vec<Line>) -> Plot {
        Plot {
            id: "p".into(),
            title: "t <&>".into(),
            x: Axis::linear(10.0, "s", &|v| format!("{v}")),
            y: Axis::latency_log(100.0, 50_000.0, "latency"),
            lines,
            phases: vec![Band {
                from: 0.0,
                to: 5.0,
                label: "ramp 0→10/s".into(),
                color: "#555",
            }],
            bands: vec![Band {
                from: 2.0,
                to: 4.0,
                label: "redis-down".into(),
                color: "#c33",
            }],
            marks: vec![Mark {
                at: 3.0,
                label: "fired".into(),
            }],
        }
    }

    #[test]
    fn counts_only_lines_with_points_and_breaks_gaps() {
        let p = plot(vec![
            Line {
                name: "p50".into(),
                color: "#000",
                dashed: false,
                points: vec![(0.0, 200.0), (1.0, f64::NAN), (2.0, 300.0), (3.0, 400.0)],
            },
            Line {
                name: "empty".into(),
                color: "#000",
                dashed: false,
                points: vec![(0.0, f64::NAN)],
            },
        ]);
        let s = p.svg();
        assert!(s.contains(r#"data-series="1""#), "{s}");
        assert_eq!(s.matches(r#"data-role="series""#).count(), 1);
        // Two runs of the pen: the gap at 1 s is not bridged.
        let d = s.split(r#" d=""#).nth(1).unwrap();
        assert_eq!(d.split('"').next().unwrap().matches('M').count(), 2);
        assert!(s.contains("t &lt;&amp;&gt;"));
        assert!(s.contains("redis-down"));
        assert!(s.contains(r#"<g class="phase">"#) && s.contains("ramp 0→10/s"));
    }

    #[test]
    fn ticks_are_round_and_inside_the_axis() {
        let a = Axis::linear(37.0, "s", &|v| format!("{v}"));
        let vals: Vec<f64> = a.ticks.iter().map(|t| t.0).collect();
        assert_eq!(vals, [0.0, 10.0, 20.0, 30.0]);
        let l = Axis::latency_log(800.0, 40_000.0, "latency");
        assert_eq!(l.min, 100.0);
        assert_eq!(l.max, 100_000.0);
        assert!(l.ticks.iter().any(|t| t.1 == "1.0 ms"));
        assert!(l.ticks.iter().all(|t| t.0 >= l.min && t.0 <= l.max));
    }
}
