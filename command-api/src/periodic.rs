//! The loop of the OMS's periodic tasks (re-requests, the payment deadline): a pass,
//! then a pause, until shutdown; a pass that fails is logged and the next one tries
//! again.

use std::time::Duration;

use eventstore::sleep_or_cancel;
use tokio_util::sync::CancellationToken;

/// Runs `pass` every `poll` until `shutdown`. A pass that handled orders is logged with
/// `done` and how many; one that failed is logged with `failed` and its cause.
pub async fn every<F, Fut>(
    poll: Duration,
    shutdown: CancellationToken,
    done: &'static str,
    failed: &'static str,
    mut pass: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    loop {
        match pass().await {
            Ok(0) => {}
            Ok(orders) => tracing::info!(orders, "{done}"),
            Err(error) => tracing::warn!(error = format!("{error:#}"), "{failed}"),
        }
        if sleep_or_cancel(poll, &shutdown).await {
            return Ok(());
        }
    }
}
