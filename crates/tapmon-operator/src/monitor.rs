//! One TapMonitor at run time: its compiled config and the series of the objects it reads.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use tapmon_crs::live::{Live, Seen};
use tapmon_crs::{EvalErrors, ObjectKind};
use tapmon_exposition::{BlockId, Format, GzipPart, ObjectKey, ObjectRenderer, Store, StoreStats};

use crate::kinds::WatchKey;
pub use crate::object::MonitorKey;
use crate::validate::Validated;

/// Namespace and name of a watched object, read once from its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectId<'a> {
    /// Namespace; empty for a cluster-scoped object.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
}

impl fmt::Display for ObjectId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Store keys of one (watch, resource) pair: a store key's `resource` is a binding id, so the
/// series of one kind can be dropped without touching the others.
#[derive(Debug, Default)]
struct Bindings {
    ids: BTreeMap<(WatchKey, u32), u32>,
    next: u32,
}

/// A TapMonitor's compiled config and its series.
#[derive(Debug)]
pub struct Monitor {
    /// Which TapMonitor.
    pub key: MonitorKey,
    /// Its UID, to tell a re-created monitor from the old one.
    pub uid: String,
    /// The generation this was built from.
    pub generation: i64,
    /// Distinguishes two builds of one monitor (a changed spec), so its watches relist.
    pub build: u64,
    /// The part of the spec this was built from (what is watched and evaluated).
    pub source: tapmon_api::TapMonitorSpec,
    /// The compiled config and selectors.
    pub validated: Validated,
    store: Mutex<Store>,
    renderer: Mutex<ObjectRenderer>,
    bindings: Mutex<Bindings>,
    /// Objects left out to stay within the series limit, by watch, namespace and name.
    left_out: Mutex<HashSet<(WatchKey, String, String)>>,
    /// Counters and histograms of the changes seen since this build of the monitor.
    live: Mutex<Live>,
}

/// Now, as Unix seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What evaluating one object did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evaluated {
    /// Label values cut to the longest the exposition writes.
    pub truncated: usize,
    /// The object was left out: its series would go over the monitor's series limit.
    pub left_out: bool,
}

impl Monitor {
    /// A monitor with no series yet.
    pub fn new(
        key: MonitorKey,
        uid: String,
        generation: i64,
        validated: Validated,
        source: tapmon_api::TapMonitorSpec,
    ) -> Self {
        static BUILDS: AtomicU64 = AtomicU64::new(1);
        let families = Arc::clone(validated.compiled.families());
        Self {
            key,
            uid,
            generation,
            build: BUILDS.fetch_add(1, Ordering::Relaxed),
            source,
            renderer: Mutex::new(ObjectRenderer::new(&families)),
            store: Mutex::new(Store::new(families)),
            validated,
            bindings: Mutex::new(Bindings::default()),
            left_out: Mutex::new(HashSet::new()),
            live: Mutex::new(Live::new(unix_now())),
        }
    }

    /// The part of a spec that decides what is watched and evaluated: everything but what is
    /// published.
    pub fn source_of(spec: &tapmon_api::TapMonitorSpec) -> tapmon_api::TapMonitorSpec {
        tapmon_api::TapMonitorSpec {
            service_monitor: Default::default(),
            prometheus_rule: Default::default(),
            dashboard: Default::default(),
            ..spec.clone()
        }
    }

    /// Makes the bindings match the desired watches and drops the series of bindings that are
    /// gone (a kind uninstalled or no longer asked for). Returns how many were dropped.
    pub fn rebind(&self, desired: &BTreeMap<WatchKey, Vec<u32>>) -> usize {
        let wanted: BTreeSet<(WatchKey, u32)> = desired
            .iter()
            .flat_map(|(k, rs)| rs.iter().map(move |r| (k.clone(), *r)))
            .collect();
        let removed: HashSet<u32> = {
            let mut b = self.bindings.lock();
            let gone: Vec<(WatchKey, u32)> = b
                .ids
                .keys()
                .filter(|k| !wanted.contains(*k))
                .cloned()
                .collect();
            let removed = gone.iter().filter_map(|k| b.ids.remove(k)).collect();
            for pair in wanted {
                if !b.ids.contains_key(&pair) {
                    let id = b.next;
                    b.next += 1;
                    b.ids.insert(pair, id);
                }
            }
            removed
        };
        if !removed.is_empty() {
            self.store.lock().retain(|k| !removed.contains(&k.resource));
        }
        removed.len()
    }

