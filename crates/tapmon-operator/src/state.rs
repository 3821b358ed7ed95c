//! What the reconciler, the watches and the HTTP servers share: the monitors being served, the
//! watches, namespace labels and self-metrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;

use crate::monitor::{Monitor, MonitorKey};
use crate::object::MonitorKind;
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
    /// Whether each monitor kind's list is in (TapMonitor, ClusterTapMonitor).
    listed: [AtomicBool; 2],
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
            listed: [AtomicBool::new(false), AtomicBool::new(false)],
        }
    }

    /// Records that the monitors of `kind` have been listed.
    pub fn mark_listed(&self, kind: MonitorKind) {
        self.listed[kind as usize].store(true, Ordering::Release);
    }

    /// The monitor served at `/monitors/{namespace}/{name}/metrics`.
    pub fn monitor(&self, key: &MonitorKey) -> Option<Arc<Monitor>> {
        self.monitors.read().get(key).cloned()
    }

    /// Every monitor.
    pub fn monitors(&self) -> Vec<Arc<Monitor>> {
        self.monitors.read().values().cloned().collect()
    }

    /// Adds or replaces a monitor.
    pub fn insert(&self, monitor: Arc<Monitor>) {
        let mut monitors = self.monitors.write();
        monitors.insert(monitor.key.clone(), monitor);
        self.telemetry.monitors.set(monitors.len() as i64);
    }

    /// Removes a monitor and stops the watches only it needed.
    pub fn remove(&self, key: &MonitorKey) {
        {
            let mut monitors = self.monitors.write();
            monitors.remove(key);
            self.telemetry.monitors.set(monitors.len() as i64);
        }
        self.registry.release(key);
    }

    /// Ready when both monitor kinds have been listed, the namespace labels are in (if any
    /// monitor needs them) and every watch that can list has. During an API server outage it
    /// stays ready: it serves what it has.
    pub fn ready(&self) -> bool {
        let listed = self.listed.iter().all(|l| l.load(Ordering::Acquire));
        let needs_namespaces = self
            .monitors()
            .iter()
            .any(|m| m.validated.namespaces.uses_labels());
        listed && (!needs_namespaces || self.namespaces.synced()) && self.registry.all_synced()
    }

    /// Recounts objects and series per kind for the self-metrics: objects as the largest count
    /// any monitor holds (they share the kind's watch), series summed over monitors.
    pub fn refresh_counts(&self) {
        let mut objects: HashMap<(String, String), i64> = HashMap::new();
        let mut series: HashMap<(String, String), i64> = HashMap::new();
        for monitor in self.monitors() {
            for watch in monitor.watch_keys() {
                let stats = monitor.stats(&watch);
                let kind = (watch.kind.group, watch.kind.kind);
                let o = objects.entry(kind.clone()).or_default();
                *o = (*o).max(stats.objects as i64);
                *series.entry(kind).or_default() += stats.series as i64;
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
