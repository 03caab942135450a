//! Judges one HTTP exchange against the contract: the operation exists, the status is declared
//! for it, the content type is declared for that status, the body matches the response schema,
//! and errors are RFC 9457 `application/problem+json`.
//!
//! Schemas are compiled once per response media type and cached: the document itself is the
//! root of every compiled schema, with a `$ref` to the response schema, so `$ref`s inside it
//! resolve against the document as OpenAPI 3.1 prescribes (its schemas are JSON Schema 2020-12).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use super::{Contract, escape_pointer};
use crate::load::exchange::{Exchange, media_type};
use crate::scenario::Method;

/// What is wrong with an exchange, and where in the document the rule lives.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub message: String,
    /// JSON Pointer into the document (`#/components/schemas/Item/properties/quantity/minimum`)
    /// of the rule that failed.
    pub schema_path: Option<String>,
}

/// The verdict on one exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The operation's id, `None` when the method and path are not in the document.
    pub operation: Option<String>,
    pub violations: Vec<Violation>,
}

pub type Compiled = Arc<Result<jsonschema::Validator, String>>;

/// Judges exchanges; cheap to share, validators compiled on first use.
pub struct Judge {
    contract: Arc<Contract>,
    draft: jsonschema::Draft,
    cache: Mutex<HashMap<String, Compiled>>,
}

