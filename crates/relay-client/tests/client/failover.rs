//! Network-level failures move a call to the next address; the choice is sticky afterwards.

use std::time::Duration;

use anyhow::Result;
use relay_client::{ErrorKind, Outcome};

use crate::fake_node::{Behaviour, FakeCluster, FakeNode};
use crate::{LOCALHOST, alerts, client, closed_addr, config, spec};

#[tokio::test]
async fn a_refused_first_address_fails_over_to_the_next_and_stays_there() -> Result<()> {
    let cluster = FakeCluster::new();
    let node = FakeNode::start(2, &cluster, LOCALHOST, 0)?;
    let closed = closed_addr();
    let client = client(&spec(&[closed, node.addr]))?;

    let served = client.submit_served(alerts("refused", 3)).await?;
    assert_eq!(served.addr, node.addr);
    assert_eq!(served.attempts, 2);
    assert!(
        served
            .value
            .iter()
            .all(|o| matches!(o, Outcome::Accepted { .. }))
    );
    assert_eq!(client.current(), Some(node.addr));

    let served = client.submit_served(alerts("refused-again", 1)).await?;
    assert_eq!((served.addr, served.attempts), (node.addr, 1));
    Ok(())
}

#[tokio::test]
async fn a_node_killed_mid_call_sends_that_call_and_the_next_to_another_node() -> Result<()> {
    let cluster = FakeCluster::new();
    let mut first = FakeNode::start(1, &cluster, LOCALHOST, 0)?;
    let second = FakeNode::start(2, &cluster, LOCALHOST, 0)?;
    let third = FakeNode::start(3, &cluster, LOCALHOST, 0)?;
    let client = client(&spec(&[first.addr, second.addr, third.addr]))?;

    // A stream of calls on the first node...
    for i in 0..3 {
        let served = client
            .submit_served(alerts(&format!("stream-{i}"), 10))
            .await?;
        assert_eq!((served.addr, served.attempts), (first.addr, 1));
    }
    // ...then one that it takes and never answers, and the node dies with the call open.
    first.set(Behaviour::Hold);
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.submit_served(alerts("in-flight", 10)).await }
    });
    first.wait_calls(4).await?;
    first.kill();

    let served = pending.await??;
    assert_eq!((served.addr, served.attempts), (second.addr, 2));
    assert_eq!(served.value.len(), 10);
    let served = client.submit_served(alerts("after-kill", 1)).await?;
    assert_eq!((served.addr, served.attempts), (second.addr, 1));
    assert_eq!(third.calls(), 0);
    Ok(())
}

#[tokio::test]
async fn a_node_that_does_not_answer_is_left_after_the_call_timeout() -> Result<()> {
    let cluster = FakeCluster::new();
    let silent = FakeNode::start(1, &cluster, LOCALHOST, 0)?;
    silent.set(Behaviour::Hold);
    let node = FakeNode::start(2, &cluster, LOCALHOST, 0)?;
    let mut config = config(&spec(&[silent.addr, node.addr]))?;
    config.retry.call_timeout = Duration::from_millis(300);
    let client = relay_client::Client::new(config)?;

    let served = client.submit_served(alerts("silent", 2)).await?;
    assert_eq!((served.addr, served.attempts), (node.addr, 2));
    assert_eq!(silent.calls(), 1);
    Ok(())
}

#[tokio::test]
async fn unavailable_nodes_are_retried_elsewhere() -> Result<()> {
    let cluster = FakeCluster::new();
    let leaderless = FakeNode::start(1, &cluster, LOCALHOST, 0)?;
    leaderless.set(Behaviour::Fail(tonic::Code::Unavailable));
    let node = FakeNode::start(2, &cluster, LOCALHOST, 0)?;
    let client = client(&spec(&[leaderless.addr, node.addr]))?;

    let served = client.submit_served(alerts("leaderless", 1)).await?;
    assert_eq!((served.addr, served.attempts), (node.addr, 2));
    Ok(())
}

#[tokio::test]
async fn when_no_node_answers_the_call_ends_within_its_attempts() -> Result<()> {
    let (a, b) = (closed_addr(), closed_addr());
    let mut config = config(&spec(&[a, b]))?;
    config.retry.max_attempts = 5;
    let client = relay_client::Client::new(config)?;

    let err = client
        .submit(alerts("nobody", 1))
        .await
        .expect_err("no node listens");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    match &err {
        relay_client::ClientError::Unavailable { attempts, .. } => assert_eq!(*attempts, 5),
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with("no node answered after 5 attempts"),
        "{text}"
    );
    assert!(
        text.contains(&a.to_string()) || text.contains(&b.to_string()),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_resubmission_elsewhere_goes_to_another_node_and_is_a_duplicate() -> Result<()> {
    let cluster = FakeCluster::new();
    let first = FakeNode::start(1, &cluster, LOCALHOST, 0)?;
    let second = FakeNode::start(2, &cluster, LOCALHOST, 0)?;
    let client = client(&spec(&[first.addr, second.addr]))?;

    let batch = alerts("dup", 4);
    let original = client.submit_served(batch.clone()).await?;
    assert_eq!(original.addr, first.addr);
    let again = client.submit_elsewhere(batch, original.addr).await?;
    assert_eq!(again.addr, second.addr);
    assert!(again.value.iter().all(|o| *o == Outcome::Duplicate));
    assert_eq!(client.current(), Some(first.addr));
    Ok(())
}

#[tokio::test]
async fn status_fails_over_like_a_submission() -> Result<()> {
    let cluster = FakeCluster::new();
    let node = FakeNode::start(7, &cluster, LOCALHOST, 0)?;
    let client = client(&spec(&[closed_addr(), node.addr]))?;

    let served = client.status_served().await?;
    assert_eq!((served.addr, served.attempts), (node.addr, 2));
    assert_eq!(served.value.node_id, 7);
    assert_eq!(served.value.leader_id, Some(1));
    Ok(())
}

#[tokio::test]
async fn status_each_asks_every_address_once_without_failover() -> Result<()> {
    let cluster = FakeCluster::new();
    let node = FakeNode::start(2, &cluster, LOCALHOST, 0)?;
    let closed = closed_addr();
    let client = client(&spec(&[closed, node.addr]))?;

    let each = client.status_each().await?;
    assert_eq!(each.len(), 2);
    assert_eq!(each[0].0, closed);
    let err = each[0].1.as_ref().expect_err("nothing listens");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(each[1].0, node.addr);
    assert_eq!(each[1].1.as_ref().map(|s| s.node_id).ok(), Some(2));
    assert_eq!(node.calls(), 1);
    Ok(())
}
