//! The external (staging) provider against a real Toxiproxy standing in for staging's: it starts
//! and stops nothing, refuses a proxy that is not there before anything runs, removes exactly the
//! toxics the run added, and leaves other people's toxics alone.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use verifier::env::{Environment, EnvironmentSpec, ExternalSpec};
use verifier::fault::plan::{self, Fault, FaultKind};
use verifier::fault::timeline;
use verifier::fault::toxiproxy::{Stream, Toxic, ToxicKind};
use verifier::scenario::Dur;

use common::{PROXY_PORT, unique};

fn external(api: &str, proxies: &[(&str, &str)]) -> EnvironmentSpec {
    EnvironmentSpec::External(ExternalSpec {
        toxiproxy: api.to_owned(),
        proxies: proxies
            .iter()
            .map(|(d, p)| ((*d).to_owned(), (*p).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        reset: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_toxiproxy_is_used_but_not_owned() {
    let network = unique("external");
    let redis_name = unique("redis");
    let _redis = common::redis(&network, &redis_name).await;
    let (_tp, api) = common::toxiproxy(&network, 1).await;
    api.create_proxy(
        "staging-redis",
        &format!("0.0.0.0:{PROXY_PORT}"),
        &format!("{redis_name}:6379"),
    )
    .await
    .unwrap();
    // Somebody else's experiment on the same proxy.
    let theirs = Toxic {
        name: "someone-elses".into(),
        stream: Stream::Upstream,
        toxicity: 0.5,
        kind: ToxicKind::Bandwidth { rate: 1_000 },
    };
    api.add_toxic("staging-redis", &theirs).await.unwrap();

    // A proxy that does not exist is refused before any fault runs, with the ones that do.
    let wrong = external(api.base_url(), &[("redis", "redis-proxy")]);
    let err = match Environment::up(&wrong).await {
        Ok(_) => panic!("an unknown proxy must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("`redis-proxy`") && err.contains("staging-redis"),
        "{err}"
    );

    // Container actions are not possible here; the plan is refused before the run.
    let spec = external(api.base_url(), &[("redis", "staging-redis")]);
    let caps = Environment::capabilities(&spec);
    let pause = Fault {
        name: "freeze".into(),
        target: "redis".into(),
        start: Dur(Duration::ZERO),
        duration: Dur(Duration::from_secs(1)),
        fault: FaultKind::Pause,
        toxicity: 1.0,
        stream: Stream::Downstream,
        expect: None,
    };
    let refused =
        plan::validate(std::slice::from_ref(&pause), &caps, Duration::from_secs(5)).unwrap_err();
    assert_eq!(refused.field, "fault");

    let env = Environment::up(&spec).await.expect("external environment");
    assert!(
        env.target.is_none(),
        "staging's target comes from --target or the scenario"
    );
    let ours = Fault {
        name: "drill-latency".into(),
        fault: FaultKind::Latency {
            delay: Dur(Duration::from_millis(100)),
            jitter: Dur(Duration::ZERO),
        },
        ..pause
    };
    let (tx, rx) = watch::channel(false);
    let run = tokio::spawn(timeline::run(
        env.injector.clone().unwrap(),
        vec![ours],
        tokio::time::Instant::now(),
        rx,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let names: Vec<String> = api
        .toxics("staging-redis")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names.len(), 2, "ours beside theirs: {names:?}");
    // Ctrl-C in the middle of the fault.
    tx.send(true).unwrap();
    let records = run.await.unwrap();
    assert!(records[0].reverted_at.is_some(), "{records:?}");
    let problems = env.down().await;
    assert!(problems.is_empty(), "{problems:?}");

    let left = api.toxics("staging-redis").await.unwrap();
    assert_eq!(left, vec![theirs], "only the run's own toxic is removed");
}
