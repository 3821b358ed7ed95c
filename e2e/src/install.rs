//! Installing tapmon as users do: the Helm chart (`charts/tapmon`) rendered by helm, `deploy/`
//! rendered by the control plane's own kustomize, and `deploy/` generated from the chart so the
//! two cannot drift. helm and crane are built from `e2e/tools` (`cluster.sh build-tools`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::Value;

use crate::fixtures::root;
use crate::kube::api_for;

/// The release name and namespace `deploy/` corresponds to.
pub const RELEASE: &str = "tapmon";
/// The namespace `deploy/` installs into.
pub const NAMESPACE: &str = "tapmon-system";

/// The chart's templates `deploy/` does not take: the admission policy comes from `crds/`.
const NOT_IN_DEPLOY: &[&str] = &["admission-policy.yaml"];

/// Label lines that only Helm's bookkeeping needs.
const HELM_ONLY_LABELS: &[&str] = &[
    "helm.sh/chart:",
    "app.kubernetes.io/instance:",
    "app.kubernetes.io/version:",
    "app.kubernetes.io/managed-by:",
];

fn run(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The directory holding crane and helm, built first when needed.
pub fn tools_dir() -> anyhow::Result<PathBuf> {
    crate::cluster::built("build-tools")
}

/// Runs helm with `args`, against `kubeconfig` when given; its stdout, or its stderr as the
/// error. Helm's caches and settings stay under `target/`.
pub fn helm(args: &[&str], kubeconfig: Option<&Path>) -> anyhow::Result<String> {
    let home = root().join("target/e2e/helm-home");
    let mut command = Command::new(tools_dir()?.join("helm"));
    command
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    match kubeconfig {
        Some(k) => command.env("KUBECONFIG", k),
        // Rendering only: no cluster is asked.
        None => command.env("KUBECONFIG", "/dev/null"),
    };
    run(&mut command, &format!("helm {}", args.join(" ")))
}

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    root().join("charts/tapmon")
}

/// `helm template` of the chart as release `tapmon` in `tapmon-system`, with more `args`
/// (`--set ...`, `-f ...`, `--include-crds`).
pub fn render_chart(args: &[&str]) -> anyhow::Result<String> {
    let chart = chart_dir();
    let mut all = vec![
        "template",
        RELEASE,
        chart.to_str().context("chart path")?,
        "--namespace",
        NAMESPACE,
    ];
    all.extend_from_slice(args);
    helm(&all, None)
}

/// `kubectl kustomize dir`, by the control plane's kubectl (the kustomize users have).
pub fn kustomize(dir: &Path) -> anyhow::Result<String> {
    let bin = crate::cluster::built("build")?;
    run(
        Command::new(bin).args(["kubectl", "kustomize"]).arg(dir),
        &format!("kubectl kustomize {}", dir.display()),
    )
}

/// The documents of a multi-document YAML text, empty ones left out.
pub fn objects(yaml: &str) -> anyhow::Result<Vec<Value>> {
    let docs: Vec<Value> = tapmon_crs::yaml::from_multiple(yaml)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The templates of `deploy/monitoring/`: tapmon's own ServiceMonitor and alerts, for clusters
/// with the Prometheus Operator (`kubectl apply -k deploy/monitoring/`).
pub const SELF_MONITORING: &[&str] = &["servicemonitor.yaml", "selfrules.yaml"];

/// `deploy/` as the chart renders it with its default values, file by file (`monitoring/...`
/// with `selfMonitor.enabled=true`): each template's output, without Helm's bookkeeping labels
/// and without namespaces (kustomize sets them, and fills a ServiceAccount subject's from the
/// ServiceAccount, so an overlay's namespace reaches the bindings too).
pub fn deploy_from_chart() -> anyhow::Result<BTreeMap<String, String>> {
    let mut files: BTreeMap<String, String> = chart_files(&[], "the chart's default values")?
        .into_iter()
        .filter(|(file, _)| !NOT_IN_DEPLOY.contains(&file.as_str()))
        .collect();
    let monitoring = chart_files(
        &["--set", "selfMonitor.enabled=true"],
        "`selfMonitor.enabled=true`",
    )?;
    files.extend(
        monitoring
            .into_iter()
            .filter(|(file, _)| SELF_MONITORING.contains(&file.as_str()))
            .map(|(file, text)| (format!("monitoring/{file}"), text)),
    );
    Ok(files)
}

/// The chart rendered with `args`, one text per template that renders anything.
fn chart_files(args: &[&str], values: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let rendered = render_chart(args)?;
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    let mut finish = |doc: Option<(String, Vec<&str>)>| {
        if let Some((file, lines)) = doc {
            let text = lines.join("\n").trim().to_owned();
            if !text.is_empty() {
                files.entry(file).or_default().push(text);
            }
        }
    };
    let namespace_line = format!("namespace: {NAMESPACE}");
    for line in rendered.lines() {
        if let Some(source) = line.strip_prefix("# Source: tapmon/templates/") {
            finish(current.take());
            current = Some((source.to_owned(), Vec::new()));
            continue;
        }
        if line == "---" {
            continue;
        }
        let trimmed = line.trim();
        if HELM_ONLY_LABELS.iter().any(|l| trimmed.starts_with(l)) || trimmed == namespace_line {
            continue;
        }
        if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    finish(current.take());
    Ok(files
        .into_iter()
        .map(|(file, docs)| {
            let text = format!(
                "# Generated from charts/tapmon/templates/{file} with {values} \
                 (`make generate`):\n# change the chart, not this file.\n{}\n",
                docs.join("\n---\n")
            );
            (file, text)
        })
        .collect())
}

/// Applies every object of `yaml` by server-side apply as cluster-admin, with strict field
/// validation (an unknown or duplicate field is an error, not a warning) and, with `dry_run`,
/// without persisting anything but namespaces (the objects in them need them): the API server
/// checks each object against the schemas it serves, CRDs' included, and runs admission.
pub async fn apply_strictly(client: &Client, yaml: &str, dry_run: bool) -> anyhow::Result<usize> {
    let mut objects = objects(yaml)?;
    objects.sort_by_key(|o| o["kind"] != "Namespace");
    for obj in &objects {
        let mut params = PatchParams::apply("tapmon-e2e").force().validation_strict();
        params.dry_run = dry_run && obj["kind"] != "Namespace";
        let api = api_for(client, obj, Some(NAMESPACE)).await?;
        let name = obj["metadata"]["name"].as_str().context("name")?;
        api.patch(name, &params, &Patch::Apply(obj))
            .await
            .with_context(|| format!("{} {name}", obj["kind"]))?;
    }
    Ok(objects.len())
}
