//! Containers for the verifier's integration tests, from the platform's images, labelled so
//! `make test` can sweep what a killed test process leaves. Each helper removes its container when
//! the returned value drops, also during a panic.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};
use verifier::fault::toxiproxy::Client;

pub const MANAGED_LABEL: &str = "io.deliverykit.managed";
pub const PROXY_PORT: u16 = 8666;
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// `KIT_IMAGE_<NAME>` (exported by `make` from `.kit/images.env`) or the official image, split
/// into name and tag.
pub fn image(var: &str) -> (String, String) {
    verifier::env::containers::image(var)
}

/// A name no other test process uses; `kit-` prefixed so the sweep finds leftover networks.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("kit-{prefix}-{}-{nanos:x}", std::process::id())
}

/// The kit's labels and a startup deadline on any container request.
pub fn managed(req: ContainerRequest<GenericImage>) -> ContainerRequest<GenericImage> {
    req.with_label(MANAGED_LABEL, "true")
        .with_label("io.deliverykit.run", std::process::id().to_string())
        .with_startup_timeout(START_TIMEOUT)
}

/// A start failure with the hint a reader needs: where images and the engine come from.
pub fn start_failure(what: &str, e: &testcontainers::TestcontainersError) -> String {
    format!(
        "{what} container did not start: {e}\n(images come from KIT_IMAGE_{}, exported by `make test` \
         from .kit/images.env; the engine from platform/engine.sh)",
        what.to_uppercase()
    )
}

/// Host port of a published container port, reached on loopback. testcontainers-rs would use the
/// bridge gateway because this machine carries `/.dockerenv`; test traffic stays on 127.0.0.1.
pub async fn loopback(container: &ContainerAsync<GenericImage>, port: u16) -> String {
    let host_port = container
        .get_host_port_ipv4(ContainerPort::Tcp(port))
        .await
        .expect("published port");
    format!("127.0.0.1:{host_port}")
}

/// PostgreSQL (user, password, database `kit`) on `network` under container name `name`.
pub async fn postgres(network: &str, name: &str) -> ContainerAsync<GenericImage> {
    let (img, tag) = image("KIT_IMAGE_POSTGRES");
    // The official image prints the readiness line once from its initialisation server (stdout,
    // via pg_ctl) and once from the real one (stderr); waiting for both is what the postgres
    // modules of testcontainers do, and what the local stand-in must satisfy.
    let req = GenericImage::new(img, tag)
        .with_wait_for(WaitFor::message_on_stdout(
            "database system is ready to accept connections",
        ))
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_env_var("POSTGRES_USER", "kit")
        .with_env_var("POSTGRES_PASSWORD", "kit")
        .with_env_var("POSTGRES_DB", "kit")
        .with_network(network)
        .with_container_name(name);
    managed(req)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{}", start_failure("postgres", &e)))
}

/// Redis on `network` under container name `name`.
pub async fn redis(network: &str, name: &str) -> ContainerAsync<GenericImage> {
    let (img, tag) = image("KIT_IMAGE_REDIS");
    let req = GenericImage::new(img, tag)
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .with_network(network)
        .with_container_name(name);
    managed(req)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{}", start_failure("redis", &e)))
}

/// Toxiproxy on `network` with its API and `proxies` listen ports (8666, 8667, ...) published,
/// and a client for its API once it answers.
pub async fn toxiproxy(network: &str, proxies: u16) -> (ContainerAsync<GenericImage>, Client) {
    let (img, tag) = image("KIT_IMAGE_TOXIPROXY");
    let mut image = GenericImage::new(img, tag).with_exposed_port(ContainerPort::Tcp(8474));
    for i in 0..proxies {
        image = image.with_exposed_port(ContainerPort::Tcp(PROXY_PORT + i));
    }
    let container = managed(image.with_network(network))
        .start()
        .await
        .unwrap_or_else(|e| panic!("{}", start_failure("toxiproxy", &e)));
    let api = Client::new(format!("http://{}", loopback(&container, 8474).await)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.version().await {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => panic!("toxiproxy API never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    (container, api)
}

/// nats-server with JetStream, its client port published.
pub async fn nats(network: &str, name: &str) -> ContainerAsync<GenericImage> {
    let (img, tag) = image("KIT_IMAGE_NATS");
    let req = GenericImage::new(img, tag)
        .with_exposed_port(ContainerPort::Tcp(4222))
        .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
        .with_cmd(["-js", "-sd", "/data"])
        .with_network(network)
        .with_container_name(name);
    managed(req)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{}", start_failure("nats", &e)))
}

/// A real Prometheus (Debian's package, installed by `platform/tools.sh`) on a loopback port,
/// scraping `targets` every second; killed when dropped.
pub struct Prometheus {
    pub url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn prometheus(targets: &[String]) -> Prometheus {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: svc\n    static_configs:\n      - targets: [{}]\n",
        targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect(
            "prometheus is installed (Debian package `prometheus`; platform/tools.sh installs it)",
        );
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http
            .get(format!("{url}/-/ready"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never became ready on {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Prometheus {
        url,
        child,
        _dir: dir,
    }
}
