//! The testcontainers provider: dependencies as containers on a private network, a Toxiproxy in
//! front of each, the service under test as a local process wired to the proxies.
//!
//! Containers carry the label `io.deliverykit.managed=true` (the sweep in `platform/sweep.sh`
//! removes what a killed run leaves) and are removed on [`Running::down`] or when dropped. Test
//! and load traffic reaches published ports on 127.0.0.1 only.

use std::collections::{BTreeMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::EnvError;
use super::spec::{ContainersSpec, Dependency, expand, placeholders};
use crate::fault::timeline::{BoxFuture, ContainerControl, Injector};
use crate::fault::toxiproxy;

pub const MANAGED_LABEL: &str = "io.deliverykit.managed";
const FIRST_PROXY_PORT: u16 = 8666;
const LOG_LINES: usize = 20;
/// What the service says during a run is kept for the observability checks up to these bounds;
/// past them lines are counted, not kept.
pub const CAPTURE_LINES: usize = 200_000;
pub const CAPTURE_BYTES: usize = 64 << 20;

/// The service's output lines, stdout (its log stream) and stderr apart, bounded together in
/// count and bytes; and, whatever the bounds, its last lines in order for error messages.
#[derive(Debug, Default)]
pub struct LogCapture {
    inner: Mutex<Captured>,
}

/// What a [`LogCapture`] holds.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    bytes: usize,
    /// Lines past the bounds, counted but not kept.
    pub dropped: u64,
    /// The last `LOG_LINES` lines of both streams, interleaved as they came.
    last: VecDeque<String>,
}

impl LogCapture {
    /// A line the service wrote to stdout.
    pub fn push(&self, line: &str) {
        self.push_to(false, line);
    }

    pub fn push_to(&self, stderr: bool, line: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.last.len() == LOG_LINES {
            g.last.pop_front();
        }
        g.last.push_back(line.to_owned());
        if g.stdout.len() + g.stderr.len() >= CAPTURE_LINES || g.bytes + line.len() > CAPTURE_BYTES
        {
            g.dropped += 1;
        } else {
            g.bytes += line.len();
            if stderr {
                g.stderr.push(line.to_owned());
            } else {
                g.stdout.push(line.to_owned());
            }
        }
    }

    pub fn snapshot(&self) -> Captured {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last lines the service wrote, for an error message.
    fn last_lines(&self) -> Vec<String> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.last.iter().cloned().collect()
    }
}

/// A running testcontainers environment.
pub struct Running {
    pub target: String,
    pub injector: Arc<Injector>,
    pub endpoints: BTreeMap<String, String>,
    containers: Arc<Containers>,
    toxiproxy: ContainerAsync<GenericImage>,
    service: Option<Service>,
    /// A paired comparison's baseline service, beside the service under test.
    baseline: Option<Service>,
    pub baseline_target: Option<String>,
}

/// The dependency containers by dependency name, for container faults.
pub struct Containers(BTreeMap<String, ContainerAsync<GenericImage>>);

impl Containers {
    fn get(&self, dep: &str) -> anyhow::Result<&ContainerAsync<GenericImage>> {
        self.0
            .get(dep)
            .ok_or_else(|| anyhow::anyhow!("no container runs `{dep}`"))
    }
}

impl ContainerControl for Containers {
    fn pause<'a>(&'a self, dep: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.get(dep)?.pause().await?) })
    }
    fn unpause<'a>(&'a self, dep: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.get(dep)?.unpause().await?) })
    }
    fn stop<'a>(&'a self, dep: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.get(dep)?.stop().await?) })
    }
    fn start<'a>(&'a self, dep: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.get(dep)?.start().await?) })
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("kit-{prefix}-{}-{nanos:x}", std::process::id())
}

/// The image a `KIT_IMAGE_*` variable names (or its default), split into name and tag.
pub fn image(var: &str) -> (String, String) {
    let reference = super::images::image(var).unwrap_or_else(|| var.to_owned());
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) => (
            reference[..slash + i].to_owned(),
            reference[slash + i + 1..].to_owned(),
        ),
        None => (reference, "latest".to_owned()),
    }
}

fn managed(
    req: ContainerRequest<GenericImage>,
    startup: Duration,
) -> ContainerRequest<GenericImage> {
    req.with_label(MANAGED_LABEL, "true")
        .with_label("io.deliverykit.run", std::process::id().to_string())
        .with_startup_timeout(startup)
}

