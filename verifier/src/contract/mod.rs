//! The service's API contract: the OpenAPI document a scenario names in `contract.openapi`.
//! Functional checks look operations up here, and responses are judged against it.

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
}

fn escape_pointer(s: &str) -> String {
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
