//! The offline commands: render, presets, check, migrate.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use tapmon_crs::Compiled;
use tapmon_crs::model::CustomResourceStateMetrics;
use tapmon_exposition::Format;
use tapmon_presets::TapGroup;

use crate::load::{self, LoadedConfig};

/// Prints the exposition for saved objects. Problems go to `warnings`; what can be rendered is.
pub fn render(
    config: Option<&Path>,
    objects: &Path,
    format: Format,
    out: &mut impl Write,
    warnings: &mut Vec<String>,
) -> anyhow::Result<()> {
    let config = match config {
        Some(path) => load::config(path)?,
        None => LoadedConfig::presets()?,
    };
    let (compiled, errors) = Compiled::compile(&config.spec);
    warnings.extend(
        config
            .ignored
            .iter()
            .map(|p| format!("config: {}", unread(p))),
    );
    warnings.extend(
        errors
            .iter()
            .map(|e| format!("config: {}", config.describe(e))),
    );
    let objects = load::objects(objects, warnings)?;
    let rendered = compiled.render_objects(objects.iter().map(|o| &o.value));
    for failed in rendered.errors() {
        let (source, errors) = (&objects[failed.index].source, &failed.errors);
        let object = format!(
            "{source} {} {}/{}",
            failed.kind, failed.namespace, failed.name
        );
        for e in errors.kept() {
            warnings.push(format!("{object}: {e}"));
        }
        if errors.total() > errors.kept().len() {
            warnings.push(format!(
                "{object}: {} more errors",
                errors.total() - errors.kept().len()
            ));
        }
    }
    out.write_all(&rendered.encode(format))?;
    Ok(())
}

/// Prints presets as one kube-state-metrics config, each kind pinned to one version: `versions`
/// (API group to version) first, else the TAP 1.x storage version. kube-state-metrics reads every
/// served version of a `*` kind, so a kind served at two versions would be counted twice.
pub fn presets(
    groups: &[TapGroup],
    versions: &BTreeMap<String, String>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let groups: Vec<TapGroup> = if groups.is_empty() {
        TapGroup::ALL.to_vec()
    } else {
        groups.to_vec()
    };
    let export = tapmon_presets::export_spec(groups, versions)?;
    let cfg = CustomResourceStateMetrics {
        kind: Some("CustomResourceStateMetrics".into()),
        spec: export.spec,
    };
    let yaml = serde_saphyr::to_string(&cfg).context("writing the presets as YAML")?;
    writeln!(
        out,
        "# tapmon built-in presets, in kube-state-metrics' CustomResourceStateMetrics format.\n\
         # Each kind is pinned to one version (kube-state-metrics reads a `*` kind once per served\n\
         # version and would count its objects twice): the TAP 1.x storage version unless\n\
         # --version-of GROUP=VERSION says otherwise. Check what your cluster serves with\n\
         # `kubectl api-resources --api-group=GROUP`. tapmon itself finds versions by discovery."
    )?;
    if !export.left_out.is_empty() {
        writeln!(
            out,
            "# Left out: metrics that use tapmon extensions kube-state-metrics does not have:"
        )?;
        for (metric, extension) in &export.left_out {
            writeln!(out, "#   {metric} ({})", extension.field())?;
        }
    }
    out.write_all(yaml.as_bytes())?;
    Ok(())
}

/// The message for a field the format does not read.
fn unread(path: &str) -> String {
    format!("{path}: not a field of the format; kube-state-metrics and tapmon skip it")
}

/// What `check` found: problems (the config is refused) and warnings (it is used as it is).
#[derive(Debug, Default)]
pub struct Findings {
    /// Each names resource, metric and path.
    pub problems: Vec<String>,
    /// Fields kube-state-metrics and tapmon skip, unless `strict` made them problems.
    pub warnings: Vec<String>,
}

/// Validates a config. Fields the format does not read are warnings, or problems when `strict`.
pub fn check(path: &Path, strict: bool, out: &mut impl Write) -> anyhow::Result<Findings> {
    let config = load::config(path)?;
    let (compiled, errors) = Compiled::compile(&config.spec);
    let mut findings = Findings::default();
    let unread = config
        .ignored
        .iter()
        .map(|p| format!("{}: {}", path.display(), unread(p)));
    if strict {
        findings.problems.extend(unread);
    } else {
        findings.warnings.extend(unread);
    }
    findings.problems.extend(
        errors
            .iter()
            .map(|e| format!("{}: {}", path.display(), config.describe(e))),
    );
    let problems = &findings.problems;
    if problems.is_empty() {
        let metrics: usize = compiled
            .resources()
            .iter()
            .map(|r| r.metric_names().count())
            .sum();
        writeln!(
            out,
            "{}: ok: {} resources, {} metrics, {} families",
            path.display(),
            compiled.resources().len(),
            metrics,
            compiled.families().len()
        )?;
    }
    Ok(findings)
}

