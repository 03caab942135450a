//! `report.html`: the run as one self-contained page (no network; the style and the one small
//! script are inline, the plots are SVG drawn here). Everything it shows comes from the
//! [`Report`]: the page renders, it never judges (`docs/adr/0006-html-report.md`).
//!
//! Layout: the verdict and its reason; failed and inconclusive rules with their evidence; passing
//! rules folded by family; the endpoint table; per endpoint, on one shared time axis, latency
//! percentiles and throughput with errors by class, with fault windows shaded and named and
//! trigger firings marked, then the percentile spectrum on HdrHistogram's 1/(1−q) axis; the
//! drill's faults, steady-state phases and nothing-lost result; a comparison's table.

pub mod plots;
pub mod svg;

use std::fmt::Write as _;

use super::{Report, family_counts, rule_family};
use crate::rule::{RuleResult, Status, fmt_us};

/// HTML-escapes text for element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    super::xml_escape(s)
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;max-width:1000px;padding:16px;color:#1b1b1b;background:#fff}
h1{font-size:22px;margin:4px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}h3{font-size:15px;margin:18px 0 6px}
.verdict{padding:10px 14px;border-radius:6px;margin:8px 0 14px;color:#fff}
.v-pass{background:#2e7d32}.v-fail{background:#c62828}.v-inconclusive{background:#b26a00}
.verdict .reason{font-size:15px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.s-pass{color:#2e7d32;font-weight:600}.s-fail{color:#c62828;font-weight:700}.s-inconclusive{color:#b26a00;font-weight:700}
pre{background:#f6f6f6;padding:6px 8px;overflow-x:auto;font-size:12px;margin:4px 0;white-space:pre-wrap;word-break:break-all}
details{margin:4px 0}summary{cursor:pointer}
.rule{border-left:4px solid #c62828;padding:4px 10px;margin:8px 0;background:#fff8f8}
.rule.inconclusive{border-color:#b26a00;background:#fffaf0}
.note{color:#555;font-size:12px}
svg.plot{display:block;width:100%;height:auto;margin:6px 0 12px;font-size:11px}
svg.plot .title{font-weight:600;font-size:12px}svg.plot .grid{stroke:#e6e6e6}svg.plot .frame{fill:none;stroke:#999}
svg.plot .tick{fill:#555}svg.plot .phase-label{fill:#666;font-size:10px}svg.plot .band-label{fill:#8a1c1c;font-size:10px}svg.plot .axis-label{fill:#333}
#render-check{font-size:11px;color:#777}
"#;

/// Writes every plot's intended and drawn series and its size into `#render-check`, and any
/// script or resource error: what the browser test reads with `--dump-dom`.
const CHECK_SCRIPT: &str = r#"
(function(){
  var errors=[];
  window.addEventListener('error',function(e){errors.push('error: '+(e.message||(e.target&&(e.target.src||e.target.href))||'resource'));},true);
  var ce=console.error;console.error=function(){errors.push('console.error: '+Array.prototype.join.call(arguments,' '));ce.apply(console,arguments);};
  function check(){
    var out=[],plots=document.querySelectorAll('svg.plot');
    out.push('plots '+plots.length);
    for(var i=0;i<plots.length;i++){
      var p=plots[i],r=p.getBoundingClientRect(),want=+p.getAttribute('data-series');
      var paths=p.querySelectorAll('path[data-role=series]'),drawn=0;
      for(var j=0;j<paths.length;j++){var b=paths[j].getBBox();if(b.width>0||b.height>0)drawn++;}
      out.push('plot '+p.id+' series='+want+' drawn='+drawn+' size='+Math.round(r.width)+'x'+Math.round(r.height));
    }
    out.push('time '+Math.round(performance.now())+' ms');
    for(var k=0;k<errors.length;k++)out.push(errors[k]);
    out.push(errors.length?'render-check: errors':'render-check: done');
    document.getElementById('render-check').textContent=out.join('\n');
  }
  if(document.readyState==='complete')check();else window.addEventListener('load',check);
})();
"#;

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Inconclusive => "inconclusive",
    }
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}: {}</title><style>{STYLE}</style></head><body>\n",
        esc(&r.scenario),
        r.verdict.status.as_str()
    );
    header(&mut o, r);
    rules(&mut o, &r.verdict.rules);
    endpoint_table(&mut o, r);
    let drawn = plots::endpoints(r);
    let _ = writeln!(o, "<h2>Endpoints over time</h2>");
    let _ = writeln!(o, "<p class=\"note\">{}</p>", esc(&drawn.note));
    for e in &drawn.endpoints {
        let _ = writeln!(o, "<h3>{}</h3>", esc(&e.name));
        for p in &e.plots {
            o.push_str(&p.svg());
            o.push('\n');
        }
    }
    if let Some(c) = &r.comparison {
        comparison(&mut o, c);
    }
    drill(&mut o, r);
    triggers(&mut o, r);
    for p in &r.environment_problems {
        let _ = writeln!(o, "<p><b>Environment:</b> {}</p>", esc(p));
    }
    let _ = write!(
        o,
        "<pre id=\"render-check\">render-check: not run</pre>\n<script>{CHECK_SCRIPT}</script>\n</body></html>\n"
    );
    o
}

fn header(o: &mut String, r: &Report) {
    let _ = writeln!(
        o,
        "<h1>{}</h1><div class=\"verdict v-{}\"><b>{}</b>{}<div class=\"reason\">{}</div></div>",
        esc(&r.scenario),
        status_class(r.verdict.status),
        r.verdict.status.as_str().to_uppercase(),
        if r.partial { " (partial run)" } else { "" },
        esc(&r.verdict.reason)
    );
    let _ = writeln!(
        o,
        "<p>{} model against <code>{}</code>, started {}: {} requests in {:.1} s ({:.1} req/s), \
         errors {:.2} %. Scenario file <code>{}</code>; exit code {}.</p>",
        esc(&r.model),
        esc(&r.target),
        esc(&r.started_at),
        r.overall.requests,
        r.elapsed_s,
        r.throughput_rps,
        r.overall.error_rate * 100.0,
        esc(&r.scenario_file),
        r.exit_code
    );
}

fn rule_row(o: &mut String, x: &RuleResult) {
    let _ = writeln!(
        o,
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"s-{}\">{}</td></tr>",
        esc(&x.id),
        esc(&x.scope),
        esc(&x.budget),
        esc(&x.observed),
        status_class(x.status),
        x.status.as_str()
    );
}

fn rules(o: &mut String, all: &[RuleResult]) {
    let open: Vec<&RuleResult> = all.iter().filter(|x| x.status != Status::Pass).collect();
    let _ = writeln!(o, "<h2>Rules that did not pass ({})</h2>", open.len());
    if open.is_empty() {
        let _ = writeln!(o, "<p>None: every rule held.</p>");
    }
    // Failures first, then the inconclusive ones.
    let mut open = open;
    open.sort_by_key(|x| std::cmp::Reverse(x.status));
    for x in open {
        let _ = writeln!(
            o,
            "<div class=\"rule {}\"><b class=\"s-{}\">{}</b> <code>{}</code> ({}, {})<br>budget {}; observed <b>{}</b>",
            status_class(x.status),
            status_class(x.status),
            x.status.as_str().to_uppercase(),
            esc(&x.id),
            rule_family(x.kind),
            esc(&x.scope),
            esc(&x.budget),
            esc(&x.observed)
        );
        if !x.detail.is_empty() {
            let _ = writeln!(o, "<br>{}", esc(&x.detail));
        }
        if !x.evidence.is_empty() {
            let _ = writeln!(o, "<pre>{}</pre>", esc(&x.evidence.join("\n")));
        }
        o.push_str("</div>\n");
    }
    let _ = writeln!(o, "<h2>Passing rules</h2>");
    for (family, pass, total) in family_counts(all) {
        if pass == 0 {
            continue;
        }
        let _ = writeln!(
            o,
            "<details><summary>{family} {pass}/{total} pass</summary><table><tr><th>rule</th><th>scope</th><th>budget</th><th>observed</th><th>result</th></tr>"
        );
        for x in all
            .iter()
            .filter(|x| x.status == Status::Pass && rule_family(x.kind) == family)
        {
            rule_row(o, x);
        }
        o.push_str("</table></details>\n");
    }
}

fn endpoint_table(o: &mut String, r: &Report) {
    let _ = writeln!(
        o,
        "<h2>Endpoints</h2><table><tr><th>endpoint</th><th class=\"n\">requests</th><th class=\"n\">errors</th><th class=\"n\">p50</th><th class=\"n\">p90</th><th class=\"n\">p95</th><th class=\"n\">p99</th><th class=\"n\">p99.9</th><th class=\"n\">max</th></tr>"
    );
    for e in r.endpoints.iter().chain(std::iter::once(&r.overall)) {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2} %</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            if e.name == "*" {
                "<b>all</b>".to_owned()
            } else {
                esc(&e.name)
            },
            e.requests,
            e.error_rate * 100.0,
            fmt_us(e.p50_us),
            fmt_us(e.p90_us),
            fmt_us(e.p95_us),
            fmt_us(e.p99_us),
            fmt_us(e.p999_us),
            fmt_us(e.max_us)
        );
    }
    o.push_str("</table>\n");
}

fn comparison(o: &mut String, c: &crate::compare::ComparisonReport) {
    use crate::compare::{fmt_change, fmt_value};
    let _ = writeln!(
        o,
        "<h2>Comparison ({}): baseline <code>{}</code> vs candidate <code>{}</code></h2><p class=\"note\">{:.0} % intervals, {}. {}.</p>",
        esc(&c.mode),
        esc(&c.baseline),
        esc(&c.candidate),
        c.confidence * 100.0,
        esc(&c.method),
        esc(&c.caveat)
    );
    o.push_str("<table><tr><th>endpoint</th><th>statistic</th><th class=\"n\">baseline</th><th class=\"n\">candidate</th><th class=\"n\">ratio</th><th class=\"n\">change</th><th>interval</th><th>allowed</th><th>decision</th></tr>\n");
    for j in &c.judgements {
        let ratio = if j.baseline.is_finite() && j.baseline > 0.0 && j.candidate.is_finite() {
            format!("{:.3}", j.candidate / j.baseline)
        } else {
            "-".into()
        };
        let interval = if j.low.is_finite() && j.high.is_finite() {
            format!(
                "[{}, {}]",
                fmt_change(j.statistic, j.low),
                fmt_change(j.statistic, j.high)
            )
        } else {
            "-".into()
        };
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&j.endpoint),
            j.statistic.name(),
            fmt_value(j.statistic, j.baseline),
            fmt_value(j.statistic, j.candidate),
            ratio,
            fmt_change(j.statistic, j.change),
            interval,
            esc(&j.allowed),
            esc(&crate::compare::explain(j, c.confidence))
        );
    }
    o.push_str("</table>\n");
    for n in &c.notes {
        let _ = writeln!(o, "<p class=\"note\">note: {}</p>", esc(n));
    }
}

fn drill(o: &mut String, r: &Report) {
    if !r.faults.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Faults</h2><table><tr><th>fault</th><th>on</th><th>planned</th><th>happened</th><th class=\"n\">requests</th><th class=\"n\">errors</th><th class=\"n\">p99</th><th>expected</th></tr>"
        );
        for f in &r.faults {
            let (req, err, p99) = match &f.observed {
                Some(x) => (
                    x.requests.to_string(),
                    format!("{:.2} %", x.error_rate * 100.0),
                    fmt_us(x.p99_us),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let happened = match (&f.error, f.applied_at_s, f.reverted_at_s) {
                (Some(e), _, _) => e.clone(),
                (None, Some(a), Some(v)) => format!("{a:.1}–{v:.1} s"),
                (None, Some(a), None) => format!("{a:.1} s – not reverted"),
                (None, None, _) => "not applied".into(),
            };
            let _ = writeln!(
                o,
                "<tr><td><code>{}</code></td><td>{} {}</td><td>{:.0}–{:.0} s</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&f.name),
                esc(&f.kind),
                esc(&f.target),
                f.planned_start_s,
                f.planned_end_s,
                esc(&happened),
                req,
                err,
                p99,
                esc(f.expect.as_deref().unwrap_or(""))
            );
        }
        o.push_str("</table>\n");
    }
    // The steady-state phases are the rules of `steady.*`, one row per phase and ceiling.
    let steady: Vec<&RuleResult> = r
        .verdict
        .rules
        .iter()
        .filter(|x| x.id.starts_with("steady."))
        .collect();
    if !steady.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Steady-state phases</h2><table><tr><th>rule</th><th>phase</th><th>budget</th><th>observed</th><th>result</th></tr>"
        );
        for x in steady {
            rule_row(o, x);
        }
        o.push_str("</table>\n");
    }
    if let Some(inv) = &r.invariants {
        let _ = writeln!(o, "<h2>Nothing lost</h2>");
        match &inv.inconclusive {
            Some(why) => {
                let _ = writeln!(
                    o,
                    "<p class=\"s-inconclusive\">The read-backs could not be made: {}</p>",
                    esc(why)
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "<p class=\"s-{}\">{} acknowledged and {} uncertain effect-creating requests read back; {} violations.</p>",
                    if inv.violations.is_empty() {
                        "pass"
                    } else {
                        "fail"
                    },
                    inv.acknowledged,
                    inv.uncertain,
                    inv.violations.len()
                );
                if !inv.violations.is_empty() {
                    o.push_str(
                        "<table><tr><th>rule</th><th>key</th><th>id</th><th>detail</th></tr>\n",
                    );
                    for v in inv.violations.iter().take(50) {
                        let _ = writeln!(
                            o,
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(&v.rule),
                            esc(v.key.as_deref().unwrap_or("-")),
                            esc(v.id.as_deref().unwrap_or("-")),
                            esc(&v.detail)
                        );
                    }
                    o.push_str("</table>\n");
                }
            }
        }
    }
}

