//! The PromQL client against a real Prometheus scraping an in-process target: values come back as
//! scraped, a wrong expression is a definition error, and a Prometheus that went away is
//! "unavailable" — which makes triggers inconclusive, never passed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use verifier::prom::{Client, PromError};

/// Serves `/metrics` with one counter whose value the test sets.
async fn metrics_target(value: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let value = value.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = format!(
                    "# HELP demo_requests_total Requests.\n# TYPE demo_requests_total counter\ndemo_requests_total{{route=\"/v1/orders\"}} {}\n",
                    value.load(Ordering::Relaxed)
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_a_real_prometheus_and_tells_bad_queries_from_outages() {
    let value = Arc::new(AtomicU64::new(42));
    let target = metrics_target(value.clone()).await;
    let mut prom = common::prometheus(&[target]).await;
    let client = Client::new(&prom.url, Duration::from_secs(2)).unwrap();

    // Wait for a scrape, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let samples = loop {
        let s = client
            .query("demo_requests_total", None)
            .await
            .expect("query");
        if !s.is_empty() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped the target"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].value, 42.0);
    assert_eq!(samples[0].labels["route"], "/v1/orders");
    assert_eq!(samples[0].labels["job"], "svc");

    let scalar = client
        .query("scalar(demo_requests_total) * 2", None)
        .await
        .unwrap();
    assert_eq!(scalar[0].value, 84.0);

    assert!(
        client
            .series_exist("demo_requests_total", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        !client
            .series_exist("no_such_metric_total", Duration::from_secs(60))
            .await
            .unwrap()
    );

    match client.query("rate(demo_requests_total[", None).await {
        Err(PromError::BadQuery { message, .. }) => assert!(!message.is_empty()),
        other => panic!("an unparsable expression must be a definition error: {other:?}"),
    }
    match client.query("demo_requests_total[1m]", None).await {
        Err(PromError::BadQuery { message, .. }) => assert!(message.contains("instant vector")),
        other => panic!("a range vector is not a trigger value: {other:?}"),
    }

    prom.kill();
    let gone = client.query("demo_requests_total", None).await.unwrap_err();
    assert!(gone.is_unavailable(), "{gone}");
}
