//! Turning a config into something cheap to evaluate, once.
//!
//! A bad metric is reported with its location and left out; every other metric of the config
//! still compiles. (kube-state-metrics serves nothing at all when any metric fails to compile.)

mod error;
mod parts;
mod transition;

use std::sync::Arc;

use tapmon_exposition::{FamilyDesc, FamilyId, FamilySet, MetricType};
use tapmon_selector::Path;

pub use error::{ConfigError, ConfigErrorKind, Location, Placed};
use parts::{compile_body, compile_common, compile_labels};
use transition::compile_live;
pub use transition::{CompiledLive, LiveKind};

use crate::labels::LabelSpec;
use crate::model::{GroupVersionKind, MetricKind, Resource, Spec};

/// The prefix kube-state-metrics puts before metric names when `metricNamePrefix` is absent.
pub const DEFAULT_PREFIX: &str = "kube_customresource";

/// The body of a compiled metric.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Gauge {
        path: Path,
        value_from: Option<Path>,
        label_from_key: Option<Box<str>>,
        labels: Vec<LabelSpec>,
        nil_is_zero: bool,
        ignore_keys: Vec<Box<str>>,
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
    Duration {
        path: Path,
        start: Path,
        end: Path,
        when: Option<(Path, Vec<Box<str>>)>,
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
    /// Counters and histograms, followed live and summed over objects.
    pub(crate) live: Vec<CompiledLive>,
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

    /// The counters and histograms this resource feeds.
    pub fn live(&self) -> &[CompiledLive] {
        &self.live
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
            let mut live = Vec::new();
            let mut desc_indexes = Vec::new();
            for (m, generator) in resource.metrics.iter().enumerate() {
                let name = full_name(resource, &generator.name);
                if matches!(
                    generator.each.kind,
                    MetricKind::Counter | MetricKind::Histogram | MetricKind::Aggregate
                ) {
                    let compiled = compile_live(generator, &name, &mut |kind, field| {
                        errors.push(ConfigError {
                            location: at(Some(&name), &format!("metrics[{m}].{field}")),
                            kind,
                        })
                    });
                    live.extend(compiled);
                    continue;
                }
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
                        MetricKind::Gauge | MetricKind::Duration => MetricType::Gauge,
                        MetricKind::Info => MetricType::Info,
                        MetricKind::StateSet => MetricType::StateSet,
                        // Compiled apart above.
                        MetricKind::Counter | MetricKind::Histogram | MetricKind::Aggregate => {
                            continue;
                        }
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
                    live,
                },
                desc_indexes,
            ));
        }

        let (families, ids) = merge_families(&descs, &pending, &mut errors);
        drop_clashing_live(&families, &mut pending, &mut errors);
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

/// Drops each live metric whose series would carry the name of another family's, or that
/// shares its name with a live metric of another type or other buckets; reports it.
fn drop_clashing_live(
    families: &FamilySet,
    pending: &mut [(CompiledResource, Vec<usize>)],
    errors: &mut Vec<ConfigError>,
) {
    let mut kept: Vec<CompiledLive> = Vec::new();
    for (index, (resource, _)) in pending.iter_mut().enumerate() {
        let gvk = resource.gvk.to_string();
        resource.live.retain(|live| {
            let taken = live
                .series_names()
                .into_iter()
                .find(|n| families.iter().any(|(_, d)| d.name == *n));
            let other = kept
                .iter()
                .find(|k| k.name == live.name && !k.same_family(live));
            let why = match (taken, other) {
                (Some(name), _) => format!("the name {name} is another family's"),
                (None, Some(_)) => "declared elsewhere with another type or buckets".to_owned(),
                (None, None) => {
                    kept.push(live.clone());
                    return true;
                }
            };
            errors.push(ConfigError {
                location: Location {
                    resource: index,
                    gvk: gvk.clone(),
                    metric: Some(live.name.to_string()),
                    field: "each.type".into(),
                },
                kind: ConfigErrorKind::Family(why),
            });
            false
        });
    }
}

/// The full name of metric `name` of `resource`: its prefix, `_`, the name.
pub fn full_name(resource: &Resource, name: &str) -> String {
    match resource.metric_name_prefix.as_deref() {
        None => format!("{DEFAULT_PREFIX}_{name}"),
        Some("") => name.to_owned(),
        Some(prefix) => format!("{prefix}_{name}"),
    }
}
