//! A `prometheus` that exits before it is ready is reported at once, with its last log line, not
//! after the whole start budget.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use verifier::trigger::gate::LocalPrometheus;

#[tokio::test]
async fn a_prometheus_that_exits_is_reported_at_once() {
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("prometheus");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'level=error msg=\"listen tcp: address already in use\"' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let started = Instant::now();
    let err = match LocalPrometheus::start_program(
        fake.to_str().unwrap(),
        "127.0.0.1:9",
        "job 'a'",
        Duration::from_secs(60),
    )
    .await
    {
        Ok(_) => panic!("a prometheus that exits must not count as started"),
        Err(e) => e,
    };
    assert!(
        err.contains("exited before it was ready") && err.contains("address already in use"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited {:?} for a process that had exited: {err}",
        started.elapsed()
    );
}

/// The job name and target are quoted into Prometheus's configuration: a quote in either does not
/// break it.
#[tokio::test]
async fn a_job_name_with_quotes_starts() {
    let mut prom = LocalPrometheus::start("127.0.0.1:9", "job 'a' \"b\"", Duration::from_secs(60))
        .await
        .expect("prometheus starts with a quoted job name");
    prom.kill();
}
