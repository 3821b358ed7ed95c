//! A monitor as read from the API server: a namespaced `TapMonitor` or a cluster-scoped
//! `ClusterTapMonitor`, decoded one object at a time so that one the engine cannot read is
//! reported on itself (naming the field) and never stops the others.

use std::fmt;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::CustomResourceExt;
use kube::api::{ApiResource, DynamicObject};
use tapmon_api::{ClusterTapMonitor, TapMonitor, TapMonitorSpec, TapMonitorStatus};

/// The two kinds of monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MonitorKind {
    /// `TapMonitor`: reads its own namespace.
    TapMonitor,
    /// `ClusterTapMonitor`: reads the namespaces it selects, all by default.
    ClusterTapMonitor,
}

impl MonitorKind {
    /// Both kinds.
    pub const ALL: [MonitorKind; 2] = [MonitorKind::TapMonitor, MonitorKind::ClusterTapMonitor];

    /// The kind as the API client addresses it.
    pub fn api_resource(self) -> ApiResource {
        match self {
            MonitorKind::TapMonitor => TapMonitor::api_resource(),
            MonitorKind::ClusterTapMonitor => ApiResource::erase::<ClusterTapMonitor>(&()),
        }
    }

    /// The resource name RBAC rules use (`tapmonitors`, `clustertapmonitors`).
    pub fn plural(self) -> &'static str {
        match self {
            MonitorKind::TapMonitor => "tapmonitors",
            MonitorKind::ClusterTapMonitor => "clustertapmonitors",
        }
    }
}

/// Which monitor: a TapMonitor has a namespace, a ClusterTapMonitor none.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonitorKey {
    /// Namespace of a TapMonitor; `None` for a ClusterTapMonitor.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl MonitorKey {
    /// A TapMonitor's key.
    pub fn namespaced(namespace: &str, name: &str) -> Self {
        Self {
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        }
    }

    /// A ClusterTapMonitor's key.
    pub fn cluster(name: &str) -> Self {
        Self {
            namespace: None,
            name: name.to_owned(),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> MonitorKind {
        match self.namespace {
            Some(_) => MonitorKind::TapMonitor,
            None => MonitorKind::ClusterTapMonitor,
        }
    }

    /// The value of the `tap_monitor` label its series get: `namespace/name`, or `name` for a
    /// ClusterTapMonitor (namespaces have no `/`, so the two never meet).
    pub fn scope(&self) -> String {
        self.to_string()
    }

    /// Where its series are served.
    pub fn metrics_path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("/monitors/{ns}/{}/metrics", self.name),
            None => format!("/clustermonitors/{}/metrics", self.name),
        }
    }
}

impl fmt::Display for MonitorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A monitor as read: who it is and what it asks for.
#[derive(Debug, Clone)]
pub struct MonitorObject {
    /// Which monitor.
    pub key: MonitorKey,
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// Its spec.
    pub spec: TapMonitorSpec,
    /// Its status as last written.
    pub status: TapMonitorStatus,
}

impl MonitorObject {
    /// Its UID.
    pub fn uid(&self) -> &str {
        self.metadata.uid.as_deref().unwrap_or_default()
    }

    /// Its generation.
    pub fn generation(&self) -> i64 {
        self.metadata.generation.unwrap_or_default()
    }

    /// The object Events are about.
    pub fn reference(&self) -> ObjectReference {
        reference(self.key.kind(), &self.metadata)
    }

    /// The monitor as controller owner of what it publishes; garbage collection removes those
    /// objects with it. None before it has a UID.
    pub fn owner_reference(&self) -> Option<OwnerReference> {
        let ar = self.key.kind().api_resource();
        Some(OwnerReference {
            api_version: ar.api_version,
            kind: ar.kind,
            name: self.key.name.clone(),
            uid: self.metadata.uid.clone()?,
            controller: Some(true),
            block_owner_deletion: Some(true),
        })
    }
}

/// The object an Event on a monitor of `kind` with `metadata` is about.
pub fn reference(kind: MonitorKind, metadata: &ObjectMeta) -> ObjectReference {
    let ar = kind.api_resource();
    ObjectReference {
        api_version: Some(ar.api_version),
        kind: Some(ar.kind),
        name: metadata.name.clone(),
        namespace: metadata.namespace.clone(),
        uid: metadata.uid.clone(),
        resource_version: metadata.resource_version.clone(),
        field_path: None,
    }
}

