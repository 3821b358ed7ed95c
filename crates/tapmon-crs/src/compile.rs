//! Turning a config into something cheap to evaluate, once.
//!
//! A bad metric is reported with its location and left out; every other metric of the config
//! still compiles. (kube-state-metrics serves nothing at all when any metric fails to compile.)

use std::fmt;
use std::sync::Arc;

use tapmon_exposition::{FamilyDesc, FamilyId, FamilySet, MetricType, sanitize_label_name};
use tapmon_selector::{Path, PathError};

use crate::labels::{LabelSource, LabelSpec};
use crate::model::{GroupVersionKind, MetricKind, OrderedMap, PathSpec, Resource, Spec};

/// The prefix kube-state-metrics puts before metric names when `metricNamePrefix` is absent.
pub const DEFAULT_PREFIX: &str = "kube_customresource";

/// Where in a config something is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Index in `spec.resources`.
    pub resource: usize,
    /// The resource's group/version/kind as written.
    pub gvk: String,
    /// The metric's full name, when the problem is inside a metric.
    pub metric: Option<String>,
    /// The field, e.g. `each.gauge.labelsFromPath.status`.
    pub field: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "resources[{}] ({})", self.resource, self.gvk)?;
        if let Some(metric) = &self.metric {
            write!(f, " metric {metric}")?;
        }
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        Ok(())
    }
}

/// What is wrong at a [`Location`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// A path that does not compile.
    #[error(transparent)]
    Path(#[from] PathError),
    /// `each.type` names a section that is absent.
    #[error("type {0} needs its settings section")]
    MissingSection(&'static str),
    /// The full metric name is not a valid Prometheus name.
    #[error("{0:?} is not a valid metric name")]
    InvalidMetricName(String),
    /// Two declarations of one family disagree.
    #[error("{0}")]
    Family(String),
    /// Two labels of one map end up with the same name.
    #[error("labels {first:?} and {second:?} both become {sanitized:?}")]
    LabelCollision {
        /// First label as written.
        first: String,
        /// Second label as written.
        second: String,
        /// The name both sanitise to.
        sanitized: String,
    },
    /// A StateSet without states or with a state twice.
    #[error("{0}")]
    StateList(String),
    /// The group is required (an empty or `*` group cannot be resolved).
    #[error("group is required")]
    MissingGroup,
}

/// A config problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {kind}")]
pub struct ConfigError {
    /// Where.
    pub location: Location,
    /// What.
    pub kind: ConfigErrorKind,
}

/// The body of a compiled metric.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Gauge {
        path: Path,
        value_from: Option<Path>,
        label_from_key: Option<Box<str>>,
        labels: Vec<LabelSpec>,
        nil_is_zero: bool,
    },
    StateSet {
        path: Path,
        value_from: Option<Path>,
        label_name: Box<str>,
        list: Vec<Box<str>>,
        labels: Vec<LabelSpec>,
    },
    Info {
        path: Path,
        label_from_key: Option<Box<str>>,
        labels: Vec<LabelSpec>,
    },
}

/// One metric, ready to evaluate.
#[derive(Debug, Clone)]
pub(crate) struct CompiledMetric {
    pub(crate) name: Arc<str>,
    pub(crate) family: FamilyId,
    /// Metric-level labels: commonLabels then labelsFromPath, relative to the object.
    pub(crate) common: Vec<LabelSpec>,
    pub(crate) from_path: Vec<LabelSpec>,
    pub(crate) body: Body,
}

/// One resource of the config, ready to evaluate against objects of its kind.
#[derive(Debug, Clone)]
pub struct CompiledResource {
    pub(crate) gvk: GroupVersionKind,
    pub(crate) common: Vec<LabelSpec>,
    pub(crate) from_path: Vec<LabelSpec>,
    pub(crate) metrics: Vec<CompiledMetric>,
}

impl CompiledResource {
    /// The group/version/kind as configured (`*` for any version or kind).
    pub fn gvk(&self) -> &GroupVersionKind {
        &self.gvk
    }

    /// True when this resource reads objects of `group`/`version`/`kind`.
    pub fn matches(&self, group: &str, version: &str, kind: &str) -> bool {
        let any = |p: &str| p.is_empty() || p == "*";
        self.gvk.group == group
            && (any(&self.gvk.version) || self.gvk.version == version)
            && (any(&self.gvk.kind) || self.gvk.kind == kind)
    }

