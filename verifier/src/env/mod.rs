//! Environment providers: where the target and its dependencies come from.
//!
//! - `none`: a target URL and nothing else; faults are not possible.
//! - `external` (staging): everything already runs; the scenario names a Toxiproxy API and the
//!   proxy in front of each dependency. The verifier starts and stops nothing.
//! - `testcontainers`: the verifier starts the dependencies as containers, a Toxiproxy in front of
//!   each, and the service under test as a process, waits for readiness, and removes all of it
//!   afterwards.
//!
//! Every provider yields the same [`Environment`]: a target, and an [`Injector`] plus the
//! [`Capabilities`] the fault plan is validated against before anything starts.

pub mod containers;
pub mod images;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::fault::plan::Capabilities;
use crate::fault::timeline::Injector;
use crate::fault::toxiproxy;

pub use spec::{ContainersSpec, Dependency, EnvironmentSpec, ExternalSpec, ServiceSpec};

/// Why an environment could not be brought up: exit code 3.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{what} did not become ready within {secs} s{}", last_lines(.logs))]
    NotReady {
        what: String,
        secs: u64,
        logs: Vec<String>,
    },
    #[error("{what} exited before it was ready ({status}){}", last_lines(.logs))]
    Exited {
        what: String,
        status: String,
        logs: Vec<String>,
    },
    #[error("starting {what}: {message}")]
    Start { what: String, message: String },
    #[error("the Toxiproxy at {url} is not usable: {source}")]
    Toxiproxy {
        url: String,
        #[source]
        source: toxiproxy::ToxiproxyError,
    },
    #[error(
        "the external environment names proxy `{proxy}` for `{dependency}`, but the Toxiproxy at {url} has no such proxy (it has: {known})"
    )]
    UnknownProxy {
        dependency: String,
        proxy: String,
        url: String,
        known: String,
    },
}

fn last_lines(logs: &[String]) -> String {
    if logs.is_empty() {
        String::new()
    } else {
        format!("; its last log lines:\n  {}", logs.join("\n  "))
    }
}

/// A brought-up environment. Call [`Environment::down`] when done; dropping it also removes the
/// containers and kills the service process, but cannot report what went wrong.
pub struct Environment {
    /// Base URL of the service under test, when the provider knows it.
    pub target: Option<String>,
    /// Base URL of the baseline service of a paired comparison, when the provider started one.
    pub baseline_target: Option<String>,
    /// Where faults land; `None` for the `none` provider.
    pub injector: Option<Arc<Injector>>,
    /// Direct (unproxied) addresses for read-backs: `postgres.url`, `nats.url`,
    /// `payments.control`, ...
    pub endpoints: BTreeMap<String, String>,
    inner: Inner,
}

enum Inner {
    Nothing,
    External,
    Containers(Box<containers::Running>),
}

impl Environment {
    /// What a fault plan can use here, without starting anything: checked before any load.
    pub fn capabilities(spec: &EnvironmentSpec) -> Capabilities {
        match spec {
            EnvironmentSpec::None => Capabilities {
                dependencies: BTreeSet::new(),
                container_actions: false,
                provider: "none",
            },
            EnvironmentSpec::External(e) => Capabilities {
                dependencies: e.proxies.keys().cloned().collect(),
                container_actions: false,
                provider: "external",
            },
            EnvironmentSpec::Testcontainers(c) => Capabilities {
                dependencies: c.dependencies.iter().map(|d| d.name().to_owned()).collect(),
                container_actions: true,
                provider: "testcontainers",
            },
        }
    }

    /// Brings the environment up. For `external`, checks that the Toxiproxy answers and has every
    /// named proxy; it resets it only when the scenario says so (`reset: true`), since a shared
    /// staging Toxiproxy may carry other people's toxics.
    pub async fn up(spec: &EnvironmentSpec) -> Result<Self, EnvError> {
        Self::up_with(spec, None).await
    }

    /// [`Environment::up`], starting `baseline` beside the service under test (a paired
    /// comparison's baseline; only the `testcontainers` provider starts services).
    pub async fn up_with(
        spec: &EnvironmentSpec,
        baseline: Option<&ServiceSpec>,
    ) -> Result<Self, EnvError> {
        match spec {
            EnvironmentSpec::None => Ok(Self {
                baseline_target: None,
                target: None,
                injector: None,
                endpoints: BTreeMap::new(),
                inner: Inner::Nothing,
            }),
            EnvironmentSpec::External(e) => {
                let client =
                    toxiproxy::Client::new(e.toxiproxy.clone()).map_err(|e| EnvError::Start {
                        what: "the Toxiproxy client".into(),
                        message: e.to_string(),
                    })?;
                let tp_err = |source| EnvError::Toxiproxy {
                    url: e.toxiproxy.clone(),
                    source,
                };
                let known: BTreeSet<String> = client
                    .proxies()
                    .await
                    .map_err(tp_err)?
                    .into_iter()
                    .map(|p| p.name)
                    .collect();
                for (dependency, proxy) in &e.proxies {
                    if !known.contains(proxy) {
                        return Err(EnvError::UnknownProxy {
                            dependency: dependency.clone(),
                            proxy: proxy.clone(),
                            url: e.toxiproxy.clone(),
                            known: known.iter().cloned().collect::<Vec<_>>().join(", "),
                        });
                    }
                }
                if e.reset {
                    client.reset().await.map_err(tp_err)?;
                }
                Ok(Self {
                    target: None,
                    baseline_target: None,
                    injector: Some(Arc::new(Injector {
                        toxiproxy: client,
                        proxies: e.proxies.clone(),
                        containers: None,
                    })),
                    endpoints: BTreeMap::new(),
                    inner: Inner::External,
                })
            }
            EnvironmentSpec::Testcontainers(c) => {
                let running = containers::Running::up(c, baseline).await?;
                Ok(Self {
                    target: Some(running.target.clone()),
                    baseline_target: running.baseline_target.clone(),
                    injector: Some(running.injector.clone()),
                    endpoints: running.endpoints.clone(),
                    inner: Inner::Containers(Box::new(running)),
                })
            }
        }
    }

    /// Tears down what the provider started and returns the problems it met, for the report.
    /// (The fault timeline has already reverted its own faults and reported any it could not.)
    /// The service's output, when this environment runs the service itself.
    pub fn service_capture(&self) -> Option<Arc<containers::LogCapture>> {
        match &self.inner {
            Inner::Containers(r) => r.service_capture(),
            _ => None,
        }
    }

    pub async fn down(self) -> Vec<String> {
        let Self {
            injector, inner, ..
        } = self;
        // The containers are removed once the last holder lets go; this is ours.
        drop(injector);
        match inner {
            Inner::Nothing | Inner::External => Vec::new(),
            Inner::Containers(running) => running.down().await,
        }
    }
}