/// Maps a start failure to an environment error carrying the container's last log lines.
fn start_error(what: &str, var: &str, e: testcontainers::TestcontainersError) -> EnvError {
    let reference = super::images::image(var).unwrap_or_default();
    let message = e.to_string();
    let hint = if message.contains("pull") {
        format!(" (image {reference} is not present locally; run platform/images.sh, or set {var})")
    } else {
        String::new()
    };
    EnvError::Start {
        what: what.to_owned(),
        message: format!("{message}{hint}"),
    }
}

async fn start_dependency(
    dep: Dependency,
    network: &str,
    name: &str,
    startup: Duration,
) -> Result<ContainerAsync<GenericImage>, EnvError> {
    let (img, tag) = image(dep.image_var());
    let mut image = GenericImage::new(img, tag);
    image = match dep {
        // The initialisation server's readiness line goes to stdout, the real server's to stderr.
        Dependency::Postgres => image
            .with_exposed_port(ContainerPort::Tcp(dep.port()))
            .with_wait_for(WaitFor::message_on_stdout(
                "database system is ready to accept connections",
            ))
            .with_wait_for(WaitFor::message_on_stderr(
                "database system is ready to accept connections",
            )),
        Dependency::Redis => {
            image.with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        }
        Dependency::Nats => image
            .with_exposed_port(ContainerPort::Tcp(dep.port()))
            .with_wait_for(WaitFor::message_on_stderr("Server is ready")),
        Dependency::Payments => image
            .with_exposed_port(ContainerPort::Tcp(dep.port()))
            .with_wait_for(WaitFor::message_on_either_std("listening")),
    };
    let mut req = image.with_network(network).with_container_name(name);
    if dep == Dependency::Postgres {
        req = req
            .with_env_var("POSTGRES_USER", "kit")
            .with_env_var("POSTGRES_PASSWORD", "kit")
            .with_env_var("POSTGRES_DB", "kit");
    }
    if dep == Dependency::Nats {
        req = req.with_cmd(["-js", "-sd", "/data", "-m", "8222"]);
    }
    match managed(req, startup).start().await {
        Ok(c) => Ok(c),
        Err(e) => {
            let logs = container_logs(name).await;
            let err = start_error(dep.name(), dep.image_var(), e);
            Err(match (err, logs.is_empty()) {
                (EnvError::Start { what, message }, false) => EnvError::NotReady {
                    what: format!("the {what} container ({message})"),
                    secs: startup.as_secs(),
                    logs,
                },
                (err, _) => err,
            })
        }
    }
}

/// The last lines a container printed, for an error message. testcontainers has already
/// dropped its handle when a start fails, so this asks the engine by name (the container is
/// still there until the drop's removal completes, or until the sweep).
async fn container_logs(name: &str) -> Vec<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        Command::new("docker")
            .args(["logs", "--tail", &LOG_LINES.to_string(), name])
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match out {
        Ok(Ok(o)) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&o.stderr).lines())
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .take(LOG_LINES)
            .rev()
            .collect(),
        _ => Vec::new(),
    }
}

async fn host_port(
    c: &ContainerAsync<GenericImage>,
    port: u16,
    what: &str,
) -> Result<u16, EnvError> {
    c.get_host_port_ipv4(ContainerPort::Tcp(port))
        .await
        .map_err(|e| EnvError::Start {
            what: what.to_owned(),
            message: format!("port {port} is not published: {e}"),
        })
}

