//! What a TapMonitor publishes for Prometheus: a Prometheus Operator ServiceMonitor and a
//! PrometheusRule, each built by a pure function, server-side applied with one field manager,
//! owned by the TapMonitor so garbage collection removes them with the monitor.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tapmon_api::TapMonitor;

/// The field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "tapmon";

/// API group of the Prometheus Operator's ServiceMonitor.
pub const MONITORING_GROUP: &str = "monitoring.coreos.com";

/// The operator's own Service, which ServiceMonitors select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorService {
    /// Namespace the operator runs in.
    pub namespace: String,
    /// Labels of its Service.
    pub labels: BTreeMap<String, String>,
    /// Name of the Service port that serves `/monitors/...`.
    pub port: String,
}

impl Default for OperatorService {
    fn default() -> Self {
        Self {
            namespace: "tapmon-system".into(),
            labels: BTreeMap::from([("app.kubernetes.io/name".into(), "tapmon".into())]),
            port: "metrics".into(),
        }
    }
}

/// The path of a monitor's metrics.
pub fn metrics_path(namespace: &str, name: &str) -> String {
    format!("/monitors/{namespace}/{name}/metrics")
}

/// Metadata of an object the TapMonitor owns: its name and namespace, the user's labels plus
/// ours, and a controller owner reference.
fn owned_metadata(m: &TapMonitor, user_labels: &BTreeMap<String, String>) -> Value {
    let name = m.name_any();
    let mut labels = user_labels.clone();
    labels.insert("app.kubernetes.io/managed-by".into(), "tapmon".into());
    labels.insert("tapmon.io/monitor".into(), name.clone());
    json!({
        "name": name,
        "namespace": m.namespace().unwrap_or_default(),
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": "tapmon.io/v1alpha1",
            "kind": "TapMonitor",
            "name": name,
            "uid": m.uid().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true
        }]
    })
}

/// The PrometheusRule of a TapMonitor: the rules of its enabled groups, limited to its series.
pub fn prometheus_rule(m: &TapMonitor) -> Value {
    let scope = format!("{}/{}", m.namespace().unwrap_or_default(), m.name_any());
    let groups = tapmon_publish::rules::rule_groups(&m.spec.groups.enabled(), Some(&scope));
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": owned_metadata(m, &m.spec.prometheus_rule.labels),
        "spec": {"groups": groups}
    })
}

/// The ServiceMonitor of a TapMonitor.
pub fn service_monitor(m: &TapMonitor, service: &OperatorService) -> Value {
    let namespace = m.namespace().unwrap_or_default();
    let name = m.name_any();
    let spec = &m.spec.service_monitor;
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": owned_metadata(m, &spec.labels),
        "spec": {
            "selector": {"matchLabels": service.labels},
            "namespaceSelector": {"matchNames": [service.namespace]},
            "endpoints": [{
                "port": service.port,
                "path": metrics_path(&namespace, &name),
                "interval": spec.interval,
                "scrapeTimeout": spec.scrape_timeout,
                // Our `namespace` and `name` labels describe TAP objects; keep them over the
                // target's.
                "honorLabels": true,
                "relabelings": [{
                    "action": "replace",
                    "targetLabel": "tap_monitor",
                    "replacement": format!("{namespace}/{name}")
                }]
            }]
        }
    })
}

/// Largest ConfigMap the API server stores.
pub const CONFIGMAP_LIMIT: usize = 1 << 20;

/// The ConfigMaps holding a TapMonitor's dashboards, one dashboard each; data keys carry the
/// monitor's namespace and name, so they are unique across the cluster. A dashboard over the
/// ConfigMap limit is an error naming its size.
pub fn dashboard_configmaps(m: &TapMonitor) -> Result<Vec<Value>, String> {
    let namespace = m.namespace().unwrap_or_default();
    let name = m.name_any();
    let spec = &m.spec.dashboard;
    let scope = format!("{namespace}/{name}");
    tapmon_publish::dashboards::dashboards(&m.spec.groups.enabled(), Some(&scope))
        .into_iter()
        .map(|d| {
            let json = serde_json::to_string(&d.json).map_err(|e| e.to_string())?;
            if json.len() >= CONFIGMAP_LIMIT {
                return Err(format!(
                    "dashboard {} is {} bytes, over the {CONFIGMAP_LIMIT}-byte ConfigMap limit",
                    d.slug,
                    json.len()
                ));
            }
            let mut metadata = owned_metadata(m, &spec.labels);
            metadata["name"] = json!(format!("{name}-{}", d.slug));
            metadata["annotations"] = json!({ spec.folder_annotation.clone(): spec.folder });
            Ok(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata,
                "data": { format!("tapmon-{namespace}-{name}-{}.json", d.slug): json }
            }))
        })
        .collect()
}

