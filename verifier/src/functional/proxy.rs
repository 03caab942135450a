//! A Toxiproxy between the verifier and the service, for cutting answers on their way back.
//!
//! The service under test runs as a process on loopback, and the testcontainers Toxiproxy sits on
//! the environment's private bridge network, from where 127.0.0.1 is the container itself; the
//! service would have to listen on the bridge gateway (beyond loopback) to be reached. So this
//! proxy is its own Toxiproxy container in the host's network namespace, bound to 127.0.0.1 on
//! free ports: it reaches the service where the verifier does, and nothing is exposed beyond
//! loopback.

use std::time::{Duration, Instant};

use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::env::containers::{MANAGED_LABEL, image};
use crate::fault::toxiproxy::{Client, Stream, Toxic, ToxicKind};

const NAME: &str = "service";
const STARTUP: Duration = Duration::from_secs(30);

/// A running proxy in front of the service; removed on [`ServiceProxy::down`] or drop.
pub struct ServiceProxy {
    /// Base URL that reaches the service through the proxy.
    pub base: String,
    pub client: Client,
    container: ContainerAsync<GenericImage>,
}

impl ServiceProxy {
    /// Starts the proxy towards `authority` (`127.0.0.1:port` of the service).
    pub async fn up(authority: &str) -> Result<Self, String> {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!(
                "the target {authority} is not on loopback; the proxy that cuts answers runs on \
                 this machine"
            ));
        }
        let api_port = free_port()?;
        let listen_port = free_port()?;
        let (img, tag) = image("KIT_IMAGE_TOXIPROXY");
        let req = GenericImage::new(img, tag)
            .with_cmd(["-host=127.0.0.1".to_owned(), format!("-port={api_port}")])
            .with_network("host")
            .with_label(MANAGED_LABEL, "true")
            .with_label("io.deliverykit.run", std::process::id().to_string())
            .with_startup_timeout(STARTUP);
        let container = tokio::time::timeout(STARTUP, req.start())
            .await
            .map_err(|_| format!("the service proxy did not start within {STARTUP:?}"))?
            .map_err(|e| format!("the service proxy did not start: {e}"))?;
        let client = Client::new(format!("http://127.0.0.1:{api_port}"))
            .map_err(|e| format!("the service proxy's client: {e}"))?;
        let deadline = Instant::now() + STARTUP;
        while client.version().await.is_err() {
            if Instant::now() > deadline {
                return Err("the service proxy's API did not answer".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let upstream = authority.replace("localhost", "127.0.0.1");
        client
            .create_proxy(NAME, &format!("127.0.0.1:{listen_port}"), &upstream)
            .await
            .map_err(|e| format!("creating the service proxy: {e}"))?;
        Ok(Self {
            base: format!("http://127.0.0.1:{listen_port}"),
            client,
            container,
        })
    }

    /// The proxy's name in its Toxiproxy.
    pub fn name(&self) -> &'static str {
        NAME
    }

    /// Cuts every answer after `bytes` bytes until [`ServiceProxy::heal`].
    pub async fn cut_answers(&self, bytes: u64) -> Result<(), String> {
        self.client
            .add_toxic(
                NAME,
                &Toxic {
                    name: "cut-answer".into(),
                    stream: Stream::Downstream,
                    toxicity: 1.0,
                    kind: ToxicKind::LimitData { bytes },
                },
            )
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    pub async fn heal(&self) -> Result<(), String> {
        self.client
            .remove_toxic(NAME, "cut-answer")
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn down(self) -> Result<(), String> {
        self.container
            .rm()
            .await
            .map_err(|e| format!("could not remove the service proxy: {e}"))
    }
}

fn free_port() -> Result<u16, String> {
    // Bound and released: Toxiproxy binds it a moment later (the same race the service start
    // accepts; a clash fails the start with Toxiproxy's own error).
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}
