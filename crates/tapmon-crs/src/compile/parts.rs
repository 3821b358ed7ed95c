//! Compiling the parts of a metric: paths, label maps and the body of each metric type.

use tapmon_exposition::sanitize_label_name;
use tapmon_selector::{Path, PathError};

use super::{Body, ConfigErrorKind};
use crate::labels::{LabelSource, LabelSpec};
use crate::model::{MetricKind, OrderedMap, PathSpec};

pub(super) type Report<'r> = &'r mut dyn FnMut(ConfigErrorKind, String);

pub(super) fn compile_path(spec: &PathSpec) -> Result<Path, PathError> {
    match spec {
        PathSpec::Segments(parts) => Path::from_segments(parts),
        PathSpec::JsonPath(expr) => Path::from_jsonpath(expr),
    }
}

pub(super) fn check_collision(
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

pub(super) fn compile_common(map: &OrderedMap<String>, report: Report<'_>) -> Vec<LabelSpec> {
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

pub(super) fn compile_labels(map: &OrderedMap<PathSpec>, report: Report<'_>) -> Vec<LabelSpec> {
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

pub(super) fn compile_body(
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
                    ignore_keys: g.ignore_keys.iter().map(|k| k.as_str().into()).collect(),
                },
                None,
            ))
        }
        MetricKind::Duration => {
            let d = each.duration.as_ref().ok_or((
                ConfigErrorKind::MissingSection("Duration"),
                ".duration".to_owned(),
            ))?;
            let when = match &d.when {
                None => None,
                Some(w) if w.states.is_empty() => {
                    return Err((
                        ConfigErrorKind::StateList("when.in needs at least one state".into()),
                        ".duration.when.in".to_owned(),
                    ));
                }
                Some(w) => Some((
                    path_at(&w.path, ".duration.when.path")?,
                    w.states.iter().map(|v| v.as_str().into()).collect(),
                )),
            };
            Ok((
                Body::Duration {
                    path: path_at(&d.path, ".duration.path")?,
                    start: path_at(&d.start, ".duration.start")?,
                    end: path_at(&d.end, ".duration.end")?,
                    when,
                    labels: labels_at(&d.labels_from_path, ".duration.labelsFromPath")?,
                },
                None,
            ))
        }
        // Live metrics are compiled apart (`transition::compile_live`), never per object.
        MetricKind::Counter | MetricKind::Histogram | MetricKind::Aggregate => Err((
            ConfigErrorKind::Live("not a per-object metric".into()),
            String::new(),
        )),
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