impl Running {
    /// `baseline`: a second service to start against the same dependencies (a paired
    /// comparison's), with its own loopback port.
    pub async fn up(
        spec: &ContainersSpec,
        baseline: Option<&super::ServiceSpec>,
    ) -> Result<Self, EnvError> {
        let startup = spec.startup_timeout.0;
        let network = unique("env");

        // Dependencies and Toxiproxy start concurrently; a failure drops the ones that started,
        // which removes them.
        let names: Vec<(Dependency, String)> = spec
            .dependencies
            .iter()
            .map(|d| (*d, unique(d.name())))
            .collect();
        let deps = futures::future::join_all(
            names
                .iter()
                .map(|(d, n)| start_dependency(*d, &network, n, startup)),
        );
        let (tp_img, tp_tag) = image("KIT_IMAGE_TOXIPROXY");
        let mut tp = GenericImage::new(tp_img, tp_tag).with_exposed_port(ContainerPort::Tcp(8474));
        for i in 0..names.len() as u16 {
            tp = tp.with_exposed_port(ContainerPort::Tcp(FIRST_PROXY_PORT + i));
        }
        let tp = managed(tp.with_network(&network), startup).start();
        let (deps, tp) = tokio::join!(deps, tp);
        let toxiproxy = tp.map_err(|e| start_error("toxiproxy", "KIT_IMAGE_TOXIPROXY", e))?;
        let mut started = BTreeMap::new();
        for ((dep, _), c) in names.iter().zip(deps) {
            started.insert(dep.name().to_owned(), c?);
        }

        let api_port = host_port(&toxiproxy, 8474, "toxiproxy").await?;
        let api_url = format!("http://127.0.0.1:{api_port}");
        let client = toxiproxy::Client::new(api_url.clone()).map_err(|e| EnvError::Start {
            what: "the Toxiproxy client".into(),
            message: e.to_string(),
        })?;
        wait_for(startup, "toxiproxy", || async {
            client.version().await.is_ok()
        })
        .await?;
        client.reset().await.map_err(|source| EnvError::Toxiproxy {
            url: api_url.clone(),
            source,
        })?;

        let mut vars = BTreeMap::new();
        let mut proxies = BTreeMap::new();
        let mut endpoints = BTreeMap::new();
        endpoints.insert("toxiproxy.api".to_owned(), api_url.clone());
        for (i, (dep, container_name)) in names.iter().enumerate() {
            let listen_port = FIRST_PROXY_PORT + i as u16;
            client
                .create_proxy(
                    dep.name(),
                    &format!("0.0.0.0:{listen_port}"),
                    &format!("{container_name}:{}", dep.port()),
                )
                .await
                .map_err(|source| EnvError::Toxiproxy {
                    url: api_url.clone(),
                    source,
                })?;
            proxies.insert(dep.name().to_owned(), dep.name().to_owned());
            let port = host_port(&toxiproxy, listen_port, "toxiproxy").await?;
            vars.insert(format!("{}.addr", dep.name()), format!("127.0.0.1:{port}"));
            vars.insert(format!("{}.host", dep.name()), "127.0.0.1".to_owned());
            vars.insert(format!("{}.port", dep.name()), port.to_string());
        }
        // Direct addresses for read-backs that must not go through a fault.
        for dep in &spec.dependencies {
            let c = &started[dep.name()];
            match dep {
                Dependency::Postgres => {
                    let p = host_port(c, 5432, "postgres").await?;
                    endpoints.insert(
                        "postgres.url".into(),
                        format!("postgres://kit:kit@127.0.0.1:{p}/kit?sslmode=disable"),
                    );
                }
                Dependency::Nats => {
                    let p = host_port(c, 4222, "nats").await?;
                    endpoints.insert("nats.url".into(), format!("nats://127.0.0.1:{p}"));
                }
                Dependency::Payments => {
                    let p = host_port(c, 8090, "payments").await?;
                    let control = format!("http://127.0.0.1:{p}");
                    vars.insert("payments.control".into(), control.clone());
                    endpoints.insert("payments.control".into(), control);
                }
                Dependency::Redis => {}
            }
        }

        let port = free_port().map_err(|e| EnvError::Start {
            what: "the service".into(),
            message: format!("no free loopback port: {e}"),
        })?;
        vars.insert("service.addr".into(), format!("127.0.0.1:{port}"));
        vars.insert("service.port".into(), port.to_string());
        debug_assert!(
            placeholders(&spec.dependencies)
                .iter()
                .all(|k| vars.contains_key(k))
        );

        let target = format!("http://127.0.0.1:{port}");
        let containers = Arc::new(Containers(started));
        let injector = Arc::new(Injector {
            toxiproxy: client,
            proxies,
            containers: Some(containers.clone()),
        });
        let mut running = Self {
            target: target.clone(),
            injector,
            endpoints,
            containers,
            toxiproxy,
            service: None,
            baseline: None,
            baseline_target: None,
        };
        let service = Service::start(&spec.service, &vars)?;
        let ready_url = format!("{target}{}", spec.service.ready_path);
        running.service = Some(service);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| EnvError::Start {
                what: "the readiness probe".into(),
                message: e.to_string(),
            })?;
        let svc = running.service.as_mut().expect("just set");
        svc.wait_ready(&http, &ready_url, startup).await?;
        if let Some(b) = baseline {
            let port = free_port().map_err(|e| EnvError::Start {
                what: "the baseline service".into(),
                message: format!("no free loopback port: {e}"),
            })?;
            vars.insert("service.addr".into(), format!("127.0.0.1:{port}"));
            vars.insert("service.port".into(), port.to_string());
            let target = format!("http://127.0.0.1:{port}");
            let ready_url = format!("{target}{}", b.ready_path);
            running.baseline = Some(Service::start(b, &vars)?);
            let svc = running.baseline.as_mut().expect("just set");
            svc.wait_ready(&http, &ready_url, startup).await?;
            running.baseline_target = Some(target);
        }
        Ok(running)
    }

    /// Stops the service (SIGTERM, then SIGKILL after its grace) and removes the containers.
    pub async fn down(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for svc in [self.service.take(), self.baseline.take()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = svc.stop().await {
                problems.push(e);
            }
        }
        // Containers are removed as they drop; the injector holds the last other reference.
        drop(self.injector);
        match Arc::try_unwrap(self.containers) {
            Ok(c) => {
                for (name, container) in c.0 {
                    if let Err(e) = container.rm().await {
                        problems.push(format!("could not remove the {name} container: {e}"));
                    }
                }
            }
            Err(_) => problems.push(
                "a fault task still holds the containers; they are removed when it ends".into(),
            ),
        }
        if let Err(e) = self.toxiproxy.rm().await {
            problems.push(format!("could not remove the toxiproxy container: {e}"));
        }
        problems
    }

    /// Everything the service process said, within the capture's bounds.
    pub fn service_capture(&self) -> Option<Arc<LogCapture>> {
        self.service.as_ref().map(|s| s.capture.clone())
    }

    /// The service process's last log lines.
    pub fn service_logs(&self) -> Vec<String> {
        self.service
            .as_ref()
            .map(Service::last_lines)
            .unwrap_or_default()
    }
}

