//! Rendered series kept per object; a scrape concatenates them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use crate::encode::Format;
use crate::family::{FamilyId, FamilySet};
use crate::gzip;
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

/// A run of objects of one family, adjacent in key order, with its gzip member once made, and
/// its series in one buffer once compacted.
#[derive(Debug, Default)]
struct Block {
    objects: BTreeMap<Arc<ObjectKey>, Bytes>,
    bytes: usize,
    /// Changes whenever the block does, so a member made from an older content is not kept.
    generation: u64,
    /// The generation the last [`Store::settled_blocks`] saw: a block unchanged between two
    /// calls has settled.
    seen: u64,
    gzip: Option<Bytes>,
    /// The objects' series in one buffer, which their entries are slices of: one chunk to
    /// send instead of one per object, and one allocation instead of many.
    whole: Option<Bytes>,
}

/// Names one block's content at one moment: what [`Store::keep_gzip`] needs to keep the member
/// made from it.
#[derive(Debug, Clone)]
pub struct BlockId {
    family: usize,
    bound: Arc<ObjectKey>,
    generation: u64,
}

/// A block whose member is not made yet: its series, to be compressed outside the store's lock.
#[derive(Debug)]
pub struct StaleBlock {
    /// Which block, for [`Store::keep_gzip`].
    pub id: BlockId,
    /// Its series, in order.
    pub chunks: Vec<Bytes>,
    level: u32,
    /// Whether the block has its member already (compaction then leaves it).
    compressed: bool,
}

impl StaleBlock {
    /// The block's gzip member.
    pub fn compress(&self) -> Bytes {
        gzip::member(&self.chunks, self.level)
    }

    /// The block in one buffer, and its gzip member unless it has one.
    pub fn compact(&self) -> Compacted {
        let len = self.chunks.iter().map(Bytes::len).sum();
        let mut whole = Vec::with_capacity(len);
        for chunk in &self.chunks {
            whole.extend_from_slice(chunk);
        }
        let whole = Bytes::from(whole);
        let gzip =
            (!self.compressed).then(|| gzip::member(std::slice::from_ref(&whole), self.level));
        Compacted {
            id: self.id.clone(),
            whole,
            gzip,
        }
    }
}

/// A settled block made into one buffer (and a member), for [`Store::keep_compacted`].
#[derive(Debug)]
pub struct Compacted {
    id: BlockId,
    whole: Bytes,
    gzip: Option<Bytes>,
}

/// One piece of a compressed scrape, in order.
#[derive(Debug)]
pub enum GzipPart {
    /// A gzip member, sent as it is.
    Member(Bytes),
    /// A block to compress (and give back to [`Store::keep_gzip`]) before sending it.
    Stale(StaleBlock),
}

/// Series per object, ready to be concatenated into a scrape.
///
/// Each family's objects are kept in blocks of about [`gzip::BLOCK_BYTES`], each a range of
/// object keys. A block that stops changing is compacted ([`Store::settled_blocks`]): its
/// series go into one buffer, which the objects' entries become slices of, and into a gzip
/// member. A scrape then sends one chunk, or one member, per block; a change loosens only its
/// own block, whose objects are sent one by one (and compressed by the scrape that needs it)
/// until it settles again.
#[derive(Debug)]
pub struct Store {
    families: Arc<FamilySet>,
    /// Per family, its blocks by lower bound: a block holds the keys from its bound up to the
    /// next block's (the first block also those below its bound).
    by_family: Vec<BTreeMap<Arc<ObjectKey>, Block>>,
    /// Per family, its headers as gzip members, text then OpenMetrics.
    gzip_headers: Vec<[Bytes; 2]>,
    gzip_trailer: Bytes,
    objects: HashMap<Arc<ObjectKey>, Entry>,
    stats: BTreeMap<u32, StoreStats>,
    block_bytes: usize,
    level: u32,
    generation: u64,
    gzip_held: usize,
}

impl Store {
    /// An empty store for the families of one configuration.
    pub fn new(families: Arc<FamilySet>) -> Self {
        Self::with_blocks(families, gzip::BLOCK_BYTES, gzip::LEVEL)
    }

