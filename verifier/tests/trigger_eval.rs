//! The evaluator over the verifier's own measurements, with the checked-in triggers: each kind
//! fails on a breach and passes when healthy; too little data is inconclusive, never passed; and
//! the analysis honours `for`, the failure limit and the inconclusive limit.

use std::path::Path;
use std::time::Duration;

use verifier::trigger::promql::Scale;
use verifier::trigger::{
    self, Analysis, Definitions, Measurement, OwnMeasurements, OwnSlice, Phase, Source, Trigger,
    evaluate,
};

fn defs() -> Definitions {
    trigger::load_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/triggers.yaml"))
        .expect("the checked-in triggers")
        .defs
}

fn named<'a>(d: &'a Definitions, name: &str) -> &'a Trigger {
    d.triggers.iter().find(|t| t.name == name).expect(name)
}

/// `secs` one-second slices, each with `rps` requests of which `errors` failed, every request
/// taking `latency_ms`.
fn steady(secs: u64, rps: u64, errors: u64, latency_ms: u64) -> OwnMeasurements {
    let mut m = OwnMeasurements::default();
    for s in 0..secs {
        let mut slice = OwnSlice::new(Duration::from_secs(s), Duration::from_secs(1));
        slice.requests = rps;
        slice.errors = errors;
        slice.latency_us.record_n(latency_ms * 1000, rps).unwrap();
        m.push(slice);
    }
    m
}

async fn own(d: &Definitions, name: &str, m: &OwnMeasurements) -> Measurement {
    evaluate(d, named(d, name), Source::Own(m), Scale::Drill)
        .await
        .expect("own measurements never make a definition error")
}

#[tokio::test]
async fn error_ratio_fails_above_its_ceiling_and_passes_below() {
    let d = defs();
    let bad = own(&d, "OrdersHighErrorRatio", &steady(10, 100, 10, 5)).await;
    assert_eq!(bad.phase, Phase::Failed, "{bad:?}");
    assert_eq!(bad.value, Some(0.1));
    assert!(
        bad.detail.contains("over the last 5s"),
        "drill window: {}",
        bad.detail
    );
    let good = own(&d, "OrdersHighErrorRatio", &steady(10, 100, 1, 5)).await;
    assert_eq!(good.phase, Phase::Successful, "{good:?}");
    let idle = own(&d, "OrdersHighErrorRatio", &steady(10, 0, 0, 5)).await;
    assert_eq!(idle.phase, Phase::Inconclusive, "no traffic is not a pass");
}

#[tokio::test]
async fn latency_fails_above_its_ceiling_and_passes_below() {
    let d = defs();
    let slow = own(&d, "OrdersCreateLatencyP99", &steady(10, 100, 0, 800)).await;
    assert_eq!(slow.phase, Phase::Failed, "{slow:?}");
    assert!((slow.value.unwrap() - 0.8).abs() < 0.01);
    let fast = own(&d, "OrdersCreateLatencyP99", &steady(10, 100, 0, 40)).await;
    assert_eq!(fast.phase, Phase::Successful, "{fast:?}");
    let short = own(&d, "OrdersCreateLatencyP99", &steady(3, 100, 0, 800)).await;
    assert_eq!(
        short.phase,
        Phase::Inconclusive,
        "3 s cannot fill a 5 s window"
    );
    assert!(
        short.detail.contains("only 3s measured"),
        "{}",
        short.detail
    );
}

#[tokio::test]
async fn burn_rate_needs_both_windows_above_the_factor() {
    let d = defs();
    // Drill windows of the fast burn: 1h → 60 s, 5m → 5 s. 2 % errors is a 20x burn.
    let burning = own(&d, "OrdersErrorBudgetFastBurn", &steady(60, 100, 2, 5)).await;
    assert_eq!(burning.phase, Phase::Failed, "{burning:?}");
    assert!((burning.value.unwrap() - 20.0).abs() < 1e-9);
    let healthy = own(&d, "OrdersErrorBudgetFastBurn", &steady(60, 1000, 1, 5)).await;
    assert_eq!(healthy.phase, Phase::Successful, "{healthy:?}");

    // Errors stopped 10 s ago: the long window still burns, the short one has recovered.
    let mut recovered = steady(50, 100, 5, 5);
    for s in 50..60 {
        let mut slice = OwnSlice::new(Duration::from_secs(s), Duration::from_secs(1));
        slice.requests = 100;
        slice.latency_us.record_n(5000, 100).unwrap();
        recovered.push(slice);
    }
    let m = own(&d, "OrdersErrorBudgetFastBurn", &recovered).await;
    assert_eq!(m.phase, Phase::Successful, "{m:?}");
    assert!(
        m.detail.contains("over 1m") && m.detail.contains("0x over 5s"),
        "{}",
        m.detail
    );

    // A run younger than the long window: no traffic came before it, so the long window holds
    // the whole run so far, and says so.
    let young = own(&d, "OrdersErrorBudgetFastBurn", &steady(30, 100, 50, 5)).await;
    assert_eq!(young.phase, Phase::Failed, "{young:?}");
    assert!(
        young.detail.contains("it holds the 30 s measured so far"),
        "{}",
        young.detail
    );
    let quiet = own(&d, "OrdersErrorBudgetFastBurn", &steady(10, 100, 0, 5)).await;
    assert_eq!(quiet.phase, Phase::Successful, "{quiet:?}");
    // The short window still needs a full span.
    let short = own(&d, "OrdersErrorBudgetFastBurn", &steady(3, 100, 50, 5)).await;
    assert_eq!(short.phase, Phase::Inconclusive, "{short:?}");
    // Older slices dropped: the run is not young, and 30 s cannot stand for 1m.
    let mut pruned = steady(40, 100, 50, 5);
    pruned.slices.drain(..10);
    let pruned = own(&d, "OrdersErrorBudgetFastBurn", &pruned).await;
    assert_eq!(
        pruned.phase,
        Phase::Inconclusive,
        "30 s of a longer run cannot fill the 1m long window"
    );
}

