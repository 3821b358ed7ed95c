//! Reading configs and saved objects from files.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use tapmon_api::TapMonitorSpec;
use tapmon_crs::ConfigError;
use tapmon_crs::model::{CustomResourceStateMetrics, Spec};
use tapmon_presets::TapGroup;

/// Where a config came from, to name its parts in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// All built-in presets.
    Presets,
    /// A kube-state-metrics `CustomResourceStateMetrics` file, or the values file of a chart that
    /// holds one (`prefix` is where: `customResourceState.config.` for the kube-state-metrics
    /// chart, `kube-state-metrics.customResourceState.config.` for kube-prometheus-stack).
    KubeStateMetrics {
        /// Path of the config inside the file; empty for a config file.
        prefix: &'static str,
    },
    /// A TapMonitor or ClusterTapMonitor manifest: its groups' presets, then its own resources.
    TapMonitor {
        /// `namespace/name` of the manifest.
        name: String,
    },
}

/// A config ready to compile.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// Everything to compile.
    pub spec: Spec,
    /// Index of the first resource the user wrote (presets come before it).
    pub own_from: usize,
    /// Where it came from.
    pub origin: Origin,
    /// Fields the format does not read, as paths in the file: kube-state-metrics skips them,
    /// tapmon warns (or, with `--strict`, refuses).
    pub ignored: Vec<String>,
    /// The user's own resources as written (for `tapmon migrate`), unknown fields dropped.
    pub own: Vec<tapmon_crs::model::Resource>,
}

impl LoadedConfig {
    /// All built-in presets.
    pub fn presets() -> anyhow::Result<Self> {
        Ok(Self {
            spec: tapmon_presets::spec_for(TapGroup::ALL)?,
            own_from: usize::MAX,
            origin: Origin::Presets,
            ignored: Vec::new(),
            own: Vec::new(),
        })
    }

    /// Names a config error by the place the user can fix: a TapMonitor's own resources are
    /// `spec.resources[i]`, preset resources are named as built in.
    pub fn describe(&self, error: &ConfigError) -> String {
        match &self.origin {
            Origin::TapMonitor { name } => {
                format!("TapMonitor {name} {}", error.placed(self.own_from))
            }
            Origin::KubeStateMetrics { prefix } => {
                format!("{prefix}{}", error.placed(self.own_from))
            }
            Origin::Presets => error.placed(self.own_from).to_string(),
        }
    }
}

/// The part of the kube-state-metrics chart's values file that holds the config.
#[derive(Deserialize)]
struct ChartValues {
    #[serde(rename = "customResourceState", default)]
    custom_resource_state: Option<CustomResourceState>,
}

/// The part of kube-prometheus-stack's values file that holds the config.
#[derive(Deserialize)]
struct StackValues {
    #[serde(rename = "kube-state-metrics", default)]
    kube_state_metrics: Option<ChartValues>,
}

#[derive(Deserialize)]
struct CustomResourceState {
    #[serde(default)]
    config: Option<ChartConfig>,
}

/// The chart takes the config as a map, or as YAML text in a string.
enum ChartConfig {
    Text(String),
    Config(CustomResourceStateMetrics),
}

// By hand, not `untagged`: an untagged enum buffers the map first, and the fields the format
// does not read would then go unreported.
impl<'de> Deserialize<'de> for ChartConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = ChartConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a CustomResourceStateMetrics config, as a map or as YAML text")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ChartConfig, E> {
                Ok(ChartConfig::Text(text.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ChartConfig, A::Error> {
                CustomResourceStateMetrics::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )
                .map(ChartConfig::Config)
            }
        }
        deserializer.deserialize_any(Either)
    }
}

impl ChartValues {
    fn config(self) -> Option<ChartConfig> {
        self.custom_resource_state.and_then(|c| c.config)
    }
}

/// Where the kube-state-metrics chart keeps the config in its values.
const CHART_PREFIX: &str = "customResourceState.config.";
/// Where kube-prometheus-stack keeps it.
const STACK_PREFIX: &str = "kube-state-metrics.customResourceState.config.";

