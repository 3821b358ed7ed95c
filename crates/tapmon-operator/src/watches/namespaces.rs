//! Namespace labels, kept for monitors that select namespaces by label: a change relists the
//! monitors that select by label, so objects come and go with their namespace.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use parking_lot::RwLock;
use tracing::warn;

use crate::state::State;

/// Namespace labels, for monitors that select namespaces by label.
#[derive(Debug, Default)]
pub struct NamespaceLabels {
    labels: RwLock<HashMap<String, BTreeMap<String, String>>>,
    synced: AtomicBool,
}

impl NamespaceLabels {
    /// The labels of `namespace`, when it is known.
    pub fn get(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.labels.read().get(namespace).cloned()
    }

    /// Records a namespace's labels; true when they changed.
    pub fn set(&self, namespace: &str, labels: BTreeMap<String, String>) -> bool {
        self.labels
            .write()
            .insert(namespace.to_owned(), labels.clone())
            != Some(labels)
    }

    /// Forgets a namespace.
    pub fn remove(&self, namespace: &str) {
        self.labels.write().remove(namespace);
    }

    /// True once the first full list of namespaces is in.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Marks the first full list as in.
    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }
}

/// Watches namespaces into `state.namespaces` until the task is dropped; a change relists the
/// watches of every monitor that selects namespaces by label.
pub async fn watch_namespaces(client: Client, state: Arc<State>) {
    let mut stream = std::pin::pin!(
        watcher::watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client),
            watcher::Config::default()
        )
        .backoff(crate::watches::WatchBackoff::default())
    );
    while let Some(event) = stream.next().await {
        let changed = match event {
            Ok(Event::Apply(ns) | Event::InitApply(ns)) => {
                let name = ns.metadata.name.clone().unwrap_or_default();
                state
                    .namespaces
                    .set(&name, ns.metadata.labels.clone().unwrap_or_default())
            }
            Ok(Event::Delete(ns)) => {
                state
                    .namespaces
                    .remove(&ns.metadata.name.unwrap_or_default());
                false
            }
            Ok(Event::InitDone) => {
                state.namespaces.mark_synced();
                true
            }
            Ok(Event::Init) => false,
            Err(e) => {
                warn!(error = %e, "watching namespaces failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                false
            }
        };
        if changed && state.namespaces.synced() {
            for monitor in state.monitors() {
                if monitor.validated.namespaces.uses_labels() {
                    state.registry.restart_for(&monitor.key);
                }
            }
        }
    }
}
