//! Keep-alive connections the target closes: an idle connection the target closed is the
//! generator's own business (the request is sent again on a new connection and counted as a
//! reconnect, not an error), while a target that breaks a connection in the middle of an
//! answer, or before answering on a new connection, is blamed for it.
//!
//! The servers here are raw TCP on 127.0.0.1, so each can close or reset a connection at an
//! exact point of the exchange.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use verifier::load::Stop;
use verifier::report::progress::Mode;
use verifier::report::{EndpointReport, Report};
use verifier::run::{RunOptions, run};

/// What the server does with the `n`-th request (1-based) on a connection.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Answer,
    /// Reads the request, then closes the connection without a word (FIN).
    Close,
    /// Reads the request, then resets the connection without a word (RST).
    Reset,
    /// Sends part of the answer's head, pauses, then resets.
    PartialHead,
    /// Sends the head and part of the body, pauses, then resets.
    PartialBody,
}

const ANSWER: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

#[derive(Default)]
struct Seen {
    connections: AtomicU64,
    requests: AtomicU64,
    /// Requests the server read and did not answer in full.
    unanswered: AtomicU64,
}

struct Server {
    url: String,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server that closes connections idle for `idle_close` (as Go's `IdleTimeout` does, with a
/// plain close) and treats each request as `act(n on its connection, request target)` says.
async fn server<A>(idle_close: Option<Duration>, act: A) -> Server
where
    A: Fn(u64, &str) -> Act + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let act = Arc::new(act);
    let task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                seen.connections.fetch_add(1, Ordering::SeqCst);
                let (seen, act) = (seen.clone(), act.clone());
                tokio::spawn(async move {
                    let _ = connection(sock, idle_close, &seen, &*act).await;
                });
            }
        })
    };
    Server { url, seen, task }
}

async fn connection<A>(
    mut sock: TcpStream,
    idle_close: Option<Duration>,
    seen: &Seen,
    act: &A,
) -> std::io::Result<()>
where
    A: Fn(u64, &str) -> Act,
{
    sock.set_nodelay(true)?;
    let mut buf = Vec::new();
    for n in 1u64.. {
        // The request's head, then its body per Content-Length.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let waiting = idle_close.filter(|_| buf.is_empty());
            let read = read_more(&mut sock, &mut buf);
            let more = match waiting {
                Some(idle) => match tokio::time::timeout(idle, read).await {
                    Ok(r) => r?,
                    // Idle too long: close, as servers with an idle timeout do.
                    Err(_) => return Ok(()),
                },
                None => read.await?,
            };
            if !more {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            if !read_more(&mut sock, &mut buf).await? {
                return Ok(());
            }
        }
        buf.drain(..head_end + len);
        seen.requests.fetch_add(1, Ordering::SeqCst);
        let target = head.split_whitespace().nth(1).unwrap_or("");
        let what = act(n, target);
        if what != Act::Answer {
            seen.unanswered.fetch_add(1, Ordering::SeqCst);
        }
        match what {
            Act::Answer => sock.write_all(ANSWER.as_bytes()).await?,
            Act::Close => return Ok(()),
            Act::Reset => return reset(sock),
            Act::PartialHead | Act::PartialBody => {
                let part = if what == Act::PartialHead {
                    &ANSWER[..20]
                } else {
                    &ANSWER[..ANSWER.len() - 4]
                };
                sock.write_all(part.as_bytes()).await?;
                // Long enough for the client to have read the part before the reset.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return reset(sock);
            }
        }
    }
    Ok(())
}

async fn read_more(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 4096];
    let n = sock.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

/// Drops the connection with a RST instead of a FIN.
fn reset(sock: TcpStream) -> std::io::Result<()> {
    sock.set_zero_linger()?;
    drop(sock);
    Ok(())
}

async fn run_against(srv: &Server, yaml: &str) -> Report {
    let (dir, path) = support::scenario_file(yaml);
    let opts = RunOptions {
        scenario: path,
        target: Some(srv.url.clone()),
        baseline_target: None,
        report_dir: dir.path().join("report"),
        progress: Mode::Off,
        shard: None,
    };
    run(&opts, Stop::new(), &|_| None).await.unwrap().report
}

fn endpoint<'r>(r: &'r Report, name: &str) -> &'r EndpointReport {
    r.endpoints.iter().find(|e| e.name == name).unwrap()
}

