//! The fault timeline against a real Toxiproxy in front of a real Redis: each fault takes effect
//! at its start and is undone at its end, as a client on the far side of the proxy sees it; a
//! cancelled timeline leaves nothing behind.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use testcontainers::{ContainerAsync, GenericImage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use verifier::fault::plan::{Fault, FaultKind};
use verifier::fault::timeline::{self, BoxFuture, ContainerControl, Injector};
use verifier::fault::toxiproxy::Stream;
use verifier::scenario::Dur;

use common::{PROXY_PORT, loopback, unique};

/// Container actions over the one Redis container of the test. Shared: the container must outlive
/// the timeline, which drops its injector when it ends.
struct RedisControl(Arc<ContainerAsync<GenericImage>>);

impl ContainerControl for RedisControl {
    fn pause<'a>(&'a self, _: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.0.pause().await?) })
    }
    fn unpause<'a>(&'a self, _: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.0.unpause().await?) })
    }
    fn stop<'a>(&'a self, _: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.0.stop().await?) })
    }
    fn start<'a>(&'a self, _: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.0.start().await?) })
    }
}

fn fault(name: &str, start_ms: u64, dur_ms: u64, kind: FaultKind) -> Fault {
    Fault {
        name: name.into(),
        target: "redis".into(),
        start: Dur(Duration::from_millis(start_ms)),
        duration: Dur(Duration::from_millis(dur_ms)),
        fault: kind,
        toxicity: 1.0,
        stream: Stream::Downstream,
        expect: None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Probe {
    /// PONG after this long.
    Pong(Duration),
    /// Connection refused, reset or closed without an answer.
    Failed,
    /// No answer within the probe's deadline.
    Hung,
}

/// One PING over a fresh connection through the proxy, with a 400 ms deadline.
async fn ping(addr: &str) -> Probe {
    let start = Instant::now();
    let attempt = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(&buf == b"+PONG\r\n")
    };
    match tokio::time::timeout(Duration::from_millis(400), attempt).await {
        Ok(Ok(true)) => Probe::Pong(start.elapsed()),
        Ok(_) => Probe::Failed,
        Err(_) => Probe::Hung,
    }
}

/// Probes between `from` and `to` (offsets from t0), a few times, the last at most at `to`.
async fn probes_between(addr: &str, t0: Instant, from_ms: u64, to_ms: u64) -> Vec<Probe> {
    let mut out = Vec::new();
    let mut at = from_ms;
    while at < to_ms {
        tokio::time::sleep_until(t0 + Duration::from_millis(at)).await;
        out.push(ping(addr).await);
        at += 150;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_take_effect_on_schedule_and_are_undone() {
    let network = unique("timeline");
    let redis_name = unique("redis");
    let redis = Arc::new(common::redis(&network, &redis_name).await);
    let (toxiproxy, api) = common::toxiproxy(&network, 1).await;
    api.create_proxy(
        "redis",
        &format!("0.0.0.0:{PROXY_PORT}"),
        &format!("{redis_name}:6379"),
    )
    .await
    .expect("create the redis proxy");
    let addr = loopback(&toxiproxy, PROXY_PORT).await;
    assert!(
        matches!(ping(&addr).await, Probe::Pong(_)),
        "redis answers through the proxy"
    );

    let injector = Arc::new(Injector {
        toxiproxy: api.clone(),
        proxies: BTreeMap::from([("redis".to_owned(), "redis".to_owned())]),
        containers: Some(Arc::new(RedisControl(redis.clone()))),
    });
    let plan = vec![
        fault(
            "slow",
            200,
            800,
            FaultKind::Latency {
                delay: Dur(Duration::from_millis(150)),
                jitter: Dur(Duration::ZERO),
            },
        ),
        fault("cut", 1_300, 700, FaultKind::Down),
        fault("frozen", 2_300, 700, FaultKind::Pause),
    ];
    let (_cancel_tx, cancel_rx) = watch::channel(false);
    let t0 = Instant::now();
    let run = tokio::spawn(timeline::run(injector, plan, t0, cancel_rx));

    // Probe inside each window, clear of its edges, and in the gaps between them.
    let during_latency = probes_between(&addr, t0, 350, 850).await;
    let during_down = probes_between(&addr, t0, 1_450, 1_850).await;
    let during_pause = probes_between(&addr, t0, 2_450, 2_600).await;
    let records = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the timeline ends by itself")
        .expect("the timeline task");
    let after = probes_between(&addr, Instant::now(), 0, 300).await;

    eprintln!(
        "latency {during_latency:?}\ndown {during_down:?}\npause {during_pause:?}\nafter {after:?}"
    );
    eprintln!("{records:#?}");

    assert!(
        during_latency
            .iter()
            .all(|p| matches!(p, Probe::Pong(d) if *d >= Duration::from_millis(150))),
        "a 150 ms latency toxic slows every PING: {during_latency:?}"
    );
    assert!(
        during_down.iter().all(|p| *p == Probe::Failed),
        "a disabled proxy refuses or drops every connection: {during_down:?}"
    );
    assert!(
        during_pause.iter().all(|p| *p == Probe::Hung),
        "a paused redis never answers: {during_pause:?}"
    );
    assert!(
        after
            .iter()
            .all(|p| matches!(p, Probe::Pong(d) if *d < Duration::from_millis(100))),
        "everything is undone afterwards: {after:?}"
    );
    for r in &records {
        assert!(r.error.is_none(), "{r:?}");
        let applied = r.applied_at.expect("applied");
        let reverted = r.reverted_at.expect("reverted");
        // Applied no earlier than planned and promptly; the API is local.
        assert!(
            applied >= r.planned_start && applied < r.planned_start + Duration::from_millis(300),
            "{r:?}"
        );
        assert!(
            reverted >= r.planned_end && reverted < r.planned_end + Duration::from_millis(1_000),
            "{r:?}"
        );
    }
    assert!(api.toxics("redis").await.unwrap().is_empty());
    assert!(api.proxy("redis").await.unwrap().enabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_timeline_removes_what_it_added() {
    let network = unique("cancel");
    let redis_name = unique("redis");
    let _redis = common::redis(&network, &redis_name).await;
    let (_toxiproxy, api) = common::toxiproxy(&network, 1).await;
    api.create_proxy(
        "redis",
        &format!("0.0.0.0:{PROXY_PORT}"),
        &format!("{redis_name}:6379"),
    )
    .await
    .unwrap();

    let injector = Arc::new(Injector {
        toxiproxy: api.clone(),
        proxies: BTreeMap::from([("redis".to_owned(), "redis".to_owned())]),
        containers: None,
    });
    let long = Duration::from_secs(600).as_millis() as u64;
    let plan = vec![
        fault("slow", 0, long, FaultKind::LimitData { bytes: 1 }),
        fault("cut", 0, long, FaultKind::Down),
        fault(
            "never",
            300_000,
            1_000,
            FaultKind::ResetPeer {
                after: Dur(Duration::ZERO),
            },
        ),
    ];
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let t0 = Instant::now();
    let run = tokio::spawn(timeline::run(injector, plan, t0, cancel_rx));

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.toxics("redis").await.unwrap().len(),
        1,
        "the toxic is in place"
    );
    assert!(
        !api.proxy("redis").await.unwrap().enabled,
        "the proxy is down"
    );

    cancel_tx.send(true).unwrap();
    let records = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("a cancelled timeline returns promptly")
        .unwrap();
    assert!(
        api.toxics("redis").await.unwrap().is_empty(),
        "no toxic is left"
    );
    assert!(
        api.proxy("redis").await.unwrap().enabled,
        "the proxy is up again"
    );
    let by_name: BTreeMap<_, _> = records.iter().map(|r| (r.name.as_str(), r)).collect();
    assert!(by_name["slow"].reverted_at.is_some() && by_name["cut"].reverted_at.is_some());
    assert!(
        by_name["never"].applied_at.is_none(),
        "a fault whose start never came is not applied"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
}

/// Pauses the container, then dies: a fault task that panics after its effect took hold.
/// Everything else is plain `RedisControl`.
struct DiesAfterPausing(RedisControl);

impl ContainerControl for DiesAfterPausing {
    fn pause<'a>(&'a self, dep: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.0.pause(dep).await?;
            panic!("the injector died after pausing");
        })
    }
    fn unpause<'a>(&'a self, dep: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.0.unpause(dep)
    }
    fn stop<'a>(&'a self, dep: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.0.stop(dep)
    }
    fn start<'a>(&'a self, dep: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.0.start(dep)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_whose_task_panics_is_still_reverted() {
    let network = unique("panic");
    let redis_name = unique("redis");
    let redis = Arc::new(common::redis(&network, &redis_name).await);
    let (toxiproxy, api) = common::toxiproxy(&network, 1).await;
    api.create_proxy(
        "redis",
        &format!("0.0.0.0:{PROXY_PORT}"),
        &format!("{redis_name}:6379"),
    )
    .await
    .unwrap();
    let addr = loopback(&toxiproxy, PROXY_PORT).await;
    let injector = Arc::new(Injector {
        toxiproxy: api.clone(),
        proxies: BTreeMap::from([("redis".to_owned(), "redis".to_owned())]),
        containers: Some(Arc::new(DiesAfterPausing(RedisControl(redis.clone())))),
    });
    let (_tx, rx) = watch::channel(false);
    let records = tokio::time::timeout(
        Duration::from_secs(20),
        timeline::run(
            injector,
            vec![fault("freeze", 0, 60_000, FaultKind::Pause)],
            Instant::now(),
            rx,
        ),
    )
    .await
    .expect("a panicking fault task does not hold the timeline for the fault's whole duration");
    assert!(records[0].reverted_at.is_some(), "{records:?}");
    assert!(
        matches!(ping(&addr).await, Probe::Pong(_)),
        "the paused container was unpaused"
    );
}