fn triggers(o: &mut String, r: &Report) {
    let Some(t) = &r.triggers else { return };
    let drill = !t.detections.is_empty();
    let _ = writeln!(
        o,
        "<h2>Rollback triggers</h2><p class=\"note\">From <code>{}</code>, evaluated every {} s.{}</p><table><tr><th>trigger</th><th>source</th><th>windows</th><th>{}</th><th class=\"n\">first fired</th><th>firing</th></tr>",
        esc(&t.file),
        t.every_s,
        if drill {
            " A drill's faults are meant to fire them: what each did is below, judged by the drill's expectations."
        } else {
            ""
        },
        if drill { "state" } else { "result" }
    );
    for x in &t.triggers {
        let spans: Vec<String> = x
            .firing_s
            .iter()
            .map(|(a, b)| format!("{a:.0}–{b:.0} s"))
            .collect();
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"s-{}\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&x.name),
            esc(&x.source),
            esc(&x.windows),
            if drill {
                "neutral"
            } else {
                status_class(x.result)
            },
            x.shown_result(drill),
            x.fired_at_s
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s")),
            esc(&spans.join(", "))
        );
    }
    o.push_str("</table>\n");
    if !t.detections.is_empty() {
        o.push_str("<h3>Drill expectations</h3><table><tr><th>fault</th><th>trigger</th><th>source</th><th>expected</th><th class=\"n\">detected after</th><th>result</th></tr>\n");
        for d in &t.detections {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td class=\"n\">{}</td><td class=\"s-{}\">{}</td></tr>",
                esc(&d.fault),
                esc(&d.trigger),
                esc(&d.source),
                esc(&d.expected),
                d.within_s
                    .map(|w| format!(" within {w} s"))
                    .unwrap_or_default(),
                d.detected_after_s
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s")),
                status_class(d.status),
                d.status.as_str()
            );
        }
        o.push_str("</table>\n");
    }
    for (list, what) in [
        (
            &t.untested,
            "Untested triggers (no fault was seen to fire them as expected)",
        ),
        (
            &t.unwatched,
            "Not watched in the healthy phase (a false alarm would go unnoticed)",
        ),
    ] {
        if !list.is_empty() {
            let _ = writeln!(
                o,
                "<p class=\"s-inconclusive\"><strong>{what}:</strong> {}</p>",
                list.iter()
                    .map(|n| format!("<code>{}</code>", esc(n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}
