//! One request and the answer it got, as the engines hand it to whoever samples exchanges (the
//! contract's conformance judge, probes): data and its presentation, no judging.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::scenario::Method;

/// One request and the answer it got, as much as judging and replaying it need.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: Method,
    /// The target's base URL (`http://host:port/prefix`), for the `curl` line.
    pub base: String,
    /// Path and query as sent, relative to `base`.
    pub path: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<Bytes>,
    pub status: u16,
    /// Response headers worth showing: content type, `Retry-After`, `Location`, ...
    pub response_headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Exchange {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The response media type, lowercase, without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(media_type)
    }

    /// The request as a `curl` command a person can paste. The bearer token is replaced by
    /// `$TOKEN` unless `keep_auth` (a probe's deliberately bad token is itself the evidence).
    pub fn curl(&self, keep_auth: bool) -> String {
        let mut s = format!(
            "curl -sS -i -X {} {}",
            self.method.as_str(),
            shell_quote(&format!("{}{}", self.base, self.path))
        );
        for (n, v) in &self.request_headers {
            if n.eq_ignore_ascii_case("authorization") && !keep_auth {
                let _ = write!(s, " -H \"{n}: Bearer $TOKEN\"");
            } else {
                let _ = write!(s, " -H {}", shell_quote(&format!("{n}: {v}")));
            }
        }
        if let Some(b) = &self.request_body {
            if b.len() > 2048 {
                let _ = write!(
                    s,
                    " --data-binary @body.bin  # {} bytes, starting {}",
                    b.len(),
                    shell_quote(&excerpt(&b[..64], 64))
                );
            } else {
                let _ = write!(
                    s,
                    " --data-raw {}",
                    shell_quote(&String::from_utf8_lossy(b))
                );
            }
        }
        s
    }

    /// `→ 201 application/json (Retry-After: 1): {"id":...}` for evidence.
    pub fn answer_line(&self) -> String {
        let mut s = format!("→ {}", self.status);
        for (n, v) in &self.response_headers {
            let _ = write!(s, " {n}: {v};");
        }
        let _ = write!(s, " body: {}", excerpt(&self.body, 300));
        s
    }
}

/// `application/json; charset=utf-8` → `application/json`.
pub fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// At most `max` characters of a body, lossily decoded, on one line.
pub fn excerpt(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out: String = s.chars().take(max).collect();
    out = out.replace(['\n', '\r'], " ");
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
