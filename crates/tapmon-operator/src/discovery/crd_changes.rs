//! CustomResourceDefinitions that appear, change or go away change what can be watched.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tracing::warn;

use super::DiscoveryCache;

/// How long after a CRD change discovery is asked again.
const REDISCOVER_AFTER: Duration = Duration::from_secs(2);

/// A stream that yields whenever the set of CRDs changed, after marking `cache` stale: each
/// item asks for every monitor to be reconciled (only the kinds that changed are started or
/// stopped).
///
/// The API server's discovery trails a CRD becoming established by a moment, so each change
/// also brings a second look [`REDISCOVER_AFTER`] later; without it a kind (or the Prometheus
/// Operator) installed just then would wait for the next periodic reconcile.
pub fn crd_changes(
    client: Client,
    cache: Arc<DiscoveryCache>,
) -> impl Stream<Item = ()> + Send + 'static {
    let (later_tx, later_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let changes = {
        let cache = Arc::clone(&cache);
        watcher::watcher(
            Api::<PartialObjectMeta<CustomResourceDefinition>>::all(client),
            watcher::Config::default(),
        )
        .backoff(crate::watches::WatchBackoff::default())
        .filter_map(move |event| {
            let cache = Arc::clone(&cache);
            let later_tx = later_tx.clone();
            async move {
                match event {
                    Ok(Event::Apply(_) | Event::Delete(_) | Event::InitDone) => {
                        cache.invalidate();
                        tokio::spawn(async move {
                            tokio::time::sleep(REDISCOVER_AFTER).await;
                            // The receiver is gone only when the operator stops.
                            let _ = later_tx.send(());
                        });
                        Some(())
                    }
                    Ok(Event::Init | Event::InitApply(_)) => None,
                    Err(e) => {
                        warn!(error = %e, "watching CustomResourceDefinitions failed; retrying");
                        None
                    }
                }
            }
        })
    };
    let second_looks = futures::stream::unfold(later_rx, move |mut rx| {
        let cache = Arc::clone(&cache);
        async move {
            rx.recv().await?;
            cache.invalidate();
            Some(((), rx))
        }
    });
    futures::stream::select(changes, second_looks)
}