    /// Full names of the metrics this resource produces.
    pub fn metric_names(&self) -> impl Iterator<Item = &str> {
        self.metrics.iter().map(|m| &*m.name)
    }
}

/// A compiled config: the families it can produce and its resources.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub(crate) families: Arc<FamilySet>,
    pub(crate) resources: Vec<CompiledResource>,
}

impl Compiled {
    /// Compiles every resource and metric it can; the errors say what was left out and where.
    pub fn compile(spec: &Spec) -> (Compiled, Vec<ConfigError>) {
        let mut errors = Vec::new();
        let mut descs: Vec<FamilyDesc> = Vec::new();
        let mut pending: Vec<(CompiledResource, Vec<usize>)> = Vec::new();

        for (index, resource) in spec.resources.iter().enumerate() {
            let at = |metric: Option<&str>, field: &str| Location {
                resource: index,
                gvk: resource.group_version_kind.to_string(),
                metric: metric.map(str::to_owned),
                field: field.to_owned(),
            };
            let gvk = &resource.group_version_kind;
            if gvk.group.is_empty() || gvk.group == "*" {
                errors.push(ConfigError {
                    location: at(None, "groupVersionKind.group"),
                    kind: ConfigErrorKind::MissingGroup,
                });
                continue;
            }
            let common = compile_common(&resource.common_labels, &mut |kind, field| {
                errors.push(ConfigError {
                    location: at(None, &format!("commonLabels{field}")),
                    kind,
                })
            });
            let from_path = compile_labels(&resource.labels_from_path, &mut |kind, field| {
                errors.push(ConfigError {
                    location: at(None, &format!("labelsFromPath{field}")),
                    kind,
                })
            });
            let mut metrics = Vec::new();
            let mut desc_indexes = Vec::new();
            for (m, generator) in resource.metrics.iter().enumerate() {
                let name = full_name(resource, &generator.name);
                let mut failed = false;
                let mut report = |kind: ConfigErrorKind, field: String| {
                    failed = true;
                    errors.push(ConfigError {
                        location: at(Some(&name), &field),
                        kind,
                    });
                };
                if !tapmon_exposition::is_valid_metric_name(&name) {
                    report(
                        ConfigErrorKind::InvalidMetricName(name.clone()),
                        format!("metrics[{m}].name"),
                    );
                    continue;
                }
                let common = compile_common(&generator.common_labels, &mut |k, f| {
                    report(k, format!("metrics[{m}].commonLabels{f}"))
                });
                let from_path = compile_labels(&generator.labels_from_path, &mut |k, f| {
                    report(k, format!("metrics[{m}].labelsFromPath{f}"))
                });
                let (body, state_label) = match compile_body(generator.each.kind, &generator.each) {
                    Ok(b) => b,
                    Err((kind, field)) => {
                        report(kind, format!("metrics[{m}].each{field}"));
                        continue;
                    }
                };
                if failed {
                    continue;
                }
                desc_indexes.push(descs.len());
                descs.push(FamilyDesc {
                    name: name.clone(),
                    help: generator.help.clone(),
                    kind: match generator.each.kind {
                        MetricKind::Gauge => MetricType::Gauge,
                        MetricKind::Info => MetricType::Info,
                        MetricKind::StateSet => MetricType::StateSet,
                    },
                    state_label,
                });
                metrics.push(CompiledMetric {
                    name: name.into(),
                    family: FamilyId::default(),
                    common,
                    from_path,
                    body,
                });
            }
            pending.push((
                CompiledResource {
                    gvk: gvk.clone(),
                    common,
                    from_path,
                    metrics,
                },
                desc_indexes,
            ));
        }

        let (families, ids) = merge_families(&descs, &pending, &mut errors);
        let resources = pending
            .into_iter()
            .map(|(mut resource, indexes)| {
                let mut kept = Vec::new();
                for (mut metric, i) in resource.metrics.into_iter().zip(indexes) {
                    if let Some(id) = ids[i] {
                        metric.family = id;
                        kept.push(metric);
                    }
                }
                resource.metrics = kept;
                resource
            })
            .collect();
        (
            Compiled {
                families: Arc::new(families),
                resources,
            },
            errors,
        )
    }

    /// Every family the config can produce.
    pub fn families(&self) -> &Arc<FamilySet> {
        &self.families
    }

