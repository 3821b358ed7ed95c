//! Shared dynamic watches: one per kind (and server-side selector), fanned out to every
//! monitor that reads the kind, started and stopped by reference count.
//!
//! Objects are never kept: each event is evaluated for each subscriber and dropped
//! ([`stream`]). A watch whose subscribers change is restarted so that every subscriber sees a
//! full list; a relist (start, restart, `410 Gone`) ends by dropping what the list no longer
//! contains. Which watches to start, leave or stop is a pure function ([`diff`]).

mod backoff;
pub mod diff;
mod namespaces;
mod object;
mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::Client;
use parking_lot::{Mutex, RwLock};
use tokio::task::JoinHandle;
use tracing::info;

pub use backoff::WatchBackoff;
pub use namespaces::{NamespaceLabels, watch_namespaces};

use crate::kinds::WatchKey;
use crate::monitor::{Monitor, MonitorKey};
use crate::shard::Shard;
use crate::telemetry::Telemetry;

/// How a watch fetches its initial state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialList {
    /// One streaming watch (`sendInitialEvents`): no large list response in memory.
    Streaming,
    /// Paged lists, then a watch: for servers without streaming lists.
    Paged,
}

/// The state of one watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchState {
    /// Started, initial list not finished.
    Starting,
    /// Initial list done; following changes.
    Watching,
    /// The API server says no (403); retried with backoff.
    Forbidden(String),
    /// Another error; retried with backoff.
    Failed(String),
}

/// One running watch and the monitors it feeds.
#[derive(Debug)]
struct Watch {
    key: WatchKey,
    subscribers: RwLock<Vec<Arc<Monitor>>>,
    state: Mutex<WatchState>,
    synced: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Watch {
    fn new(key: WatchKey) -> Self {
        Watch {
            key,
            subscribers: RwLock::new(Vec::new()),
            state: Mutex::new(WatchState::Starting),
            synced: AtomicBool::new(false),
            task: Mutex::new(None),
        }
    }

    fn subscribers(&self) -> Vec<Arc<Monitor>> {
        self.subscribers.read().clone()
    }

    fn unsubscribe(&self, monitor: &MonitorKey) {
        self.subscribers.write().retain(|m| m.key != *monitor);
    }

    fn set_state(&self, state: WatchState) {
        *self.state.lock() = state;
    }

    fn stop(&self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

/// Every running watch.
pub struct Registry {
    client: Client,
    telemetry: Arc<Telemetry>,
    initial_list: InitialList,
    namespaces: Arc<NamespaceLabels>,
    /// The objects this replica serves; the others' are dropped as they arrive.
    shard: Shard,
    watches: Mutex<BTreeMap<WatchKey, Arc<Watch>>>,
    /// Bumped when a watch's state changes (listed, refused, failing, recovered), so the
    /// monitors reading it are reconciled at once instead of at their next requeue.
    changed: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("watches", &self.watches.lock().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new(
        client: Client,
        telemetry: Arc<Telemetry>,
        initial_list: InitialList,
        namespaces: Arc<NamespaceLabels>,
        shard: Shard,
    ) -> Self {
        Self {
            client,
            telemetry,
            initial_list,
            namespaces,
            shard,
            watches: Mutex::new(BTreeMap::new()),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    /// A receiver that sees a new value whenever a watch's state changed.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn state_changed(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Makes `monitor` subscribed to exactly the `desired` watches ([`diff::diff`]):
    /// starts watches nobody ran, relists those it joins, stops those nobody needs any more.
    /// Watches of other kinds are not touched.
    pub fn sync(self: &Arc<Self>, monitor: &Arc<Monitor>, desired: &BTreeMap<WatchKey, Vec<u32>>) {
        let mut to_start = Vec::new();
        {
            let mut watches = self.watches.lock();
            let running = watches
                .iter()
                .map(|(k, w)| {
                    let subs = w
                        .subscribers()
                        .iter()
                        .map(|m| (m.key.clone(), m.build))
                        .collect();
                    (k.clone(), subs)
                })
                .collect();
            let wanted = desired.keys().cloned().collect();
            let plan = diff::diff(&running, &monitor.key, monitor.build, &wanted);
            for key in plan.leave.iter().chain(&plan.stop) {
                if let Some(watch) = watches.get(key) {
                    watch.unsubscribe(&monitor.key);
                }
            }
            for key in &plan.stop {
                if let Some(watch) = watches.remove(key) {
                    info!(watch = %key, "stopping watch: no monitor needs it");
                    watch.stop();
                }
            }
            for key in plan.start {
                let watch = Arc::clone(
                    watches
                        .entry(key.clone())
                        .or_insert_with(|| Arc::new(Watch::new(key))),
                );
                {
                    let mut subs = watch.subscribers.write();
                    subs.retain(|m| m.key != monitor.key);
                    subs.push(Arc::clone(monitor));
                }
                to_start.push(watch);
            }
        }
        for watch in to_start {
            self.start(watch);
        }
        self.update_watch_gauge();
    }

    /// Unsubscribes a monitor from every watch, stopping those left without subscribers.
    pub fn release(&self, monitor: &MonitorKey) {
        self.watches.lock().retain(|key, watch| {
            watch.unsubscribe(monitor);
            if watch.subscribers.read().is_empty() {
                info!(watch = %key, "stopping watch: no monitor needs it");
                watch.stop();
                return false;
            }
            true
        });
        self.update_watch_gauge();
    }

    /// Stops every watch (shutdown).
    pub fn stop_all(&self) {
        for (_, watch) in std::mem::take(&mut *self.watches.lock()) {
            watch.stop();
        }
        self.update_watch_gauge();
    }

    /// Relists every watch `monitor` reads (its namespaces' labels changed).
    pub fn restart_for(self: &Arc<Self>, monitor: &MonitorKey) {
        let affected: Vec<Arc<Watch>> = self
            .watches
            .lock()
            .values()
            .filter(|w| w.subscribers().iter().any(|m| m.key == *monitor))
            .cloned()
            .collect();
        for watch in affected {
            self.start(watch);
        }
    }

    /// The state of a watch and whether its initial list is done.
    pub fn state(&self, key: &WatchKey) -> Option<(WatchState, bool)> {
        self.watches
            .lock()
            .get(key)
            .map(|w| (w.state.lock().clone(), w.synced.load(Ordering::Acquire)))
    }

    /// True when every running watch that can list has finished its initial list. One the
    /// API server refuses (403) or that fails (its CRD gone) is its monitors' problem, reported
    /// in their status; it does not hold back everyone else's readiness.
    pub fn all_synced(&self) -> bool {
        self.watches.lock().values().all(|w| {
            w.synced.load(Ordering::Acquire)
                || matches!(
                    *w.state.lock(),
                    WatchState::Forbidden(_) | WatchState::Failed(_)
                )
        })
    }

    fn update_watch_gauge(&self) {
        let watches = self.watches.lock();
        self.telemetry.watches.reset();
        for key in watches.keys() {
            self.telemetry
                .watches
                .with_label_values(&[&key.kind.group, &key.kind.kind])
                .inc();
        }
    }

    /// (Re)starts a watch's task: it lists, then follows changes.
    fn start(self: &Arc<Self>, watch: Arc<Watch>) {
        watch.stop();
        watch.synced.store(false, Ordering::Release);
        watch.set_state(WatchState::Starting);
        let registry = Arc::clone(self);
        let task = tokio::spawn({
            let watch = Arc::clone(&watch);
            async move { registry.run(watch).await }
        });
        *watch.task.lock() = Some(task);
    }
}
