//! What the Raft server checks before a handler runs, on the HTTP request itself: the cluster
//! secret, from the headers, before a byte of the body is read (a caller without it is answered
//! `UNAUTHENTICATED` at once, and its body is never buffered or decoded); then a size limit per
//! method on the body (a vote is small; a forwarded write carries at most one client batch).

use super::MAX_MESSAGE_BYTES;
use super::auth::ClusterSecret;
use crate::state::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_KEY_PART_BYTES};
use crate::types::NodeId;
use bytes::Bytes;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

/// Largest `Vote` request body.
pub const MAX_VOTE_BYTES: usize = 64 * 1024;
/// Largest `Forward` request body: one client batch at its limits (payload bytes,
/// and for each record its source and alert ID at full length plus framing), and room for the
/// rest of the request.
pub const MAX_FORWARD_BYTES: usize =
    MAX_BATCH_BYTES + MAX_BATCH_RECORDS * (2 * MAX_KEY_PART_BYTES + 32) + 64 * 1024;
const _: () = assert!(MAX_FORWARD_BYTES < MAX_MESSAGE_BYTES);
/// A gRPC message travels behind a 5-byte header (compression flag, length).
const GRPC_HEADER_BYTES: usize = 5;

/// The methods of the Raft service, by the last segment of the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Forward,
    Other,
}

impl Method {
    fn of(path: &str) -> Self {
        match path.rsplit('/').next() {
            Some("AppendEntries") => Self::AppendEntries,
            Some("Vote") => Self::Vote,
            Some("InstallSnapshot") => Self::InstallSnapshot,
            Some("Forward") => Self::Forward,
            _ => Self::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::AppendEntries => "append_entries",
            Self::Vote => "vote",
            Self::InstallSnapshot => "install_snapshot",
            Self::Forward => "forward",
            Self::Other => "unknown method",
        }
    }

    /// Largest message this method takes.
    pub(crate) fn limit(self) -> usize {
        match self {
            Self::AppendEntries | Self::InstallSnapshot => MAX_MESSAGE_BYTES,
            Self::Forward => MAX_FORWARD_BYTES,
            Self::Vote | Self::Other => MAX_VOTE_BYTES,
        }
    }
}

/// The Raft service behind the secret check and the per-method body limit.
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    secret: ClusterSecret,
    node: NodeId,
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S, secret: ClusterSecret, node: NodeId) -> Self {
        Self {
            inner,
            secret,
            node,
        }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Guarded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let method = Method::of(req.uri().path());
        let presented = req
            .headers()
            .get(super::SECRET_HEADER)
            .and_then(|v| v.to_str().ok());
        if !presented.is_some_and(|p| self.secret.verify(p)) {
            let peer = remote_addr(req.extensions())
                .map(|a| a.to_string())
                .unwrap_or_else(|| "unknown".into());
            let status = self.secret.refusal(self.node, &peer, method.name());
            // The body is dropped unread: HTTP/2 resets the stream.
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let limit = method.limit() + GRPC_HEADER_BYTES;
        let req = req.map(|body| {
            Body::new(Limited {
                inner: body,
                left: limit,
                method,
            })
        });
        Box::pin(self.inner.call(req))
    }
}

/// The caller's address, from the connection info tonic puts into the request (plain or TLS).
fn remote_addr(ext: &http::Extensions) -> Option<std::net::SocketAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

/// A request body that fails (`OUT_OF_RANGE`, naming the method and its limit) once more than
/// its method's limit has arrived, so no more than that is ever buffered for one call.
struct Limited {
    inner: Body,
    left: usize,
    method: Method,
}

impl http_body::Body for Limited {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            if data.len() > self.left {
                let method = self.method;
                return Poll::Ready(Some(Err(tonic::Status::out_of_range(format!(
                    "{} request over {} bytes",
                    method.name(),
                    method.limit()
                )))));
            }
            self.left -= data.len();
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::ForwardRequest;
    use crate::state::Command;
    use crate::state::outbox::{Record, RecordKind};

    #[test]
    fn a_maximal_client_batch_fits_the_forward_limit() {
        let payload = Bytes::from(vec![b'p'; MAX_BATCH_BYTES / MAX_BATCH_RECORDS]);
        let records: Vec<Record> = (0..MAX_BATCH_RECORDS)
            .map(|i| Record {
                kind: RecordKind::Alert,
                source: "s".repeat(MAX_KEY_PART_BYTES),
                alert_id: format!("{i:0>width$}", width = MAX_KEY_PART_BYTES),
                payload: payload.clone(),
                received_at_ms: u64::MAX,
            })
            .collect();
        let forward = ForwardRequest::Write(Command::Submit { records });
        let len = crate::codec::encode(&forward).unwrap().len();
        assert!(len < MAX_FORWARD_BYTES, "{len} >= {MAX_FORWARD_BYTES}");
    }

    #[test]
    fn methods_are_told_apart_by_the_path() {
        let m = |p: &str| Method::of(p);
        assert_eq!(
            m("/siemrelay.raft.v1.RaftService/AppendEntries"),
            Method::AppendEntries
        );
        assert_eq!(m("/siemrelay.raft.v1.RaftService/Vote"), Method::Vote);
        assert_eq!(m("/siemrelay.raft.v1.RaftService/Forward"), Method::Forward);
        // a method the service does not have gets the smallest limit
        assert_eq!(m("/siemrelay.raft.v1.RaftService/Client"), Method::Other);
        assert_eq!(m("/x/Nope").limit(), MAX_VOTE_BYTES);
    }
}