/// Below one arrival a second, the one connection idles past the server's 1 s idle timeout
/// before every request after the first, and each of those finds it closed. The
/// requests are POSTs without an idempotency key: one the target closed the connection under
/// before it was written can always be sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_idle_connections_costs_no_errors() {
    let _serial = support::SERIAL.lock().await;
    support::with_retries(|| async {
        let srv = server(Some(Duration::from_secs(1)), |_, _| Act::Answer).await;
        let r = run_against(
            &srv,
            r#"
name: idle-close
journeys:
  - name: create
    steps: [{ name: create, method: POST, path: /v1/orders, body: { json: { n: 1 } } }]
load:
  open:
    # 1.33 s between arrivals, against a 1 s idle timeout.
    phases: [{ steady: { rate: 0.75, duration: 4s } }]
    max_in_flight: 1
budgets:
  min_samples: 1
  error_rate: 0.0
"#,
        )
        .await;
        let (g, c) = (&r.generator, &r.overall.counts);
        assert_eq!(r.overall.requests, 3, "{c:?}");
        assert_eq!(r.overall.errors, 0, "{c:?}; {} reconnects", g.reconnects);
        assert_eq!(srv.seen.requests.load(Ordering::SeqCst), 3);
        assert_eq!(r.exit_code, 0, "{}", verifier::report::terminal(&r));
        // Each arrival after the first finds the connection closed, unless a busy machine
        // delayed the server's idle close past it.
        ensure!(
            g.reconnects >= 1 && g.reconnects <= 2,
            "{} reconnects",
            g.reconnects
        );
        // The run's preflight connection, the first one, and one per reconnect.
        assert_eq!(
            srv.seen.connections.load(Ordering::SeqCst),
            1 + 1 + g.reconnects
        );
        Ok(())
    })
    .await;
}

/// The failure this engine had: with 40 connections taking turns at 20 requests/s, each idled
/// 2 s between uses, past the server's 1 s idle timeout, and a third of the requests failed.
/// Reused most-recent-first, the connections a modest rate needs stay hot and the rest are
/// never opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modest_rate_keeps_a_few_connections_hot() {
    let _serial = support::SERIAL.lock().await;
    support::with_retries(|| async {
        let srv = server(Some(Duration::from_secs(1)), |_, _| Act::Answer).await;
        let r = run_against(
            &srv,
            r#"
name: few-connections
journeys: [{ name: ping, steps: [{ name: ping, method: GET, path: /ping }] }]
load:
  open:
    phases: [{ steady: { rate: 20, duration: 3s } }]
    max_in_flight: 40
"#,
        )
        .await;
        assert_eq!(r.overall.requests, 60);
        assert_eq!(r.overall.errors, 0, "{:?}", r.overall.counts);
        // Less the run's preflight connection.
        let connections = srv.seen.connections.load(Ordering::SeqCst) - 1;
        // One request at a time needs one connection; a slow moment may overlap a few.
        ensure!(
            connections <= 5,
            "{connections} connections for 60 requests"
        );
        assert_eq!(r.generator.reconnects, 0);
        Ok(())
    })
    .await;
}

/// The target answers the first request on each connection and breaks the second in the middle
/// of its answer, in the head or in the body. Part of the answer came, so the target had the
/// request and failed it: counted, never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_in_the_middle_of_an_answer_is_counted() {
    let _serial = support::SERIAL.lock().await;
    let srv = server(None, |n, target| match (n, target) {
        (1, _) => Act::Answer,
        (_, "/head") => Act::PartialHead,
        _ => Act::PartialBody,
    })
    .await;
    let r = run_against(
        &srv,
        r#"
name: mid-answer
journeys:
  # Weights 1:2, so that both journeys meet both the answered and the broken request.
  - { name: head, steps: [{ name: head, method: GET, path: /head }] }
  - { name: body, weight: 2, steps: [{ name: body, method: GET, path: /body }] }
load:
  open:
    phases: [{ steady: { rate: 10, duration: 2s } }]
    max_in_flight: 1
budgets:
  min_samples: 1
  error_rate: 0.0
"#,
    )
    .await;
    let c = r.overall.counts;
    assert_eq!(r.overall.requests, 20, "{c:?}");
    let broken = srv.seen.unanswered.load(Ordering::SeqCst);
    // One request at a time: answered, broken, answered, broken...
    assert_eq!(broken, 10);
    assert_eq!(r.overall.errors, broken, "{c:?}");
    assert_eq!(c.reset, broken, "{c:?}");
    assert!(endpoint(&r, "head").errors > 0 && endpoint(&r, "body").errors > 0);
    assert_eq!(r.generator.reconnects, 0);
    assert_eq!(
        srv.seen.requests.load(Ordering::SeqCst),
        20,
        "nothing sent twice"
    );
    assert_eq!(r.exit_code, 1);
}

