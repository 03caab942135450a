//! A small HTTP/1.1 server on 127.0.0.1:0 with known behaviour, for driving the load
//! engines: a fixed service time, a stall switch, and routes that fail in known ways.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Load tests measure time; run them one at a time so they do not share the two cores.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Default)]
pub struct State {
    /// Service time of every request.
    pub delay: Mutex<Duration>,
    /// Requests that arrive or are in progress before this instant wait for it.
    pub stalled_until: Mutex<Option<Instant>>,
    /// (offset, length): stall for `length` starting `offset` after the first request
    /// arrived, like a SIGSTOP of the target at a known point of the schedule.
    pub stall_after_first: Mutex<Option<(Duration, Duration)>>,
    pub first_request: Mutex<Option<Instant>>,
    stall_starts: Mutex<Option<Instant>>,
    pub requests: AtomicU64,
    pub created: AtomicU64,
}

pub struct Server {
    pub url: String,
    pub state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(delay: Duration) -> Server {
    let state = Arc::new(State::default());
    *state.delay.lock().unwrap() = delay;
    let st = state.clone();
    let (url, task) = serve(move |req| respond(st.clone(), req)).await;
    Server { url, state, task }
}

/// One request read by [`serve`].
pub struct Request {
    /// The request line and headers, up to and including the blank line.
    pub head: String,
    pub method: String,
    /// The request target as sent, query included.
    pub target: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// Binds 127.0.0.1:0 and serves HTTP/1.1 with keep-alive: each request (its body read per
/// `Content-Length`) goes to `handler`, whose answer is written back whole; `None` closes the
/// connection without answering. Returns the base URL and the accept task (abort it to stop
/// accepting).
pub async fn serve<H, F>(handler: H) -> (String, tokio::task::JoinHandle<()>)
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Option<String>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = connection(sock, &*handler).await;
            });
        }
    });
    (url, task)
}

async fn connection<H, F>(mut sock: TcpStream, handler: &H) -> std::io::Result<()>
where
    H: Fn(Request) -> F,
    F: std::future::Future<Output = Option<String>>,
{
    sock.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(8192);
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !fill(&mut sock, &mut buf).await? {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut req = Request {
            head,
            method: String::new(),
            target: String::new(),
            body: Vec::new(),
        };
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            if !fill(&mut sock, &mut buf).await? {
                return Ok(());
            }
        }
        req.body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let mut first = req.head.split_whitespace();
        req.method = first.next().unwrap_or("").to_owned();
        req.target = first.next().unwrap_or("").to_owned();
        let Some(resp) = handler(req).await else {
            return Ok(());
        };
        sock.write_all(resp.as_bytes()).await?;
    }
}

/// Reads once more into `buf`; false when the peer has closed.
async fn fill(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 8192];
    let n = sock.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

/// A port with nothing listening on it.
pub async fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

/// The answer of the load-test server to one request.
async fn respond(st: Arc<State>, req: Request) -> Option<String> {
    let (method, path) = (req.method.as_str(), req.target.as_str());
    let n = st.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        let first = Instant::now();
        *st.first_request.lock().unwrap() = Some(first);
        if let Some((offset, len)) = *st.stall_after_first.lock().unwrap() {
            *st.stalled_until.lock().unwrap() = Some(first + offset + len);
            *st.stall_starts.lock().unwrap() = Some(first + offset);
        }
    }
    let stall_start = *st.stall_starts.lock().unwrap();
    let delay = *st.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let until = *st.stalled_until.lock().unwrap();
    if let (Some(from), Some(until)) = (stall_start, until) {
        let now = Instant::now();
        if now >= from && now < until {
            tokio::time::sleep(until - now).await;
        }
    }
    let (status, body): (u16, String) = match (method, path) {
        ("POST", "/v1/orders") => {
            let id = st.created.fetch_add(1, Ordering::SeqCst) + 1;
            (201, format!(r#"{{"id":"ord-{id}","status":"paid"}}"#))
        }
        ("GET", p) if p.starts_with("/v1/orders/ord-") => (200, r#"{"ok":true}"#.into()),
        ("GET", p) if p.starts_with("/v1/orders/") => (404, r#"{"title":"not found"}"#.into()),
        (_, "/status/503") => (503, "{}".into()),
        (_, "/status/404") => (404, "{}".into()),
        (_, "/reset") => {
            // Close without answering: the client sees the connection end mid-exchange.
            return None;
        }
        (_, "/hang") => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (200, "{}".into())
        }
        _ => (200, r#"{"ok":true}"#.into()),
    };
    let reason = match status {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    Some(resp)
}

/// Writes a scenario into a temp dir and returns (dir, path).
pub fn scenario_file(yaml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("scenario.yaml");
    std::fs::write(&p, yaml).unwrap();
    (dir, p)
}

/// Runs a timing-sensitive check up to three times. Contention on a shared machine only
/// adds latency and lag, so one clean pass shows the engine right, while a real defect
/// fails every attempt.
pub async fn with_retries<F, Fut>(mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut errors = Vec::new();
    for _ in 0..3 {
        match attempt().await {
            Ok(()) => return,
            Err(e) => errors.push(e),
        }
    }
    panic!("failed 3 attempts:\n{}", errors.join("\n"));
}

/// `assert!` for [`with_retries`] attempts.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        let ok: bool = $cond;
        if !ok {
            return Err(format!($($msg)+));
        }
    };
}

/// Builds a package of the reference service (`./cmd/service`, `./cmd/devtoken`) into `out`.
pub fn go_build(root: &std::path::Path, out: &std::path::Path, pkg: &str) {
    let status = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(out)
        .arg(pkg)
        .current_dir(root.join("reference-service"))
        .status()
        .expect("go is installed (Go 1.26)");
    assert!(status.success(), "go build {pkg} failed");
}

/// Waits for a child process, killing it and failing the test once `limit` has passed since
/// `since`: no test waits on a run for ever.
pub fn wait_bounded(
    child: &mut std::process::Child,
    since: Instant,
    limit: Duration,
    what: &str,
) -> std::process::ExitStatus {
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if since.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not finish within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
