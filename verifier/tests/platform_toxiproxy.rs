//! Proof that the container platform is real, from Rust: PostgreSQL and Toxiproxy run as
//! containers from the platform's images (testcontainers-rs), the test reaches PostgreSQL only
//! through a Toxiproxy proxy driven by the verifier's own client, and a latency toxic shows up in
//! a query's round trip. Containers are removed when the test ends, also when it fails: the
//! `ContainerAsync` values drop during unwinding, and `make test` sweeps by label what a killed
//! process leaves.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use verifier::fault::toxiproxy::{Client, Stream, Toxic, ToxicKind};

const PROXY_PORT: u16 = 8666;
const MANAGED_LABEL: &str = "io.deliverykit.managed";

/// `KIT_IMAGE_<NAME>` (exported by `make` from `.kit/images.env`) or the official image, split
/// into name and tag.
fn image(var: &str) -> (String, String) {
    let reference = verifier::envinfo::image(var).expect("a known image variable");
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) => (
            reference[..slash + i].to_owned(),
            reference[slash + i + 1..].to_owned(),
        ),
        None => (reference, "latest".to_owned()),
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Host port of a published container port, reached on loopback. testcontainers-rs would use the
/// bridge gateway because this machine carries `/.dockerenv`; test traffic stays on 127.0.0.1.
async fn loopback(container: &ContainerAsync<GenericImage>, port: u16) -> String {
    let host_port = container
        .get_host_port_ipv4(ContainerPort::Tcp(port))
        .await
        .expect("published port");
    format!("127.0.0.1:{host_port}")
}

/// A start failure with the hint a reader needs: where images and the engine come from.
fn start_failure(what: &str, e: &testcontainers::TestcontainersError) -> String {
    format!(
        "{what} container did not start: {e}\n(images come from KIT_IMAGE_{}, exported by `make test` \
         from .kit/images.env; the engine from platform/engine.sh)",
        what.to_uppercase()
    )
}

async fn median_round_trip(client: &tokio_postgres::Client) -> Duration {
    let mut samples = Vec::with_capacity(5);
    for _ in 0..5 {
        let start = Instant::now();
        // The simple query protocol is one round trip; `query_one` would prepare first (two).
        let messages =
            tokio::time::timeout(Duration::from_secs(10), client.simple_query("SELECT 1"))
                .await
                .expect("SELECT 1 within 10 s")
                .expect("SELECT 1 through toxiproxy");
        let value = messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        });
        assert_eq!(value.as_deref(), Some("1"));
        samples.push(start.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_through_toxiproxy_shows_the_latency_toxic() {
    let network = unique("kit-platform");
    let pg_name = unique("kit-pg");
    let run = unique("run");

    let (pg_image, pg_tag) = image("KIT_IMAGE_POSTGRES");
    // The official image prints the readiness line once from its initialisation server (stdout,
    // via pg_ctl) and once from the real one (stderr); waiting for both is what the postgres
    // modules of testcontainers do, and what the local stand-in must satisfy.
    let postgres = GenericImage::new(pg_image, pg_tag)
        .with_wait_for(WaitFor::message_on_stdout(
            "database system is ready to accept connections",
        ))
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_env_var("POSTGRES_USER", "kit")
        .with_env_var("POSTGRES_PASSWORD", "kit")
        .with_env_var("POSTGRES_DB", "kit")
        .with_network(&network)
        .with_container_name(&pg_name)
        .with_label(MANAGED_LABEL, "true")
        .with_label("io.deliverykit.run", &run)
        .with_startup_timeout(Duration::from_secs(90))
        .start()
        .await
        .unwrap_or_else(|e| panic!("{}", start_failure("postgres", &e)));

    let (tp_image, tp_tag) = image("KIT_IMAGE_TOXIPROXY");
    let toxiproxy = GenericImage::new(tp_image, tp_tag)
        .with_exposed_port(ContainerPort::Tcp(8474))
        .with_exposed_port(ContainerPort::Tcp(PROXY_PORT))
        .with_network(&network)
        .with_label(MANAGED_LABEL, "true")
        .with_label("io.deliverykit.run", &run)
        .with_startup_timeout(Duration::from_secs(90))
        .start()
        .await
        .unwrap_or_else(|e| panic!("{}", start_failure("toxiproxy", &e)));

    let api = Client::new(format!("http://{}", loopback(&toxiproxy, 8474).await)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let version = loop {
        match api.version().await {
            Ok(v) => break v,
            Err(e) if Instant::now() > deadline => panic!("toxiproxy API never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert!(!version.is_empty());

    api.create_proxy(
        "postgres",
        &format!("0.0.0.0:{PROXY_PORT}"),
        &format!("{pg_name}:5432"),
    )
    .await
    .expect("create the postgres proxy");
    let conflict = api
        .create_proxy("postgres", "0.0.0.0:8667", &format!("{pg_name}:5432"))
        .await
        .expect_err("a second proxy of the same name is refused");
    assert_eq!(conflict.status().map(|s| s.as_u16()), Some(409));

    let through = loopback(&toxiproxy, PROXY_PORT).await;
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_postgres::connect(
            &format!("postgres://kit:kit@{through}/kit?connect_timeout=10"),
            tokio_postgres::NoTls,
        ),
    )
    .await
    .expect("connect within 20 s")
    .expect("connect to postgres through toxiproxy");
    let conn_task = tokio::spawn(connection);

    let baseline = median_round_trip(&client).await;

    let added = Duration::from_millis(150);
    api.add_toxic(
        "postgres",
        &Toxic {
            name: "pg_latency".into(),
            stream: Stream::Downstream,
            toxicity: 1.0,
            kind: ToxicKind::Latency {
                latency: added.as_millis() as u64,
                jitter: 0,
            },
        },
    )
    .await
    .expect("add the latency toxic");
    let slowed = median_round_trip(&client).await;

    api.remove_toxic("postgres", "pg_latency")
        .await
        .expect("remove the toxic");
    let recovered = median_round_trip(&client).await;
    api.reset().await.expect("reset");

    eprintln!(
        "SELECT 1 round trip: baseline {baseline:?}, with {added:?} toxic {slowed:?}, after removal {recovered:?}"
    );
    let delta = slowed.saturating_sub(baseline);
    assert!(
        delta >= added && delta <= added + Duration::from_millis(500),
        "latency toxic of {added:?} added {delta:?} to the round trip"
    );
    assert!(
        recovered < baseline + added / 2,
        "after removing the toxic the round trip is {recovered:?}, baseline {baseline:?}"
    );

    drop(client);
    conn_task.abort();
}