/// Prints a TapMonitor (in `namespace`) or a ClusterTapMonitor (without one) named `name` that
/// reads what the kube-state-metrics config (or chart values file) at `path` reads: its
/// resources as they are, fields the format does not read dropped, every preset group off so
/// that nothing is read twice. Returns the dropped fields.
pub fn migrate(
    path: &Path,
    name: &str,
    namespace: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<Vec<String>> {
    let config = load::config(path)?;
    let (_, errors) = Compiled::compile(&config.spec);
    if let Some(e) = errors.first() {
        anyhow::bail!(
            "{}: {} (and {} more); fix the config first (`tapmon check`)",
            path.display(),
            config.describe(e),
            errors.len() - 1
        );
    }
    let api_groups: std::collections::BTreeSet<&str> = config
        .own
        .iter()
        .map(|r| r.group_version_kind.group.as_str())
        .collect();
    let covered: Vec<String> = TapGroup::ALL
        .into_iter()
        .filter(|g| {
            g.resources().is_ok_and(|rs| {
                rs.iter()
                    .any(|r| api_groups.contains(r.group_version_kind.group.as_str()))
            })
        })
        .map(|g| g.to_string())
        .collect();
    let groups: serde_json::Map<String, serde_json::Value> = TapGroup::ALL
        .into_iter()
        .map(|g| (g.to_string(), serde_json::json!({"enabled": false})))
        .collect();
    let mut metadata = serde_json::json!({ "name": name });
    if let Some(ns) = namespace {
        metadata["namespace"] = ns.into();
    }
    let monitor = serde_json::json!({
        "apiVersion": format!("{}/v1alpha1", tapmon_api::GROUP),
        "kind": if namespace.is_some() { tapmon_api::KIND } else { tapmon_api::CLUSTER_KIND },
        "metadata": metadata,
        "spec": { "groups": groups, "resources": config.own },
    });
    // What is printed must be a spec the operator accepts.
    let spec: tapmon_api::TapMonitorSpec = serde_json::from_value(monitor["spec"].clone())
        .context("the migrated spec does not read back")?;
    spec.config()
        .context("the migrated spec does not compile")?;
    writeln!(
        out,
        "# Migrated by `tapmon migrate` from {}: its resources as they are, every built-in\n\
         # group off so nothing is read twice.",
        path.display()
    )?;
    for p in &config.ignored {
        writeln!(
            out,
            "# Dropped {p}: not a field of the format (kube-state-metrics skipped it too)."
        )?;
    }
    if !covered.is_empty() {
        writeln!(
            out,
            "# tapmon's presets cover API groups this config reads; turning on {} (and removing\n\
             # those resources) gives the catalogue's families, rules and dashboards.",
            covered.join(", ")
        )?;
    }
    if namespace.is_none() {
        writeln!(
            out,
            "# A ClusterTapMonitor reads every namespace; give --namespace for a TapMonitor that\n\
             # reads one."
        )?;
    }
    out.write_all(
        serde_saphyr::to_string(&monitor)
            .context("writing the TapMonitor as YAML")?
            .as_bytes(),
    )?;
    Ok(config.ignored)
}

/// Writes the reference of every built-in family: type, help and where each label comes from.
pub fn docs(out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "# Built-in metric families")?;
    writeln!(out)?;
    writeln!(
        out,
        "Generated by `tapmon docs` (`make generate`) from `config/presets/`; CI fails when it is stale.\n\
         Every series also has `customresource_group`, `customresource_version` and `customresource_kind`.\n\
         Labels of an `Info` family's elements and of a condition are read relative to the element.\n\
         A type marked *tapmon extension* uses config kube-state-metrics does not have (README,\n\
         \"tapmon extensions\"); `tapmon presets` leaves those families out of its export.\n\
         Counters and histograms are summed over objects: they have only their own labels, not\n\
         the resource's."
    )?;
    for group in TapGroup::ALL {
        writeln!(out, "\n## {group}")?;
        for resource in group.resources()? {
            let gvk = &resource.group_version_kind;
            let prefix = resource
                .metric_name_prefix
                .as_deref()
                .unwrap_or(tapmon_crs::DEFAULT_PREFIX);
            writeln!(out, "\n### {} (`{}`)\n", gvk.kind, gvk.group)?;
            let common: Vec<String> = resource
                .labels_from_path
                .iter()
                .map(|(name, path)| format!("`{name}` ← `{path}`"))
                .collect();
            writeln!(out, "Labels on every family: {}\n", common.join(", "))?;
            writeln!(out, "| family | type | labels | help |")?;
            writeln!(out, "|---|---|---|---|")?;
            for metric in &resource.metrics {
                let Some((kind, per, labels)) = describe_metric(&metric.each) else {
                    continue;
                };
                let labels: Vec<String> = metric
                    .labels_from_path
                    .iter()
                    .chain(labels.iter())
                    .map(|(name, p)| format!("`{name}` ← `{p}`"))
                    .collect();
                let kind = match metric.each.extension() {
                    Some(e) => format!("{kind} (tapmon extension: `{}`)", e.field()),
                    None => kind.to_owned(),
                };
                writeln!(
                    out,
                    "| `{prefix}_{}` | {kind} | {per}{} | {} |",
                    metric.name,
                    labels.join(", "),
                    metric.help.replace('|', "\\|")
                )?;
            }
        }
    }
    Ok(())
}

