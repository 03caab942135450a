//! Every functional check can fail: an in-process orders stand-in with one deliberate defect at a
//! time (no deduplication, a replay that differs, a key reused with another body and accepted, a
//! check-then-insert race, a double charge downstream, a retry storm, retries without backoff)
//! must fail exactly the check aimed at it, and the same stand-in without defects passes them all.
//! Its effects are read back through its own API (`GET /effects?key=`), its downstream calls
//! through a call log, as the scenario's probes say. The reference service's run is in
//! `functional_reference.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
mod common;
mod support;

use verifier::fault::timeline::Injector;
use verifier::functional::proxy::ServiceProxy;
use verifier::rule::{RuleResult, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    None,
    /// Every request takes effect, key or not.
    NoDedup,
    /// The replay carries a body other than the first answer's.
    ReplayDiffers,
    /// A key reused with another body replays the first answer instead of refusing.
    IgnoresMismatch,
    /// Looks the key up, works, then records it: concurrent duplicates all take effect.
    Racy,
    /// Charges each effect twice downstream.
    DoubleCharge,
    /// Retries a failing downstream ten times per request, 40 ms ± 25 % apart.
    RetryStorm,
    /// Retries a failing downstream at once, without backoff.
    NoBackoff,
    /// Backs off as declared, without jitter: requests that failed together retry together.
    Unjittered,
    /// Waits 30 ms ± 25 % before every retry: the declared growth (× 3) is missing.
    FlatBackoff,
    /// Retries a charge the downstream refused (402) as if it had failed.
    RetriesRefusal,
    /// When its dependency fails after the effect is written, forgets the key: the retry writes
    /// the effect again.
    ForgetsKeyOnFailure,
    /// Hangs while its downstream fails.
    HangsWhileFailing,
    /// Publishes each effect's event twice.
    DoubleEvent,
}

#[derive(Default)]
struct Store {
    /// (id, correlation) per effect.
    effects: Vec<(String, String)>,
    /// key → (body, answer); `None` while in flight.
    keys: HashMap<String, (Vec<u8>, Option<String>)>,
    /// key → effect id written before the dependency failed: a retry finishes it.
    resumable: HashMap<String, String>,
    calls: Vec<serde_json::Value>,
}

struct StandIn {
    defect: Defect,
    /// A dependency asked after each write (`host:port`; a line out, `ok` back).
    dependency: Option<String>,
    /// Where each effect's event goes (`orders.created`, `{"order_id": id}`).
    events: Option<async_nats::jetstream::Context>,
    store: Mutex<Store>,
    failing: AtomicBool,
    next: AtomicU64,
}

/// The card the stand-in's downstream declines.
const DECLINED: &str = "4000000000000002";
const REUSED: &str = "https://deliverykit.example.com/problems/idempotency-key-reused";
const IN_FLIGHT: &str = "https://deliverykit.example.com/problems/idempotency-key-in-flight";

impl StandIn {
    fn call(&self, id: &str, status: u16, replayed: bool) -> serde_json::Value {
        self.call_from(SystemTime::now(), id, status, replayed)
    }

    /// A call that arrived at `started` and ends now.
    fn call_from(
        &self,
        started: SystemTime,
        id: &str,
        status: u16,
        replayed: bool,
    ) -> serde_json::Value {
        serde_json::json!({
            "started_at": humantime::format_rfc3339_nanos(started).to_string(),
            "at": humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
            "order_id": id, "status": status, "replayed": replayed,
        })
    }

    /// The wait before retry `n` (1-based), in ms. As the scenario declares: 30 ms × 3^(n-1),
    /// ± 25 % jitter.
    fn backoff_ms(&self, n: u32) -> f64 {
        let jitter = 1.0 + rand::random_range(-0.25..=0.25);
        match self.defect {
            Defect::NoBackoff => 0.0,
            Defect::RetryStorm => 40.0 * jitter,
            // Flat at 25-55 ms: above the idle check's 20 ms, below the 2nd retry's window,
            // and spread widely enough that six requests pass the jitter check but about 1 time
            // in 3,000 (30 ms ± 25 % failed it about 1 run in 8).
            Defect::FlatBackoff => 40.0 * (1.0 + 1.5 * (jitter - 1.0)),
            Defect::Unjittered => 30.0 * 3f64.powi(n as i32 - 1),
            _ => 30.0 * 3f64.powi(n as i32 - 1) * jitter,
        }
    }

