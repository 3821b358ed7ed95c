//! The objects a monitor publishes, built from its spec. Pure: applying them is
//! [`super::apply`]'s job.
//!
//! A TapMonitor's objects live in its namespace under its name; a ClusterTapMonitor's in the
//! operator's namespace, named `cluster-<name>`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{MONITORING_GROUP, MONITORING_VERSION, OperatorService, PublishError};
use crate::object::MonitorObject;

/// Largest ConfigMap the API server stores.
pub const CONFIGMAP_LIMIT: usize = 1 << 20;

/// The token file of the scraping Prometheus' own ServiceAccount, sent as its credentials.
pub const PROMETHEUS_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Where a monitor's published objects live, and the name they start with.
pub fn placement(m: &MonitorObject, service: &OperatorService) -> (String, String) {
    match &m.key.namespace {
        Some(ns) => (ns.clone(), m.key.name.clone()),
        None => (service.namespace.clone(), format!("cluster-{}", m.key.name)),
    }
}

/// Metadata of an object the monitor owns: its name and namespace, the operator's published
/// labels under the monitor's, ours over both, and a controller owner reference.
fn owned_metadata(
    m: &MonitorObject,
    service: &OperatorService,
    name: &str,
    user_labels: &BTreeMap<String, String>,
) -> Value {
    let mut labels = service.published_labels.clone();
    labels.extend(user_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert("app.kubernetes.io/managed-by".into(), "tapmon".into());
    labels.insert("tapmon.io/monitor".into(), m.key.name.clone());
    json!({
        "name": name,
        "namespace": placement(m, service).0,
        "labels": labels,
        "ownerReferences": m.owner_reference().into_iter().collect::<Vec<_>>(),
    })
}

fn api_version() -> String {
    format!("{MONITORING_GROUP}/{MONITORING_VERSION}")
}

/// The PrometheusRule of a monitor: the rules of its enabled groups, limited to its series.
pub fn prometheus_rule(m: &MonitorObject, service: &OperatorService) -> Value {
    let groups = tapmon_publish::rules::rule_groups(&m.spec.groups.enabled(), Some(&m.key.scope()));
    let name = placement(m, service).1;
    json!({
        "apiVersion": api_version(),
        "kind": "PrometheusRule",
        "metadata": owned_metadata(m, service, &name, &m.spec.prometheus_rule.labels),
        "spec": {"groups": groups}
    })
}

/// The ServiceMonitor of a monitor: the operator's Service, the monitor's path, and, when
/// scrapes are authorised, HTTPS with the scraping Prometheus' own ServiceAccount token.
pub fn service_monitor(m: &MonitorObject, service: &OperatorService) -> Value {
    let spec = &m.spec.service_monitor;
    let name = placement(m, service).1;
    let mut endpoint = json!({
        "port": service.port,
        "path": m.key.metrics_path(),
        "interval": spec.interval,
        "scrapeTimeout": spec.scrape_timeout,
        // Our `namespace` and `name` labels describe TAP objects; keep them over the target's.
        "honorLabels": true,
        "relabelings": [{
            "action": "replace",
            "targetLabel": "tap_monitor",
            "replacement": m.key.scope()
        }]
    });
    if service.authorized_scrapes {
        endpoint["scheme"] = json!("https");
        endpoint["bearerTokenFile"] = json!(PROMETHEUS_TOKEN_FILE);
        // The certificate is the operator's own (often self-signed): the connection is
        // encrypted, the server is not verified.
        endpoint["tlsConfig"] = json!({"insecureSkipVerify": true});
    }
    json!({
        "apiVersion": api_version(),
        "kind": "ServiceMonitor",
        "metadata": owned_metadata(m, service, &name, &spec.labels),
        "spec": {
            "selector": {"matchLabels": service.labels},
            "namespaceSelector": {"matchNames": [service.namespace]},
            "endpoints": [endpoint]
        }
    })
}

/// The name of the ConfigMap holding a monitor's dashboard `slug`.
pub fn dashboard_configmap_name(
    m: &MonitorObject,
    service: &OperatorService,
    slug: &str,
) -> String {
    format!("{}-{slug}", placement(m, service).1)
}

/// The ConfigMaps holding a monitor's dashboards, one dashboard each; data keys carry the
/// monitor's scope, so they are unique across the cluster. A dashboard over the ConfigMap
/// limit is an error naming its size.
pub fn dashboard_configmaps(
    m: &MonitorObject,
    service: &OperatorService,
) -> Result<Vec<Value>, PublishError> {
    let spec = &m.spec.dashboard;
    let scope = m.key.scope();
    let file_stem = scope.replace('/', "-");
    tapmon_publish::dashboards::dashboards(&m.spec.groups.enabled(), Some(&scope))
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
            let name = dashboard_configmap_name(m, service, d.slug);
            let mut metadata = owned_metadata(m, service, &name, &spec.labels);
            metadata["annotations"] = json!({ spec.folder_annotation.clone(): spec.folder });
            Ok(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata,
                "data": { format!("tapmon-{file_stem}-{}.json", d.slug): json }
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use kube::api::DynamicObject;

    use super::*;
    use crate::object::{MonitorKind, decode};

    fn monitor(kind: MonitorKind, namespace: Option<&str>, spec: Value) -> MonitorObject {
        let mut obj = DynamicObject::new("tap", &kind.api_resource()).data(json!({ "spec": spec }));
        obj.metadata.namespace = namespace.map(str::to_owned);
        obj.metadata.uid = Some("1234".into());
        decode(kind, &obj).unwrap()
    }

    #[test]
    fn the_service_monitor_of_a_tapmonitor() {
        let m = monitor(
            MonitorKind::TapMonitor,
            Some("platform"),
            json!({"serviceMonitor": {"labels": {"release": "kube-prometheus-stack"}, "interval": "15s"}}),
        );
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
    fn a_cluster_monitor_publishes_into_the_operator_namespace_with_authorised_scrapes() {
        let m = monitor(MonitorKind::ClusterTapMonitor, None, json!({}));
        let service = OperatorService {
            authorized_scrapes: true,
            ..OperatorService::default()
        };
        let sm = service_monitor(&m, &service);
        assert_eq!(sm["metadata"]["namespace"], "tapmon-system");
        assert_eq!(sm["metadata"]["name"], "cluster-tap");
        assert_eq!(
            sm["metadata"]["ownerReferences"][0]["kind"],
            "ClusterTapMonitor"
        );
        let endpoint = &sm["spec"]["endpoints"][0];
        assert_eq!(endpoint["path"], "/clustermonitors/tap/metrics");
        assert_eq!(endpoint["relabelings"][0]["replacement"], "tap");
        assert_eq!(endpoint["scheme"], "https");
        assert_eq!(endpoint["bearerTokenFile"], PROMETHEUS_TOKEN_FILE);
        let dashboards = dashboard_configmaps(&m, &service).unwrap();
        assert_eq!(dashboards[0]["metadata"]["name"], "cluster-tap-overview");
        assert!(dashboards[0]["data"]["tapmon-tap-overview.json"].is_string());
    }

    #[test]
    fn the_prometheus_rule_holds_the_scoped_rules_of_enabled_groups() {
        let m = monitor(
            MonitorKind::TapMonitor,
            Some("platform"),
            json!({"groups": {"kpack": {"enabled": false}}, "prometheusRule": {"labels": {"release": "kps"}}}),
        );
        let rule = prometheus_rule(&m, &OperatorService::default());
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

    #[test]
    fn the_operators_published_labels_go_on_everything_under_the_monitors_own() {
        let m = monitor(
            MonitorKind::TapMonitor,
            Some("platform"),
            json!({"prometheusRule": {"labels": {"release": "kps"}}}),
        );
        let service = OperatorService {
            published_labels: BTreeMap::from([
                ("release".into(), "kube-prometheus-stack".into()),
                ("tapmon.io/monitor".into(), "not ours to set".into()),
            ]),
            ..OperatorService::default()
        };
        let sm = service_monitor(&m, &service);
        assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
        assert_eq!(sm["metadata"]["labels"]["tapmon.io/monitor"], "tap");
        assert_eq!(
            prometheus_rule(&m, &service)["metadata"]["labels"]["release"],
            "kps"
        );
        for cm in dashboard_configmaps(&m, &service).unwrap() {
            assert_eq!(cm["metadata"]["labels"]["release"], "kube-prometheus-stack");
            assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
        }
    }
}