    /// The watches this monitor is bound to.
    pub fn watch_keys(&self) -> Vec<WatchKey> {
        let b = self.bindings.lock();
        let mut keys: Vec<WatchKey> = b.ids.keys().map(|(w, _)| w.clone()).collect();
        keys.dedup();
        keys
    }

    /// (resource index, store id) of each resource bound to `watch`.
    fn ids_of(&self, watch: &WatchKey) -> Vec<(u32, u32)> {
        self.bindings
            .lock()
            .ids
            .iter()
            .filter(|((w, _), _)| w == watch)
            .map(|((_, resource), id)| (*resource, *id))
            .collect()
    }

    /// Evaluates an object of `watch`, read as `kind` and `seen` in a list or a change, and
    /// stores its series; what could not be evaluated is added to `errors`. An object whose
    /// series would take the monitor over its series limit is left out (until its next change or
    /// relist finds room); its changes still count in the live metrics.
    pub fn evaluate(
        &self,
        watch: &WatchKey,
        kind: ObjectKind<'_>,
        object: &Value,
        id: ObjectId<'_>,
        seen: Seen,
        errors: &mut EvalErrors,
    ) -> Evaluated {
        let compiled = &self.validated.compiled;
        let limit = self.validated.series_limit;
        let live_series = if compiled.has_live() {
            // Live series share the monitor's limit with the objects' series.
            let held = self.store.lock().total().series;
            let at = (unix_now(), limit.saturating_sub(held));
            let mut live = self.live.lock();
            for (resource, _) in self.ids_of(watch) {
                let id = (id.namespace, id.name);
                live.observe(compiled, resource, object, id, seen, at, errors);
            }
            live.series()
        } else {
            0
        };
        let resources = compiled.resources();
        // Render outside the store lock: a scrape never waits for an evaluation.
        let rendered: Vec<_> = {
            let mut renderer = self.renderer.lock();
            self.ids_of(watch)
                .into_iter()
                .filter_map(|(resource, store_id)| {
                    let r = resources.get(resource as usize)?;
                    r.evaluate(object, kind, &mut renderer, errors);
                    Some((
                        ObjectKey::new(store_id, id.namespace, id.name),
                        renderer.finish(),
                    ))
                })
                .collect()
        };
        let truncated = rendered.iter().map(|(_, r)| r.truncated()).sum();
        let new: usize = rendered.iter().map(|(_, r)| r.series()).sum();
        let mut store = self.store.lock();
        let old: usize = rendered.iter().map(|(k, _)| store.object_series(k)).sum();
        let held = store.total().series + live_series;
        let left_out = new > old && held - old + new > limit;
        let mut left = self.left_out.lock();
        if left_out {
            for (key, _) in &rendered {
                store.remove(key);
            }
            left.insert((watch.clone(), id.namespace.into(), id.name.into()));
        } else {
            for (key, r) in rendered {
                store.upsert(key, r);
            }
            if !left.is_empty() {
                left.remove(&(watch.clone(), id.namespace.into(), id.name.into()));
            }
        }
        Evaluated {
            truncated,
            left_out,
        }
    }

    /// Removes an object's series (deleted, or outside the monitor's namespaces).
    pub fn delete(&self, watch: &WatchKey, id: ObjectId<'_>) {
        let ids = self.ids_of(watch);
        {
            let mut live = self.live.lock();
            for (resource, _) in &ids {
                live.forget(*resource, id.namespace, id.name);
            }
        }
        let mut store = self.store.lock();
        for (_, store_id) in ids {
            store.remove(&ObjectKey::new(store_id, id.namespace, id.name));
        }
        let mut left = self.left_out.lock();
        if !left.is_empty() {
            left.remove(&(watch.clone(), id.namespace.into(), id.name.into()));
        }
    }

