//! Shared dynamic watches: one per kind (and server-side selector), fanned out to every
//! monitor that reads the kind, started and stopped by reference count.
//!
//! Objects are never kept: each event is evaluated for each subscriber and dropped. A watch
//! whose subscribers change is restarted so that every subscriber sees a full list; a relist
//! (start, restart, `410 Gone`) ends by dropping what the list no longer contains.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::Value;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::monitor::{Monitor, MonitorKey, lock};
use crate::plan::WatchKey;
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

#[derive(Debug, Clone)]
struct Subscriber {
    monitor: Arc<Monitor>,
}

#[derive(Debug)]
struct Watch {
    key: WatchKey,
    subscribers: RwLock<Vec<Subscriber>>,
    state: Mutex<WatchState>,
    synced: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Watch {
    fn subscribers(&self) -> Vec<Subscriber> {
        self.subscribers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_state(&self, state: WatchState) {
        *lock(&self.state) = state;
    }

    fn stop(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

/// Namespace labels, for monitors that select namespaces by label.
#[derive(Debug, Default)]
pub struct NamespaceLabels {
    labels: RwLock<HashMap<String, BTreeMap<String, String>>>,
    synced: AtomicBool,
}

impl NamespaceLabels {
    /// The labels of `namespace`, when it is known.
    pub fn get(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.labels
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(namespace)
            .cloned()
    }

    /// Records a namespace's labels; true when they changed.
    pub fn set(&self, namespace: &str, labels: BTreeMap<String, String>) -> bool {
        let mut map = self
            .labels
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(namespace.to_owned(), labels.clone()) != Some(labels)
    }

    /// Forgets a namespace.
    pub fn remove(&self, namespace: &str) {
        self.labels
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(namespace);
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

/// Every running watch.
pub struct Registry {
    client: Client,
    telemetry: Arc<Telemetry>,
    initial_list: InitialList,
    namespaces: Arc<NamespaceLabels>,
    watches: Mutex<BTreeMap<WatchKey, Arc<Watch>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("watches", &lock(&self.watches).keys().collect::<Vec<_>>())
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
    ) -> Self {
        Self {
            client,
            telemetry,
            initial_list,
            namespaces,
            watches: Mutex::new(BTreeMap::new()),
        }
    }

    /// Makes `monitor` subscribed to exactly the `desired` watches ([`crate::diff::diff`]):
    /// starts watches nobody ran, relists those it joins, stops those nobody needs any more.
    /// Watches of other kinds are not touched.
    pub fn sync(self: &Arc<Self>, monitor: &Arc<Monitor>, desired: &BTreeMap<WatchKey, Vec<u32>>) {
        let mut to_start = Vec::new();
        {
            let mut watches = lock(&self.watches);
            let running = watches
                .iter()
                .map(|(k, w)| {
                    let subs = w
                        .subscribers()
                        .iter()
                        .map(|s| (s.monitor.key.clone(), s.monitor.build))
                        .collect();
                    (k.clone(), subs)
                })
                .collect();
            let wanted = desired.keys().cloned().collect();
            let plan = crate::diff::diff(&running, &monitor.key, monitor.build, &wanted);
            for key in plan.leave.iter().chain(&plan.stop) {
                if let Some(watch) = watches.get(key) {
                    watch
                        .subscribers
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .retain(|s| s.monitor.key != monitor.key);
                }
            }
            for key in &plan.stop {
                if let Some(watch) = watches.remove(key) {
                    info!(watch = %key, "stopping watch: no monitor needs it");
                    watch.stop();
                }
            }
            for key in plan.start {
                let watch = Arc::clone(watches.entry(key.clone()).or_insert_with(|| {
                    Arc::new(Watch {
                        key,
                        subscribers: RwLock::new(Vec::new()),
                        state: Mutex::new(WatchState::Starting),
                        synced: AtomicBool::new(false),
                        task: Mutex::new(None),
                    })
                }));
                {
                    let mut subs = watch
                        .subscribers
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    subs.retain(|s| s.monitor.key != monitor.key);
                    subs.push(Subscriber {
                        monitor: Arc::clone(monitor),
                    });
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
        lock(&self.watches).retain(|key, watch| {
            let mut subs = watch
                .subscribers
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            subs.retain(|s| s.monitor.key != *monitor);
            if subs.is_empty() {
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
        for (_, watch) in std::mem::take(&mut *lock(&self.watches)) {
            watch.stop();
        }
        self.update_watch_gauge();
    }

    /// Relists every watch `monitor` reads (its namespaces' labels changed).
    pub fn restart_for(self: &Arc<Self>, monitor: &MonitorKey) {
        let affected: Vec<Arc<Watch>> = lock(&self.watches)
            .values()
            .filter(|w| w.subscribers().iter().any(|s| s.monitor.key == *monitor))
            .cloned()
            .collect();
        for watch in affected {
            self.start(watch);
        }
    }

    /// The state of a watch and whether its initial list is done.
    pub fn state(&self, key: &WatchKey) -> Option<(WatchState, bool)> {
        lock(&self.watches)
            .get(key)
            .map(|w| (lock(&w.state).clone(), w.synced.load(Ordering::Acquire)))
    }

    /// True when every running watch has finished its initial list.
    pub fn all_synced(&self) -> bool {
        lock(&self.watches)
            .values()
            .all(|w| w.synced.load(Ordering::Acquire))
    }

    fn update_watch_gauge(&self) {
        let watches = lock(&self.watches);
        self.telemetry.watches.reset();
        for key in watches.keys() {
            self.telemetry
                .watches
                .with_label_values(&[&key.kind.group, &key.kind.kind])
                .inc();
        }
    }

    fn start(self: &Arc<Self>, watch: Arc<Watch>) {
        watch.stop();
        watch.synced.store(false, Ordering::Release);
        watch.set_state(WatchState::Starting);
        let registry = Arc::clone(self);
        let task = tokio::spawn({
            let watch = Arc::clone(&watch);
            async move { registry.run(watch).await }
        });
        *lock(&watch.task) = Some(task);
    }

    async fn run(self: Arc<Self>, watch: Arc<Watch>) {
        let key = &watch.key;
        let kind = &key.kind;
        let api_version = if kind.group.is_empty() {
            kind.version.clone()
        } else {
            format!("{}/{}", kind.group, kind.version)
        };
        let ar = ApiResource {
            group: kind.group.clone(),
            version: kind.version.clone(),
            api_version: api_version.clone(),
            kind: kind.kind.clone(),
            plural: kind.plural.clone(),
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        let mut config = watcher::Config::default();
        if let Some(selector) = &key.label_selector {
            config = config.labels(selector);
        }
        config = match self.initial_list {
            InitialList::Streaming => config.streaming_lists(),
            InitialList::Paged => config.page_size(500),
        };
        info!(watch = %key, "starting watch");
        let labels = [kind.group.as_str(), kind.kind.as_str()];
        let events = |t: &str| {
            self.telemetry
                .watch_events
                .with_label_values(&[labels[0], labels[1], t])
        };
        let mut listed: HashSet<(String, String)> = HashSet::new();
        let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
        while let Some(item) = stream.next().await {
            if item.is_ok() && watch.synced.load(Ordering::Acquire) {
                // Events flow again after an error: the kind is being watched.
                let mut state = lock(&watch.state);
                if *state != WatchState::Watching {
                    *state = WatchState::Watching;
                }
            }
            match item {
                Ok(Event::Init) => {
                    events("init").inc();
                    listed.clear();
                }
                Ok(Event::InitApply(obj)) => {
                    events("init_apply").inc();
                    let (ns, name) = identity(&obj);
                    listed.insert((ns.clone(), name.clone()));
                    self.fan_out(&watch, obj, &api_version, &ns, &name);
                }
                Ok(Event::InitDone) => {
                    events("init_done").inc();
                    for sub in watch.subscribers() {
                        sub.monitor.retain_listed(key, &listed);
                    }
                    listed = HashSet::new();
                    watch.set_state(WatchState::Watching);
                    if !watch.synced.swap(true, Ordering::AcqRel) {
                        info!(watch = %key, "initial list done");
                    }
                }
                Ok(Event::Apply(obj)) => {
                    events("apply").inc();
                    let (ns, name) = identity(&obj);
                    self.fan_out(&watch, obj, &api_version, &ns, &name);
                }
                Ok(Event::Delete(obj)) => {
                    events("delete").inc();
                    let (ns, name) = identity(&obj);
                    for sub in watch.subscribers() {
                        sub.monitor.delete(key, &ns, &name);
                    }
                }
                Err(e) => {
                    let (reason, state) = classify(&e);
                    self.telemetry
                        .watch_errors
                        .with_label_values(&[labels[0], labels[1], reason])
                        .inc();
                    warn!(watch = %key, error = %e, "watch failed; retrying with backoff");
                    watch.set_state(state);
                }
            }
        }
    }

    fn fan_out(&self, watch: &Watch, obj: DynamicObject, api_version: &str, ns: &str, name: &str) {
        let object = to_value(obj, api_version, &watch.key.kind.kind);
        let mut namespace_labels = None;
        for sub in watch.subscribers() {
            let filter = &sub.monitor.validated.namespaces;
            let admitted = if filter.uses_labels() {
                let labels = namespace_labels.get_or_insert_with(|| self.namespaces.get(ns));
                filter.admits(ns, labels.as_ref())
            } else {
                filter.admits(ns, None)
            };
            let applied = sub.monitor.apply(&watch.key, &object, ns, name, admitted);
            if !applied.errors.is_empty() {
                self.telemetry
                    .evaluation_errors
                    .with_label_values(&[&watch.key.kind.group, &watch.key.kind.kind])
                    .inc_by(applied.errors.total() as u64);
                for e in applied.errors.kept() {
                    debug!(monitor = %sub.monitor.key, object = %format!("{ns}/{name}"), kind = %watch.key.kind.kind, error = %e, "value not evaluated");
                }
            }
        }
    }
}

fn identity(obj: &DynamicObject) -> (String, String) {
    (
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    )
}

/// The object as the engine reads it: its data with `apiVersion`, `kind` and `metadata` back in.
fn to_value(obj: DynamicObject, api_version: &str, kind: &str) -> Value {
    let mut map = match obj.data {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    map.insert("apiVersion".into(), Value::String(api_version.to_owned()));
    map.insert("kind".into(), Value::String(kind.to_owned()));
    map.insert(
        "metadata".into(),
        serde_json::to_value(&obj.metadata).unwrap_or(Value::Null),
    );
    Value::Object(map)
}

fn classify(e: &watcher::Error) -> (&'static str, WatchState) {
    let api_status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.code),
        watcher::Error::WatchError(s) => Some(s.code),
        _ => None,
    };
    match api_status {
        Some(403) => ("forbidden", WatchState::Forbidden(e.to_string())),
        Some(404) => ("not_found", WatchState::Failed(e.to_string())),
        _ => ("other", WatchState::Failed(e.to_string())),
    }
}