/// A monitor that cannot be read: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DecodeError {
    /// Where, e.g. `spec.resources[0].metrics[1].each.gauge.path`.
    pub path: String,
    /// What.
    pub message: String,
}

/// Decodes a monitor of `kind`; the error names the field that could not be read.
pub fn decode(kind: MonitorKind, obj: &DynamicObject) -> Result<MonitorObject, DecodeError> {
    let key = match (kind, &obj.metadata.namespace) {
        (MonitorKind::TapMonitor, Some(ns)) => {
            MonitorKey::namespaced(ns, obj.metadata.name.as_deref().unwrap_or_default())
        }
        (MonitorKind::ClusterTapMonitor, None) => {
            MonitorKey::cluster(obj.metadata.name.as_deref().unwrap_or_default())
        }
        (_, namespace) => {
            return Err(DecodeError {
                path: "metadata.namespace".into(),
                message: format!("unexpected for a {kind:?}: {namespace:?}"),
            });
        }
    };
    let field = |name: &str| obj.data.get(name).cloned().unwrap_or_default();
    let spec: TapMonitorSpec =
        serde_path_to_error::deserialize(field("spec")).map_err(|e| DecodeError {
            path: format!("spec.{}", e.path())
                .trim_end_matches(".")
                .to_owned(),
            message: e.inner().to_string(),
        })?;
    // A status we cannot read is rewritten from scratch rather than blocking the monitor.
    let status: TapMonitorStatus = serde_json::from_value(field("status")).unwrap_or_default();
    Ok(MonitorObject {
        key,
        metadata: obj.metadata.clone(),
        spec,
        status,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(
        kind: MonitorKind,
        namespace: Option<&str>,
        spec: serde_json::Value,
    ) -> DynamicObject {
        let mut obj = DynamicObject::new("m", &kind.api_resource()).data(json!({ "spec": spec }));
        obj.metadata.namespace = namespace.map(str::to_owned);
        obj.metadata.uid = Some("u".into());
        obj
    }

    #[test]
    fn keys_paths_and_scopes_of_both_kinds() {
        let ns = MonitorKey::namespaced("team-a", "m");
        assert_eq!(ns.scope(), "team-a/m");
        assert_eq!(ns.metrics_path(), "/monitors/team-a/m/metrics");
        let cluster = MonitorKey::cluster("all");
        assert_eq!(cluster.scope(), "all");
        assert_eq!(cluster.metrics_path(), "/clustermonitors/all/metrics");
        assert_eq!(cluster.kind(), MonitorKind::ClusterTapMonitor);
    }

    #[test]
    fn what_the_engine_cannot_read_is_named_by_its_field() {
        let kind = MonitorKind::TapMonitor;
        let ok = decode(kind, &object(kind, Some("ns"), json!({}))).unwrap();
        assert_eq!(ok.key, MonitorKey::namespaced("ns", "m"));
        assert_eq!(ok.owner_reference().unwrap().kind, "TapMonitor");
        for (bad, path) in [
            (
                json!({"status": "conditions"}),
                "spec.resources[0].metrics[0].each.gauge.path",
            ),
            (json!(7), "spec.resources[0].metrics[0].each.gauge.path"),
            (
                json!(["status", 0.5]),
                "spec.resources[0].metrics[0].each.gauge.path",
            ),
        ] {
            let spec = json!({"resources": [{"groupVersionKind": {"group": "g", "version": "v1", "kind": "K"},
                "metrics": [{"name": "x", "each": {"type": "Gauge", "gauge": {"path": bad}}}]}]});
            let err = decode(kind, &object(kind, Some("ns"), spec)).unwrap_err();
            assert_eq!(err.path, path, "{err}");
        }
        let cluster = MonitorKind::ClusterTapMonitor;
        assert_eq!(
            decode(cluster, &object(cluster, None, json!({})))
                .unwrap()
                .key,
            MonitorKey::cluster("m")
        );
        assert!(decode(cluster, &object(cluster, Some("ns"), json!({}))).is_err());
    }
}
