//! `ClusterTapMonitor`: a TapMonitor that reads every namespace, as `ClusterIssuer` is to
//! cert-manager's `Issuer`. Same spec and status; cluster-scoped, so creating one takes a
//! cluster-wide right that only cluster administrators have by default, while the namespaced
//! `TapMonitor` reads its own namespace only.

use std::borrow::Cow;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::object::{HasSpec, HasStatus};
use kube::{CustomResourceExt, Resource};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::{TapMonitor, TapMonitorSpec, TapMonitorStatus};

/// Kind of the ClusterTapMonitor resource.
pub const CLUSTER_KIND: &str = "ClusterTapMonitor";

/// A cluster-scoped TapMonitor.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTapMonitor {
    /// Standard object metadata (no namespace).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the monitor asks for.
    #[serde(default)]
    pub spec: TapMonitorSpec,
    /// What the operator reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TapMonitorStatus>,
}

impl ClusterTapMonitor {
    /// A ClusterTapMonitor named `name` with `spec`.
    pub fn new(name: &str, spec: TapMonitorSpec) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }

    /// The CustomResourceDefinition: TapMonitor's, cluster-scoped and named for this kind, so
    /// the two schemas cannot drift.
    pub fn crd() -> CustomResourceDefinition {
        let mut crd = TapMonitor::crd();
        crd.metadata.name = Some(format!("clustertapmonitors.{}", crate::GROUP));
        crd.spec.scope = "Cluster".into();
        let names = &mut crd.spec.names;
        names.kind = CLUSTER_KIND.into();
        names.list_kind = Some(format!("{CLUSTER_KIND}List"));
        names.plural = "clustertapmonitors".into();
        names.singular = Some("clustertapmonitor".into());
        names.short_names = Some(vec!["ctapmon".into()]);
        crd
    }
}

impl Serialize for ClusterTapMonitor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut obj = serializer.serialize_struct(CLUSTER_KIND, 5)?;
        obj.serialize_field("apiVersion", &Self::api_version(&()))?;
        obj.serialize_field("kind", CLUSTER_KIND)?;
        obj.serialize_field("metadata", &self.metadata)?;
        obj.serialize_field("spec", &self.spec)?;
        if let Some(status) = &self.status {
            obj.serialize_field("status", status)?;
        }
        obj.end()
    }
}

impl Resource for ClusterTapMonitor {
    type DynamicType = ();
    type Scope = kube::core::ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        CLUSTER_KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        crate::GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        TapMonitor::version(&())
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "clustertapmonitors".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl HasSpec for ClusterTapMonitor {
    type Spec = TapMonitorSpec;

    fn spec(&self) -> &TapMonitorSpec {
        &self.spec
    }

    fn spec_mut(&mut self) -> &mut TapMonitorSpec {
        &mut self.spec
    }
}

impl HasStatus for ClusterTapMonitor {
    type Status = TapMonitorStatus;

    fn status(&self) -> Option<&TapMonitorStatus> {
        self.status.as_ref()
    }

    fn status_mut(&mut self) -> &mut Option<TapMonitorStatus> {
        &mut self.status
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_cluster_crd_is_tapmonitors_cluster_scoped() {
        let crd = ClusterTapMonitor::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("clustertapmonitors.tapmon.io")
        );
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(
            crd.spec.versions[0].schema,
            TapMonitor::crd().spec.versions[0].schema
        );
    }

    #[test]
    fn round_trips_with_api_version_and_kind() {
        let m = ClusterTapMonitor::new("all", TapMonitorSpec::default());
        let value = serde_json::to_value(&m).unwrap();
        assert_eq!(value["apiVersion"], "tapmon.io/v1alpha1");
        assert_eq!(value["kind"], "ClusterTapMonitor");
        let back: ClusterTapMonitor =
            serde_json::from_value(json!({"apiVersion": "tapmon.io/v1alpha1", "kind": "ClusterTapMonitor", "metadata": {"name": "all"}, "spec": {}}))
                .unwrap();
        assert_eq!(back, m);
    }
}
