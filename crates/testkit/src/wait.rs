//! Polling for a condition with a deadline, for state of other processes that sends no
//! notification.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// One poll: `true` when `cond` holds, an error once `deadline` has passed, else `false`.
fn poll(
    what: &str,
    within: Duration,
    deadline: Instant,
    cond: &mut impl FnMut() -> bool,
) -> Result<bool> {
    if cond() {
        return Ok(true);
    }
    if Instant::now() >= deadline {
        bail!("timed out after {within:?} waiting for {what}");
    }
    Ok(false)
}

/// Polls `cond` every 5 ms until it holds or `within` passes (blocking the thread).
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    while !poll(what, within, deadline, &mut cond)? {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Async version of [`wait_until`]: polls every 2 ms on the tokio timer.
pub async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    while !poll(what, within, deadline, &mut cond)? {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}
