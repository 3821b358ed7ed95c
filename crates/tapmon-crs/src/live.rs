//! Counters and histograms of changes tapmon sees happen: the only metrics that depend on
//! history rather than on the object as it is now.
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
use tapmon_selector::value::{label_value, to_timestamp};

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

/// A family's series by label set.
#[derive(Debug, Clone)]
struct Family {
    help: Arc<str>,
    /// `None` for a counter, the bounds for a histogram.
    bounds: Option<Vec<f64>>,
    series: BTreeMap<Vec<(String, String)>, Series>,
}

/// The live metrics of one compiled config: the state last seen of each followed object, and
/// the series.
#[derive(Debug)]
pub struct Live {
    started: f64,
    last: HashMap<Followed, Box<str>>,
    families: BTreeMap<Arc<str>, Family>,
}

impl Live {
    /// Nothing counted yet; `started` (Unix seconds) tells objects created since from older ones.
    pub fn new(started: f64) -> Self {
        Self {
            started,
            last: HashMap::new(),
            families: BTreeMap::new(),
        }
    }

    /// Follows `object`, read by resource `resource` of `compiled`: counts and observes the
    /// changes its live metrics count. `now` is the Unix time of a series' first change.
    #[allow(clippy::too_many_arguments)] // Which object, how it came, and when: all needed.
    pub fn observe(
        &mut self,
        compiled: &Compiled,
        resource: u32,
        object: &Value,
        (namespace, name): (&str, &str),
        seen: Seen,
        now: f64,
        errors: &mut EvalErrors,
    ) {
        let Some(r) = compiled.resources().get(resource as usize) else {
            return;
        };
        for (m, live) in r.live().iter().enumerate() {
            let state = match live.state.get(object) {
                None | Some(Value::Null) => Cow::Borrowed(""),
                found => label_value(found),
            };
            let key = Followed {
                resource,
                metric: m as u32,
                namespace: namespace.into(),
                name: name.into(),
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
                self.record(live, object, now, errors);
            }
        }
    }

    /// Forgets a deleted object: deleting counts nothing.
    pub fn forget(&mut self, resource: u32, namespace: &str, name: &str) {
        self.last.retain(|k, _| {
            !(k.resource == resource && &*k.namespace == namespace && &*k.name == name)
        });
    }

    /// Forgets the objects of `resource` that `keep` refuses (gone from a relist).
    pub fn retain(&mut self, resource: u32, mut keep: impl FnMut(&str, &str) -> bool) {
        self.last
            .retain(|k, _| k.resource != resource || keep(&k.namespace, &k.name));
    }

    /// True when no series has been counted yet.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    fn created_since_start(&self, object: &Value) -> bool {
        to_timestamp(object.pointer("/metadata/creationTimestamp"))
            .is_ok_and(|created| created >= self.started)
    }

    fn record(&mut self, live: &CompiledLive, object: &Value, now: f64, errors: &mut EvalErrors) {
        let observed = match &live.kind {
            LiveKind::Counter => None,
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
                            end.to_string(),
                            EvalErrorKind::EndBeforeStart(-s),
                        );
                        return;
                    }
                    Err((path, kind)) => {
                        errors.push_named(&live.name, path, kind);
                        return;
                    }
                }
            }
        };
        let mut set = LabelSet::with_capacity(live.labels.len());
        set.apply(&live.labels, object);
        let labels: Vec<(String, String)> = set
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let bounds = match &live.kind {
            LiveKind::Counter => None,
            LiveKind::Histogram { buckets, .. } => Some(buckets.clone()),
        };
        let family = self
            .families
            .entry(Arc::clone(&live.name))
            .or_insert_with(|| Family {
                help: Arc::clone(&live.help),
                bounds,
                series: BTreeMap::new(),
            });
        let width = family.bounds.as_ref().map_or(0, Vec::len);
        let series = family.series.entry(labels).or_insert_with(|| Series {
            created: now,
            count: 0,
            sum: 0.0,
            buckets: vec![0; width],
        });
        series.count += 1;
        if let (Some(seconds), Some(bounds)) = (observed, &family.bounds) {
            series.sum += seconds;
            if let Some(i) = bounds.iter().position(|b| seconds <= *b) {
                series.buckets[i] += 1;
            }
        }
    }

    /// Appends the series in `format` (without a trailer), families by name, series by labels.
    pub fn encode(&self, format: Format, out: &mut Vec<u8>) {
        let om = format == Format::OpenMetrics;
        for (name, family) in &self.families {
            // OpenMetrics names a counter's family without `_total`; text 0.0.4 with it.
            let base = match (&family.bounds, om) {
                (None, true) => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            let kind = if family.bounds.is_some() {
                "histogram"
            } else {
                "counter"
            };
            out.extend_from_slice(b"# HELP ");
            out.extend_from_slice(base.as_bytes());
            out.push(b' ');
            write_escaped_help(out, &family.help, om);
            out.extend_from_slice(format!("\n# TYPE {base} {kind}\n").as_bytes());
            let counter_base = name.strip_suffix("_total").unwrap_or(name);
            for (labels, s) in &family.series {
                let mut sample = |suffix: &str, extra: Option<(&str, f64)>, v: f64| {
                    let stem = if family.bounds.is_none() {
                        counter_base
                    } else {
                        name
                    };
                    out.extend_from_slice(stem.as_bytes());
                    out.extend_from_slice(suffix.as_bytes());
                    write_labels(out, labels, extra);
                    out.push(b' ');
                    write_sample_value(out, v);
                    out.push(b'\n');
                };
                match &family.bounds {
                    None => sample("_total", None, s.count as f64),
                    Some(bounds) => {
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
