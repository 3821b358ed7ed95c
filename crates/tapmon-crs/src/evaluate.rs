//! Evaluating a compiled resource against one object.
//!
//! Every series that can be computed is written; what cannot is reported as an
//! [`EvalError`] naming the metric and path, and evaluation goes on with the next element or
//! metric. Nothing here panics on object content.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;
use tapmon_exposition::ObjectRenderer;
use tapmon_selector::Path;
use tapmon_selector::value::{ValueError, to_f64, to_timestamp};

use crate::compile::{Body, CompiledMetric, CompiledResource};
use crate::labels::LabelSet;

/// The labels kube-state-metrics adds to every series: the object's group, version and kind.
pub const GVK_LABELS: [&str; 3] = [
    "customresource_group",
    "customresource_version",
    "customresource_kind",
];

/// The group, version and kind an object was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKind<'a> {
    /// API group.
    pub group: &'a str,
    /// Version served.
    pub version: &'a str,
    /// Kind.
    pub kind: &'a str,
}

impl<'a> ObjectKind<'a> {
    /// Reads `apiVersion` and `kind` from the object itself.
    pub fn of(object: &'a Value) -> Option<Self> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Some(Self {
            group,
            version,
            kind,
        })
    }
}

/// What went wrong computing one value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalErrorKind {
    /// The value is not a number.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A StateSet's value must be a string.
    #[error("expected a string state but found {0}")]
    NotAState(&'static str),
    /// A duration's end is before its start: clocks of two controllers disagree, or the
    /// object is wrong. No series rather than a negative duration.
    #[error("the end is {0:.3}s before the start")]
    EndBeforeStart(f64),
    /// A new counter, histogram or aggregate series would take the monitor over its series
    /// limit; it is not made.
    #[error("the series limit is reached: no new series")]
    SeriesLimit,
    /// Two series of the metric would have the same labels; the later is dropped.
    #[error(
        "series with the same labels as an earlier one (add labelFromKey or labelsFromPath to tell them apart)"
    )]
    Duplicate,
}

/// A value of one object that could not be turned into a series.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    /// The metric's full name.
    pub metric: String,
    /// The path evaluated, with the list index or map key where there was one.
    pub path: String,
    /// What went wrong.
    pub kind: EvalErrorKind,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metric {} at {}: {}", self.metric, self.path, self.kind)
    }
}

impl std::error::Error for EvalError {}

/// Keeps the first few errors of an object and counts the rest, so a pathological object
/// cannot make error handling the expensive part.
#[derive(Debug, Default)]
pub struct EvalErrors {
    kept: Vec<EvalError>,
    total: usize,
}

/// Errors kept in detail per object.
const KEPT: usize = 8;

impl EvalErrors {
    fn push(
        &mut self,
        metric: &CompiledMetric,
        path: impl FnOnce() -> String,
        kind: EvalErrorKind,
    ) {
        self.push_named(&metric.name, path, kind);
    }

    /// Records an error of the metric named `metric` (also a live one, which has no
    /// [`CompiledMetric`]); `path` is written only for the errors kept.
    pub(crate) fn push_named(
        &mut self,
        metric: &str,
        path: impl FnOnce() -> String,
        kind: EvalErrorKind,
    ) {
        self.total += 1;
        if self.kept.len() < KEPT {
            self.kept.push(EvalError {
                metric: metric.to_owned(),
                path: path(),
                kind,
            });
        }
    }

    /// The first errors, in evaluation order.
    pub fn kept(&self) -> &[EvalError] {
        &self.kept
    }

    /// How many errors there were in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// True when there were none.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Forgets everything, to reuse the buffer for the next object.
    pub fn clear(&mut self) {
        self.kept.clear();
        self.total = 0;
    }
}

/// Value that stands for a condition status of `Unknown`: not 1 (True), not 0 (False).
pub const UNKNOWN_VALUE: f64 = -1.0;

