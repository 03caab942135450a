//! Proof that the container platform is real, from Rust: PostgreSQL and Toxiproxy run as
//! containers from the platform's images (testcontainers-rs), the test reaches PostgreSQL only
//! through a Toxiproxy proxy driven by the verifier's own client, and a latency toxic shows up in
//! a query's round trip. Containers are removed when the test ends, also when it fails: the
//! `ContainerAsync` values drop during unwinding, and `make test` sweeps by label what a killed
//! process leaves.

mod common;

use std::time::{Duration, Instant};

use verifier::fault::toxiproxy::{Stream, Toxic, ToxicKind};

use common::{PROXY_PORT, loopback, unique};

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
    let network = unique("platform");
    let pg_name = unique("pg");
    let _postgres = common::postgres(&network, &pg_name).await;
    let (toxiproxy, api) = common::toxiproxy(&network, 1).await;
    assert!(!api.version().await.expect("version").is_empty());

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
    // No round trip can be faster than the toxic; above, generous slack for a loaded machine.
    // (Comparing the difference with the baseline would fail whenever the baseline sample was the
    // slower one.)
    assert!(
        slowed >= added && slowed.saturating_sub(baseline) <= added + Duration::from_millis(500),
        "with a {added:?} latency toxic the round trip is {slowed:?} (baseline {baseline:?})"
    );
    assert!(
        recovered < baseline + added / 2,
        "after removing the toxic the round trip is {recovered:?}, baseline {baseline:?}"
    );

    drop(client);
    conn_task.abort();
}