    /// Charges downstream for `id`: true when the charge went through. A declined card is
    /// refused with 402, once (a refusal is an answer, not a failure).
    async fn charge(&self, id: &str, declined: bool) -> bool {
        if self.failing.load(Ordering::SeqCst) || declined {
            if self.defect == Defect::HangsWhileFailing && !declined {
                tokio::time::sleep(Duration::from_secs(20)).await;
            }
            // Each failing attempt lasts 30 ms; a retry without backoff starts as it ends, which
            // a log of start times alone would read as 30 ms apart.
            let (attempts, status) = match (self.defect, declined) {
                (Defect::RetriesRefusal, true) => (3, 402),
                (_, true) => (1, 402),
                (Defect::RetryStorm, _) => (10, 503),
                _ => (3, 503),
            };
            for i in 0..attempts {
                if i > 0 {
                    let wait = self.backoff_ms(i);
                    tokio::time::sleep(Duration::from_secs_f64(wait / 1e3)).await;
                }
                let started = SystemTime::now();
                tokio::time::sleep(Duration::from_millis(30)).await;
                let c = self.call_from(started, id, status, false);
                self.store.lock().unwrap().calls.push(c);
            }
            return false;
        }
        let c = self.call(id, 201, false);
        let mut s = self.store.lock().unwrap();
        s.calls.push(c.clone());
        if self.defect == Defect::DoubleCharge {
            s.calls.push(c);
        }
        true
    }