/// A new connection reset before any answer: the target's doing, counted, never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_reset_before_answering_is_counted() {
    let _serial = support::SERIAL.lock().await;
    let srv = server(None, |_, _| Act::Reset).await;
    let r = run_against(
        &srv,
        r#"
name: reset-new
journeys: [{ name: ping, steps: [{ name: ping, method: GET, path: /ping }] }]
load:
  open:
    phases: [{ steady: { rate: 10, duration: 1s } }]
    max_in_flight: 2
budgets:
  min_samples: 1
  error_rate: 0.0
"#,
    )
    .await;
    let c = r.overall.counts;
    assert_eq!(r.overall.requests, 10, "{c:?}");
    assert_eq!(c.reset, 10, "{c:?}");
    assert_eq!(r.generator.reconnects, 0);
    assert_eq!(
        srv.seen.requests.load(Ordering::SeqCst),
        10,
        "nothing sent twice"
    );
    // The run's preflight connection and one per request.
    assert_eq!(srv.seen.connections.load(Ordering::SeqCst), 1 + 10);
    assert_eq!(r.exit_code, 1);
}

/// The target reads the second request on each connection and closes it unanswered: from the
/// client's side a close racing the request, or a target that took the request and died. A
/// request that may be repeated (idempotent method, or an Idempotency-Key) is sent again; a
/// plain POST is not, since the target may have acted on it, and counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_request_is_sent_again_only_when_it_may_be_repeated() {
    let _serial = support::SERIAL.lock().await;
    let srv = server(None, |n, _| if n == 1 { Act::Answer } else { Act::Close }).await;
    let r = run_against(
        &srv,
        r#"
name: replayable
journeys:
  - { name: get, steps: [{ name: get, method: GET, path: /x }] }
  - { name: post, steps: [{ name: post, method: POST, path: /v1/orders }] }
  # Weight 2, so that keyed requests meet both the answered and the closed request.
  - name: keyed
    weight: 2
    steps:
      - name: keyed
        method: POST
        path: /v1/orders
        headers: { Idempotency-Key: "${uuid}" }
load:
  open:
    phases: [{ steady: { rate: 16, duration: 2s } }]
    max_in_flight: 1
"#,
    )
    .await;
    let (get, post, keyed) = (
        endpoint(&r, "get"),
        endpoint(&r, "post"),
        endpoint(&r, "keyed"),
    );
    assert_eq!(r.overall.requests, 32, "{:?}", r.overall.counts);
    assert_eq!(get.errors, 0, "{:?}", get.counts);
    assert_eq!(keyed.errors, 0, "{:?}", keyed.counts);
    assert!(post.errors > 0, "{:?}", post.counts);
    assert_eq!(post.counts.reset, post.errors);
    let g = &r.generator;
    assert!(g.reconnects > 0);
    // Every request the server left unanswered was either sent again or counted.
    assert_eq!(
        srv.seen.unanswered.load(Ordering::SeqCst),
        g.reconnects + post.errors
    );
}

/// The closed model's client (reqwest on hyper-util's pool) keeps a task reading every idle
/// connection, so the server's idle close is seen when it happens and the connection leaves
/// the pool; a request that still meets a closed connection before it was written is sent again
/// by hyper-util itself. Think time past the server's idle timeout therefore costs no errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_model_is_not_blamed_for_an_idle_close() {
    let _serial = support::SERIAL.lock().await;
    let srv = server(Some(Duration::from_secs(1)), |_, _| Act::Answer).await;
    let r = run_against(
        &srv,
        r#"
name: closed-idle-close
journeys:
  - name: ping
    think_time: 1500ms
    steps:
      - { name: ping, method: GET, path: /ping }
      - { name: after-think, method: GET, path: /ping }
load:
  closed:
    phases:
      - ramp: { users: 2, duration: 1s }
      - steady: { duration: 3s }
budgets:
  min_samples: 1
  error_rate: 0.0
"#,
    )
    .await;
    assert_eq!(r.model, "closed");
    assert!(r.overall.requests >= 4, "{:?}", r.overall.counts);
    assert_eq!(r.overall.errors, 0, "{:?}", r.overall.counts);
    // Every request after a think time went out on a new connection (less the preflight's).
    let connections = srv.seen.connections.load(Ordering::SeqCst) - 1;
    let after_think = r
        .endpoints
        .iter()
        .find(|e| e.name == "after-think")
        .unwrap()
        .requests;
    assert!(after_think >= 2, "{:?}", r.overall.counts);
    assert!(
        connections >= after_think,
        "{connections} connections for {after_think} requests after a think time"
    );
    assert_eq!(r.exit_code, 0);
}