impl Judge {
    pub fn new(contract: Arc<Contract>) -> Judge {
        let v = contract
            .doc
            .get("openapi")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        // 3.0 schemas are an extended subset of draft 4; 3.1 schemas are 2020-12.
        let draft = if v.starts_with("3.0") {
            jsonschema::Draft::Draft4
        } else {
            jsonschema::Draft::Draft202012
        };
        Judge {
            contract,
            draft,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    pub fn judge(&self, ex: &Exchange) -> Judgement {
        let path = ex.path.split(['?', '#']).next().unwrap_or("");
        let Some(op) = self.contract.find(ex.method, path) else {
            return Judgement {
                operation: None,
                violations: vec![Violation {
                    message: format!(
                        "{} {path} is not an operation of the contract",
                        ex.method.as_str()
                    ),
                    schema_path: Some("#/paths".into()),
                }],
            };
        };
        let violations = self.judge_operation(op, ex);
        Judgement {
            operation: Some(op.id.clone()),
            violations,
        }
    }

    fn judge_operation(&self, op: &super::Operation, ex: &Exchange) -> Vec<Violation> {
        let c = &*self.contract;
        let Some((at, response)) = c.response_for(op, ex.status) else {
            return vec![Violation {
                message: format!(
                    "status {} is not declared for {} (declared: {})",
                    ex.status,
                    op.id,
                    c.declared_statuses(op).join(", ")
                ),
                schema_path: Some(format!("#{}/responses", op.pointer)),
            }];
        };
        let mut out = Vec::new();
        if let Some(headers) = response.get("headers").and_then(|h| h.as_object()) {
            for name in headers.keys() {
                let (_, h) = c.resolve(&format!("{at}/headers/{}", escape_pointer(name)));
                let required = h.get("required").and_then(|r| r.as_bool()) == Some(true);
                if required && ex.header(name).is_none() {
                    out.push(Violation {
                        message: format!("required header `{name}` is missing"),
                        schema_path: Some(format!("#{at}/headers/{}", escape_pointer(name))),
                    });
                }
            }
        }
        let content = response.get("content").and_then(|c| c.as_object());
        let media = ex.media_type();
        let is_error = ex.status >= 400;
        let empty = ex.body.is_empty() || ex.method == Method::Head;
        let Some(content) = content.filter(|c| !c.is_empty()) else {
            if !empty {
                out.push(Violation {
                    message: format!(
                        "a body of {} bytes where the contract declares none",
                        ex.body.len()
                    ),
                    schema_path: Some(format!("#{at}")),
                });
            }
            return out;
        };
        if empty {
            // A declared body may be absent only for HEAD.
            if ex.method != Method::Head {
                out.push(Violation {
                    message: "no body where the contract declares one".into(),
                    schema_path: Some(format!("#{at}/content")),
                });
            }
            return out;
        }
        let Some(media) = media else {
            out.push(Violation {
                message: "no Content-Type on a response with a body".into(),
                schema_path: Some(format!("#{at}/content")),
            });
            return out;
        };
        let declared = content.keys().find(|k| media_matches(k, &media)).cloned();
        let Some(declared) = declared else {
            out.push(Violation {
                message: format!(
                    "content type `{media}` is not declared for status {} (declared: {})",
                    ex.status,
                    content.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                schema_path: Some(format!("#{at}/content")),
            });
            return out;
        };
        // Errors are problem details, unless the contract deliberately declares another type
        // for this very status (e.g. a health endpoint's 503).
        if is_error && media != "application/problem+json" && declared != media {
            out.push(Violation {
                message: format!(
                    "error status {} answered with `{media}`, not application/problem+json",
                    ex.status
                ),
                schema_path: Some(format!("#{at}/content")),
            });
            return out;
        }
        if !is_json(&media) {
            return out;
        }
        let schema_ptr = format!("{at}/content/{}/schema", escape_pointer(&declared));
        if c.doc.pointer(&schema_ptr).is_none() {
            return out;
        }
        let value: serde_json::Value = match serde_json::from_slice(&ex.body) {
            Ok(v) => v,
            Err(e) => {
                out.push(Violation {
                    message: format!("the body is not JSON: {e}"),
                    schema_path: Some(format!("#{schema_ptr}")),
                });
                return out;
            }
        };
        match &*self.compiled(&schema_ptr) {
            Err(e) => out.push(Violation {
                message: format!("the contract's schema does not compile: {e}"),
                schema_path: Some(format!("#{schema_ptr}")),
            }),
            Ok(v) => {
                for e in v.iter_errors(&value).take(3) {
                    let loc = e
                        .absolute_keyword_location()
                        .and_then(|u| u.as_str().split_once('#').map(|(_, f)| fragment_decode(f)))
                        .unwrap_or_else(|| e.schema_path().as_str().to_owned());
                    let inst = e.instance_path().as_str();
                    out.push(Violation {
                        message: format!(
                            "body at `{}`: {e}",
                            if inst.is_empty() { "/" } else { inst }
                        ),
                        schema_path: Some(format!("#{loc}")),
                    });
                }
            }
        }
        out
    }

    /// The compiled schema at `pointer`, compiled at most once.
    pub fn compiled(&self, pointer: &str) -> Compiled {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cache.get(pointer) {
            return v.clone();
        }
        let compiled = Arc::new(self.compile(pointer));
        cache.insert(pointer.to_owned(), compiled.clone());
        compiled
    }

    fn compile(&self, pointer: &str) -> Result<jsonschema::Validator, String> {
        let mut root = self.contract.doc.clone();
        let obj = root
            .as_object_mut()
            .ok_or_else(|| "the document is not an object".to_owned())?;
        obj.insert(
            "$ref".into(),
            format!("#{}", fragment_encode(pointer)).into(),
        );
        // The document's own `$schema`/`$id` would change how references resolve.
        obj.remove("$id");
        jsonschema::options()
            .with_draft(self.draft)
            .with_base_uri("urn:contract")
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| e.to_string())
    }
}

/// A JSON Pointer as a URI fragment (RFC 6901 §6): path templates bring `{` and `}`.
fn fragment_encode(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for b in pointer.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn fragment_decode(f: &str) -> String {
    let b = f.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = f
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// JSON and `+json` types (problem details among them).
pub fn is_json(media: &str) -> bool {
    let m = media_type(media);
    m == "application/json" || m.ends_with("+json")
}

/// A document media range (`application/json`, `application/*`, `*/*`) against a concrete type.
fn media_matches(range: &str, media: &str) -> bool {
    let range = media_type(range);
    range == media
        || range == "*/*"
        || range
            .strip_suffix("/*")
            .is_some_and(|t| media.split('/').next() == Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn contract() -> Arc<Contract> {
        let doc = json!({
            "openapi": "3.1.0",
            "paths": {
                "/v1/things/{id}": {"get": {"operationId": "getThing", "responses": {
                    "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "5XX": {"description": "err", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
                }}},
                "/health": {"get": {"operationId": "health", "responses": {
                    "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "503": {"description": "down", "content": {"application/json": {"schema": {"type": "object"}}}}
                }}},
                "/v1/empty": {"post": {"operationId": "empty", "responses": {
                    "204": {"description": "nothing"},
                    "default": {"$ref": "#/components/responses/NotFound"}
                }}}
            },
            "components": {
                "schemas": {
                    "Thing": {"type": "object", "required": ["id", "items"], "additionalProperties": false, "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}
                    }},
                    "Item": {"type": "object", "properties": {"quantity": {"type": "integer", "minimum": 1}}},
                    "Problem": {"type": "object", "required": ["title", "status"]}
                },
                "responses": {
                    "NotFound": {"description": "nf", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
                }
            }
        });
        Arc::new(Contract::from_doc("c.yaml".into(), doc).unwrap())
    }

    fn ex(method: Method, path: &str, status: u16, ctype: &str, body: &str) -> Exchange {
        Exchange {
            method,
            base: "http://127.0.0.1:1".into(),
            path: path.into(),
            request_headers: vec![("Authorization".into(), "Bearer secret".into())],
            request_body: None,
            status,
            response_headers: if ctype.is_empty() {
                vec![]
            } else {
                vec![("content-type".into(), ctype.into())]
            },
            body: Bytes::from(body.to_owned()),
        }
    }

    /// An answer to `GET /v1/things/abc`, the operation most cases probe.
    fn get_thing(status: u16, ctype: &str, body: &str) -> Exchange {
        ex(Method::Get, "/v1/things/abc", status, ctype, body)
    }

    const THING: &str = r#"{"id":"0193a9c2-6b1e-7c3d-9a55-1f2e3d4c5b6a","items":[{"quantity":2}]}"#;

    #[test]
    fn a_conforming_answer_passes_and_names_its_operation() {
        let j = Judge::new(contract());
        let r = j.judge(&ex(
            Method::Get,
            "/v1/things/abc?x=1",
            200,
            "application/json; charset=utf-8",
            THING,
        ));
        assert_eq!(r.operation.as_deref(), Some("getThing"));
        assert_eq!(r.violations, vec![]);
        let r = j.judge(&get_thing(
            404,
            "application/problem+json",
            r#"{"title":"nf","status":404}"#,
        ));
        assert_eq!(r.violations, vec![]);
        // A range (5XX) and `default` answer for statuses without their own entry.
        let r = j.judge(&get_thing(
            503,
            "application/problem+json",
            r#"{"title":"down","status":503}"#,
        ));
        assert_eq!(r.violations, vec![]);
        let r = j.judge(&ex(Method::Post, "/v1/empty", 204, "", ""));
        assert_eq!(r.violations, vec![]);
    }

    fn one(j: &Judge, e: Exchange) -> Violation {
        let r = j.judge(&e);
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        r.violations.into_iter().next().unwrap()
    }

    #[test]
    fn each_kind_of_mismatch_is_named_with_its_schema_path() {
        let j = Judge::new(contract());
        let v = one(&j, ex(Method::Delete, "/v1/things/abc", 200, "", ""));
        assert!(
            v.message
                .contains("DELETE /v1/things/abc is not an operation"),
            "{v:?}"
        );
        let v = one(&j, get_thing(418, "application/json", "{}"));
        assert!(
            v.message
                .contains("status 418 is not declared for getThing (declared: 200, 404, 5XX)"),
            "{v:?}"
        );
        let v = one(&j, get_thing(200, "text/html", "<p>"));
        assert!(
            v.message
                .contains("content type `text/html` is not declared"),
            "{v:?}"
        );
        let v = one(
            &j,
            get_thing(
                200,
                "application/json",
                r#"{"id":"0193a9c2-6b1e-7c3d-9a55-1f2e3d4c5b6a","items":[{"quantity":0}]}"#,
            ),
        );
        assert!(v.message.contains("body at `/items/0/quantity`"), "{v:?}");
        assert_eq!(
            v.schema_path.as_deref(),
            Some("#/components/schemas/Item/properties/quantity/minimum")
        );
        let v = one(
            &j,
            get_thing(200, "application/json", r#"{"id":"not-a-uuid","items":[]}"#),
        );
        assert!(v.message.contains("body at `/id`"), "{v:?}");
        let v = one(&j, get_thing(200, "application/json", "{nope"));
        assert!(v.message.contains("not JSON"), "{v:?}");
        // An error must be problem details...
        let v = one(
            &j,
            get_thing(404, "application/json", r#"{"title":"nf","status":404}"#),
        );
        assert!(
            v.message.contains(
                "error status 404 answered with `application/json`, not application/problem+json"
            ) || v
                .message
                .contains("content type `application/json` is not declared"),
            "{v:?}"
        );
        // ...unless the contract says otherwise for exactly this status.
        let r = j.judge(&ex(Method::Get, "/health", 503, "application/json", "{}"));
        assert_eq!(r.violations, vec![]);
        let v = one(
            &j,
            ex(Method::Post, "/v1/empty", 204, "text/plain", "surprise"),
        );
        assert!(
            v.message.contains("where the contract declares none"),
            "{v:?}"
        );
        let v = one(&j, get_thing(200, "application/json", ""));
        assert!(v.message.contains("no body"), "{v:?}");
    }

    #[test]
    fn curl_lines_hide_the_token_unless_it_is_the_evidence() {
        let mut e = ex(Method::Post, "/v1/things/it's", 200, "", "");
        e.request_body = Some(Bytes::from_static(br#"{"a":"b'c"}"#));
        let c = e.curl(false);
        assert_eq!(
            c,
            r#"curl -sS -i -X POST 'http://127.0.0.1:1/v1/things/it'\''s' -H "Authorization: Bearer $TOKEN" --data-raw '{"a":"b'\''c"}'"#
        );
        assert!(e.curl(true).contains("'Authorization: Bearer secret'"));
    }
}