    /// The compiled resources, in config order; their index is the `resource` of an object key.
    pub fn resources(&self) -> &[CompiledResource] {
        &self.resources
    }

    /// The resources that read objects of `group`/`version`/`kind`, with their indexes.
    pub fn resources_for<'s>(
        &'s self,
        group: &'s str,
        version: &'s str,
        kind: &'s str,
    ) -> impl Iterator<Item = (u32, &'s CompiledResource)> + 's {
        self.resources
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.matches(group, version, kind))
            .map(|(i, r)| (i as u32, r))
    }
}

/// Builds the family set; a declaration that conflicts with an earlier one of the same name is
/// reported and its metric dropped, the rest stay.
fn merge_families(
    descs: &[FamilyDesc],
    pending: &[(CompiledResource, Vec<usize>)],
    errors: &mut Vec<ConfigError>,
) -> (FamilySet, Vec<Option<FamilyId>>) {
    let mut accepted: Vec<Option<&FamilyDesc>> = Vec::with_capacity(descs.len());
    for desc in descs {
        let clash = accepted
            .iter()
            .flatten()
            .find(|d| d.name == desc.name && d.kind != desc.kind);
        match clash {
            Some(first) => {
                let (resource, gvk) = pending
                    .iter()
                    .enumerate()
                    .find(|(_, (r, _))| r.metrics.iter().any(|m| *m.name == desc.name))
                    .map(|(i, (r, _))| (i, r.gvk.to_string()))
                    .unwrap_or_default();
                errors.push(ConfigError {
                    location: Location {
                        resource,
                        gvk,
                        metric: Some(desc.name.clone()),
                        field: "each.type".into(),
                    },
                    kind: ConfigErrorKind::Family(format!(
                        "declared as {} here and as {} elsewhere",
                        desc.kind.as_str(),
                        first.kind.as_str()
                    )),
                });
                accepted.push(None);
            }
            None => accepted.push(Some(desc)),
        }
    }
    let kept: Vec<FamilyDesc> = accepted.iter().flatten().map(|d| (*d).clone()).collect();
    // Names were validated and conflicts removed above, so this cannot fail; if it ever did,
    // serving nothing is better than serving something wrong.
    let (set, kept_ids) = FamilySet::new(&kept).unwrap_or_default();
    let mut kept_ids = kept_ids.into_iter();
    let ids = accepted
        .iter()
        .map(|d| d.and_then(|_| kept_ids.next()))
        .collect();
    (set, ids)
}

fn full_name(resource: &Resource, name: &str) -> String {
    match resource.metric_name_prefix.as_deref() {
        None => format!("{DEFAULT_PREFIX}_{name}"),
        Some("") => name.to_owned(),
        Some(prefix) => format!("{prefix}_{name}"),
    }
}

type Report<'r> = &'r mut dyn FnMut(ConfigErrorKind, String);

fn compile_path(spec: &PathSpec) -> Result<Path, PathError> {
    match spec {
        PathSpec::Segments(parts) => Path::from_segments(parts),
        PathSpec::JsonPath(expr) => Path::from_jsonpath(expr),
    }
}

fn check_collision(
    seen: &mut Vec<(String, String)>,
    written: &str,
    sanitized: &str,
    report: Report<'_>,
) -> bool {
    if let Some((first, _)) = seen.iter().find(|(_, s)| s == sanitized) {
        report(
            ConfigErrorKind::LabelCollision {
                first: first.clone(),
                second: written.to_owned(),
                sanitized: sanitized.to_owned(),
            },
            format!(".{written}"),
        );
        return false;
    }
    seen.push((written.to_owned(), sanitized.to_owned()));
    true
}

fn compile_common(map: &OrderedMap<String>, report: Report<'_>) -> Vec<LabelSpec> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (name, value) in map.iter() {
        let sanitized = sanitize_label_name(name).into_owned();
        if check_collision(&mut seen, name, &sanitized, report) {
            out.push(LabelSpec {
                name: sanitized.into(),
                source: LabelSource::Fixed(value.as_str().into()),
            });
        }
    }
    out
}

