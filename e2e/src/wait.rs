//! Waiting on a condition with a deadline (never a bare sleep).

use std::time::{Duration, Instant};

use anyhow::bail;

/// Polls `check` every `every` until it returns Some, or fails naming `what` after `timeout`.
async fn poll<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `check` until it returns Some, or fails the test naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll(what, timeout, Duration::from_millis(200), check)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `check` every 100 ms (the resolution the fault suite reports times in) until it
/// returns Some, or returns an error naming `what` after `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll(what, timeout, Duration::from_millis(100), check).await
}
