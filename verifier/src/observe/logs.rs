//! The service's log lines: JSON objects, access lines with their ids, no email address in
//! clear.

use super::{LogChecks, rule};
use crate::env::containers::Captured;
use crate::rule::{RuleResult, Status};

/// An email address in clear: a non-empty local part right before `@` and a dotted domain.
/// Masked forms (`s***@example.com`) have `*` before the `@` and do not count.
pub fn unmasked_emails(line: &str) -> Vec<String> {
    let local = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
    let dom = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    let mut out = Vec::new();
    for (i, _) in line.match_indices('@') {
        let start = line[..i]
            .char_indices()
            .rev()
            .take_while(|(_, c)| local(*c))
            .last()
            .map(|(j, _)| j);
        let end = line[i + 1..]
            .char_indices()
            .take_while(|(_, c)| dom(*c))
            .last()
            .map(|(j, c)| i + 1 + j + c.len_utf8());
        if let (Some(s), Some(e)) = (start, end) {
            let domain = line[i + 1..e].trim_end_matches('.');
            if domain.contains('.') && !line[s..i].chars().all(|c| c == '.') {
                out.push(line[s..i + 1 + domain.len()].to_owned());
            }
        }
    }
    out
}

/// JSON lines and ids on request lines in the log stream (stdout; stderr is for what comes
/// before the logger, such as the configuration banner, and for crashes), no emails in clear on
/// either.
pub fn log_rules(spec: &LogChecks, logs: Option<&Captured>) -> Vec<RuleResult> {
    let mut json = rule(
        "observability.logs.json",
        "service log lines",
        "every line a JSON object",
    );
    let mut ids = rule(
        "observability.logs.ids",
        "service log lines",
        format!(
            "`{}` lines carry {}",
            spec.request_message,
            spec.ids.join(", ")
        ),
    );
    let mut pii = rule(
        "observability.logs.pii",
        "service log lines",
        "no email address in clear",
    );
    let Some(captured) = logs else {
        let mut out = vec![json, ids];
        if spec.no_emails {
            out.push(pii);
        }
        for r in &mut out {
            r.status = Status::Inconclusive;
            r.observed = "logs not visible".into();
            r.detail = "the verifier did not start the service, so it cannot read its logs".into();
        }
        return out;
    };
    let mut not_json = Vec::new();
    let mut request_lines = 0u64;
    let mut lacking = Vec::new();
    let mut leaks = Vec::new();
    let lines = &captured.stdout;
    if spec.no_emails {
        for line in &captured.stderr {
            for e in unmasked_emails(line) {
                leaks.push(format!("{e} in (stderr): {line}"));
            }
        }
    }
    for line in lines {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(o)) => {
                if o.get("msg").and_then(|m| m.as_str()) == Some(spec.request_message.as_str()) {
                    request_lines += 1;
                    let missing: Vec<&str> = spec
                        .ids
                        .iter()
                        .filter(|id| {
                            o.get(id.as_str())
                                .and_then(|v| v.as_str())
                                .is_none_or(str::is_empty)
                        })
                        .map(String::as_str)
                        .collect();
                    if !missing.is_empty() {
                        lacking.push(format!("lacks {}: {line}", missing.join(", ")));
                    }
                }
            }
            _ => not_json.push(line.clone()),
        }
        if spec.no_emails {
            for e in unmasked_emails(line) {
                leaks.push(format!("{e} in: {line}"));
            }
        }
    }
    let n = lines.len();
    if n == 0 {
        json.status = Status::Inconclusive;
        json.observed = "no log lines".into();
    } else if not_json.is_empty() {
        json.observed = format!("{n} lines, all JSON");
        json.detail = format!(
            "stdout, the log stream; {} stderr line(s) not held to it",
            captured.stderr.len()
        );
    } else {
        json.status = Status::Fail;
        json.observed = format!("{} of {n} lines are not JSON objects", not_json.len());
        json.evidence = not_json.into_iter().take(5).collect();
    }
    if request_lines == 0 {
        ids.status = Status::Inconclusive;
        ids.observed = format!("no `{}` lines among {n}", spec.request_message);
        ids.detail = "the service's log level may hide its access lines".into();
    } else if lacking.is_empty() {
        ids.observed = format!("{request_lines} request lines, all with ids");
    } else {
        ids.status = Status::Fail;
        ids.observed = format!(
            "{} of {request_lines} request lines lack an id",
            lacking.len()
        );
        ids.evidence = lacking.into_iter().take(5).collect();
    }
    let mut out = vec![json, ids];
    if spec.no_emails {
        if n + captured.stderr.len() == 0 {
            pii.status = Status::Inconclusive;
            pii.observed = "no log lines".into();
        } else if leaks.is_empty() {
            pii.observed = format!("none in {} lines", n + captured.stderr.len());
        } else {
            pii.status = Status::Fail;
            pii.observed = format!("{} email address(es) in clear", leaks.len());
            pii.evidence = leaks.into_iter().take(5).collect();
        }
        out.push(pii);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_in_clear_are_found_and_masked_ones_are_not() {
        assert_eq!(
            unmasked_emails(r#"{"customer_email":"smoke-1@example.com"}"#),
            vec!["smoke-1@example.com"]
        );
        assert!(unmasked_emails(r#"{"customer_email":"s***@example.com"}"#).is_empty());
        assert!(unmasked_emails("user@localhost and @example.com").is_empty());
    }
}
