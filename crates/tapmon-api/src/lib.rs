//! The `TapMonitor` custom resource: which TAP groups to watch, where, and which extra
//! resources, in kube-state-metrics' format, to read; and the status the operator reports.

mod status;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tapmon_crs::model::{Resource, Spec};
use tapmon_presets::{PresetError, TapGroup};

pub use status::{KindState, KindStatus, TapMonitorStatus};

/// API group of the TapMonitor resource.
pub const GROUP: &str = "tapmon.io";
/// Kind of the TapMonitor resource.
pub const KIND: &str = "TapMonitor";

/// Most extra resources one TapMonitor may declare; bounds the cost of its validation rules.
pub const MAX_RESOURCES: usize = 64;

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
    /// Namespaces to watch objects in; all namespaces when absent.
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
    pub labels: std::collections::BTreeMap<String, String>,
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

fn default_dashboard_labels() -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([("grafana_dashboard".to_owned(), "1".to_owned())])
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
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
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
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
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

/// The CustomResourceDefinition of TapMonitor as YAML, as `crds/` holds it.
pub fn crd_yaml() -> Result<String, serde_json::Error> {
    // JSON is valid YAML; a YAML emitter adds nothing a reviewer needs but a dependency.
    let mut text = serde_json::to_string_pretty(&TapMonitor::crd())?;
    text.push('\n');
    Ok(text)
}

/// Whether one group is watched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupSpec {
    /// Watch this group's kinds.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
}

fn enabled_default() -> bool {
    true
}

/// The eleven TAP groups, each on unless disabled. Unknown names are errors, not ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Groups {
    /// Cartographer workloads and deliverables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cartographer: Option<GroupSpec>,
    /// Service bindings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_bindings: Option<GroupSpec>,
    /// Services Toolkit cluster instance classes, class claims and resource claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_toolkit: Option<GroupSpec>,
    /// Knative services and revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knative: Option<GroupSpec>,
    /// Carvel package repositories, package installs and apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carvel: Option<GroupSpec>,
    /// API descriptors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_descriptors: Option<GroupSpec>,
    /// Tekton pipeline runs and task runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tekton: Option<GroupSpec>,
    /// Application Accelerator accelerators and fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerators: Option<GroupSpec>,
    /// Flux git repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flux: Option<GroupSpec>,
    /// Image and source scans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanning: Option<GroupSpec>,
    /// kpack images and builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kpack: Option<GroupSpec>,
}

impl Groups {
    fn get(&self, group: TapGroup) -> Option<&GroupSpec> {
        match group {
            TapGroup::Cartographer => self.cartographer.as_ref(),
            TapGroup::ServiceBindings => self.service_bindings.as_ref(),
            TapGroup::ServicesToolkit => self.services_toolkit.as_ref(),
            TapGroup::Knative => self.knative.as_ref(),
            TapGroup::Carvel => self.carvel.as_ref(),
            TapGroup::ApiDescriptors => self.api_descriptors.as_ref(),
            TapGroup::Tekton => self.tekton.as_ref(),
            TapGroup::Accelerators => self.accelerators.as_ref(),
            TapGroup::Flux => self.flux.as_ref(),
            TapGroup::Scanning => self.scanning.as_ref(),
            TapGroup::Kpack => self.kpack.as_ref(),
        }
    }

    /// The groups that are on, in catalogue order.
    pub fn enabled(&self) -> Vec<TapGroup> {
        TapGroup::ALL
            .into_iter()
            .filter(|g| self.get(*g).is_none_or(|s| s.enabled))
            .collect()
    }
}

impl TapMonitorSpec {
    /// The whole config this monitor evaluates: the enabled presets, then its own resources.
    pub fn config(&self) -> Result<Spec, PresetError> {
        let mut spec = tapmon_presets::spec_for(self.groups.enabled())?;
        spec.resources.extend(self.resources.iter().cloned());
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_group_is_on_unless_disabled() {
        let spec: TapMonitorSpec = serde_json::from_value(json!({})).unwrap();
        assert_eq!(spec.groups.enabled(), TapGroup::ALL);
        let spec: TapMonitorSpec = serde_json::from_value(json!({
            "groups": {"kpack": {"enabled": false}, "servicesToolkit": {"enabled": false}, "flux": {}}
        }))
        .unwrap();
        let enabled = spec.groups.enabled();
        assert_eq!(enabled.len(), 9);
        assert!(!enabled.contains(&TapGroup::Kpack));
        assert!(!enabled.contains(&TapGroup::ServicesToolkit));
        assert!(enabled.contains(&TapGroup::Flux));
        let typo = serde_json::from_value::<TapMonitorSpec>(json!({"groups": {"kpak": {}}}));
        assert!(typo.unwrap_err().to_string().contains("kpak"));
    }

    #[test]
    fn the_crd_is_the_committed_one() {
        let committed = include_str!("../../../crds/tapmon.io_tapmonitors.yaml");
        assert_eq!(
            crd_yaml().unwrap(),
            committed,
            "crds/ is stale: run `make generate`"
        );
    }

    #[test]
    fn the_crd_has_names_columns_status_and_rules() {
        let crd = serde_json::to_value(TapMonitor::crd()).unwrap();
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["tapmon"]));
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], json!({}));
        assert_eq!(version["additionalPrinterColumns"][0]["name"], "Ready");
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert!(
            spec["x-kubernetes-validations"][0]["rule"]
                .as_str()
                .unwrap()
                .contains("groupVersionKind.group")
        );
        assert_eq!(
            spec["properties"]["resources"]["maxItems"],
            json!(MAX_RESOURCES)
        );
    }

    #[test]
    fn config_is_presets_then_own_resources() {
        let spec: TapMonitorSpec = serde_json::from_value(json!({
            "groups": {"cartographer": {"enabled": true}},
            "resources": [{"groupVersionKind": {"group": "example.com", "version": "v1", "kind": "Foo"}, "metrics": []}]
        }))
        .unwrap();
        let config = spec.config().unwrap();
        assert_eq!(config.resources.len(), 22);
        assert_eq!(config.resources[21].group_version_kind.kind, "Foo");
    }
}