    /// Asks the dependency; false when it did not answer in full.
    async fn dependency_ok(&self) -> bool {
        let Some(addr) = &self.dependency else {
            return true;
        };
        let ask = async {
            let mut sock = TcpStream::connect(addr).await?;
            sock.write_all(b"write\n").await?;
            let mut got = Vec::new();
            sock.read_to_end(&mut got).await?;
            Ok::<_, std::io::Error>(got == b"ok\n")
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), ask).await,
            Ok(Ok(true))
        )
    }

    async fn create(&self, key: &str, body: &[u8]) -> (u16, Vec<(String, String)>, String) {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let email = v["customer_email"].as_str().unwrap_or("").to_owned();
        let declined = v["card_number"].as_str() == Some(DECLINED);
        let problem = |status: u16, t: &str| {
            (
                status,
                vec![],
                serde_json::json!({"type": t, "status": status}).to_string(),
            )
        };
        let resumed = self.store.lock().unwrap().resumable.get(key).cloned();
        if let Some(id) = resumed {
            if !self.dependency_ok().await {
                return problem(
                    503,
                    "https://deliverykit.example.com/problems/store-unavailable",
                );
            }
            self.store.lock().unwrap().resumable.remove(key);
            let answer = serde_json::json!({"id": id, "customer_email": email, "status": "paid"})
                .to_string();
            self.store
                .lock()
                .unwrap()
                .keys
                .insert(key.to_owned(), (body.to_vec(), Some(answer.clone())));
            return (201, vec![], answer);
        }
        if self.defect != Defect::NoDedup {
            // Looked up and claimed under one lock, as a unique key would be: only the Racy
            // defect looks first and records later.
            let seen = {
                let mut store = self.store.lock().unwrap();
                let seen = store.keys.get(key).cloned();
                if seen.is_none() && self.defect != Defect::Racy {
                    store.keys.insert(key.to_owned(), (body.to_vec(), None));
                }
                seen
            };
            match seen {
                Some((first, _)) if first != body && self.defect != Defect::IgnoresMismatch => {
                    return problem(422, REUSED);
                }
                Some((_, None)) => return problem(409, IN_FLIGHT),
                Some((_, Some(answer))) => {
                    let answer = if self.defect == Defect::ReplayDiffers {
                        answer.replace("\"status\":\"paid\"", "\"status\":\"pending\"")
                    } else {
                        answer
                    };
                    return (
                        201,
                        vec![("Idempotent-Replayed".into(), "true".into())],
                        answer,
                    );
                }
                None => {}
            }
            if self.defect == Defect::Racy {
                // Wide enough that every duplicate released together looks before any records,
                // however slowly a loaded machine opens their connections.
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.store
                    .lock()
                    .unwrap()
                    .keys
                    .insert(key.to_owned(), (body.to_vec(), None));
            }
        }
        // Unique across stand-ins: tests may share one stream.
        let id = format!(
            "ord-{}-{}",
            uuid::Uuid::new_v4(),
            self.next.fetch_add(1, Ordering::SeqCst)
        );
        self.store
            .lock()
            .unwrap()
            .effects
            .push((id.clone(), email.clone()));
        // Work that takes a while, so duplicates overlap.
        tokio::time::sleep(Duration::from_millis(30)).await;
        if !self.dependency_ok().await {
            let mut s = self.store.lock().unwrap();
            s.keys.remove(key);
            if self.defect != Defect::ForgetsKeyOnFailure {
                s.resumable.insert(key.to_owned(), id.clone());
            }
            return problem(
                503,
                "https://deliverykit.example.com/problems/store-unavailable",
            );
        }
        if let Some(js) = &self.events {
            let times = if self.defect == Defect::DoubleEvent {
                2
            } else {
                1
            };
            for _ in 0..times {
                let payload = serde_json::json!({ "order_id": id }).to_string();
                let ack = js.publish("orders.created", payload.into()).await;
                if let Ok(ack) = ack {
                    let _ = ack.await;
                }
            }
        }
        if !self.charge(&id, declined).await {
            self.store.lock().unwrap().keys.remove(key);
            return if declined {
                problem(
                    402,
                    "https://deliverykit.example.com/problems/payment-declined",
                )
            } else {
                problem(
                    503,
                    "https://deliverykit.example.com/problems/payments-unavailable",
                )
            };
        }
        let answer =
            serde_json::json!({"id": id, "customer_email": email, "status": "paid"}).to_string();
        if self.defect != Defect::NoDedup {
            self.store
                .lock()
                .unwrap()
                .keys
                .insert(key.to_owned(), (body.to_vec(), Some(answer.clone())));
        }
        (201, vec![], answer)
    }

    async fn handle(
        &self,
        method: &str,
        path: &str,
        head: &str,
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, String) {
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        match (method, path.split('?').next().unwrap_or("")) {
            ("POST", "/v1/orders") => match header("Idempotency-Key") {
                Some(k) => self.create(&k, body).await,
                None => (400, vec![], "{}".into()),
            },
            ("GET", "/effects") => {
                let key = path.split("key=").nth(1).unwrap_or("").replace("%40", "@");
                let s = self.store.lock().unwrap();
                let items: Vec<_> = s
                    .effects
                    .iter()
                    .filter(|(_, c)| *c == key)
                    .map(|(id, _)| serde_json::json!({"id": id}))
                    .collect();
                (200, vec![], serde_json::json!({"items": items}).to_string())
            }
            ("GET", "/v1/calls") => {
                let s = self.store.lock().unwrap();
                (
                    200,
                    vec![],
                    serde_json::json!({"calls": s.calls}).to_string(),
                )
            }
            ("GET", "/v1/behaviour") => {
                let rate = if self.failing.load(Ordering::SeqCst) {
                    1.0
                } else {
                    0.0
                };
                (
                    200,
                    vec![],
                    serde_json::json!({"error_rate": rate}).to_string(),
                )
            }
            ("PUT", "/v1/behaviour") => {
                let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                let failing = v["error_rate"].as_f64().unwrap_or(0.0) > 0.0;
                self.failing.store(failing, Ordering::SeqCst);
                (200, vec![], v.to_string())
            }
            _ => (404, vec![], "{}".into()),
        }
    }
}

async fn respond(st: Arc<StandIn>, req: support::Request) -> Option<String> {
    let (status, headers, out) = st
        .handle(&req.method, &req.target, &req.head, &req.body)
        .await;
    let mut resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        out.len()
    );
    for (k, v) in headers {
        resp.push_str(&format!("{k}: {v}\r\n"));
    }
    resp.push_str("\r\n");
    resp.push_str(&out);
    Some(resp)
}