#[tokio::test]
async fn saturation_fails_over_its_threshold_and_passes_under() {
    let d = defs();
    let mut m = steady(5, 10, 0, 5);
    m.slices
        .last_mut()
        .unwrap()
        .gauges
        .insert("outbox_backlog_events".into(), 5000.0);
    m.slices
        .last_mut()
        .unwrap()
        .gauges
        .insert("payments_client_breaker_state".into(), 1.0);
    assert_eq!(
        own(&d, "OrdersOutboxBacklog", &m).await.phase,
        Phase::Failed
    );
    assert_eq!(
        own(&d, "PaymentsBreakerOpen", &m).await.phase,
        Phase::Successful,
        "half-open"
    );
    m.slices
        .last_mut()
        .unwrap()
        .gauges
        .insert("outbox_backlog_events".into(), 12.0);
    m.slices
        .last_mut()
        .unwrap()
        .gauges
        .insert("payments_client_breaker_state".into(), 2.0);
    assert_eq!(
        own(&d, "OrdersOutboxBacklog", &m).await.phase,
        Phase::Successful
    );
    let open = own(&d, "PaymentsBreakerOpen", &m).await;
    assert_eq!(open.phase, Phase::Failed);
    assert_eq!(
        open.detail,
        "payments_client_breaker_state is 2, fires when >= 2"
    );
    let unsampled = own(&d, "OrdersOutboxStale", &m).await;
    assert_eq!(unsampled.phase, Phase::Inconclusive, "{unsampled:?}");
}

#[tokio::test]
async fn production_windows_need_production_lengths_of_data() {
    let d = defs();
    let t = named(&d, "OrdersHighErrorRatio");
    let m = steady(60, 100, 50, 5);
    let prod = evaluate(&d, t, Source::Own(&m), Scale::Production)
        .await
        .unwrap();
    assert_eq!(
        prod.phase,
        Phase::Inconclusive,
        "a minute of data is not a 5m window"
    );
    let drill = evaluate(&d, t, Source::Own(&m), Scale::Drill)
        .await
        .unwrap();
    assert_eq!(drill.phase, Phase::Failed);
}

fn m(phase: Phase) -> Measurement {
    Measurement {
        phase,
        value: None,
        detail: String::new(),
    }
}

#[test]
fn analysis_waits_for_the_hold_time_then_applies_the_failure_limit() {
    let d = defs();
    // OrdersHighErrorRatio: for 2m (2 s in a drill), failure_limit 1, inconclusive_limit 3.
    let t = named(&d, "OrdersHighErrorRatio");
    let mut a = Analysis::new(&d, t, Scale::Drill);
    let s = Duration::from_secs;
    assert_eq!(
        a.record(s(1), m(Phase::Failed)),
        Phase::Successful,
        "pending"
    );
    assert_eq!(
        a.record(s(2), m(Phase::Failed)),
        Phase::Successful,
        "pending"
    );
    assert_eq!(
        a.record(s(3), m(Phase::Failed)),
        Phase::Successful,
        "held 2 s: 1 failure, limit 1"
    );
    assert_eq!(a.record(s(4), m(Phase::Failed)), Phase::Failed);
    assert_eq!(a.fired_at, Some(s(4)));
    assert_eq!((a.pending, a.failed), (2, 2));

    // A success restarts the hold.
    let mut a = Analysis::new(&d, t, Scale::Drill);
    for (at, p) in [
        (1, Phase::Failed),
        (2, Phase::Successful),
        (3, Phase::Failed),
        (4, Phase::Failed),
    ] {
        assert_eq!(a.record(s(at), m(p)), Phase::Successful);
    }
    assert_eq!(a.failed, 0);
}

#[test]
fn analysis_is_inconclusive_past_its_limit_and_failure_wins() {
    let d = defs();
    let t = named(&d, "OrdersHighErrorRatio");
    let mut a = Analysis::new(&d, t, Scale::Drill);
    for at in 1..=3 {
        assert_eq!(
            a.record(Duration::from_secs(at), m(Phase::Inconclusive)),
            Phase::Successful
        );
    }
    assert_eq!(
        a.record(Duration::from_secs(4), m(Phase::Inconclusive)),
        Phase::Inconclusive
    );

    // Burn rates keep Argo's default limits (0): one held failure fails the analysis.
    let burn = named(&d, "OrdersErrorBudgetFastBurn");
    let mut a = Analysis::new(&d, burn, Scale::Drill);
    a.record(Duration::from_secs(1), m(Phase::Inconclusive));
    assert_eq!(a.phase(), Phase::Inconclusive);
    a.record(Duration::from_secs(2), m(Phase::Failed));
    assert_eq!(
        a.record(Duration::from_secs(4), m(Phase::Failed)),
        Phase::Failed,
        "failure wins"
    );
}
