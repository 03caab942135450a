//! `verifier env`: what the verifier finds around it — its version, the Docker engine, and the
//! container images the environment provider would use. Read-only; starts nothing.

use std::time::Duration;

use tokio::process::Command;

use crate::cli::EnvArgs;
use crate::exit_codes;

/// The images the testcontainers provider uses, by the environment variable that names each.
/// Defaults are the official images; `make` exports the locally built stand-ins instead
/// (see `platform/images.conf`). The kit's own programs have no official image; their default is
/// the local build.
pub const IMAGES: [(&str, &str); 6] = [
    (
        "KIT_IMAGE_POSTGRES",
        "docker.io/library/postgres:15-bookworm",
    ),
    ("KIT_IMAGE_REDIS", "docker.io/library/redis:7.0-bookworm"),
    ("KIT_IMAGE_NATS", "docker.io/library/nats:2.10.27"),
    ("KIT_IMAGE_TOXIPROXY", "ghcr.io/shopify/toxiproxy:2.12.0"),
    ("KIT_IMAGE_PAYMENTSIM", "kit-local/paymentsim:dev"),
    ("KIT_IMAGE_SERVICE", "kit-local/orders-service:dev"),
];

/// The image for a dependency's variable (e.g. `KIT_IMAGE_POSTGRES`): the variable's value, or the
/// official default. `None` for a variable the kit does not know.
pub fn image(var: &str) -> Option<String> {
    let official = IMAGES.iter().find(|(v, _)| *v == var)?.1;
    Some(std::env::var(var).unwrap_or_else(|_| official.to_owned()))
}

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
pub async fn print(args: EnvArgs) -> u8 {
    let host = args.docker_host.as_deref();
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
    for (var, official) in IMAGES {
        let image = image(var).unwrap_or_else(|| official.to_owned());
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

#[cfg(test)]
mod tests {
    use super::IMAGES;

    /// The defaults here must be the official images `platform/images.conf` names (the local
    /// build for the kit's own programs, which have none).
    #[test]
    fn defaults_match_images_conf() {
        let conf = include_str!("../../platform/images.conf");
        for (var, official) in IMAGES {
            let name = var.trim_start_matches("KIT_IMAGE_").to_lowercase();
            let line = conf
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() == 3 && f[0] == name)
                .unwrap_or_else(|| panic!("platform/images.conf does not name {name}"));
            let expected = if line[1] == "-" { line[2] } else { line[1] };
            assert_eq!(expected, official, "default image for {name}");
        }
    }
}
