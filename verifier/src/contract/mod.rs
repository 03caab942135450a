//! The service's API contract: the OpenAPI document a scenario names in `contract.openapi`.
//! Functional checks look operations up here, and responses are judged against it
//! ([`judge`]); [`conformance`] tallies the verdicts of a whole run into rules.

pub mod conformance;
pub mod judge;

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::scenario::{Method, ScenarioError};

/// The scenario's `contract:` section.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractSpec {
    /// The OpenAPI 3.x document (YAML or JSON), relative to the scenario file.
    pub openapi: PathBuf,
    /// How many load responses are validated against the document.
    #[serde(default)]
    pub conformance: conformance::Sampling,
}

/// A loaded OpenAPI document.
#[derive(Debug, Clone)]
pub struct Contract {
    pub file: PathBuf,
    /// The whole document, for schema lookups (`$ref`s resolve against it).
    pub doc: serde_json::Value,
    pub operations: Vec<Operation>,
}

/// One operation of the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub id: String,
    pub method: Method,
    /// The path template as the document writes it, e.g. `/v1/orders/{id}`.
    pub path: String,
    /// JSON Pointer to the operation object inside `doc`.
    pub pointer: String,
}

impl Contract {
    /// Loads `spec.openapi`, resolved against the scenario file's directory.
    pub fn load(scenario_file: &Path, spec: &ContractSpec) -> Result<Contract, ScenarioError> {
        let file = match scenario_file.parent() {
            Some(dir) if spec.openapi.is_relative() => dir.join(&spec.openapi),
            _ => spec.openapi.clone(),
        };
        let err = |message: String| ScenarioError {
            file: scenario_file.to_owned(),
            line: None,
            column: None,
            field: "contract.openapi".into(),
            message,
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
        let doc: serde_json::Value = serde_norway::from_str(&text)
            .map_err(|e| err(format!("{} is not YAML or JSON: {e}", file.display())))?;
        Self::from_doc(file, doc).map_err(err)
    }

    /// Builds the operation index of an already parsed document.
    pub fn from_doc(file: PathBuf, doc: serde_json::Value) -> Result<Contract, String> {
        let version = doc.get("openapi").and_then(|v| v.as_str()).unwrap_or("");
        if !version.starts_with("3.") {
            return Err(format!(
                "{} is not an OpenAPI 3.x document (its `openapi` field is `{version}`)",
                file.display()
            ));
        }
        let mut operations = Vec::new();
        if let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) {
            for (path, item) in paths {
                let Some(item) = item.as_object() else {
                    continue;
                };
                for (m, op) in item {
                    let method = match m.as_str() {
                        "get" => Method::Get,
                        "post" => Method::Post,
                        "put" => Method::Put,
                        "patch" => Method::Patch,
                        "delete" => Method::Delete,
                        "head" => Method::Head,
                        _ => continue,
                    };
                    let id = op
                        .get("operationId")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("{} {path}", method.as_str()));
                    operations.push(Operation {
                        id,
                        method,
                        path: path.clone(),
                        pointer: format!("/paths/{}/{m}", escape_pointer(path)),
                    });
                }
            }
        }
        Ok(Contract {
            file,
            doc,
            operations,
        })
    }

    /// The operation with this `operationId`.
    pub fn by_id(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.id == id)
    }

    /// The operation a concrete request path (no query string) belongs to. A literal
    /// template segment wins over a `{param}` one, as OpenAPI prescribes.
    pub fn find(&self, method: Method, path: &str) -> Option<&Operation> {
        let want: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|o| o.method == method)
            .filter_map(|o| {
                let have: Vec<&str> = o.path.trim_end_matches('/').split('/').collect();
                if have.len() != want.len() {
                    return None;
                }
                let mut literal = 0;
                for (h, w) in have.iter().zip(&want) {
                    if h.starts_with('{') && h.ends_with('}') {
                        if w.is_empty() {
                            return None;
                        }
                    } else if h == w {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, o))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, o)| o)
    }

    /// The operation object itself.
    pub fn operation_doc(&self, op: &Operation) -> &serde_json::Value {
        self.doc
            .pointer(&op.pointer)
            .unwrap_or(&serde_json::Value::Null)
    }

    /// Follows local `$ref`s (`#/components/...`) from `pointer`; returns the object reached
    /// and its pointer. A dangling or external reference stops the walk where it is.
    pub fn resolve(&self, pointer: &str) -> (String, &serde_json::Value) {
        let mut at = pointer.to_owned();
        let mut v = self.doc.pointer(&at).unwrap_or(&serde_json::Value::Null);
        // Bounded: a reference cycle must not hang the run.
        for _ in 0..16 {
            let Some(r) = v.get("$ref").and_then(|r| r.as_str()) else {
                break;
            };
            let Some(next) = r.strip_prefix('#') else {
                break;
            };
            match self.doc.pointer(next) {
                Some(n) => {
                    at = next.to_owned();
                    v = n;
                }
                None => break,
            }
        }
        (at, v)
    }

    /// Follows local `$ref`s from a value already in hand (a parameter, a link, an example),
    /// bounded as [`Contract::resolve`] is; a dangling reference leaves the value as it is.
    pub fn resolve_value<'a>(&'a self, mut v: &'a serde_json::Value) -> &'a serde_json::Value {
        for _ in 0..16 {
            match v
                .get("$ref")
                .and_then(|r| r.as_str())
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|p| self.doc.pointer(p))
            {
                Some(next) => v = next,
                None => break,
            }
        }
        v
    }

    /// The response object declared for `status` (exact code, then `4XX`-style range, then
    /// `default`), with its resolved pointer; `None` when the status is undeclared.
    pub fn response_for(
        &self,
        op: &Operation,
        status: u16,
    ) -> Option<(String, &serde_json::Value)> {
        let responses = self.operation_doc(op).get("responses")?.as_object()?;
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        let key = responses
            .keys()
            .find(|k| **k == exact)
            .or_else(|| responses.keys().find(|k| k.eq_ignore_ascii_case(&range)))
            .or_else(|| responses.keys().find(|k| *k == "default"))?;
        Some(self.resolve(&format!("{}/responses/{}", op.pointer, escape_pointer(key))))
    }

    /// The status codes an operation declares, as the document writes them.
    pub fn declared_statuses(&self, op: &Operation) -> Vec<String> {
        self.operation_doc(op)
            .get("responses")
            .and_then(|r| r.as_object())
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the operation needs credentials: its own `security`, else the document's;
    /// an empty list (or a list with an empty requirement) means anonymous access.
    pub fn is_secured(&self, op: &Operation) -> bool {
        let sec = self
            .operation_doc(op)
            .get("security")
            .or_else(|| self.doc.get("security"));
        match sec.and_then(|s| s.as_array()) {
            Some(reqs) => {
                !reqs.is_empty()
                    && !reqs
                        .iter()
                        .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            }
            None => false,
        }
    }

    /// The JSON request body schema of an operation, as a pointer into `doc`.
    pub fn request_schema(&self, op: &Operation) -> Option<String> {
        let (at, body) = self.resolve(&format!("{}/requestBody", op.pointer));
        let content = body.get("content")?.as_object()?;
        let (media, _) = content.iter().find(|(m, _)| judge::is_json(m))?;
        Some(format!("{at}/content/{}/schema", escape_pointer(media)))
    }

    /// Every operation a scenario step calls must exist in the document: a step against an
    /// unknown path would otherwise only show up as undeclared responses after the load.
    pub fn check_steps(
        &self,
        journeys: &[crate::scenario::Journey],
    ) -> Result<(), (usize, usize, String)> {
        for (ji, j) in journeys.iter().enumerate() {
            for (si, st) in j.steps.iter().enumerate() {
                let shape = path_shape(&st.path);
                let path = shape.split('?').next().unwrap_or("");
                if self.find(st.method, path).is_none() {
                    return Err((
                        ji,
                        si,
                        format!(
                            "{} {} is not an operation of {} (it declares: {})",
                            st.method.as_str(),
                            path,
                            self.file.display(),
                            self.operations
                                .iter()
                                .map(|o| format!("{} {}", o.method.as_str(), o.path))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A step's path with every expression replaced by one placeholder character, which matches
/// a `{param}` segment of the document (and no literal one).
fn path_shape(t: &crate::scenario::Template) -> String {
    use crate::scenario::template::Part;
    t.parts()
        .iter()
        .map(|p| match p {
            Part::Lit(l) => l.as_str(),
            _ => "\u{1}",
        })
        .collect()
}

pub fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Contract {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.yaml");
        Contract::load(
            &root,
            &ContractSpec {
                openapi: "../reference-service/api/openapi.yaml".into(),
                conformance: Default::default(),
            },
        )
        .unwrap()
    }

    #[test]
    fn finds_operations_by_id_and_by_concrete_path() {
        let c = shipped();
        let create = c.by_id("createOrder").unwrap();
        assert_eq!(
            (create.method, create.path.as_str()),
            (Method::Post, "/v1/orders")
        );
        assert_eq!(
            c.find(Method::Get, "/v1/orders/abc").unwrap().id,
            "getOrder"
        );
        assert_eq!(
            c.find(Method::Post, "/v1/orders/abc/cancel").unwrap().id,
            "cancelOrder"
        );
        assert!(c.find(Method::Delete, "/v1/orders/abc").is_none());
        assert!(c.find(Method::Get, "/v1/nothing").is_none());
        assert!(c.operation_doc(create).get("responses").is_some());
    }

    #[test]
    fn a_document_that_is_not_openapi_3_is_named() {
        let e =
            Contract::from_doc("x.yaml".into(), serde_json::json!({"swagger": "2.0"})).unwrap_err();
        assert!(e.contains("x.yaml is not an OpenAPI 3.x document"), "{e}");
    }
}
