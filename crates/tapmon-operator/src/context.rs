//! What the reconciler, the watches and the HTTP servers share.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use kube::Client;
use kube::runtime::events::Recorder;

use crate::discovery::DiscoverySnapshot;
use crate::monitor::{Monitor, MonitorKey, lock};
use crate::telemetry::Telemetry;
use crate::watches::{NamespaceLabels, Registry};

/// State shared with the HTTP servers.
#[derive(Debug)]
pub struct State {
    monitors: RwLock<BTreeMap<MonitorKey, Arc<Monitor>>>,
    /// The shared watches.
    pub registry: Arc<Registry>,
    /// Self-metrics.
    pub telemetry: Arc<Telemetry>,
    /// Namespace labels for namespace label selectors.
    pub namespaces: Arc<NamespaceLabels>,
}

impl State {
    /// Shared state around a registry.
    pub fn new(
        registry: Arc<Registry>,
        telemetry: Arc<Telemetry>,
        namespaces: Arc<NamespaceLabels>,
    ) -> Self {
        Self {
            monitors: RwLock::new(BTreeMap::new()),
            registry,
            telemetry,
            namespaces,
        }
    }

    /// The monitor served at `/monitors/{namespace}/{name}/metrics`.
    pub fn monitor(&self, key: &MonitorKey) -> Option<Arc<Monitor>> {
        self.monitors
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Every monitor.
    pub fn monitors(&self) -> Vec<Arc<Monitor>> {
        self.monitors
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Adds or replaces a monitor.
    pub fn insert(&self, monitor: Arc<Monitor>) {
        let mut monitors = self
            .monitors
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        monitors.insert(monitor.key.clone(), monitor);
        self.telemetry.monitors.set(monitors.len() as i64);
    }

    /// Removes a monitor and stops the watches only it needed.
    pub fn remove(&self, key: &MonitorKey) {
        let mut monitors = self
            .monitors
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        monitors.remove(key);
        self.telemetry.monitors.set(monitors.len() as i64);
        drop(monitors);
        self.registry.release(key);
    }

    /// Ready when the namespace labels are in (if any monitor needs them) and every watch has
    /// finished its initial list.
    pub fn ready(&self) -> bool {
        let needs_namespaces = self
            .monitors()
            .iter()
            .any(|m| m.validated.namespaces.uses_labels());
        (!needs_namespaces || self.namespaces.synced()) && self.registry.all_synced()
    }

    /// Recounts objects and series per kind for the self-metrics.
    pub fn refresh_counts(&self) {
        let mut objects: HashMap<(String, String), i64> = HashMap::new();
        let mut series: HashMap<(String, String), i64> = HashMap::new();
        for monitor in self.monitors() {
            for (watch, stats) in monitor_watch_stats(&monitor) {
                let k = (watch.0, watch.1);
                let o = objects.entry(k.clone()).or_default();
                *o = (*o).max(stats.0);
                *series.entry(k).or_default() += stats.1;
            }
        }
        self.telemetry.objects.reset();
        self.telemetry.series.reset();
        for ((g, k), v) in objects {
            self.telemetry.objects.with_label_values(&[&g, &k]).set(v);
        }
        for ((g, k), v) in series {
            self.telemetry.series.with_label_values(&[&g, &k]).set(v);
        }
    }
}

fn monitor_watch_stats(monitor: &Monitor) -> Vec<((String, String), (i64, i64))> {
    monitor
        .watch_keys()
        .into_iter()
        .map(|w| {
            let s = monitor.stats(&w);
            (
                (w.kind.group.clone(), w.kind.kind.clone()),
                (s.objects as i64, s.series as i64),
            )
        })
        .collect()
}

/// Discovery results, refreshed when CustomResourceDefinitions change.
#[derive(Debug, Default)]
pub struct DiscoveryCache {
    epoch: AtomicU64,
    cached: Mutex<Option<(u64, BTreeSet<String>, DiscoverySnapshot)>>,
}

impl DiscoveryCache {
    /// Marks the cache stale (a CRD changed).
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The snapshot for `groups`, fetched again when stale or when it covers other groups.
    pub async fn get(
        &self,
        client: &Client,
        groups: &BTreeSet<String>,
    ) -> Result<DiscoverySnapshot, kube::Error> {
        let epoch = self.epoch.load(Ordering::Acquire);
        if let Some((at, covered, snapshot)) = lock(&self.cached).as_ref()
            && *at == epoch
            && groups.is_subset(covered)
        {
            return Ok(snapshot.clone());
        }
        let mut wanted = groups.clone();
        if let Some((_, covered, _)) = lock(&self.cached).as_ref() {
            wanted.extend(covered.iter().cloned());
        }
        let snapshot = DiscoverySnapshot::fetch(client.clone(), &wanted).await?;
        *lock(&self.cached) = Some((epoch, wanted, snapshot.clone()));
        Ok(snapshot)
    }
}

/// What every reconcile gets.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// State shared with the HTTP servers.
    pub state: Arc<State>,
    /// Served kinds.
    pub discovery: DiscoveryCache,
    /// Publishes Events on TapMonitors.
    pub recorder: Recorder,
    /// Consecutive failures per monitor, for backoff.
    pub failures: Mutex<HashMap<MonitorKey, u32>>,
    /// The operator's Service, which published ServiceMonitors select.
    pub service: crate::publish::OperatorService,
}