    /// After a full list of `watch`: drops the objects the list did not contain (deleted while
    /// the watch was down, or before a `410 Gone` relist).
    pub fn retain_listed(&self, watch: &WatchKey, listed: &HashSet<(String, String)>) {
        {
            let mut live = self.live.lock();
            for (resource, _) in self.ids_of(watch) {
                live.retain(resource, |ns, name| {
                    listed.contains(&(ns.to_owned(), name.to_owned()))
                });
            }
        }
        let ids: HashSet<u32> = self.ids_of(watch).into_iter().map(|(_, id)| id).collect();
        self.store.lock().retain(|k| {
            !ids.contains(&k.resource)
                || listed.contains(&(k.namespace.to_string(), k.name.to_string()))
        });
        self.left_out
            .lock()
            .retain(|(w, ns, name)| w != watch || listed.contains(&(ns.clone(), name.clone())));
    }

    /// How many objects are left out to stay within the series limit.
    pub fn left_out(&self) -> usize {
        self.left_out.lock().len()
    }

    /// Objects and series of one watch (objects counted once even when several resources
    /// read the kind).
    pub fn stats(&self, watch: &WatchKey) -> StoreStats {
        let ids = self.ids_of(watch);
        let store = self.store.lock();
        ids.iter()
            .enumerate()
            .fold(StoreStats::default(), |acc, (i, (_, id))| {
                let s = store.stats(*id);
                StoreStats {
                    objects: if i == 0 { s.objects } else { acc.objects },
                    series: acc.series + s.series,
                    bytes: acc.bytes + s.bytes,
                }
            })
    }

    /// Totals over everything the monitor holds.
    pub fn total(&self) -> StoreStats {
        self.store.lock().total()
    }

    /// The monitor's scrape, as shared chunks (taken under a short lock, written after it):
    /// the objects' series, then the live counters and histograms (few: they are summed over
    /// objects), rendered now.
    pub fn scrape(&self, format: Format) -> Vec<Bytes> {
        let mut chunks = self.store.lock().chunks(format);
        if let Some(text) = self.live_text(format) {
            // Before OpenMetrics' `# EOF`.
            let at = chunks.len() - usize::from(!format.trailer().is_empty());
            chunks.insert(at, text);
        }
        chunks
    }

    /// The monitor's scrape as gzip members (taken under a short lock), with the blocks changed
    /// since the last compressed scrape to compress on the way ([`Monitor::keep_gzip`] keeps
    /// them), and the live series compressed now.
    pub fn scrape_gzip(&self, format: Format) -> Vec<GzipPart> {
        let (mut parts, level) = {
            let store = self.store.lock();
            (store.gzip_parts(format), store.gzip_level())
        };
        if let Some(text) = self.live_text(format) {
            let member = tapmon_exposition::gzip::member(&[text], level);
            let at = parts.len() - usize::from(!format.trailer().is_empty());
            parts.insert(at, GzipPart::Member(member));
        }
        parts
    }

    /// Makes the blocks that settled since the last call into one buffer and a gzip member
    /// each (outside the store's lock), so scrapes send few large chunks and compress nothing;
    /// returns how many. CPU-bound: call it off the async workers.
    pub fn compact_settled(&self) -> usize {
        let settled = self.store.lock().settled_blocks();
        let n = settled.len();
        for block in settled {
            let compacted = block.compact();
            self.store.lock().keep_compacted(compacted);
        }
        n
    }

    /// Keeps a member a compressed scrape made, for the next ones.
    pub fn keep_gzip(&self, id: &BlockId, member: Bytes) {
        self.store.lock().keep_gzip(id, member);
    }

