//! Metrics kept across objects: counters and histograms of changes tapmon sees happen (the
//! only metrics that depend on history rather than on the objects as they are now), and
//! aggregates (a count or sum per label set, exact at every moment).
//!
//! Aggregates: each object contributes 1 (count) or its value (sum) to the series of its
//! labels; a change moves its contribution, a delete withdraws it. They hold no history, so a
//! restart rebuilds them exactly from the list.
//!
//! Each Counter or Histogram follows one state of each object (a condition's status, the name
//! of the latest ready revision). When the state an object had changes to one of the listed
//! ones, the counter of the object's labels goes up by one, or the histogram of its labels
//! observes a duration the object carries. Objects with the same labels are summed, so the
//! series are per namespace and workload, not per object.
//!
//! Restarts: the state last seen is kept in memory only. A new [`Live`] starts every series at
//! zero (no series until the first change), and the objects of a list (the first list, or a
//! relist after the watch broke) are recorded, not counted: tapmon cannot tell when their
//! state was reached. An object it never saw before that appears through a change event and
//! was created after it started counts if its state is already a listed one (created
//! finished). Each series carries the time of its first change as OpenMetrics' `_created`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;
use tapmon_exposition::{
    Format, write_escaped_help, write_escaped_label_value, write_sample_value,
};
use tapmon_selector::value::{label_value, to_f64, to_timestamp};

use crate::Compiled;
use crate::compile::{CompiledLive, LiveKind};
use crate::evaluate::{EvalErrorKind, EvalErrors};
use crate::labels::LabelSet;

/// How an object reached tapmon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// In a list: the first one, or a relist. Its state may be old news.
    Listed,
    /// In a change event, as it happened.
    Changed,
}

/// Which object's state, for which live metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Followed {
    resource: u32,
    metric: u32,
    namespace: Box<str>,
    name: Box<str>,
}

/// One series: a counter, or a histogram's buckets, sum and count.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    /// Unix seconds of its first change.
    created: f64,
    count: u64,
    sum: f64,
    /// Per bucket, observations at or below its bound (not cumulative).
    buckets: Vec<u64>,
}

/// What a family is.
#[derive(Debug, Clone, PartialEq)]
enum FamilyKind {
    Counter,
    Histogram(Vec<f64>),
    /// An aggregate: `sum` is the value, `count` the objects contributing.
    Gauge,
}

/// A family's series by label set.
#[derive(Debug, Clone)]
struct Family {
    help: Arc<str>,
    kind: FamilyKind,
    series: BTreeMap<Vec<(String, String)>, Series>,
}

/// What one object adds to an aggregate: to which family and labels, how much.
#[derive(Debug, Clone)]
struct Contribution {
    family: Arc<str>,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The live metrics of one compiled config: the state last seen of each followed object, and
/// the series.
#[derive(Debug)]
pub struct Live {
    started: f64,
    /// Series held, over every family.
    series: usize,
    last: HashMap<Followed, Box<str>>,
    contributions: HashMap<Followed, Contribution>,
    families: BTreeMap<Arc<str>, Family>,
}

impl Live {
    /// Nothing counted yet; `started` (Unix seconds) tells objects created since from older ones.
    pub fn new(started: f64) -> Self {
        Self {
            started,
            series: 0,
            last: HashMap::new(),
            contributions: HashMap::new(),
            families: BTreeMap::new(),
        }
    }

    /// Follows `object`, read by resource `resource` of `compiled`: counts and observes the
    /// changes its live metrics count. `now` is the Unix time of a series' first change; no
    /// new series is made once `limit` are held (the monitor's series limit covers these too:
    /// a config's own labels could otherwise make one per object).
    #[allow(clippy::too_many_arguments)] // Which object, how it came, when, and the room.
    pub fn observe(
        &mut self,
        compiled: &Compiled,
        resource: u32,
        object: &Value,
        (namespace, name): (&str, &str),
        seen: Seen,
        (now, limit): (f64, usize),
        errors: &mut EvalErrors,
    ) {
        let Some(r) = compiled.resources().get(resource as usize) else {
            return;
        };
        for (m, live) in r.live().iter().enumerate() {
            let key = Followed {
                resource,
                metric: m as u32,
                namespace: namespace.into(),
                name: name.into(),
            };
            if matches!(live.kind, LiveKind::Count | LiveKind::Sum { .. }) {
                self.contribute(key, live, object, limit, errors);
                continue;
            }
            let state = match live.state.get(object) {
                None | Some(Value::Null) => Cow::Borrowed(""),
                found => label_value(found),
            };
            let before = self.last.insert(key, state.as_ref().into());
            let changed = match before {
                Some(before) => *before != *state,
                None => seen == Seen::Changed && self.created_since_start(object),
            };
            let counted = changed
                && !state.is_empty()
                && (live.to.is_empty() || live.to.iter().any(|t| **t == *state));
            if counted {
                self.record(live, object, (now, limit), errors);
            }
        }
    }