/// Reads a TapMonitor manifest, a kube-state-metrics config, or the values file of the
/// kube-state-metrics or kube-prometheus-stack chart holding one.
pub fn config(path: &Path) -> anyhow::Result<LoadedConfig> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value = tapmon_crs::yaml::from_str(&text)
        .with_context(|| format!("{} is not YAML or JSON", path.display()))?;
    match doc.get("kind").and_then(Value::as_str) {
        Some(tapmon_api::KIND | tapmon_api::CLUSTER_KIND) => {
            let meta = doc.get("metadata");
            let field = |f: &str| {
                meta.and_then(|m| m.get(f))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            let name = match field("namespace") {
                "" => field("name").to_owned(),
                ns => format!("{ns}/{}", field("name")),
            };
            let (spec, ignored): (TapMonitorSpec, _) =
                tapmon_crs::ignored::from_value(doc.get("spec").cloned().unwrap_or(Value::Null))
                    .with_context(|| format!("{}: TapMonitor {name} spec", path.display()))?;
            let own = spec.resources.clone();
            let config = spec.config()?;
            Ok(LoadedConfig {
                own_from: config.own_from,
                spec: config.spec,
                origin: Origin::TapMonitor { name },
                ignored: ignored.into_iter().map(|p| format!("spec.{p}")).collect(),
                own,
            })
        }
        Some("CustomResourceStateMetrics") => kube_state_metrics(path, &text, ""),
        None if doc.get("spec").is_some() => kube_state_metrics(path, &text, ""),
        None => {
            // Read from the text, not `doc`, so that the config's maps keep their order.
            let in_values = |what: &str| format!("{}: {what}", path.display());
            let chart = if doc.get("customResourceState").is_some() {
                let (values, ignored) = tapmon_crs::yaml::from_str_reporting::<ChartValues>(&text)
                    .with_context(|| in_values("not a kube-state-metrics chart values file"))?;
                Some((values.config(), ignored, CHART_PREFIX))
            } else if doc.get("kube-state-metrics").is_some() {
                let (values, ignored) = tapmon_crs::yaml::from_str_reporting::<StackValues>(&text)
                    .with_context(|| in_values("not a kube-prometheus-stack values file"))?;
                let config = values.kube_state_metrics.and_then(ChartValues::config);
                Some((config, ignored, STACK_PREFIX))
            } else {
                None
            };
            if let Some((Some(config), ignored, prefix)) = chart {
                // The rest of a values file is the chart's business, not an unread field.
                let mut ignored: Vec<String> = ignored
                    .into_iter()
                    .filter(|p| p.starts_with(prefix))
                    .collect();
                let cfg = match config {
                    ChartConfig::Config(cfg) => cfg,
                    ChartConfig::Text(text) => {
                        let (cfg, own) =
                            tapmon_crs::yaml::from_str_reporting(&text).with_context(|| {
                                in_values(&format!(
                                    "{prefix} is not a CustomResourceStateMetrics config"
                                ))
                            })?;
                        ignored.extend(own.into_iter().map(|p: String| format!("{prefix}{p}")));
                        cfg
                    }
                };
                return Ok(from_kube_state_metrics(cfg, ignored, prefix));
            }
            bail!(
                "{}: neither a TapMonitor, a CustomResourceStateMetrics config, nor a values file with customResourceState.config (kube-state-metrics chart) or kube-state-metrics.customResourceState.config (kube-prometheus-stack)",
                path.display()
            )
        }
        Some(other) => bail!(
            "{}: kind {other:?} is none of TapMonitor, ClusterTapMonitor or CustomResourceStateMetrics",
            path.display()
        ),
    }
}

fn kube_state_metrics(
    path: &Path,
    text: &str,
    prefix: &'static str,
) -> anyhow::Result<LoadedConfig> {
    let (cfg, ignored) = tapmon_crs::yaml::from_str_reporting::<CustomResourceStateMetrics>(text)
        .with_context(|| {
        format!(
            "{}: not a CustomResourceStateMetrics config",
            path.display()
        )
    })?;
    Ok(from_kube_state_metrics(cfg, ignored, prefix))
}

/// `ignored` paths are in the file already when they start with `prefix`.
fn from_kube_state_metrics(
    cfg: CustomResourceStateMetrics,
    ignored: Vec<String>,
    prefix: &'static str,
) -> LoadedConfig {
    LoadedConfig {
        own: cfg.spec.resources.clone(),
        spec: cfg.spec,
        own_from: 0,
        origin: Origin::KubeStateMetrics { prefix },
        ignored: ignored
            .into_iter()
            .map(|p| {
                if p.starts_with(prefix) {
                    p
                } else {
                    format!("{prefix}{p}")
                }
            })
            .collect(),
    }
}

/// An object read from a file, with where it came from.
#[derive(Debug)]
pub struct LoadedObject {
    /// The object.
    pub value: Value,
    /// `file` or `file#document`.
    pub source: String,
}

/// Reads objects from a YAML or JSON file, or from every `.yaml`, `.yml` and `.json` file of a
/// directory tree. Multi-document YAML and `List` objects (`kubectl get -o yaml`) are unpacked.
/// Documents that are not objects are reported in `skipped`, the rest are still read.
pub fn objects(path: &Path, skipped: &mut Vec<String>) -> anyhow::Result<Vec<LoadedObject>> {
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    let mut out = Vec::new();
    for file in files {
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let docs: Vec<Value> = tapmon_crs::yaml::from_multiple(&text)
            .with_context(|| format!("{} is not YAML or JSON", file.display()))?;
        let many = docs.len() > 1;
        for (i, doc) in docs.into_iter().enumerate() {
            let source = if many {
                format!("{}#{}", file.display(), i + 1)
            } else {
                file.display().to_string()
            };
            unpack(doc, &source, &mut out, skipped);
        }
    }
    Ok(out)
}

fn unpack(doc: Value, source: &str, out: &mut Vec<LoadedObject>, skipped: &mut Vec<String>) {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match doc {
        Value::Object(mut map)
            if kind.ends_with("List") && map.get("items").is_some_and(Value::is_array) =>
        {
            let api_version = map.get("apiVersion").cloned();
            // Items of a typed list (`WorkloadList`) carry no apiVersion or kind of their own.
            let item_kind = kind
                .strip_suffix("List")
                .filter(|k| !k.is_empty())
                .map(str::to_owned);
            let items = match map.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            for (i, mut item) in items.into_iter().enumerate() {
                if let Value::Object(obj) = &mut item {
                    if let (false, Some(v)) = (obj.contains_key("apiVersion"), &api_version) {
                        obj.insert("apiVersion".into(), v.clone());
                    }
                    if let (false, Some(k)) = (obj.contains_key("kind"), &item_kind) {
                        obj.insert("kind".into(), Value::String(k.clone()));
                    }
                }
                unpack(item, &format!("{source} items[{i}]"), out, skipped);
            }
        }
        Value::Object(map) if map.contains_key("apiVersion") && map.contains_key("kind") => out
            .push(LoadedObject {
                value: Value::Object(map),
                source: source.to_owned(),
            }),
        Value::Null => {}
        _ => skipped.push(format!(
            "{source}: not a Kubernetes object (no apiVersion and kind)"
        )),
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_file() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(path)
        .with_context(|| format!("listing {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect_files(&entry, out)?;
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(entry);
        }
    }
    Ok(())
}
