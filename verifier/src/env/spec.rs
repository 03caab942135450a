//! The `environment:` section of a scenario.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::scenario::locate::Seg;
use crate::scenario::{Dur, FieldError};

/// Where the target and its dependencies come from.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum EnvironmentSpec {
    /// Just a target URL (`--target` or the scenario's `target`); no faults.
    #[default]
    None,
    /// Everything already runs (staging); faults go through its Toxiproxy.
    External(ExternalSpec),
    /// The verifier starts the dependencies as containers and the service as a process.
    Testcontainers(ContainersSpec),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalSpec {
    /// Toxiproxy API URL, e.g. `http://toxiproxy.staging.internal:8474`.
    pub toxiproxy: String,
    /// Dependency name → the Toxiproxy proxy in front of it.
    pub proxies: BTreeMap<String, String>,
    /// Call Toxiproxy's `/reset` before the run (re-enables every proxy, removes every toxic,
    /// also other people's). Off by default: the run removes exactly the toxics it added.
    #[serde(default)]
    pub reset: bool,
}

/// A dependency the testcontainers provider knows how to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dependency {
    /// PostgreSQL (user, password and database `kit`).
    Postgres,
    Redis,
    /// nats-server with JetStream.
    Nats,
    /// The payments stand-in (`reference-service/cmd/paymentsim`).
    Payments,
}

impl Dependency {
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::Nats => "nats",
            Self::Payments => "payments",
        }
    }

    /// The port the dependency listens on inside its container.
    pub fn port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::Redis => 6379,
            Self::Nats => 4222,
            Self::Payments => 8090,
        }
    }

    /// The `KIT_IMAGE_*` variable naming its image.
    pub fn image_var(self) -> &'static str {
        match self {
            Self::Postgres => "KIT_IMAGE_POSTGRES",
            Self::Redis => "KIT_IMAGE_REDIS",
            Self::Nats => "KIT_IMAGE_NATS",
            Self::Payments => "KIT_IMAGE_PAYMENTSIM",
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainersSpec {
    /// Dependencies to start, each behind its own Toxiproxy proxy.
    pub dependencies: Vec<Dependency>,
    /// The service under test.
    pub service: ServiceSpec,
    /// How long each container and the service may take to become ready.
    #[serde(default = "default_startup")]
    pub startup_timeout: Dur,
}

fn default_startup() -> Dur {
    Dur(std::time::Duration::from_secs(90))
}

/// The service under test, started as a process on this machine.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Program and arguments, e.g. `[target/bin/service]`; relative paths are taken from the
    /// current directory.
    pub command: Vec<String>,
    /// Environment for the process. Values may use `${postgres.addr}` (host:port of the proxy in
    /// front of postgres; likewise `redis`, `nats`, `payments`), `${<dep>.host}`, `${<dep>.port}`,
    /// `${payments.control}` (the stand-in's own address, unproxied) and `${service.addr}` /
    /// `${service.port}` (a free loopback port chosen for the service), and `${env.NAME}` (the
    /// verifier's own environment, e.g. for a secret).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Path polled until it answers 200, e.g. `/readyz`.
    #[serde(default = "default_ready")]
    pub ready_path: String,
    /// Grace between SIGTERM and SIGKILL when the run ends.
    #[serde(default = "default_grace")]
    pub shutdown_grace: Dur,
}

fn default_ready() -> String {
    "/readyz".into()
}

fn default_grace() -> Dur {
    Dur(std::time::Duration::from_secs(10))
}

/// The placeholders a service's env may use, given the dependencies started.
pub fn placeholders(deps: &[Dependency]) -> Vec<String> {
    let mut out = vec!["service.addr".to_owned(), "service.port".to_owned()];
    for d in deps {
        for attr in ["addr", "host", "port"] {
            out.push(format!("{}.{attr}", d.name()));
        }
        if *d == Dependency::Payments {
            out.push("payments.control".into());
        }
    }
    out
}

