//! Rendered series kept per object; a scrape concatenates them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use crate::encode::Format;
use crate::family::{FamilyId, FamilySet};
use crate::render::RenderedObject;

/// Identifies an object within a store. Orders the output: namespace, name, then the index of
/// the configured resource that produced it (two resources may read the same kind).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: Box<str>,
    /// Name.
    pub name: Box<str>,
    /// Index of the configured resource.
    pub resource: u32,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(resource: u32, namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            resource,
        }
    }
}

/// Counts for one configured resource, or for the whole store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Objects held, including those that yield no series.
    pub objects: usize,
    /// Series held.
    pub series: usize,
    /// Bytes of series held (headers excluded).
    pub bytes: usize,
}

#[derive(Debug)]
struct Entry {
    key: Arc<ObjectKey>,
    families: Vec<FamilyId>,
    series: usize,
    bytes: usize,
}

/// Series per object, ready to be concatenated into a scrape.
#[derive(Debug)]
pub struct Store {
    families: Arc<FamilySet>,
    by_family: Vec<BTreeMap<Arc<ObjectKey>, Bytes>>,
    objects: HashMap<Arc<ObjectKey>, Entry>,
    stats: BTreeMap<u32, StoreStats>,
}

impl Store {
    /// An empty store for the families of one configuration.
    pub fn new(families: Arc<FamilySet>) -> Self {
        Self {
            by_family: vec![BTreeMap::new(); families.len()],
            families,
            objects: HashMap::new(),
            stats: BTreeMap::new(),
        }
    }

    /// The families this store writes.
    pub fn families(&self) -> &Arc<FamilySet> {
        &self.families
    }

    /// Sets the object's series, replacing any it had.
    pub fn upsert(&mut self, key: ObjectKey, rendered: RenderedObject) {
        let key = match self.objects.get_key_value(&key) {
            Some((existing, _)) => Arc::clone(existing),
            None => Arc::new(key),
        };
        self.remove(&key);
        let mut families = Vec::new();
        for (family, bytes) in rendered.parts() {
            if let Some(map) = self.by_family.get_mut(family.index()) {
                map.insert(Arc::clone(&key), bytes);
                families.push(family);
            }
        }
        let entry = Entry {
            key: Arc::clone(&key),
            families,
            series: rendered.series(),
            bytes: rendered.len(),
        };
        let stats = self.stats.entry(key.resource).or_default();
        stats.objects += 1;
        stats.series += entry.series;
        stats.bytes += entry.bytes;
        self.objects.insert(key, entry);
    }

    /// Drops the object's series; false when the store did not hold it.
    pub fn remove(&mut self, key: &ObjectKey) -> bool {
        let Some(entry) = self.objects.remove(key) else {
            return false;
        };
        for family in &entry.families {
            if let Some(map) = self.by_family.get_mut(family.index()) {
                map.remove(key);
            }
        }
        if let Some(stats) = self.stats.get_mut(&entry.key.resource) {
            stats.objects -= 1;
            stats.series -= entry.series;
            stats.bytes -= entry.bytes;
            if stats.objects == 0 {
                self.stats.remove(&entry.key.resource);
            }
        }
        true
    }