    /// The live counters and histograms, rendered now; none when there are none.
    fn live_text(&self, format: Format) -> Option<Bytes> {
        let live = self.live.lock();
        if live.is_empty() {
            return None;
        }
        let mut text = Vec::new();
        live.encode(format, &mut text);
        Some(Bytes::from(text))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kinds::watch_key;
    use crate::validate::{Limits, validate};

    fn workload(name: &str) -> Value {
        json!({"apiVersion": "carto.run/v1alpha1", "kind": "Workload", "metadata": {"name": name, "namespace": "ns"}})
    }

    #[test]
    fn objects_follow_bindings_lists_and_deletes() {
        let spec: tapmon_api::TapMonitorSpec = serde_json::from_value(json!({})).unwrap();
        let validated = validate(&spec, &MonitorKey::cluster("m"), Limits::default()).unwrap();
        let index = validated
            .compiled
            .resources()
            .iter()
            .position(|r| r.gvk().kind == "Workload")
            .unwrap() as u32;
        let m = Monitor::new(MonitorKey::cluster("m"), "u".into(), 1, validated, spec);
        let (w, d) = (
            watch_key("carto.run", "v1alpha1", "Workload"),
            watch_key("carto.run", "v1alpha1", "Deliverable"),
        );
        m.rebind(&BTreeMap::from([
            (w.clone(), vec![index]),
            (d.clone(), vec![index + 1]),
        ]));
        let mut errors = EvalErrors::default();
        for name in ["a", "b", "c"] {
            let id = ObjectId {
                namespace: "ns",
                name,
            };
            m.evaluate(
                &w,
                w.kind.object_kind(),
                &workload(name),
                id,
                Seen::Listed,
                &mut errors,
            );
        }
        assert!(errors.is_empty());
        assert_eq!(m.stats(&w).objects, 3);
        // Deleted (or no longer in the monitor's namespaces): dropped.
        m.delete(
            &w,
            ObjectId {
                namespace: "ns",
                name: "c",
            },
        );
        // A relist that no longer has b: dropped.
        m.retain_listed(&w, &HashSet::from([("ns".to_owned(), "a".to_owned())]));
        assert_eq!(m.stats(&w).objects, 1);
        let text: Vec<u8> = m.scrape(Format::Text).concat();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("name=\"a\"") && !text.contains("name=\"b\""));
        // The Workload kind goes away: its series go, nothing else is touched.
        assert_eq!(m.rebind(&BTreeMap::from([(d.clone(), vec![index + 1])])), 1);
        assert_eq!(m.total().objects, 0);
        assert_eq!(m.watch_keys(), vec![d]);
    }

    #[test]
    fn objects_over_the_series_limit_are_left_out_until_there_is_room() {
        let spec: tapmon_api::TapMonitorSpec = serde_json::from_value(json!({})).unwrap();
        let unlimited = validate(&spec, &MonitorKey::cluster("m"), Limits::default()).unwrap();
        let index = unlimited
            .compiled
            .resources()
            .iter()
            .position(|r| r.gvk().kind == "Workload")
            .unwrap() as u32;
        let w = watch_key("carto.run", "v1alpha1", "Workload");
        let mut errors = EvalErrors::default();
        let id = |name| ObjectId {
            namespace: "ns",
            name,
        };
        // How many series one Workload makes.
        let probe = Monitor::new(
            MonitorKey::cluster("p"),
            "u".into(),
            1,
            unlimited,
            spec.clone(),
        );
        probe.rebind(&BTreeMap::from([(w.clone(), vec![index])]));
        probe.evaluate(
            &w,
            w.kind.object_kind(),
            &workload("a"),
            id("a"),
            Seen::Listed,
            &mut errors,
        );
        let per_object = probe.total().series;
        assert!(per_object > 0);

        let limited = validate(
            &spec,
            &MonitorKey::cluster("m"),
            Limits {
                series: 2 * per_object,
            },
        )
        .unwrap();
        let m = Monitor::new(MonitorKey::cluster("m"), "u".into(), 1, limited, spec);
        m.rebind(&BTreeMap::from([(w.clone(), vec![index])]));
        for name in ["a", "b", "c"] {
            let out = m.evaluate(
                &w,
                w.kind.object_kind(),
                &workload(name),
                id(name),
                Seen::Listed,
                &mut errors,
            );
            assert_eq!(out.left_out, name == "c", "{name}");
        }
        assert_eq!((m.total().objects, m.left_out()), (2, 1));
        // An update of a served object keeps it; deleting one makes room for the next change.
        assert!(
            !m.evaluate(
                &w,
                w.kind.object_kind(),
                &workload("a"),
                id("a"),
                Seen::Listed,
                &mut errors
            )
            .left_out
        );
        m.delete(&w, id("b"));
        assert!(
            !m.evaluate(
                &w,
                w.kind.object_kind(),
                &workload("c"),
                id("c"),
                Seen::Listed,
                &mut errors
            )
            .left_out
        );
        assert_eq!((m.total().objects, m.left_out()), (2, 0));
    }
}