async fn wait_for<F, Fut>(budget: Duration, what: &str, mut probe: F) -> Result<(), EnvError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + budget;
    while !probe().await {
        if Instant::now() > deadline {
            return Err(EnvError::NotReady {
                what: what.to_owned(),
                secs: budget.as_secs(),
                logs: Vec::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    // Bound and released at once: the service binds it a moment later. Another process could
    // take it meanwhile; the readiness wait then fails with the service's own error.
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The service under test as a child process, its output kept in a [`LogCapture`].
struct Service {
    child: Child,
    capture: Arc<LogCapture>,
    grace: Duration,
    name: String,
}

impl Service {
    fn start(spec: &super::ServiceSpec, vars: &BTreeMap<String, String>) -> Result<Self, EnvError> {
        let name = spec.command[0].clone();
        let mut cmd = Command::new(&spec.command[0]);
        cmd.args(&spec.command[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &spec.env {
            let v = expand(v, vars).map_err(|message| EnvError::Start {
                what: format!("the service (env {k})"),
                message,
            })?;
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| EnvError::Start {
            what: format!("the service `{name}`"),
            message: e.to_string(),
        })?;
        let capture = Arc::new(LogCapture::default());
        for (is_stderr, stream) in [
            (
                false,
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            ),
            (
                true,
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            ),
        ]
        .into_iter()
        .filter_map(|(e, s)| s.map(|s| (e, s)))
        {
            let capture = capture.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    capture.push_to(is_stderr, &line);
                }
            });
        }
        Ok(Self {
            child,
            capture,
            grace: spec.shutdown_grace.0,
            name,
        })
    }

    fn last_lines(&self) -> Vec<String> {
        self.capture.last_lines()
    }

    async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        budget: Duration,
    ) -> Result<(), EnvError> {
        let deadline = Instant::now() + budget;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the log readers drain what the process said last.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(EnvError::Exited {
                    what: format!("the service `{}`", self.name),
                    status: status.to_string(),
                    logs: self.last_lines(),
                });
            }
            if let Ok(resp) = http.get(url).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(EnvError::NotReady {
                    what: format!("the service `{}` ({url})", self.name),
                    secs: budget.as_secs(),
                    logs: self.last_lines(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) -> Result<(), String> {
        if let Some(pid) = self.child.id() {
            // SIGTERM first: the service drains in-flight requests and its outbox.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match tokio::time::timeout(self.grace, self.child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!(
                    "the service `{}` did not stop within {:?} of SIGTERM and was killed",
                    self.name, self.grace
                ))
            }
        }
    }
}