    /// Keeps only the objects for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&ObjectKey) -> bool) {
        let doomed: Vec<Arc<ObjectKey>> =
            self.objects.keys().filter(|k| !keep(k)).cloned().collect();
        for key in doomed {
            self.remove(&key);
        }
    }

    /// True when the store holds the object.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.objects.contains_key(key)
    }

    /// Series held for the object, 0 when it is not held.
    pub fn object_series(&self, key: &ObjectKey) -> usize {
        self.objects.get(key).map_or(0, |e| e.series)
    }

    /// Counts for one configured resource.
    pub fn stats(&self, resource: u32) -> StoreStats {
        self.stats.get(&resource).copied().unwrap_or_default()
    }

    /// Counts for the whole store.
    pub fn total(&self) -> StoreStats {
        self.stats
            .values()
            .fold(StoreStats::default(), |acc, s| StoreStats {
                objects: acc.objects + s.objects,
                series: acc.series + s.series,
                bytes: acc.bytes + s.bytes,
            })
    }

    /// Size of a scrape in `format`, for reserving the buffer.
    pub fn encoded_len(&self, format: Format) -> usize {
        let headers: usize = self
            .families
            .families()
            .iter()
            .zip(&self.by_family)
            .filter(|(_, map)| !map.is_empty())
            .map(|(f, _)| format.header(f).len())
            .sum();
        headers + self.total().bytes + format.trailer().len()
    }

    /// Appends a whole scrape in `format` to `out`.
    pub fn encode(&self, format: Format, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len(format));
        for chunk in self.chunk_iter(format) {
            out.extend_from_slice(chunk);
        }
    }

    /// The scrape as shared chunks, for sending without copying; cheap to take under a lock.
    pub fn chunks(&self, format: Format) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.families.len() + self.objects.len() * 2 + 1);
        for (family, map) in self.families.families().iter().zip(&self.by_family) {
            if map.is_empty() {
                continue;
            }
            out.push(format.header(family).clone());
            out.extend(map.values().cloned());
        }
        if !format.trailer().is_empty() {
            out.push(Bytes::from_static(format.trailer()));
        }
        out
    }

    fn chunk_iter(&self, format: Format) -> impl Iterator<Item = &[u8]> + '_ {
        self.families
            .families()
            .iter()
            .zip(&self.by_family)
            .filter(|(_, map)| !map.is_empty())
            .flat_map(move |(family, map)| {
                std::iter::once(&format.header(family)[..]).chain(map.values().map(|b| &b[..]))
            })
            .chain(std::iter::once(format.trailer()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::{FamilyDesc, MetricType};
    use crate::render::ObjectRenderer;

    fn families() -> (Arc<FamilySet>, Vec<FamilyId>) {
        let d = |n: &str, kind| FamilyDesc {
            name: n.into(),
            help: format!("{n} help"),
            kind,
            state_label: None,
        };
        let (set, ids) = FamilySet::new(&[
            d("w_status", MetricType::Gauge),
            d("w_info", MetricType::Info),
        ])
        .unwrap();
        (Arc::new(set), ids)
    }

    fn render(set: &FamilySet, ids: &[FamilyId], name: &str, ready: f64) -> RenderedObject {
        let mut r = ObjectRenderer::new(set);
        r.series(ids[0])
            .label("name", name)
            .label("type", "Ready")
            .finish(ready);
        r.series(ids[1]).label("name", name).finish(1.0);
        r.finish()
    }

    fn scrape(store: &Store, format: Format) -> String {
        let mut out = Vec::new();
        store.encode(format, &mut out);
        assert_eq!(out.len(), store.encoded_len(format));
        let chunks: Vec<u8> = store.chunks(format).concat();
        assert_eq!(chunks, out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn headers_once_objects_sorted_updates_replace() {
        let (set, ids) = families();
        let mut store = Store::new(Arc::clone(&set));
        store.upsert(ObjectKey::new(0, "ns", "b"), render(&set, &ids, "b", 1.0));
        store.upsert(ObjectKey::new(0, "ns", "a"), render(&set, &ids, "a", 0.0));
        store.upsert(ObjectKey::new(0, "ns", "b"), render(&set, &ids, "b", 0.0));
        assert_eq!(
            scrape(&store, Format::Text),
            "# HELP w_info w_info help\n# TYPE w_info gauge\n\
             w_info{name=\"a\"} 1\nw_info{name=\"b\"} 1\n\
             # HELP w_status w_status help\n# TYPE w_status gauge\n\
             w_status{name=\"a\",type=\"Ready\"} 0\nw_status{name=\"b\",type=\"Ready\"} 0\n"
        );
        assert_eq!(store.stats(0).objects, 2);
        assert_eq!(store.stats(0).series, 4);
    }

    #[test]
    fn openmetrics_has_its_types_and_eof() {
        let (set, ids) = families();
        let mut store = Store::new(Arc::clone(&set));
        store.upsert(ObjectKey::new(0, "ns", "a"), render(&set, &ids, "a", 1.0));
        let out = scrape(&store, Format::OpenMetrics);
        assert!(out.starts_with("# HELP w w_info help\n# TYPE w info\nw_info{name=\"a\"} 1\n"));
        assert!(out.ends_with("w_status{name=\"a\",type=\"Ready\"} 1\n# EOF\n"));
    }

    #[test]
    fn remove_and_retain_drop_everything_of_an_object() {
        let (set, ids) = families();
        let mut store = Store::new(Arc::clone(&set));
        store.upsert(ObjectKey::new(0, "ns", "a"), render(&set, &ids, "a", 1.0));
        store.upsert(ObjectKey::new(1, "ns", "a"), render(&set, &ids, "a", 1.0));
        store.upsert(ObjectKey::new(1, "", "empty"), RenderedObject::default());
        assert_eq!(store.stats(1).objects, 2);
        assert!(store.remove(&ObjectKey::new(0, "ns", "a")));
        assert!(!store.remove(&ObjectKey::new(0, "ns", "a")));
        store.retain(|k| k.resource != 1);
        assert_eq!(store.total(), StoreStats::default());
        // Families without series are left out entirely, headers included.
        assert_eq!(scrape(&store, Format::Text), "");
        assert_eq!(scrape(&store, Format::OpenMetrics), "# EOF\n");
    }
}