/// Replaces `${name}` placeholders from `vars`, and `${env.NAME}` from the verifier's own
/// environment; an unknown or unset one is an error naming it.
pub fn expand(value: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{value}` has an unclosed `${{`"))?;
        let name = &after[..end];
        if let Some(var) = name.strip_prefix("env.") {
            match std::env::var(var) {
                Ok(v) => out.push_str(&v),
                Err(_) => {
                    return Err(format!(
                        "`${{{name}}}` needs the environment variable {var}, which is not set"
                    ));
                }
            }
            rest = &after[end + 1..];
            continue;
        }
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => {
                let known: Vec<_> = vars.keys().map(String::as_str).collect();
                return Err(format!(
                    "`${{{name}}}` is not known here; known: {}",
                    known.join(", ")
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks every env value's placeholders when the scenario is read. `${env.NAME}` is checked
/// only for its form here; whether the variable is set is the plan's check ([`check_env_vars`]).
pub fn validate_service_env(spec: &ContainersSpec) -> Result<(), FieldError> {
    let vars: BTreeMap<String, String> = placeholders(&spec.dependencies)
        .into_iter()
        .map(|k| (k, String::new()))
        .collect();
    if spec.service.command.is_empty() {
        return Err(FieldError::at(
            "service.command",
            "the service needs a command to start",
        ));
    }
    for (k, v) in &spec.service.env {
        // The variable's name is one key, whatever it holds.
        let blame =
            |m: String| FieldError::new(vec![Seg::Key(k.clone())], m).under(&["service", "env"]);
        for name in placeholder_names(v).map_err(blame)? {
            if !name.starts_with("env.") && !vars.contains_key(name) {
                let known: Vec<_> = vars.keys().map(String::as_str).collect();
                return Err(blame(format!(
                    "`${{{name}}}` is not known here; known: {}, env.NAME",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// The `${env.NAME}` variables a service's environment needs that are not set: checked before
/// anything starts, so a missing secret is a usage error, not a failed start.
pub fn check_env_vars(
    spec: &ContainersSpec,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    for (k, v) in &spec.service.env {
        for name in placeholder_names(v).unwrap_or_default() {
            if let Some(var) = name.strip_prefix("env.")
                && getenv(var).is_none()
            {
                return Err((
                    k.clone(),
                    format!("needs the environment variable {var}, which is not set"),
                ));
            }
        }
    }
    Ok(())
}

fn placeholder_names(value: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{value}` has an unclosed `${{`"))?;
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_known_placeholders_and_names_unknown_ones() {
        let vars = BTreeMap::from([
            ("postgres.addr".to_owned(), "127.0.0.1:5".to_owned()),
            ("service.port".to_owned(), "9".to_owned()),
        ]);
        assert_eq!(
            expand(
                "postgres://kit:kit@${postgres.addr}/kit:${service.port}",
                &vars
            )
            .unwrap(),
            "postgres://kit:kit@127.0.0.1:5/kit:9"
        );
        assert_eq!(
            expand("${env.PATH}", &vars).unwrap(),
            std::env::var("PATH").unwrap()
        );
        let unset = expand("${env.KIT_SURELY_UNSET_VARIABLE}", &vars).unwrap_err();
        assert!(
            unset.contains("KIT_SURELY_UNSET_VARIABLE") && unset.contains("not set"),
            "{unset}"
        );
        let e = expand("${mysql.addr}", &vars).unwrap_err();
        assert!(
            e.contains("`${mysql.addr}`") && e.contains("postgres.addr"),
            "{e}"
        );
        assert!(
            expand("${postgres.addr", &vars)
                .unwrap_err()
                .contains("unclosed")
        );
    }

    #[test]
    fn a_secret_from_the_environment_is_checked_apart_from_the_form() {
        let spec: ContainersSpec = serde_norway::from_str(
            "dependencies: [postgres]\nservice:\n  command: [svc]\n  env:\n    S: ${env.KIT_SURELY_UNSET_SECRET}\n",
        )
        .unwrap();
        assert!(validate_service_env(&spec).is_ok());
        let (key, e) = check_env_vars(&spec, &|_| None).unwrap_err();
        assert_eq!(key, "S");
        assert!(e.contains("KIT_SURELY_UNSET_SECRET"), "{e}");
        assert!(check_env_vars(&spec, &|_| Some("s3cret".into())).is_ok());
    }

    #[test]
    fn a_placeholder_for_a_dependency_not_started_is_refused_before_start() {
        let spec: ContainersSpec = serde_norway::from_str(
            "dependencies: [postgres]\nservice:\n  command: [svc]\n  env:\n    R: ${redis.addr}\n",
        )
        .unwrap();
        let e = validate_service_env(&spec).unwrap_err();
        let (field, msg) = (crate::scenario::locate::display_path(&e.path), e.message);
        assert_eq!(field, "service.env.R");
        assert!(msg.contains("redis.addr"), "{msg}");
    }
}
