//! Admin API helpers for the system tests: the generated tonic client with a bearer token, the
//! bootstrap token written to a file for `[admin] token_file`, and polling with a deadline.

use super::{Cluster, RelayNode, WAIT};
use relay_proto::admin::v1::admin_client::AdminClient;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testkit::TempDir;
use tonic::transport::Channel;

/// The first administrator's token the test clusters are configured with.
pub const ADMIN_TOKEN: &str = "system-test-admin-token-0123456789";

/// A lazily connecting plain-text channel to `node`'s API.
pub fn channel(node: &RelayNode) -> Channel {
    Channel::from_shared(format!("http://{}", node.api))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(20))
        .connect_lazy()
}

/// Adds `authorization: Bearer <token>` to every call (nothing when there is no token).
#[derive(Clone)]
pub struct Bearer(pub Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    /// The header for `token`, if any.
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(|t| format!("Bearer {t}").parse().unwrap()))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(h) = &self.0 {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    }
}

/// The admin client with a bearer token.
pub type Admin = AdminClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// An admin client of `node` sending `token` (none when `None`).
pub fn admin(node: &RelayNode, token: Option<&str>) -> Admin {
    AdminClient::with_interceptor(channel(node), Bearer::new(token))
}

/// [`ADMIN_TOKEN`] in a file of its own folder (removed on drop).
pub struct TokenFile {
    _dir: TempDir,
    /// The file.
    pub path: PathBuf,
}

impl TokenFile {
    /// Writes [`ADMIN_TOKEN`] to a new file.
    pub fn new() -> Self {
        let dir = TempDir::new("admin-token").unwrap();
        let path = dir.path().join("admin-token");
        std::fs::write(&path, ADMIN_TOKEN).unwrap();
        Self { _dir: dir, path }
    }

    /// The `[admin]` table naming the file.
    pub fn table(&self) -> String {
        format!("[admin]\ntoken_file = \"{}\"\n", self.path.display())
    }
}

/// Polls `f` until it returns `Some`, or fails with `what` and the cluster's logs.
pub async fn until<T, F, Fut>(cluster: &Cluster, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `node`'s admin API knows the bootstrap administrator.
pub async fn await_administrator(cluster: &Cluster, node: &RelayNode) {
    until(cluster, "the bootstrap administrator", || async {
        admin(node, Some(ADMIN_TOKEN))
            .who_am_i(relay_proto::admin::v1::WhoAmIRequest {})
            .await
            .ok()
    })
    .await;
}