    /// Forgets a deleted object: deleting counts nothing; its part of aggregates goes.
    pub fn forget(&mut self, resource: u32, namespace: &str, name: &str) {
        self.retain(resource, |ns, n| !(ns == namespace && n == name));
    }

    /// Forgets the objects of `resource` that `keep` refuses (gone from a relist).
    pub fn retain(&mut self, resource: u32, mut keep: impl FnMut(&str, &str) -> bool) {
        let mut gone = |k: &Followed| k.resource == resource && !keep(&k.namespace, &k.name);
        self.last.retain(|k, _| !gone(k));
        let withdrawn: Vec<Followed> = self
            .contributions
            .keys()
            .filter(|k| gone(k))
            .cloned()
            .collect();
        for key in withdrawn {
            if let Some(old) = self.contributions.remove(&key) {
                self.withdraw(&old);
            }
        }
    }

    /// Moves an object's contribution to an aggregate to what it is now.
    fn contribute(
        &mut self,
        key: Followed,
        live: &CompiledLive,
        object: &Value,
        limit: usize,
        errors: &mut EvalErrors,
    ) {
        let value = match &live.kind {
            LiveKind::Sum { value } => match value.get(object) {
                // Nothing to add: no part in the sum, as a gauge has no series.
                None | Some(Value::Null) => None,
                found => match to_f64(found, false) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        errors.push_named(&live.name, || value.to_string(), e.into());
                        None
                    }
                },
            },
            _ => Some(1.0),
        };
        if let Some(old) = self.contributions.remove(&key) {
            self.withdraw(&old);
        }
        let Some(value) = value else {
            return;
        };
        let labels = labels_of(live, object);
        let Some(series) = self.series_of(live, labels.clone(), FamilyKind::Gauge, 0.0, limit)
        else {
            errors.push_named(&live.name, String::new, EvalErrorKind::SeriesLimit);
            return;
        };
        series.count += 1;
        series.sum += value;
        self.contributions.insert(
            key,
            Contribution {
                family: Arc::clone(&live.name),
                labels,
                value,
            },
        );
    }

    fn withdraw(&mut self, old: &Contribution) {
        let Some(family) = self.families.get_mut(&old.family) else {
            return;
        };
        if let Some(series) = family.series.get_mut(&old.labels) {
            series.count = series.count.saturating_sub(1);
            series.sum -= old.value;
            if series.count == 0 {
                family.series.remove(&old.labels);
                self.series -= 1;
            }
        }
        if family.series.is_empty() {
            self.families.remove(&old.family);
        }
    }

    /// True when no series has been counted yet.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    fn created_since_start(&self, object: &Value) -> bool {
        to_timestamp(object.pointer("/metadata/creationTimestamp"))
            .is_ok_and(|created| created >= self.started)
    }

    /// The series of `labels` in `live`'s family, made (as `kind`, created `now`) if there is
    /// room under `limit`; `None` when there is not.
    fn series_of(
        &mut self,
        live: &CompiledLive,
        labels: Vec<(String, String)>,
        kind: FamilyKind,
        now: f64,
        limit: usize,
    ) -> Option<&mut Series> {
        let exists = self
            .families
            .get(&live.name)
            .is_some_and(|f| f.series.contains_key(&labels));
        if !exists {
            if self.series >= limit {
                return None;
            }
            self.series += 1;
        }
        let family = self
            .families
            .entry(Arc::clone(&live.name))
            .or_insert_with(|| Family {
                help: Arc::clone(&live.help),
                kind,
                series: BTreeMap::new(),
            });
        let width = match &family.kind {
            FamilyKind::Histogram(bounds) => bounds.len(),
            _ => 0,
        };
        Some(family.series.entry(labels).or_insert_with(|| Series {
            created: now,
            count: 0,
            sum: 0.0,
            buckets: vec![0; width],
        }))
    }

    fn record(
        &mut self,
        live: &CompiledLive,
        object: &Value,
        (now, limit): (f64, usize),
        errors: &mut EvalErrors,
    ) {
        let observed = match &live.kind {
            LiveKind::Counter | LiveKind::Count | LiveKind::Sum { .. } => None,
            LiveKind::Histogram { start, end, .. } => {
                let at = |p: &tapmon_selector::Path| {
                    to_timestamp(p.get(object)).map_err(|e| (p.to_string(), e.into()))
                };
                let seconds = at(start).and_then(|from| at(end).map(|to| to - from));
                match seconds {
                    Ok(s) if s >= 0.0 => Some(s),
                    Ok(s) => {
                        errors.push_named(
                            &live.name,
                            || end.to_string(),
                            EvalErrorKind::EndBeforeStart(-s),
                        );
                        return;
                    }
                    Err((path, kind)) => {
                        errors.push_named(&live.name, || path, kind);
                        return;
                    }
                }
            }
        };
        let labels = labels_of(live, object);
        let kind = match &live.kind {
            LiveKind::Histogram { buckets, .. } => FamilyKind::Histogram(buckets.clone()),
            _ => FamilyKind::Counter,
        };
        let Some(series) = self.series_of(live, labels, kind, now, limit) else {
            errors.push_named(&live.name, String::new, EvalErrorKind::SeriesLimit);
            return;
        };
        series.count += 1;
        if let (Some(seconds), LiveKind::Histogram { buckets, .. }) = (observed, &live.kind) {
            series.sum += seconds;
            if let Some(i) = buckets.iter().position(|b| seconds <= *b) {
                series.buckets[i] += 1;
            }
        }
    }

    /// Series held, over every family.
    pub fn series(&self) -> usize {
        self.series
    }

    /// Appends the series in `format` (without a trailer), families by name, series by labels.
    pub fn encode(&self, format: Format, out: &mut Vec<u8>) {
        let om = format == Format::OpenMetrics;
        for (name, family) in &self.families {
            // OpenMetrics names a counter's family without `_total`; text 0.0.4 with it.
            let base = match (&family.kind, om) {
                (FamilyKind::Counter, true) => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            let kind = match family.kind {
                FamilyKind::Counter => "counter",
                FamilyKind::Histogram(_) => "histogram",
                FamilyKind::Gauge => "gauge",
            };
            out.extend_from_slice(b"# HELP ");
            out.extend_from_slice(base.as_bytes());
            out.push(b' ');
            write_escaped_help(out, &family.help, om);
            out.extend_from_slice(format!("\n# TYPE {base} {kind}\n").as_bytes());
            let counter_base = name.strip_suffix("_total").unwrap_or(name);
            for (labels, s) in &family.series {
                let mut sample = |suffix: &str, extra: Option<(&str, f64)>, v: f64| {
                    let stem = match family.kind {
                        FamilyKind::Counter => counter_base,
                        _ => name,
                    };
                    out.extend_from_slice(stem.as_bytes());
                    out.extend_from_slice(suffix.as_bytes());
                    write_labels(out, labels, extra);
                    out.push(b' ');
                    write_sample_value(out, v);
                    out.push(b'\n');
                };
                match &family.kind {
                    FamilyKind::Gauge => {
                        sample("", None, s.sum);
                        continue;
                    }
                    FamilyKind::Counter => sample("_total", None, s.count as f64),
                    FamilyKind::Histogram(bounds) => {
                        let mut cumulative = 0;
                        for (bound, n) in bounds.iter().zip(&s.buckets) {
                            cumulative += n;
                            sample("_bucket", Some(("le", *bound)), cumulative as f64);
                        }
                        sample("_bucket", Some(("le", f64::INFINITY)), s.count as f64);
                        sample("_sum", None, s.sum);
                        sample("_count", None, s.count as f64);
                    }
                }
                if om {
                    sample("_created", None, s.created);
                }
            }
        }
    }
}

/// The metric's own labels, read from the object.
fn labels_of(live: &CompiledLive, object: &Value) -> Vec<(String, String)> {
    let mut set = LabelSet::with_capacity(live.labels.len());
    set.apply(&live.labels, object);
    set.iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn write_labels(out: &mut Vec<u8>, labels: &[(String, String)], extra: Option<(&str, f64)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push(b'{');
    let mut first = true;
    for (name, value) in labels {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        write_escaped_label_value(out, value);
        out.push(b'"');
    }
    if let Some((name, bound)) = extra {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        write_sample_value(out, bound);
        out.push(b'"');
    }
    out.push(b'}');
}

impl Compiled {
    /// True when the config has a Counter or Histogram.
    pub fn has_live(&self) -> bool {
        self.resources.iter().any(|r| !r.live().is_empty())
    }
}