/// The sample value of what a path found. `Unknown` (any case) is [`UNKNOWN_VALUE`];
/// kube-state-metrics reads it as 0, the same as `False`.
fn sample_value(found: Option<&Value>, nil_is_zero: bool) -> Result<f64, ValueError> {
    match found {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("unknown") => Ok(UNKNOWN_VALUE),
        other => to_f64(other, nil_is_zero),
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

impl crate::Compiled {
    /// Evaluates `object` with every resource that reads its kind, handing each resource's
    /// rendered series to `sink` with the resource's index. Objects without `apiVersion` and
    /// `kind` match nothing.
    pub fn render(
        &self,
        object: &Value,
        renderer: &mut ObjectRenderer,
        errors: &mut EvalErrors,
        mut sink: impl FnMut(u32, tapmon_exposition::RenderedObject),
    ) {
        let Some(kind) = ObjectKind::of(object) else {
            return;
        };
        for (index, resource) in self.resources_for(kind.group, kind.version, kind.kind) {
            resource.evaluate(object, kind, renderer, errors);
            sink(index, renderer.finish());
        }
    }
}

impl CompiledResource {
    /// Writes the object's series to `out` (call [`ObjectRenderer::finish`] afterwards) and
    /// records what could not be computed in `errors`.
    pub fn evaluate(
        &self,
        object: &Value,
        kind: ObjectKind<'_>,
        out: &mut ObjectRenderer,
        errors: &mut EvalErrors,
    ) {
        // Lowest precedence first: resource commonLabels, then the GVK labels.
        let mut base = LabelSet::with_capacity(16);
        base.apply(&self.common, object);
        for (name, value) in GVK_LABELS.iter().zip([kind.group, kind.version, kind.kind]) {
            base.set(Cow::Borrowed(*name), Cow::Borrowed(value));
        }
        for metric in &self.metrics {
            // Then metric commonLabels, resource labelsFromPath, metric labelsFromPath.
            let mut labels = base.clone();
            labels.apply(&metric.common, object);
            labels.apply(&self.from_path, object);
            labels.apply(&metric.from_path, object);
            metric.evaluate(object, &labels, out, errors);
        }
    }
}

/// Tracks the label sets one metric has written for an object, to drop duplicates.
struct Seen(Vec<u64>);

impl Seen {
    fn first_time(&mut self, labels: &LabelSet<'_>) -> bool {
        let fp = labels.fingerprint();
        if self.0.contains(&fp) {
            return false;
        }
        self.0.push(fp);
        true
    }
}

impl CompiledMetric {
    fn write(&self, labels: &LabelSet<'_>, value: f64, out: &mut ObjectRenderer) {
        let mut series = out.series(self.family);
        for (name, value) in labels.iter() {
            series = series.label(name, value);
        }
        series.finish(value);
    }

    fn evaluate(
        &self,
        object: &Value,
        base: &LabelSet<'_>,
        out: &mut ObjectRenderer,
        errors: &mut EvalErrors,
    ) {
        let mut seen = Seen(Vec::new());
        match &self.body {
            Body::Gauge {
                path,
                value_from,
                label_from_key,
                labels,
                nil_is_zero,
                ignore_keys,
            } => {
                let Some(target) = path.get(object) else {
                    if *nil_is_zero {
                        self.write(base, 0.0, out);
                    }
                    return;
                };
                let mut one = |element: &Value, key: Option<&str>, at: &dyn Fn() -> String| {
                    let found = match (value_from, key) {
                        (None, _) => Some(element),
                        // kube-state-metrics: over a map, `valueFrom: [k]` picks entry `k` itself.
                        (Some(v), Some(k)) if single_key(v) == Some(k) => Some(element),
                        (Some(v), _) => v.get(element),
                    };
                    if found.is_none_or(Value::is_null) && !*nil_is_zero {
                        return;
                    }
                    let value = match sample_value(found, *nil_is_zero) {
                        Ok(v) => v,
                        Err(e) => {
                            errors.push(self, || join(at(), value_from.as_ref()), e.into());
                            return;
                        }
                    };
                    let mut set = base.clone();
                    if let (Some(name), Some(k)) = (label_from_key, key) {
                        set.set(Cow::Borrowed(name), Cow::Borrowed(k));
                    }
                    set.apply(labels, element);
                    if seen.first_time(&set) {
                        self.write(&set, value, out);
                    } else {
                        errors.push(self, at, EvalErrorKind::Duplicate);
                    }
                };
                match target {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            one(item, None, &|| format!("{path}[{i}]"));
                        }
                    }
                    // Per-key series only when asked for with labelFromKey; otherwise the map
                    // is one element and valueFrom reads into it.
                    Value::Object(map) if label_from_key.is_some() => {
                        for (k, item) in map {
                            if !ignore_keys.iter().any(|i| **i == *k) {
                                one(item, Some(k), &|| format!("{path}[{k}]"));
                            }
                        }
                    }
                    other => one(other, None, &|| path.to_string()),
                }
            }
            Body::Duration {
                path,
                start,
                end,
                when,
                labels,
            } => {
                let mut one = |element: &Value, at: &dyn Fn() -> String| {
                    if let Some((state_path, states)) = when {
                        let in_state = match state_path.get(element) {
                            Some(Value::String(s)) => states.iter().any(|w| **w == **s),
                            _ => false,
                        };
                        if !in_state {
                            return;
                        }
                    }
                    // No end yet: still running, not an error.
                    let Some(end_value) = end.get(element).filter(|v| !v.is_null()) else {
                        return;
                    };
                    // Name the timestamp's own path; prefixed with where the element is.
                    let locate = |p: &Path| {
                        if path.is_root() {
                            p.to_string()
                        } else {
                            join(at(), Some(p))
                        }
                    };
                    let timestamp = |p: &Path, found: Option<&Value>| {
                        to_timestamp(found).map_err(|e| (locate(p), e))
                    };
                    let seconds = timestamp(start, start.get(element))
                        .and_then(|from| timestamp(end, Some(end_value)).map(|to| to - from));
                    match seconds {
                        Ok(d) if d < 0.0 => {
                            errors.push(self, || locate(end), EvalErrorKind::EndBeforeStart(-d));
                        }
                        Ok(d) => {
                            let mut set = base.clone();
                            set.apply(labels, element);
                            if seen.first_time(&set) {
                                self.write(&set, d, out);
                            } else {
                                errors.push(self, at, EvalErrorKind::Duplicate);
                            }
                        }
                        Err((where_, e)) => errors.push(self, || where_, e.into()),
                    }
                };
                match path.get(object) {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => {
                        for (i, item) in items.iter().enumerate() {
                            one(item, &|| format!("{path}[{i}]"));
                        }
                    }
                    Some(other) => one(other, &|| path.to_string()),
                }
            }
            Body::StateSet {
                path,
                value_from,
                label_name,
                list,
                labels,
            } => {
                let mut one = |element: &Value, at: &dyn Fn() -> String| {
                    let found = match value_from {
                        Some(v) => v.get(element),
                        None => Some(element),
                    };
                    let state = match found {
                        None | Some(Value::Null) => return,
                        Some(Value::String(s)) => s.as_str(),
                        Some(other) => {
                            errors.push(
                                self,
                                || join(at(), value_from.as_ref()),
                                EvalErrorKind::NotAState(describe(other)),
                            );
                            return;
                        }
                    };
                    for entry in list {
                        let mut set = base.clone();
                        set.set(Cow::Borrowed(label_name), Cow::Borrowed(entry));
                        set.apply(labels, element);
                        if seen.first_time(&set) {
                            self.write(&set, f64::from(u8::from(**entry == *state)), out);
                        } else {
                            errors.push(self, at, EvalErrorKind::Duplicate);
                        }
                    }
                };
                match path.get(object) {
                    None => {}
                    Some(Value::Array(items)) => {
                        for (i, item) in items.iter().enumerate() {
                            one(item, &|| format!("{path}[{i}]"));
                        }
                    }
                    Some(other) => one(other, &|| path.to_string()),
                }
            }
            Body::Info {
                path,
                label_from_key,
                labels,
            } => {
                let mut one = |element: &Value, key: Option<&str>, at: &dyn Fn() -> String| {
                    let mut set = base.clone();
                    if let (Some(name), Some(k)) = (label_from_key, key) {
                        set.set(Cow::Borrowed(name), Cow::Borrowed(k));
                    }
                    set.apply(labels, element);
                    if seen.first_time(&set) {
                        self.write(&set, 1.0, out);
                    } else {
                        errors.push(self, at, EvalErrorKind::Duplicate);
                    }
                };
                match path.get(object) {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => {
                        for (i, item) in items.iter().enumerate() {
                            one(item, None, &|| format!("{path}[{i}]"));
                        }
                    }
                    Some(Value::Object(map)) if label_from_key.is_some() => {
                        for (k, item) in map {
                            one(item, Some(k), &|| format!("{path}[{k}]"));
                        }
                    }
                    Some(other) => one(other, None, &|| path.to_string()),
                }
            }
        }
    }
}

fn single_key(path: &Path) -> Option<&str> {
    match path.segments() {
        [tapmon_selector::Segment::Key { name, .. }] => Some(name),
        _ => None,
    }
}

fn join(at: String, value_from: Option<&Path>) -> String {
    match value_from {
        Some(v) if !v.is_root() => format!("{at} + {v}"),
        _ => at,
    }
}
