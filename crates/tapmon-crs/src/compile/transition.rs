//! Compiling the metrics kept across objects: Counter and Histogram (what state to follow,
//! which changes count) and Aggregate (what to count or add up), and the labels they are
//! summed by.

use std::sync::Arc;

use tapmon_selector::Path;

use super::ConfigErrorKind;
use super::parts::{Report, compile_common, compile_labels, compile_path};
use crate::labels::LabelSpec;
use crate::model::{AggregateFunction, Generator, MetricKind};

/// An aggregate follows no state.
static NO_STATES: Vec<String> = Vec::new();

/// What a live metric records at a counted change.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveKind {
    /// One more.
    Counter,
    /// How many objects have each label set (a gauge, exact).
    Count,
    /// The sum of `value` over the objects with each label set (a gauge, exact).
    Sum {
        /// The number, relative to the object.
        value: Path,
    },
    /// The seconds from `start` to `end`, into `buckets` (upper bounds, increasing).
    Histogram {
        /// The start timestamp, relative to the object.
        start: Path,
        /// The end timestamp, relative to the object.
        end: Path,
        /// Upper bounds, without `+Inf`.
        buckets: Vec<f64>,
    },
}

/// A Counter or Histogram, ready to follow objects.
#[derive(Debug, Clone)]
pub struct CompiledLive {
    pub(crate) name: Arc<str>,
    pub(crate) help: Arc<str>,
    pub(crate) kind: LiveKind,
    pub(crate) state: Path,
    pub(crate) to: Vec<Box<str>>,
    /// The metric's own labels, relative to the object.
    pub(crate) labels: Vec<LabelSpec>,
}

impl CompiledLive {
    /// The family's full name (a counter's ends in `_total`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it records.
    pub fn kind(&self) -> &LiveKind {
        &self.kind
    }

    /// Whether this family and `other` can share a name: same type and buckets.
    pub(crate) fn same_family(&self, other: &CompiledLive) -> bool {
        match (&self.kind, &other.kind) {
            (LiveKind::Counter, LiveKind::Counter) => true,
            (LiveKind::Histogram { buckets: a, .. }, LiveKind::Histogram { buckets: b, .. }) => {
                a == b
            }
            (LiveKind::Count, LiveKind::Count) | (LiveKind::Sum { .. }, LiveKind::Sum { .. }) => {
                true
            }
            _ => false,
        }
    }

    /// The names the family and its series take in either format, to tell clashes with other
    /// families (OpenMetrics names a counter's family without `_total`).
    pub(crate) fn series_names(&self) -> Vec<String> {
        match &self.kind {
            LiveKind::Counter => {
                let base = self.name.strip_suffix("_total").unwrap_or(&self.name);
                vec![
                    self.name.to_string(),
                    base.to_owned(),
                    format!("{base}_created"),
                ]
            }
            LiveKind::Count | LiveKind::Sum { .. } => vec![self.name.to_string()],
            LiveKind::Histogram { .. } => ["_bucket", "_sum", "_count", "_created", ""]
                .iter()
                .map(|s| format!("{}{s}", self.name))
                .collect(),
        }
    }
}

/// The most buckets a histogram may have: each of its series writes one line per bucket.
const MAX_BUCKETS: usize = 64;

/// Suffixes a histogram's own name may not end with: its series would be read as another's.
const RESERVED: [&str; 5] = ["_total", "_bucket", "_sum", "_count", "_created"];

/// Compiles the Counter or Histogram `generator`, named `name` in full.
pub(super) fn compile_live(
    generator: &Generator,
    name: &str,
    report: Report<'_>,
) -> Option<CompiledLive> {
    fn fail<T>(report: Report<'_>, kind: ConfigErrorKind, field: &str) -> Option<T> {
        report(kind, field.to_owned());
        None
    }
    fn path(report: Report<'_>, spec: &crate::model::PathSpec, field: &str) -> Option<Path> {
        match compile_path(spec) {
            Ok(p) => Some(p),
            Err(e) => fail(report, e.into(), field),
        }
    }
    let each = &generator.each;
    let (state, to, kind) = match each.kind {
        MetricKind::Counter => {
            let Some(c) = &each.counter else {
                return fail(
                    report,
                    ConfigErrorKind::MissingSection("Counter"),
                    "each.counter",
                );
            };
            if !name.ends_with("_total") {
                return fail(
                    report,
                    ConfigErrorKind::Live(format!("a counter's name ends in _total: {name:?}")),
                    "name",
                );
            }
            (
                path(report, &c.state, "each.counter.state")?,
                &c.to,
                LiveKind::Counter,
            )
        }
        MetricKind::Histogram => {
            let Some(h) = &each.histogram else {
                return fail(
                    report,
                    ConfigErrorKind::MissingSection("Histogram"),
                    "each.histogram",
                );
            };
            if let Some(suffix) = RESERVED.iter().find(|s| name.ends_with(*s)) {
                return fail(
                    report,
                    ConfigErrorKind::Live(format!(
                        "a histogram's name cannot end in {suffix}: {name:?}"
                    )),
                    "name",
                );
            }
            let increasing = h.buckets.windows(2).all(|w| w[0] < w[1]);
            let bounded = (1..=MAX_BUCKETS).contains(&h.buckets.len());
            if !bounded || !increasing || h.buckets.iter().any(|b| !b.is_finite()) {
                return fail(
                    report,
                    ConfigErrorKind::Live(format!(
                        "buckets are 1 to {MAX_BUCKETS} finite upper bounds, increasing"
                    )),
                    "each.histogram.buckets",
                );
            }
            (
                path(report, &h.state, "each.histogram.state")?,
                &h.to,
                LiveKind::Histogram {
                    start: path(report, &h.start, "each.histogram.start")?,
                    end: path(report, &h.end, "each.histogram.end")?,
                    buckets: h.buckets.clone(),
                },
            )
        }
        MetricKind::Aggregate => {
            let Some(a) = &each.aggregate else {
                return fail(
                    report,
                    ConfigErrorKind::MissingSection("Aggregate"),
                    "each.aggregate",
                );
            };
            let kind = match (a.function, &a.value) {
                (AggregateFunction::Count, None) => LiveKind::Count,
                (AggregateFunction::Sum, Some(value)) => LiveKind::Sum {
                    value: path(report, value, "each.aggregate.value")?,
                },
                (AggregateFunction::Count, Some(_)) => {
                    return fail(
                        report,
                        ConfigErrorKind::Live("count counts objects: it takes no value".into()),
                        "each.aggregate.value",
                    );
                }
                (AggregateFunction::Sum, None) => {
                    return fail(
                        report,
                        ConfigErrorKind::Live("sum needs the value to add up".into()),
                        "each.aggregate.value",
                    );
                }
            };
            (Path::root(), &NO_STATES, kind)
        }
        _ => return None,
    };
    let mut failed = false;
    let mut labels = compile_common(&generator.common_labels, &mut |k, f| {
        failed = true;
        report(k, format!("commonLabels{f}"));
    });
    labels.extend(compile_labels(&generator.labels_from_path, &mut |k, f| {
        failed = true;
        report(k, format!("labelsFromPath{f}"));
    }));
    if failed {
        return None;
    }
    Some(CompiledLive {
        name: name.into(),
        help: generator.help.as_str().into(),
        kind,
        state,
        to: to.iter().map(|s| s.as_str().into()).collect(),
        labels,
    })
}