/// Makes the cluster hold a TapMonitor's dashboard ConfigMaps, or none when disabled.
pub async fn apply_dashboards(client: &Client, m: &TapMonitor) -> Published {
    let namespace = m.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "ConfigMap"),
            "configmaps",
        ),
    );
    let slugs = ["overview", "supply-chain"];
    if !m.spec.dashboard.enabled {
        for slug in slugs {
            let name = format!("{}-{slug}", m.name_any());
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Published::Failed(format!(
                        "deleting ConfigMap {namespace}/{name}: {e}"
                    ));
                }
            }
        }
        return Published::Disabled;
    }
    let configmaps = match dashboard_configmaps(m) {
        Ok(c) => c,
        Err(e) => return Published::Failed(e),
    };
    for cm in configmaps {
        let name = cm["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Err(e) = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&cm),
            )
            .await
        {
            return Published::Failed(format!("applying ConfigMap {namespace}/{name}: {e}"));
        }
    }
    Published::Applied
}

/// The Prometheus Operator kinds a TapMonitor publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ServiceMonitor`.
    ServiceMonitor,
    /// `PrometheusRule`.
    PrometheusRule,
}

impl Kind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ServiceMonitor => "ServiceMonitor",
            Kind::PrometheusRule => "PrometheusRule",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::ServiceMonitor => "servicemonitors",
            Kind::PrometheusRule => "prometheusrules",
        }
    }
}

/// What became of a published object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Applied.
    Applied,
    /// Disabled in the spec; any earlier one was deleted.
    Disabled,
    /// Its CRD is not installed; it is applied when the CRD appears.
    NotInstalled,
    /// The API server refused it (e.g. a label value Kubernetes rejects).
    Failed(String),
}

/// Makes the cluster hold `desired`, an object of `kind` owned by `m`; with `None` (disabled),
/// deletes any earlier one.
pub async fn apply_owned(
    client: &Client,
    m: &TapMonitor,
    kind: Kind,
    desired: Option<Value>,
    installed: bool,
) -> Published {
    if !installed {
        return Published::NotInstalled;
    }
    let namespace = m.namespace().unwrap_or_default();
    let gvk = GroupVersionKind::gvk(MONITORING_GROUP, "v1", kind.name());
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &ApiResource::from_gvk_with_plural(&gvk, kind.plural()),
    );
    let name = m.name_any();
    let Some(desired) = desired else {
        return match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Published::Disabled,
            Err(kube::Error::Api(s)) if s.code == 404 => Published::Disabled,
            Err(e) => {
                Published::Failed(format!("deleting {} {namespace}/{name}: {e}", kind.name()))
            }
        };
    };
    match api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
    {
        Ok(_) => Published::Applied,
        Err(e) => Published::Failed(format!("applying {} {namespace}/{name}: {e}", kind.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_monitor_of_a_tapmonitor() {
        let m: TapMonitor = serde_json::from_value(json!({
            "apiVersion": "tapmon.io/v1alpha1", "kind": "TapMonitor",
            "metadata": {"name": "tap", "namespace": "platform", "uid": "1234"},
            "spec": {"serviceMonitor": {"labels": {"release": "kube-prometheus-stack"}, "interval": "15s"}}
        }))
        .unwrap();
        let sm = service_monitor(&m, &OperatorService::default());
        let expected = json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {
                "name": "tap",
                "namespace": "platform",
                "labels": {"app.kubernetes.io/managed-by": "tapmon", "release": "kube-prometheus-stack", "tapmon.io/monitor": "tap"},
                "ownerReferences": [{"apiVersion": "tapmon.io/v1alpha1", "kind": "TapMonitor", "name": "tap", "uid": "1234", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "tapmon"}},
                "namespaceSelector": {"matchNames": ["tapmon-system"]},
                "endpoints": [{
                    "port": "metrics",
                    "path": "/monitors/platform/tap/metrics",
                    "interval": "15s",
                    "scrapeTimeout": "10s",
                    "honorLabels": true,
                    "relabelings": [{"action": "replace", "targetLabel": "tap_monitor", "replacement": "platform/tap"}]
                }]
            }
        });
        assert_eq!(sm, expected);
    }

    #[test]
    fn the_prometheus_rule_holds_the_scoped_rules_of_enabled_groups() {
        let m: TapMonitor = serde_json::from_value(json!({
            "apiVersion": "tapmon.io/v1alpha1", "kind": "TapMonitor",
            "metadata": {"name": "tap", "namespace": "platform", "uid": "1234"},
            "spec": {"groups": {"kpack": {"enabled": false}}, "prometheusRule": {"labels": {"release": "kps"}}}
        }))
        .unwrap();
        let rule = prometheus_rule(&m);
        assert_eq!(rule["metadata"]["labels"]["release"], "kps");
        assert_eq!(rule["metadata"]["ownerReferences"][0]["uid"], "1234");
        let text = rule["spec"].to_string();
        assert!(text.contains("tap_monitor=\\\"platform/tap\\\""), "{text}");
        assert!(
            !text.contains("TapBuildFailing") && !text.contains("kpack_"),
            "kpack disabled"
        );
        assert!(text.contains("TapWorkloadNotReady"));
    }
}