/// No labels of the metric's body (a live metric has only the metric's own).
static EMPTY: tapmon_crs::model::OrderedMap<tapmon_crs::model::PathSpec> =
    tapmon_crs::model::OrderedMap(Vec::new());

/// A metric's type, how its series are made (ending in `; ` when said) and its own labels.
fn describe_metric(
    each: &tapmon_crs::model::Metric,
) -> Option<(
    &'static str,
    String,
    &tapmon_crs::model::OrderedMap<tapmon_crs::model::PathSpec>,
)> {
    let per = |path: &tapmon_crs::model::PathSpec| {
        if path.is_empty() {
            String::new()
        } else {
            format!("one series per element of `{path}`; ")
        }
    };
    let live = |state: &tapmon_crs::model::PathSpec, to: &[String]| {
        let to = if to.is_empty() {
            "any value".to_owned()
        } else {
            to.join(" or ")
        };
        format!("summed over objects, live: when `{state}` changes to {to}")
    };
    if let Some(c) = &each.counter {
        return Some(("Counter", format!("{}; ", live(&c.state, &c.to)), &EMPTY));
    }
    if let Some(a) = &each.aggregate {
        let per = match &a.value {
            Some(value) => format!("summed over objects: the sum of `{value}`; "),
            None => "summed over objects: how many; ".to_owned(),
        };
        return Some(("Aggregate", per, &EMPTY));
    }
    if let Some(h) = &each.histogram {
        let per = format!(
            "{}, seconds from `{}` to `{}` into buckets {:?}; ",
            live(&h.state, &h.to),
            h.start,
            h.end,
            h.buckets
        );
        return Some(("Histogram", per, &EMPTY));
    }
    Some(
        match (&each.gauge, &each.info, &each.state_set, &each.duration) {
            (Some(g), ..) => {
                let per = match &g.label_from_key {
                    Some(key) if g.ignore_keys.is_empty() => {
                        format!("one series per key of `{}` (label `{key}`); ", g.path)
                    }
                    Some(key) => format!(
                        "one series per key of `{}` (label `{key}`) but `{}`; ",
                        g.path,
                        g.ignore_keys.join("`, `")
                    ),
                    None => per(&g.path),
                };
                ("Gauge", per, &g.labels_from_path)
            }
            (_, Some(i), ..) => ("Info", per(&i.path), &i.labels_from_path),
            (_, _, Some(s), _) => ("StateSet", per(&s.path), &s.labels_from_path),
            (.., Some(d)) => {
                let when = d
                    .when
                    .as_ref()
                    .map(|w| format!(" while `{}` is {}", w.path, w.states.join(" or ")))
                    .unwrap_or_default();
                let per = format!(
                    "{}seconds from `{}` to `{}`{when}; ",
                    per(&d.path),
                    d.start,
                    d.end
                );
                ("Duration", per, &d.labels_from_path)
            }
            _ => return None,
        },
    )
}

/// Writes the recording and alerting rules of `groups` (all when empty) as a Prometheus rule
/// file; with `monitor`, scoped to that TapMonitor's series.
pub fn rules(
    groups: &[TapGroup],
    monitor: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    struct RuleFile {
        groups: Vec<tapmon_publish::rules::RuleGroup>,
    }
    let groups = if groups.is_empty() {
        TapGroup::ALL.to_vec()
    } else {
        groups.to_vec()
    };
    let file = RuleFile {
        groups: tapmon_publish::rules::rule_groups(&groups, monitor),
    };
    writeln!(
        out,
        "# tapmon recording and alerting rules (runbooks: docs/runbooks/)."
    )?;
    out.write_all(
        serde_saphyr::to_string(&file)
            .context("writing the rules as YAML")?
            .as_bytes(),
    )?;
    Ok(())
}
