//! `verifier env`: what the verifier finds around it — its version, the Docker engine, and the
//! container images the environment provider would use. Read-only; starts nothing.

use std::time::Duration;

use tokio::process::Command;

use crate::env::images;
use crate::exit_codes;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `docker ARGS` with a deadline; `None` when docker is missing, fails or does not answer.
async fn docker(args: &[&str], docker_host: Option<&str>) -> Option<String> {
    let mut cmd = Command::new("docker");
    cmd.args(args).kill_on_drop(true);
    if let Some(host) = docker_host {
        cmd.env("DOCKER_HOST", host);
    }
    let out = tokio::time::timeout(PROBE_TIMEOUT, cmd.output())
        .await
        .ok()?
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Prints the report; exit 0 when an engine answers and every image is present, 3 otherwise.
pub async fn print(docker_host: Option<&str>) -> u8 {
    let host = docker_host;
    println!("verifier {}", env!("CARGO_PKG_VERSION"));
    let engine = docker(&["version", "--format", "{{.Server.Version}}"], host).await;
    match &engine {
        Some(v) => println!("docker engine: {v} ({})", host.unwrap_or("local socket")),
        None => println!(
            "docker engine: none answers ({}); the testcontainers provider is unavailable",
            host.unwrap_or("local socket")
        ),
    }
    let mut missing = 0;
    for row in images::table() {
        let var = &row.var;
        let image = images::image(var).unwrap_or_else(|| row.default.clone());
        let state = if engine.is_none() {
            "unknown"
        } else if docker(&["image", "inspect", "--format", "{{.Id}}", &image], host)
            .await
            .is_some()
        {
            "present"
        } else {
            missing += 1;
            "absent (run platform/images.sh)"
        };
        println!("{var:<20} {image:<45} {state}");
    }
    if engine.is_some() && missing == 0 {
        exit_codes::PASS
    } else {
        exit_codes::ENVIRONMENT
    }
}
