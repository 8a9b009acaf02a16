//! The admin client's retry rules against real sockets: a write moves on only when the first node
//! could not be reached; once the request may have reached a node it is indeterminate, while a
//! read moves on. The second node is a fake ingest node: it does not serve the admin API, so its
//! `UNIMPLEMENTED` answer shows that the call reached it.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::Result;
use relay_client::{AdminClient, ClientError, ErrorKind, SettingsUpdate};
use tonic::Code;

use crate::fake_node::{FakeCluster, FakeNode};
use crate::{LOCALHOST, closed_addr, config, spec};

/// A listener that accepts connections (in the kernel's backlog) and never answers.
fn silent_listener() -> Result<TcpListener> {
    Ok(TcpListener::bind((LOCALHOST, 0))?)
}

fn admin(spec: &str) -> Result<AdminClient> {
    let mut c = config(spec)?;
    c.retry.call_timeout = Duration::from_millis(500);
    Ok(AdminClient::new(c)?)
}

fn update() -> SettingsUpdate {
    SettingsUpdate {
        port: Some(6514),
        ..Default::default()
    }
}

/// The node answered `UNIMPLEMENTED`: the call reached it.
fn reached(err: &ClientError, node: &FakeNode) {
    assert_eq!(err.kind(), ErrorKind::Rejected, "{err}");
    assert_eq!(err.addr(), Some(node.addr), "{err}");
    assert_eq!(
        err.status().map(tonic::Status::code),
        Some(Code::Unimplemented)
    );
}

#[tokio::test]
async fn a_write_moves_on_when_the_first_node_refuses_the_connection() -> Result<()> {
    let node = FakeNode::start(2, &FakeCluster::new(), LOCALHOST, 0)?;
    let admin = admin(&spec(&[closed_addr(), node.addr]))?;
    let err = admin
        .update_settings(update())
        .await
        .expect_err("unimplemented");
    reached(&err, &node);
    Ok(())
}

#[tokio::test]
async fn a_write_that_may_have_reached_a_node_is_indeterminate_and_not_sent_again() -> Result<()> {
    let silent = silent_listener()?;
    let node = FakeNode::start(2, &FakeCluster::new(), LOCALHOST, 0)?;
    let admin = admin(&spec(&[silent.local_addr()?, node.addr]))?;
    let started = Instant::now();
    let err = admin.set_tls(true, None).await.expect_err("no answer");
    assert_eq!(err.kind(), ErrorKind::Indeterminate, "{err}");
    assert_eq!(err.addr(), Some(silent.local_addr()?));
    let text = err.to_string();
    assert!(text.contains("may or may not have been applied"), "{text}");
    assert!(text.contains("siem-relay settings show"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "one attempt only"
    );
    Ok(())
}

#[tokio::test]
async fn a_read_moves_on_from_a_node_that_does_not_answer() -> Result<()> {
    let silent = silent_listener()?;
    let node = FakeNode::start(2, &FakeCluster::new(), LOCALHOST, 0)?;
    let admin = admin(&spec(&[silent.local_addr()?, node.addr]))?;
    let err = admin.settings().await.expect_err("unimplemented");
    reached(&err, &node);
    Ok(())
}

#[tokio::test]
async fn a_write_that_reaches_no_node_is_unavailable() -> Result<()> {
    let admin = admin(&spec(&[closed_addr(), closed_addr()]))?;
    let err = admin.revoke_token("ops".into()).await.expect_err("no node");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    Ok(())
}