fn compile_labels(map: &OrderedMap<PathSpec>, report: Report<'_>) -> Vec<LabelSpec> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (name, spec) in map.iter() {
        let path = match compile_path(spec) {
            Ok(p) => p,
            Err(e) => {
                report(e.into(), format!(".{name}"));
                continue;
            }
        };
        // `*`, `prefix_*` and `*suffix` expand a map; the part before a trailing `*` prefixes
        // each key, as in kube-state-metrics.
        if let Some(prefix) = name.strip_suffix('*') {
            out.push(LabelSpec {
                name: name.into(),
                source: LabelSource::Expand {
                    prefix: prefix.into(),
                    path,
                },
            });
            continue;
        }
        if name.starts_with('*') {
            out.push(LabelSpec {
                name: name.into(),
                source: LabelSource::Expand {
                    prefix: "".into(),
                    path,
                },
            });
            continue;
        }
        let sanitized = sanitize_label_name(name).into_owned();
        if check_collision(&mut seen, name, &sanitized, report) {
            out.push(LabelSpec {
                name: sanitized.into(),
                source: LabelSource::Path(path),
            });
        }
    }
    out
}

type BodyError = (ConfigErrorKind, String);

fn compile_body(
    kind: MetricKind,
    each: &crate::model::Metric,
) -> Result<(Body, Option<String>), BodyError> {
    let path_at = |spec: &PathSpec, field: &str| {
        compile_path(spec).map_err(|e| (ConfigErrorKind::Path(e), field.to_owned()))
    };
    let optional_path_at =
        |spec: &Option<PathSpec>, field: &str| spec.as_ref().map(|v| path_at(v, field)).transpose();
    let labels_at = |map: &OrderedMap<PathSpec>, field: &str| {
        let mut first: Option<BodyError> = None;
        let labels = compile_labels(map, &mut |k, f| {
            first.get_or_insert((k, format!("{field}{f}")));
        });
        match first {
            Some(e) => Err(e),
            None => Ok(labels),
        }
    };
    let label_name = |name: &Option<String>| {
        name.as_deref()
            .filter(|n| !n.is_empty())
            .map(|n| sanitize_label_name(n).into_owned().into_boxed_str())
    };
    match kind {
        MetricKind::Gauge => {
            let g = each.gauge.as_ref().ok_or((
                ConfigErrorKind::MissingSection("Gauge"),
                ".gauge".to_owned(),
            ))?;
            Ok((
                Body::Gauge {
                    path: path_at(&g.path, ".gauge.path")?,
                    value_from: optional_path_at(&g.value_from, ".gauge.valueFrom")?,
                    label_from_key: label_name(&g.label_from_key),
                    labels: labels_at(&g.labels_from_path, ".gauge.labelsFromPath")?,
                    nil_is_zero: g.nil_is_zero,
                },
                None,
            ))
        }
        MetricKind::Info => {
            let i = each
                .info
                .as_ref()
                .ok_or((ConfigErrorKind::MissingSection("Info"), ".info".to_owned()))?;
            Ok((
                Body::Info {
                    path: path_at(&i.path, ".info.path")?,
                    label_from_key: label_name(&i.label_from_key),
                    labels: labels_at(&i.labels_from_path, ".info.labelsFromPath")?,
                },
                None,
            ))
        }
        MetricKind::StateSet => {
            let s = each.state_set.as_ref().ok_or((
                ConfigErrorKind::MissingSection("StateSet"),
                ".stateSet".to_owned(),
            ))?;
            let name = label_name(&s.label_name).ok_or((
                ConfigErrorKind::StateList("labelName is required".into()),
                ".stateSet.labelName".to_owned(),
            ))?;
            if s.list.is_empty() {
                return Err((
                    ConfigErrorKind::StateList("list needs at least one state".into()),
                    ".stateSet.list".to_owned(),
                ));
            }
            if let Some(dup) = s
                .list
                .iter()
                .enumerate()
                .find(|(i, v)| s.list[..*i].contains(v))
            {
                return Err((
                    ConfigErrorKind::StateList(format!("state {:?} is listed twice", dup.1)),
                    ".stateSet.list".to_owned(),
                ));
            }
            let state_label = name.to_string();
            Ok((
                Body::StateSet {
                    path: path_at(&s.path, ".stateSet.path")?,
                    value_from: optional_path_at(&s.value_from, ".stateSet.valueFrom")?,
                    label_name: name,
                    list: s.list.iter().map(|v| v.as_str().into()).collect(),
                    labels: labels_at(&s.labels_from_path, ".stateSet.labelsFromPath")?,
                },
                Some(state_label),
            ))
        }
    }
}
