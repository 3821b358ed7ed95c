//! What a TapMonitor publishes for Prometheus: a Prometheus Operator ServiceMonitor, built by
//! a pure function, server-side applied with one field manager, owned by the TapMonitor so
//! garbage collection removes it with the monitor.

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

/// The ServiceMonitor of a TapMonitor.
pub fn service_monitor(m: &TapMonitor, service: &OperatorService) -> Value {
    let namespace = m.namespace().unwrap_or_default();
    let name = m.name_any();
    let spec = &m.spec.service_monitor;
    let mut labels: BTreeMap<String, String> = spec.labels.clone();
    labels.insert("app.kubernetes.io/managed-by".into(), "tapmon".into());
    labels.insert("tapmon.io/monitor".into(), name.clone());
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "tapmon.io/v1alpha1",
                "kind": "TapMonitor",
                "name": name,
                "uid": m.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true
            }]
        },
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

/// What became of the ServiceMonitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Applied.
    Applied,
    /// `serviceMonitor.enabled: false`; any earlier one was deleted.
    Disabled,
    /// The ServiceMonitor CRD is not installed; it is applied when it appears.
    NotInstalled,
    /// The API server refused it (e.g. a label value Kubernetes rejects).
    Failed(String),
}

fn api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(MONITORING_GROUP, "v1", "ServiceMonitor"),
        "servicemonitors",
    );
    Api::namespaced_with(client.clone(), namespace, &ar)
}

/// Makes the cluster hold the ServiceMonitor `m` asks for (or none).
pub async fn apply_service_monitor(
    client: &Client,
    m: &TapMonitor,
    service: &OperatorService,
    installed: bool,
) -> Published {
    if !installed {
        return Published::NotInstalled;
    }
    let namespace = m.namespace().unwrap_or_default();
    let api = api(client, &namespace);
    let name = m.name_any();
    if !m.spec.service_monitor.enabled {
        return match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Published::Disabled,
            Err(kube::Error::Api(s)) if s.code == 404 => Published::Disabled,
            Err(e) => Published::Failed(format!("deleting ServiceMonitor {namespace}/{name}: {e}")),
        };
    }
    let desired = service_monitor(m, service);
    match api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
    {
        Ok(_) => Published::Applied,
        Err(e) => Published::Failed(format!("applying ServiceMonitor {namespace}/{name}: {e}")),
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
}
