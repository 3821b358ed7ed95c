//! The objects a TapMonitor publishes, built from its spec. Pure: applying them is
//! [`super::apply`]'s job.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tapmon_api::TapMonitor;

use super::{MONITORING_GROUP, MONITORING_VERSION, OperatorService, PublishError};

/// Largest ConfigMap the API server stores.
pub const CONFIGMAP_LIMIT: usize = 1 << 20;

/// The path of a monitor's metrics.
pub fn metrics_path(namespace: &str, name: &str) -> String {
    format!("/monitors/{namespace}/{name}/metrics")
}

/// `namespace/name` of a monitor: the value of the `tap_monitor` label its series get.
pub fn scope(m: &TapMonitor) -> String {
    format!("{}/{}", m.namespace().unwrap_or_default(), m.name_any())
}

/// Metadata of an object the TapMonitor owns: its name and namespace, the user's labels plus
/// ours, and a controller owner reference.
fn owned_metadata(m: &TapMonitor, name: &str, user_labels: &BTreeMap<String, String>) -> Value {
    let mut labels = user_labels.clone();
    labels.insert("app.kubernetes.io/managed-by".into(), "tapmon".into());
    labels.insert("tapmon.io/monitor".into(), m.name_any());
    json!({
        "name": name,
        "namespace": m.namespace().unwrap_or_default(),
        "labels": labels,
        "ownerReferences": owner_reference(m).into_iter().collect::<Vec<_>>(),
    })
}

/// The TapMonitor as controller owner, blocking its foreground deletion until the object is
/// gone (kube's helper leaves `blockOwnerDeletion` unset). None before the monitor has a UID.
pub fn owner_reference(m: &TapMonitor) -> Option<OwnerReference> {
    let mut owner = m.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

fn api_version() -> String {
    format!("{MONITORING_GROUP}/{MONITORING_VERSION}")
}

/// The PrometheusRule of a TapMonitor: the rules of its enabled groups, limited to its series.
pub fn prometheus_rule(m: &TapMonitor) -> Value {
    let groups = tapmon_publish::rules::rule_groups(&m.spec.groups.enabled(), Some(&scope(m)));
    json!({
        "apiVersion": api_version(),
        "kind": "PrometheusRule",
        "metadata": owned_metadata(m, &m.name_any(), &m.spec.prometheus_rule.labels),
        "spec": {"groups": groups}
    })
}

/// The ServiceMonitor of a TapMonitor.
pub fn service_monitor(m: &TapMonitor, service: &OperatorService) -> Value {
    let namespace = m.namespace().unwrap_or_default();
    let name = m.name_any();
    let spec = &m.spec.service_monitor;
    json!({
        "apiVersion": api_version(),
        "kind": "ServiceMonitor",
        "metadata": owned_metadata(m, &name, &spec.labels),
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
                    "replacement": scope(m)
                }]
            }]
        }
    })
}

/// The name of the ConfigMap holding a monitor's dashboard `slug`.
pub fn dashboard_configmap_name(m: &TapMonitor, slug: &str) -> String {
    format!("{}-{slug}", m.name_any())
}

/// The ConfigMaps holding a TapMonitor's dashboards, one dashboard each; data keys carry the
/// monitor's namespace and name, so they are unique across the cluster. A dashboard over the
/// ConfigMap limit is an error naming its size.
pub fn dashboard_configmaps(m: &TapMonitor) -> Result<Vec<Value>, PublishError> {
    let namespace = m.namespace().unwrap_or_default();
    let name = m.name_any();
    let spec = &m.spec.dashboard;
    tapmon_publish::dashboards::dashboards(&m.spec.groups.enabled(), Some(&scope(m)))
        .into_iter()
        .map(|d| {
            let json = serde_json::to_string(&d.json).map_err(|source| PublishError::Encode {
                slug: d.slug,
                source,
            })?;
            if json.len() >= CONFIGMAP_LIMIT {
                return Err(PublishError::DashboardTooLarge {
                    slug: d.slug,
                    size: json.len(),
                });
            }
            let mut metadata =
                owned_metadata(m, &dashboard_configmap_name(m, d.slug), &spec.labels);
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