struct Running {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(defect: Defect) -> Running {
    start_with(defect, None).await
}

async fn start_with(defect: Defect, dependency: Option<String>) -> Running {
    start_full(defect, dependency, None).await
}

async fn start_full(
    defect: Defect,
    dependency: Option<String>,
    events: Option<async_nats::jetstream::Context>,
) -> Running {
    let st = Arc::new(StandIn {
        defect,
        dependency,
        events,
        store: Mutex::default(),
        failing: AtomicBool::new(false),
        next: AtomicU64::new(1),
    });
    let (url, task) = support::serve(move |req| respond(st.clone(), req)).await;
    Running { url, task }
}

/// A scenario whose functional section points at the stand-in; `extra` adds to the operation.
fn scenario(url: &str, extra: &str) -> (PathBuf, String) {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/functional-test.yaml");
    let text = format!(
        r#"
name: functional-test
target: {url}
journeys:
  - name: j
    steps: [{{ name: s, method: GET, path: /livez }}]
load:
  open:
    phases: [{{ steady: {{ rate: 1, duration: 1s }} }}]
contract:
  openapi: ../reference-service/api/openapi.yaml
functional:
  timeout: 60s
  idempotency:
    - operation: createOrder
      body:
        json:
          customer_email: t-${{uuid}}@example.com
          currency: EUR
          card_number: "4242424242424242"
          items: [{{ sku: A, quantity: 1, unit_price_minor: 100 }}]
      expect:
        success: [201]
        replay_headers: {{ Idempotent-Replayed: "true" }}
        mismatch: {{ status: 422, type: {REUSED} }}
        conflict: {{ status: 409, type: {IN_FLIGHT} }}
      effect:
        correlate: {{ json: /customer_email }}
        http: {{ url: "/effects?key=${{key}}", items: /items }}
        downstream:
          url: {url}/v1/calls
          correlate: /order_id
          effective: {{ /replayed: false }}
      concurrency: 6
      settle_within: 3s
{extra}
  retry_discipline:
    operation: createOrder
    calls: {{ url: "{url}/v1/calls" }}
    max_attempts: 3
    min_backoff: 20ms
    backoff: {{ initial: 30ms, factor: 3, jitter: 0.25 }}
    faults:
      - name: downstream-5xx
        switch: {{ url: "{url}/v1/behaviour", set: {{ error_rate: 1 }} }}
        requests: 6                  # a false "not jittered" then has odds below 1 in 10,000
    no_retry:
      - name: decline
        set: {{ /card_number: "{DECLINED}" }}
"#
    );
    (file, text)
}

async fn pass(defect: Defect, extra: &str) -> BTreeMap<String, RuleResult> {
    pass_with(start(defect).await, extra, None, "").await
}

/// The pass against a running stand-in; with `dependency`, the matrix also cuts that
/// dependency's connections mid-write through the injector's proxy.
async fn pass_with(
    standin: Running,
    extra: &str,
    dependency: Option<(&str, Arc<Injector>)>,
    effect_extra: &str,
) -> BTreeMap<String, RuleResult> {
    let (file, text) = scenario(&standin.url, extra);
    let text = text.replace(
        "      concurrency: 6\n",
        &format!("{effect_extra}\n      concurrency: 6\n"),
    );
    let mut s = verifier::plan::parse(&file, &text).unwrap_or_else(|e| panic!("{e}"));
    let injector = dependency.map(|(name, inj)| {
        s.functional.as_mut().unwrap().idempotency[0].dependency_fault = Some(name.to_owned());
        inj
    });
    let out = verifier::functional::before_load(
        s.functional(),
        &file.display().to_string(),
        &standin.url,
        BTreeMap::new(),
        injector,
        &|_| None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    out.rules.into_iter().map(|r| (r.id.clone(), r)).collect()
}

fn status_of(rules: &BTreeMap<String, RuleResult>, case: &str) -> Status {
    let id = if case.starts_with("retries.") {
        case.to_owned()
    } else {
        format!("idempotency.createOrder.{case}")
    };
    rules
        .get(&id)
        .unwrap_or_else(|| panic!("no rule {id}: {:?}", rules.keys()))
        .status
}

/// The failures, as `id: detail`, for assertion messages.
fn failures(rules: &BTreeMap<String, RuleResult>) -> Vec<String> {
    rules
        .values()
        .filter(|r| r.status != Status::Pass)
        .map(|r| {
            format!(
                "{} {}: {} | {}",
                r.status.as_str(),
                r.id,
                r.observed,
                r.detail
            )
        })
        .collect()
}

const CASES: [&str; 9] = [
    "sequential-replay",
    "payload-mismatch",
    "concurrent-duplicates",
    "downstream-once",
    "retries.downstream-5xx",
    "retries.downstream-5xx.idle",
    "retries.downstream-5xx.backoff",
    "retries.downstream-5xx.jitter",
    "retries.decline",
];

/// Asserts that exactly `failing` of the checks fail, and every other passes.
async fn only_fails(defect: Defect, failing: &[&str]) {
    only_fails_but(defect, failing, &[]).await;
}

/// As [`only_fails`], with `either` allowed to pass or fail.
async fn only_fails_but(defect: Defect, failing: &[&str], either: &[&str]) {
    let rules = pass(defect, "").await;
    for case in CASES.into_iter().filter(|c| !either.contains(c)) {
        let want = if failing.contains(&case) {
            Status::Fail
        } else {
            Status::Pass
        };
        assert_eq!(
            status_of(&rules, case),
            want,
            "{defect:?}, {case}: {:#?}",
            failures(&rules)
        );
    }
    for r in rules.values().filter(|r| r.status == Status::Fail) {
        assert!(!r.detail.is_empty() && !r.evidence.is_empty(), "{r:?}");
        assert!(
            r.evidence
                .iter()
                .any(|e| e.starts_with("curl ") || e.contains("curl "))
                || r.id.ends_with("downstream-once"),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_stand_in_passes_every_check() {
    only_fails(Defect::None, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_deduplication_fails_replay_and_concurrency() {
    only_fails(
        Defect::NoDedup,
        &[
            "sequential-replay",
            "payload-mismatch",
            "concurrent-duplicates",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_differs_from_the_first_answer_fails() {
    // Concurrent duplicates mostly meet the first in flight (409); one that arrives late on a
    // loaded machine gets the differing replay and fails that case too.
    only_fails_but(
        Defect::ReplayDiffers,
        &["sequential-replay"],
        &["concurrent-duplicates"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_with_another_body_must_be_refused() {
    only_fails(Defect::IgnoresMismatch, &["payload-mismatch"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_then_insert_race_fails_the_concurrency_case() {
    only_fails(Defect::Racy, &["concurrent-duplicates"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_charge_downstream_fails() {
    only_fails(Defect::DoubleCharge, &["downstream-once"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_storm_and_retries_without_backoff_fail() {
    // Ten attempts 40 ms apart: too many, and the waits do not grow.
    only_fails(
        Defect::RetryStorm,
        &["retries.downstream-5xx", "retries.downstream-5xx.backoff"],
    )
    .await;
    // Back to back: no idle time, no window met, nothing to spread.
    only_fails(
        Defect::NoBackoff,
        &[
            "retries.downstream-5xx.idle",
            "retries.downstream-5xx.backoff",
            "retries.downstream-5xx.jitter",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backoff_that_does_not_grow_or_is_not_jittered_fails() {
    only_fails(Defect::FlatBackoff, &["retries.downstream-5xx.backoff"]).await;
    only_fails(Defect::Unjittered, &["retries.downstream-5xx.jitter"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_refusal_fails() {
    only_fails(Defect::RetriesRefusal, &["retries.decline"]).await;
}

/// Through a real Toxiproxy in front of the stand-in (a container on the host's network).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_lost_answer_must_not_take_effect_again() {
    let extra = "      lost_response: true";
    let good = pass(Defect::None, extra).await;
    assert_eq!(
        status_of(&good, "lost-response"),
        Status::Pass,
        "{:#?}",
        failures(&good)
    );
    let bad = pass(Defect::NoDedup, extra).await;
    let r = &bad["idempotency.createOrder.lost-response"];
    assert_eq!(r.status, Status::Fail, "{r:#?}");
    assert!(r.detail.contains("2 effects"), "{r:#?}");
}

/// A dependency the stand-in asks after each write, behind a real Toxiproxy (a container on the
/// host's network), which the check cuts while the request writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_dependency_cut_must_not_write_again() {
    let store = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_addr = store.local_addr().unwrap().to_string();
    let store_task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = store.accept().await {
            tokio::spawn(async move {
                let mut line = [0u8; 64];
                if sock.read(&mut line).await.is_ok() {
                    let _ = sock.write_all(b"ok\n").await;
                }
            });
        }
    });
    let proxy = ServiceProxy::up(&store_addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let through = proxy.base.trim_start_matches("http://").to_owned();
    let injector = Arc::new(Injector {
        toxiproxy: proxy.client.clone(),
        proxies: BTreeMap::from([("store".to_owned(), proxy.name().to_owned())]),
        containers: None,
    });
    let case = "idempotency.createOrder.store-cut-mid-write";
    let good = pass_with(
        start_with(Defect::None, Some(through.clone())).await,
        "",
        Some(("store", injector.clone())),
        "",
    )
    .await;
    let bad = pass_with(
        start_with(Defect::ForgetsKeyOnFailure, Some(through)).await,
        "",
        Some(("store", injector)),
        "",
    )
    .await;
    proxy.down().await.unwrap();
    store_task.abort();
    assert_eq!(good[case].status, Status::Pass, "{:#?}", good[case]);
    assert!(
        good[case].observed.contains("effects then: 1"),
        "the write landed before the cut: {:#?}",
        good[case]
    );
    assert_eq!(bad[case].status, Status::Fail, "{:#?}", bad[case]);
    assert!(bad[case].detail.contains("2 effects"), "{:#?}", bad[case]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_the_contract_lacks_is_refused_where_it_is_written() {
    let (file, text) = scenario("http://127.0.0.1:9", "");
    let text = text.replace("- operation: createOrder", "- operation: placeOrder");
    let e = verifier::plan::parse(&file, &text).unwrap_err();
    assert_eq!(e.field, "functional.idempotency[0].operation");
    assert!(e.line.is_some(), "{e}");
    assert!(
        e.message.contains("no operation `placeOrder`") && e.message.contains("createOrder"),
        "{e}"
    );
    let e = verifier::plan::parse(
        &file,
        &text.replace("  retry_discipline:", "  retry_discipline_x:"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("retry_discipline_x"), "{e}");
}

/// Events on a real JetStream stream: one per effect passes, two fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_effect_published_twice_fails_the_events_check() {
    let network = common::unique("functional");
    let nats = common::nats(&network, &common::unique("nats")).await;
    let url = format!("nats://{}", common::loopback(&nats, 4222).await);
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let extra = format!(
        "        events: {{ url: \"{url}\", stream: ORDERS, subject: orders.created, id_pointer: /order_id }}"
    );
    let case = "idempotency.createOrder.events-once";
    let good = pass_with(
        start_full(Defect::None, None, Some(js.clone())).await,
        "",
        None,
        &extra,
    )
    .await;
    let bad = pass_with(
        start_full(Defect::DoubleEvent, None, Some(js)).await,
        "",
        None,
        &extra,
    )
    .await;
    assert_eq!(good[case].status, Status::Pass, "{:#?}", good[case]);
    assert_eq!(bad[case].status, Status::Fail, "{:#?}", bad[case]);
    assert!(
        bad[case].evidence.iter().any(|e| e.contains("2 events")),
        "{:#?}",
        bad[case]
    );
}

/// A pass cut off by `functional.timeout` while the downstream's fault switch is on puts the
/// switch back before load could start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_pass_leaves_no_fault_behind() {
    let standin = start(Defect::HangsWhileFailing).await;
    let (file, text) = scenario(&standin.url, "");
    let text = text.replace("  timeout: 60s", "  timeout: 1s").replace(
        "  retry_discipline:",
        "  retry_discipline:\n    timeout: 30s",
    );
    let s = verifier::plan::parse(&file, &text).unwrap_or_else(|e| panic!("{e}"));
    let out = verifier::functional::before_load(
        s.functional(),
        &file.display().to_string(),
        &standin.url,
        BTreeMap::new(),
        None,
        &|_| None,
    )
    .await
    .unwrap();
    assert_eq!(out.rules.len(), 1, "{:#?}", out.rules);
    assert_eq!(out.rules[0].id, "functional");
    assert_eq!(
        out.rules[0].status,
        Status::Inconclusive,
        "{:#?}",
        out.rules
    );
    assert!(out.took < Duration::from_secs(5), "{:?}", out.took);
    let behaviour: serde_json::Value = reqwest::get(format!("{}/v1/behaviour", standin.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(behaviour["error_rate"], 0.0, "the switch was put back");
}

/// Each wrong field is named where it is written, before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_functional_sections_are_refused_with_the_field_to_blame() {
    let (file, text) = scenario("http://127.0.0.1:9", "      dependency_fault: postgres");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            text.clone(),
            "functional.idempotency[0].dependency_fault",
            "not a dependency this scenario starts",
        ),
        (
            text.replace("      dependency_fault: postgres", "")
                .replace(
                    "operation: createOrder\n    calls",
                    "operation: getOrder\n    calls",
                ),
            "functional.retry_discipline.operation",
            "`getOrder` is not among `functional.idempotency`",
        ),
        (
            text.replace("      dependency_fault: postgres", "")
                .replace(
                    "contract:\n  openapi: ../reference-service/api/openapi.yaml\n",
                    "",
                ),
            "functional",
            "add `contract: { openapi: ... }`",
        ),
        (
            text.replace("      dependency_fault: postgres", "")
                .replace("max_attempts: 3", "max_attempts: 0"),
            "functional.retry_discipline.max_attempts",
            "must be 1 to 100",
        ),
        (
            text.replace("      dependency_fault: postgres", "").replace(
                "    backoff: { initial: 30ms, factor: 3, jitter: 0.25 }\n",
                "    backoff: { initial: 50ms, factor: 0.5 }\n",
            ),
            "functional.retry_discipline.backoff.factor",
            "1 to 10",
        ),
        (
            text.replace("      dependency_fault: postgres", "").replace(
                "    backoff: { initial: 30ms, factor: 3, jitter: 0.25 }\n",
                "    backoff: { initial: 50ms, max: 10ms }\n",
            ),
            "functional.retry_discipline.backoff.max",
            "not be shorter than `backoff.initial`",
        ),
        (
            text.replace("      dependency_fault: postgres", "").replace(
                "    min_backoff: 20ms\n",
                "    min_backoff: 20ms\n    request_budget: 3s\n",
            ),
            "functional.retry_discipline.request_budget",
            "judged under `toxic` faults",
        ),
        (
            text.replace("      dependency_fault: postgres", "").replace(
                "      - name: decline\n",
                "      - name: decline-x\n        set: { card_number: x }\n      - name: decline\n",
            ),
            "functional.retry_discipline.no_retry[0].set.card_number",
            "not a JSON Pointer",
        ),
        (
            text.replace("      dependency_fault: postgres", "").replace(
                "      - name: decline\n",
                "      - name: downstream-5xx\n        set: { /a: 1 }\n      - name: decline\n",
            ),
            "functional.retry_discipline.no_retry[0].name",
            "rule ids must differ",
        ),
    ];
    for (yaml, field, says) in cases {
        let e = verifier::plan::parse(&file, &yaml).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains(says), "{e}");
    }
    // A body that renders the same correlation value twice leaves the cases nothing to tell
    // apart; found when the pass is prepared, before any request.
    let (file, text) = scenario("http://127.0.0.1:9", "");
    let s = verifier::plan::parse(&file, &text.replace("t-${uuid}@", "t@")).unwrap();
    let e = verifier::functional::before_load(
        s.functional(),
        "f.yaml",
        "http://127.0.0.1:9",
        BTreeMap::new(),
        None,
        &|_| None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("functional.idempotency[0].body") && e.contains("${uuid}"),
        "{e}"
    );
}

/// A probe that does not answer stops the run before load, with exit 2 and its field named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_does_not_answer_is_a_scenario_error() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let standin = start(Defect::None).await;
    let (_, text) = scenario(&standin.url, "");
    let text = text
        .replace(
            "http: { url: \"/effects?key=${key}\", items: /items }",
            &format!(
                "database: {{ url: \"postgres://kit:kit@127.0.0.1:{dead_port}/kit\", query: \"SELECT $1\" }}"
            ),
        )
        .replace(
            "../reference-service/api/openapi.yaml",
            &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../reference-service/api/openapi.yaml")
                .display()
                .to_string(),
        );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("functional.yaml");
    std::fs::write(&file, text).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_verifier"))
        .arg("run")
        .arg(&file)
        .arg("--report-dir")
        .arg(dir.path().join("r"))
        .args(["--progress", "off"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("functional.idempotency[0].effect.database")
            && err.contains("did not answer")
            && err.contains("*****"),
        "{err}"
    );
    assert!(!err.contains("kit:kit@"), "the password is masked: {err}");
}
