//! `TapMonitor.spec`: which TAP groups to watch, where, which extra resources to read, and what
//! to publish for Prometheus and Grafana.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tapmon_crs::model::{Resource, Spec};
use tapmon_presets::PresetError;

use crate::groups::Groups;
use crate::status::TapMonitorStatus;

/// What a TapMonitor asks for.
#[derive(CustomResource, KubeSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tapmon.io",
    version = "v1alpha1",
    kind = "TapMonitor",
    namespaced,
    shortname = "tapmon",
    category = "tap",
    status = "TapMonitorStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Objects","type":"integer","jsonPath":".status.objects"}"#,
    printcolumn = r#"{"name":"Series","type":"integer","jsonPath":".status.series"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.resources) || self.resources.all(r, r.groupVersionKind.group != '' && r.groupVersionKind.group != '*')"
).message("every entry of resources needs groupVersionKind.group (not empty, not *)"))]
pub struct TapMonitorSpec {
    /// The TAP groups to watch. Every group is on unless set to `enabled: false`.
    #[serde(default)]
    pub groups: Groups,
    /// Namespaces to read objects in. A TapMonitor reads its own namespace only (naming any
    /// other is an error in its status); a ClusterTapMonitor reads all namespaces when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelector>,
    /// Label selector for the watched objects, passed to the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Extra resources, in kube-state-metrics' `CustomResourceStateMetrics` `spec.resources`
    /// format, accepted unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub resources: Vec<Resource>,
    /// The Prometheus Operator ServiceMonitor published for this monitor.
    #[serde(default)]
    pub service_monitor: ServiceMonitorSpec,
    /// The Prometheus Operator PrometheusRule (recording rules and alerts) published for this
    /// monitor.
    #[serde(default)]
    pub prometheus_rule: PrometheusRuleSpec,
    /// The Grafana dashboards published for this monitor, as ConfigMaps for the Grafana sidecar.
    #[serde(default)]
    pub dashboard: DashboardSpec,
    /// Most series the monitor serves; objects beyond it are left out and the
    /// `SeriesLimit` condition says how many. The operator's `--series-limit` is the default and
    /// the ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub series_limit: Option<u64>,
}

/// How the dashboards of this monitor are published: one ConfigMap per dashboard, labelled so
/// the Grafana sidecar (as in kube-prometheus-stack) loads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DashboardSpec {
    /// Publish the dashboards.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Labels of the ConfigMaps: what the sidecar's `label`/`labelValue` select.
    #[serde(default = "default_dashboard_labels")]
    pub labels: BTreeMap<String, String>,
    /// Annotation naming the Grafana folder (the sidecar's `folderAnnotation`).
    #[serde(default = "default_folder_annotation")]
    pub folder_annotation: String,
    /// The folder.
    #[serde(default = "default_folder")]
    pub folder: String,
}

impl Default for DashboardSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            labels: default_dashboard_labels(),
            folder_annotation: default_folder_annotation(),
            folder: default_folder(),
        }
    }
}

fn default_dashboard_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("grafana_dashboard".to_owned(), "1".to_owned())])
}

fn default_folder_annotation() -> String {
    "grafana_folder".into()
}

fn default_folder() -> String {
    "TAP".into()
}

/// Whether and how the PrometheusRule of this monitor is published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusRuleSpec {
    /// Publish a PrometheusRule (when the Prometheus Operator CRD is installed).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Labels of the PrometheusRule; kube-prometheus-stack selects `release: <helm release>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for PrometheusRuleSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            labels: Default::default(),
        }
    }
}

/// How the ServiceMonitor that points Prometheus at this monitor's endpoint looks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceMonitorSpec {
    /// Publish a ServiceMonitor (when the Prometheus Operator CRD is installed).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Labels of the ServiceMonitor; kube-prometheus-stack selects `release: <helm release>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Scrape interval.
    #[serde(default = "default_interval")]
    #[schemars(regex(
        pattern = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
    ))]
    pub interval: String,
    /// Scrape timeout; at most the interval.
    #[serde(default = "default_scrape_timeout")]
    #[schemars(regex(
        pattern = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
    ))]
    pub scrape_timeout: String,
}

impl Default for ServiceMonitorSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            labels: Default::default(),
            interval: default_interval(),
            scrape_timeout: default_scrape_timeout(),
        }
    }
}

fn default_interval() -> String {
    "30s".into()
}

fn default_scrape_timeout() -> String {
    "10s".into()
}

/// Which namespaces' objects a TapMonitor reads. Both parts must admit a namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSelector {
    /// Namespaces by name; any name when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Namespaces by label; any labels when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

impl TapMonitorSpec {
    /// The whole config this monitor evaluates: the enabled presets, then its own resources.
    pub fn config(&self) -> Result<MonitorConfig, PresetError> {
        let mut spec = tapmon_presets::spec_for(self.groups.enabled())?;
        let own_from = spec.resources.len();
        spec.resources.extend(self.resources.iter().cloned());
        Ok(MonitorConfig { spec, own_from })
    }
}

/// A monitor's config as compiled: built-in presets first, then the monitor's own resources.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// Everything to compile.
    pub spec: Spec,
    /// Index of the first of the monitor's own resources (`spec.resources[0]`).
    pub own_from: usize,
}

fn enabled_default() -> bool {
    true
}