    /// An empty store with blocks of about `block_bytes`, compressed at `level` (for measuring
    /// the choice).
    pub fn with_blocks(families: Arc<FamilySet>, block_bytes: usize, level: u32) -> Self {
        let gzip_headers = families
            .families()
            .iter()
            .map(|f| {
                [Format::Text, Format::OpenMetrics]
                    .map(|format| gzip::member(std::slice::from_ref(format.header(f)), level))
            })
            .collect();
        Self {
            by_family: (0..families.len()).map(|_| BTreeMap::new()).collect(),
            gzip_headers,
            gzip_trailer: gzip::member(&[Bytes::from_static(Format::OpenMetrics.trailer())], level),
            families,
            objects: HashMap::new(),
            stats: BTreeMap::new(),
            block_bytes: block_bytes.max(1),
            level,
            generation: 0,
            gzip_held: 0,
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
            if family.index() < self.by_family.len() {
                self.insert(family.index(), &key, bytes);
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
            self.take(family.index(), key);
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

    /// The bound of the block that holds (or would hold) `key` in `family`.
    fn block_of(&self, family: usize, key: &ObjectKey) -> Option<Arc<ObjectKey>> {
        let blocks = self.by_family.get(family)?;
        blocks
            .range::<ObjectKey, _>(..=key)
            .next_back()
            .or_else(|| blocks.iter().next())
            .map(|(bound, _)| Arc::clone(bound))
    }

    /// Marks a block changed: its member (if any) no longer matches.
    fn touch(generation: &mut u64, held: &mut usize, block: &mut Block) {
        *generation += 1;
        block.generation = *generation;
        block.whole = None;
        if let Some(gzip) = block.gzip.take() {
            *held -= gzip.len();
        }
    }

    fn insert(&mut self, family: usize, key: &Arc<ObjectKey>, bytes: Bytes) {
        let bound = self
            .block_of(family, key)
            .unwrap_or_else(|| Arc::clone(key));
        let Some(blocks) = self.by_family.get_mut(family) else {
            return;
        };
        let block = blocks.entry(bound).or_default();
        Self::touch(&mut self.generation, &mut self.gzip_held, block);
        block.bytes += bytes.len();
        block.objects.insert(Arc::clone(key), bytes);
        if block.bytes > 2 * self.block_bytes && block.objects.len() > 1 {
            // Split at the middle byte: the upper half becomes a block of its own.
            let mut below = 0;
            let at = block.objects.iter().find_map(|(k, b)| {
                below += b.len();
                (below > block.bytes / 2).then(|| Arc::clone(k))
            });
            if let Some(at) = at {
                let upper: BTreeMap<_, _> = block.objects.split_off(&at);
                let upper_bytes: usize = upper.values().map(Bytes::len).sum();
                block.bytes -= upper_bytes;
                self.generation += 1;
                let upper = Block {
                    objects: upper,
                    bytes: upper_bytes,
                    generation: self.generation,
                    ..Block::default()
                };
                blocks.insert(at, upper);
            }
        }
    }

    fn take(&mut self, family: usize, key: &ObjectKey) {
        let Some(bound) = self.block_of(family, key) else {
            return;
        };
        let Some(blocks) = self.by_family.get_mut(family) else {
            return;
        };
        let Some(block) = blocks.get_mut(&bound) else {
            return;
        };
        let Some(bytes) = block.objects.remove(key) else {
            return;
        };
        Self::touch(&mut self.generation, &mut self.gzip_held, block);
        block.bytes -= bytes.len();
        if block.bytes >= self.block_bytes / 4 && !block.objects.is_empty() {
            return;
        }
        // Small blocks make small members, which compress worse: fold it into its predecessor
        // (or drop it when empty).
        let empty = block.objects.is_empty();
        let predecessor = blocks
            .range::<ObjectKey, _>(..&*bound)
            .next_back()
            .map(|(b, _)| Arc::clone(b));
        if empty || predecessor.is_some() {
            let Some(small) = blocks.remove(&bound) else {
                return;
            };
            if let Some(gzip) = small.gzip {
                self.gzip_held -= gzip.len();
            }
            if let Some(previous) = predecessor.and_then(|p| blocks.get_mut(&p)) {
                Self::touch(&mut self.generation, &mut self.gzip_held, previous);
                previous.bytes += small.bytes;
                previous.objects.extend(small.objects);
            }
        }
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

    /// Bytes of gzip members held beside the series.
    pub fn gzip_bytes(&self) -> usize {
        self.gzip_held
    }

    /// Size of a scrape in `format`, for reserving the buffer.
    pub fn encoded_len(&self, format: Format) -> usize {
        let headers: usize = self
            .families
            .families()
            .iter()
            .zip(&self.by_family)
            .filter(|(_, blocks)| !blocks.is_empty())
            .map(|(f, _)| format.header(f).len())
            .sum();
        headers + self.total().bytes + format.trailer().len()
    }

    /// Appends a whole scrape in `format` to `out`.
    pub fn encode(&self, format: Format, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len(format));
        for chunk in self.chunks(format) {
            out.extend_from_slice(&chunk);
        }
    }

    /// The scrape as shared chunks, for sending without copying; cheap to take under a lock.
    pub fn chunks(&self, format: Format) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.families.len() + self.objects.len() * 2 + 1);
        for (family, blocks) in self.families.families().iter().zip(&self.by_family) {
            if blocks.is_empty() {
                continue;
            }
            out.push(format.header(family).clone());
            for block in blocks.values() {
                match &block.whole {
                    Some(whole) => out.push(whole.clone()),
                    None => out.extend(block.objects.values().cloned()),
                }
            }
        }
        if !format.trailer().is_empty() {
            out.push(Bytes::from_static(format.trailer()));
        }
        out
    }

    /// The scrape as gzip parts: the members kept, and the blocks changed since they were made,
    /// to compress on the way out. Their concatenation decompresses to [`Store::chunks`].
    pub fn gzip_parts(&self, format: Format) -> Vec<GzipPart> {
        let slot = usize::from(format == Format::OpenMetrics);
        let mut out = Vec::new();
        for (family, (blocks, headers)) in self.by_family.iter().zip(&self.gzip_headers).enumerate()
        {
            if blocks.is_empty() {
                continue;
            }
            out.push(GzipPart::Member(headers[slot].clone()));
            for (bound, block) in blocks {
                out.push(match &block.gzip {
                    Some(member) => GzipPart::Member(member.clone()),
                    None => GzipPart::Stale(StaleBlock {
                        id: BlockId {
                            family,
                            bound: Arc::clone(bound),
                            generation: block.generation,
                        },
                        chunks: block.objects.values().cloned().collect(),
                        level: self.level,
                        compressed: false,
                    }),
                });
            }
        }
        if !format.trailer().is_empty() {
            out.push(GzipPart::Member(self.gzip_trailer.clone()));
        }
        if out.is_empty() {
            // Nothing to send is still a gzip stream.
            out.push(GzipPart::Member(gzip::empty()));
        }
        out
    }

    /// Keeps the member made from a stale block, unless the block changed since.
    pub fn keep_gzip(&mut self, id: &BlockId, member: Bytes) {
        let Some(block) = self
            .by_family
            .get_mut(id.family)
            .and_then(|blocks| blocks.get_mut(&id.bound))
        else {
            return;
        };
        if block.generation == id.generation && block.gzip.is_none() {
            self.gzip_held += member.len();
            block.gzip = Some(member);
        }
    }

    /// The blocks not compacted that did not change since the last call: what
    /// [`StaleBlock::compact`] should make into one buffer (outside the lock) for
    /// [`Store::keep_compacted`]. Blocks still changing (an initial list filling them) wait
    /// for a call that finds them as the previous one left them.
    pub fn settled_blocks(&mut self) -> Vec<StaleBlock> {
        let mut out = Vec::new();
        for (family, blocks) in self.by_family.iter_mut().enumerate() {
            for (bound, block) in blocks.iter_mut() {
                if block.whole.is_some() {
                    continue;
                }
                if block.seen != block.generation {
                    block.seen = block.generation;
                    continue;
                }
                out.push(StaleBlock {
                    id: BlockId {
                        family,
                        bound: Arc::clone(bound),
                        generation: block.generation,
                    },
                    chunks: block.objects.values().cloned().collect(),
                    level: self.level,
                    compressed: block.gzip.is_some(),
                });
            }
        }
        out
    }

    /// Keeps a compacted block, unless it changed since: its entries become slices of the one
    /// buffer, so the objects' own buffers are freed once all their families are compacted.
    pub fn keep_compacted(&mut self, compacted: Compacted) {
        let Compacted { id, whole, gzip } = compacted;
        let Some(block) = self
            .by_family
            .get_mut(id.family)
            .and_then(|blocks| blocks.get_mut(&id.bound))
        else {
            return;
        };
        if block.generation != id.generation || block.bytes != whole.len() {
            return;
        }
        let mut at = 0;
        for bytes in block.objects.values_mut() {
            let end = at + bytes.len();
            *bytes = whole.slice(at..end);
            at = end;
        }
        block.whole = Some(whole);
        if let Some(member) = gzip
            && block.gzip.is_none()
        {
            self.gzip_held += member.len();
            block.gzip = Some(member);
        }
    }

    /// The compression level of the members.
    pub fn gzip_level(&self) -> u32 {
        self.level
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
        assert_eq!(gunzip(&compressed(store, format)), out);
        String::from_utf8(out).unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        gzip::decode(data).unwrap()
    }

    /// A store with blocks of about 200 bytes (an object's series are ~60 bytes per family),
    /// holding objects `o{i}` for each `i`, in that order.
    fn filled(
        objects: impl Iterator<Item = usize>,
        level: u32,
    ) -> (Store, Arc<FamilySet>, Vec<FamilyId>) {
        let (set, ids) = families();
        let mut store = Store::with_blocks(Arc::clone(&set), 200, level);
        for i in objects {
            let name = format!("o{i:03}");
            store.upsert(
                ObjectKey::new(0, "ns", &name),
                render(&set, &ids, &name, 1.0),
            );
        }
        (store, set, ids)
    }

    /// The compressed scrape, compressing stale blocks as a scrape body does (without keeping
    /// them).
    fn compressed(store: &Store, format: Format) -> Vec<u8> {
        let mut out = Vec::new();
        for part in store.gzip_parts(format) {
            match part {
                GzipPart::Member(m) => out.extend_from_slice(&m),
                GzipPart::Stale(stale) => out.extend_from_slice(&stale.compress()),
            }
        }
        out
    }

    /// The blocks a compressed scrape would compress now.
    fn stale(store: &Store) -> Vec<StaleBlock> {
        store
            .gzip_parts(Format::Text)
            .into_iter()
            .filter_map(|p| match p {
                GzipPart::Stale(s) => Some(s),
                GzipPart::Member(_) => None,
            })
            .collect()
    }

    /// Compresses and keeps every stale block; returns how many there were.
    fn keep_all(store: &mut Store) -> usize {
        let stale = stale(store);
        for s in &stale {
            store.keep_gzip(&s.id, s.compress());
        }
        stale.len()
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

    #[test]
    fn a_change_recompresses_only_its_block() {
        // Blocks of about 200 bytes: each object's series are ~60 bytes per family.
        let (mut store, set, ids) = filled(0..100, 6);
        let blocks = keep_all(&mut store);
        assert!(blocks >= 20, "{blocks} blocks");
        assert!(store.gzip_bytes() > 0);
        assert_eq!(keep_all(&mut store), 0, "kept members are reused");
        // One object in two families: two blocks.
        store.upsert(
            ObjectKey::new(0, "ns", "o050"),
            render(&set, &ids, "o050", 0.0),
        );
        assert_eq!(keep_all(&mut store), 2);
        // A member made before a change is not kept after it.
        assert!(stale(&store).is_empty());
        store.upsert(
            ObjectKey::new(0, "ns", "o051"),
            render(&set, &ids, "o051", 0.0),
        );
        let parts = store.gzip_parts(Format::Text);
        store.upsert(
            ObjectKey::new(0, "ns", "o051"),
            render(&set, &ids, "o051", 1.0),
        );
        for part in parts {
            if let GzipPart::Stale(s) = part {
                store.keep_gzip(&s.id, s.compress());
            }
        }
        let text = scrape(&store, Format::Text);
        assert!(
            text.contains("w_status{name=\"o051\",type=\"Ready\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("w_status{name=\"o050\",type=\"Ready\"} 0\n"));
    }

    #[test]
    fn blocks_split_and_merge_keeping_order() {
        // Out of order, so splits happen in the middle of the key range.
        let (mut store, _, _) = filled((0..300).map(|i| (i * 37) % 300), 1);
        keep_all(&mut store);
        let full = scrape(&store, Format::OpenMetrics);
        let names: Vec<&str> = full.lines().filter(|l| l.starts_with("w_info")).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names.len(), 300);
        assert_eq!(names, sorted);
        // Deleting most objects merges the small blocks; what is left is intact and in order.
        for i in (0..300).filter(|i| i % 7 != 0) {
            assert!(store.remove(&ObjectKey::new(0, "ns", &format!("o{i:03}"))));
        }
        let left = scrape(&store, Format::OpenMetrics);
        let names: Vec<&str> = left.lines().filter(|l| l.starts_with("w_info")).collect();
        assert_eq!(names.len(), 43);
        let blocks = store.gzip_parts(Format::Text).len() - 2;
        assert!(blocks <= 20, "{blocks} members for 43 objects");
        store.retain(|_| false);
        assert_eq!(store.gzip_parts(Format::Text).len(), 1, "the empty member");
        assert_eq!(store.gzip_bytes(), 0);
    }

    /// Runs the settling passes a background task would, until nothing is left to compact.
    fn compact_all(store: &mut Store) -> usize {
        let mut compacted = 0;
        for _ in 0..2 {
            for stale in store.settled_blocks() {
                store.keep_compacted(stale.compact());
                compacted += 1;
            }
        }
        compacted
    }

    #[test]
    fn settled_blocks_become_one_buffer_and_a_change_undoes_only_its_own() {
        let (mut store, set, ids) = filled(0..60, 6);
        let before = scrape(&store, Format::Text);
        // The first pass only notes what it saw; the second compacts what did not change.
        assert!(store.settled_blocks().is_empty());
        let blocks = compact_all(&mut store);
        assert!(blocks >= 10, "{blocks}");
        assert_eq!(scrape(&store, Format::Text), before);
        // One chunk per block now, and every member made.
        assert_eq!(store.chunks(Format::Text).len(), 2 + blocks);
        assert_eq!(keep_all(&mut store), 0);
        // Entries are slices of their block's buffer.
        for blocks in &store.by_family {
            for block in blocks.values() {
                let whole = block.whole.as_ref().unwrap();
                let range = whole.as_ptr() as usize..whole.as_ptr() as usize + whole.len();
                for bytes in block.objects.values() {
                    assert!(range.contains(&(bytes.as_ptr() as usize)));
                }
            }
        }
        // A change makes its blocks loose again (one per family) and leaves the others.
        store.upsert(
            ObjectKey::new(0, "ns", "o030"),
            render(&set, &ids, "o030", 0.0),
        );
        assert_eq!(
            store.chunks(Format::Text).len(),
            2 + blocks - 2 + store_loose(&store)
        );
        assert_eq!(keep_all(&mut store), 2);
        // Changing while being compacted: the stale result is not kept.
        store.settled_blocks();
        let stale = store.settled_blocks();
        assert_eq!(stale.len(), 2);
        store.upsert(
            ObjectKey::new(0, "ns", "o030"),
            render(&set, &ids, "o030", 1.0),
        );
        for s in stale {
            store.keep_compacted(s.compact());
        }
        assert_eq!(scrape(&store, Format::Text), before);
        assert_eq!(compact_all(&mut store), 2);
        assert_eq!(scrape(&store, Format::Text), before);
    }

    /// Objects in blocks not compacted.
    fn store_loose(store: &Store) -> usize {
        store
            .by_family
            .iter()
            .flat_map(|b| b.values())
            .filter(|b| b.whole.is_none())
            .map(|b| b.objects.len())
            .sum()
    }
}
