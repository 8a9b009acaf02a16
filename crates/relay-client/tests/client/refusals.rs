//! Answers about the request or the caller are returned at once, naming the node.

use anyhow::Result;
use relay_client::{ClientError, ErrorKind};
use tonic::Code;

use crate::fake_node::{Behaviour, FakeCluster, FakeNode};
use crate::{LOCALHOST, alerts, client, spec};

async fn refused_with(code: Code) -> Result<ClientError> {
    let cluster = FakeCluster::new();
    let refusing = FakeNode::start(1, &cluster, LOCALHOST, 0)?;
    refusing.set(Behaviour::Fail(code));
    let other = FakeNode::start(2, &cluster, LOCALHOST, 0)?;
    let client = client(&spec(&[refusing.addr, other.addr]))?;

    let err = client
        .submit(alerts("refused", 2))
        .await
        .expect_err("the node refuses");
    assert_eq!(refusing.calls(), 1, "{code:?} tried once");
    assert_eq!(other.calls(), 0, "{code:?} not retried on another node");
    assert_eq!(err.addr(), Some(refusing.addr));
    assert!(
        err.to_string().starts_with(&refusing.addr.to_string()),
        "{err}"
    );
    Ok(err)
}

#[tokio::test]
async fn resource_exhausted_is_not_retried_and_has_its_own_kind() -> Result<()> {
    let err = refused_with(Code::ResourceExhausted).await?;
    assert_eq!(err.kind(), ErrorKind::Overloaded);
    assert!(matches!(err, ClientError::Overloaded { .. }));
    assert!(
        err.to_string()
            .contains("is overloaded: resource_exhausted")
    );
    Ok(())
}

#[tokio::test]
async fn invalid_argument_is_not_retried() -> Result<()> {
    let err = refused_with(Code::InvalidArgument).await?;
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    Ok(())
}

#[tokio::test]
async fn refused_credentials_are_not_retried() -> Result<()> {
    for code in [Code::PermissionDenied, Code::Unauthenticated] {
        let err = refused_with(code).await?;
        assert_eq!(err.kind(), ErrorKind::Denied);
    }
    Ok(())
}

#[tokio::test]
async fn another_status_from_a_node_is_not_retried() -> Result<()> {
    let err = refused_with(Code::FailedPrecondition).await?;
    assert_eq!(err.kind(), ErrorKind::Rejected);
    Ok(())
}
