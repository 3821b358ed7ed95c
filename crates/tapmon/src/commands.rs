//! The offline commands: render, presets, check.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;
use tapmon_crs::model::{CustomResourceStateMetrics, Spec};
use tapmon_crs::{Compiled, EvalErrors};
use tapmon_exposition::{Format, ObjectKey, ObjectRenderer, Store};
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
        errors
            .iter()
            .map(|e| format!("config: {}", config.describe(e))),
    );
    let objects = load::objects(objects, warnings)?;

    let mut store = Store::new(Arc::clone(compiled.families()));
    let mut renderer = ObjectRenderer::new(compiled.families());
    let mut eval_errors = EvalErrors::default();
    for object in &objects {
        let meta = object.value.get("metadata");
        let field = |f: &str| {
            meta.and_then(|m| m.get(f))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let (namespace, name) = (field("namespace"), field("name"));
        eval_errors.clear();
        compiled.render(
            &object.value,
            &mut renderer,
            &mut eval_errors,
            |resource, rendered| {
                store.upsert(ObjectKey::new(resource, namespace, name), rendered);
            },
        );
        let kind = object
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("");
        for e in eval_errors.kept() {
            warnings.push(format!("{} {kind} {namespace}/{name}: {e}", object.source));
        }
        if eval_errors.total() > eval_errors.kept().len() {
            warnings.push(format!(
                "{} {kind} {namespace}/{name}: {} more errors",
                object.source,
                eval_errors.total() - eval_errors.kept().len()
            ));
        }
    }
    let mut buf = Vec::new();
    store.encode(format, &mut buf);
    out.write_all(&buf)?;
    Ok(())
}

/// Prints presets as one kube-state-metrics config. `versions` replaces the `*` version of a
/// group (kube-state-metrics reads every served version of a `*` kind, so a kind served at two
/// versions would be counted twice).
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
    let mut spec: Spec = tapmon_presets::spec_for(groups)?;
    for resource in &mut spec.resources {
        if let Some(v) = versions.get(&resource.group_version_kind.group) {
            resource.group_version_kind.version = v.clone();
        }
    }
    let cfg = CustomResourceStateMetrics {
        kind: Some("CustomResourceStateMetrics".into()),
        spec,
    };
    let yaml = serde_saphyr::to_string(&cfg).context("writing the presets as YAML")?;
    writeln!(
        out,
        "# tapmon built-in presets, in kube-state-metrics' CustomResourceStateMetrics format."
    )?;
    out.write_all(yaml.as_bytes())?;
    Ok(())
}

/// Validates a config; returns the problems, each naming resource, metric and path.
pub fn check(path: &Path, out: &mut impl Write) -> anyhow::Result<Vec<String>> {
    let config = load::config(path)?;
    let (compiled, errors) = Compiled::compile(&config.spec);
    let problems: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", path.display(), config.describe(e)))
        .collect();
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
    Ok(problems)
}
