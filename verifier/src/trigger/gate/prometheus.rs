//! A local Prometheus for `prometheus: start`: Debian's `prometheus` on loopback, scraping the
//! service every second for the length of the run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A `prometheus` process on loopback scraping the service; killed and its data removed on drop.
pub struct LocalPrometheus {
    pub url: String,
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for LocalPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl LocalPrometheus {
    /// Starts Prometheus scraping `target` (host:port) every second under job `job`; waits up to
    /// `budget` for it to be ready.
    pub async fn start(target: &str, job: &str, budget: Duration) -> Result<Self, String> {
        Self::start_program("prometheus", target, job, budget).await
    }

    /// [`LocalPrometheus::start`] with the executable named (tests use a stand-in).
    pub async fn start_program(
        program: &str,
        target: &str,
        job: &str,
        budget: Duration,
    ) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "verifier-prometheus-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // JSON strings are YAML double-quoted scalars: any job name or target stays one value.
        let (job, target) = (
            serde_json::Value::from(job).to_string(),
            serde_json::Value::from(target).to_string(),
        );
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: [{target}]\n"
        );
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config).map_err(|e| format!("{}: {e}", cfg.display()))?;
        let log_path = dir.join("prometheus.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let child = std::process::Command::new(program)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                format!(
                    "cannot start `{program}` ({e}); install Debian's `prometheus` package or \
                     give `triggers.prometheus` a URL"
                )
            })?;
        let mut me = LocalPrometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + budget;
        loop {
            let ready = http
                .get(format!("{}/-/ready", me.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(me);
            }
            // A Prometheus that exited (a taken port, a bad flag) will never be ready: say why now.
            if let Ok(Some(status)) = me.child.try_wait() {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                let last = text.lines().rev().find(|l| !l.trim().is_empty());
                return Err(format!(
                    "prometheus exited before it was ready ({status}){}",
                    last.map_or_else(String::new, |l| format!(": {l}"))
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "prometheus on {} was not ready within {budget:?}",
                    me.url
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process (tests use it to take Prometheus away mid-run).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
