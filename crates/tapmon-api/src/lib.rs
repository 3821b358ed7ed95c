//! The `TapMonitor` custom resource: which TAP groups to watch, where, and which extra
//! resources, in kube-state-metrics' format, to read; the status the operator reports, and the
//! words (condition types, reasons, Event reasons) it reports them in.

mod admission;
mod cluster;
mod conditions;
mod groups;
mod spec;
mod status;

use kube::CustomResourceExt;

pub use admission::{POLICY_NAME, admission_policy};
pub use cluster::{CLUSTER_KIND, ClusterTapMonitor};
pub use conditions::{ConditionType, EventReason, Reason, status_str};
pub use groups::{GroupSpec, Groups};
pub use spec::{
    DashboardSpec, MonitorConfig, NamespaceSelector, PrometheusRuleSpec, ServiceMonitorSpec,
    TapMonitor, TapMonitorSpec,
};
pub use status::{KindState, KindStatus, TapMonitorStatus};

/// API group of the TapMonitor resource.
pub const GROUP: &str = "tapmon.io";
/// Kind of the TapMonitor resource.
pub const KIND: &str = "TapMonitor";

/// Most extra resources one TapMonitor may declare; bounds the cost of its validation rules.
pub const MAX_RESOURCES: usize = 64;

/// What `crds/` holds, as (file name, YAML text): the TapMonitor and ClusterTapMonitor
/// CustomResourceDefinitions, and the admission policy that checks what their schema cannot.
pub fn crd_yaml() -> Result<Vec<(String, String)>, serde_json::Error> {
    // JSON is valid YAML; a YAML emitter adds nothing a reviewer needs but a dependency.
    let pretty = |value: &dyn erased::Json| -> Result<String, serde_json::Error> {
        let mut text = value.pretty()?;
        text.push('\n');
        Ok(text)
    };
    let mut out = Vec::new();
    for crd in [TapMonitor::crd(), ClusterTapMonitor::crd()] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let plural = name.split('.').next().unwrap_or_default().to_owned();
        out.push((format!("{GROUP}_{plural}.yaml"), pretty(&crd)?));
    }
    let policy: Vec<String> = admission_policy()
        .iter()
        .map(|doc| pretty(doc))
        .collect::<Result<_, _>>()?;
    out.push((
        format!("{GROUP}_admission-policy.yaml"),
        policy.join("---\n"),
    ));
    Ok(out)
}

mod erased {
    /// Something written as pretty JSON.
    pub trait Json {
        fn pretty(&self) -> Result<String, serde_json::Error>;
    }

    impl<T: serde::Serialize> Json for T {
        fn pretty(&self) -> Result<String, serde_json::Error> {
            serde_json::to_string_pretty(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tapmon_presets::TapGroup;

    use super::*;

    #[test]
    fn unknown_groups_are_errors() {
        let spec: TapMonitorSpec = serde_json::from_value(json!({})).unwrap();
        assert_eq!(spec.groups.enabled(), TapGroup::ALL);
        let typo = serde_json::from_value::<TapMonitorSpec>(json!({"groups": {"kpak": {}}}));
        assert!(typo.unwrap_err().to_string().contains("kpak"));
    }

    #[test]
    fn the_crds_are_the_committed_ones() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for (file, text) in crd_yaml().unwrap() {
            // The Helm chart holds the same: CRDs in its crds/, the policy as a template's file.
            let chart = if file.ends_with("admission-policy.yaml") {
                "charts/tapmon/files"
            } else {
                "charts/tapmon/crds"
            };
            for dir in ["crds", chart] {
                let committed = std::fs::read_to_string(root.join(dir).join(&file));
                assert_eq!(
                    text,
                    committed.unwrap_or_default(),
                    "{dir}/{file} is stale: run `make generate`"
                );
            }
        }
    }

    #[test]
    fn the_crd_has_names_columns_status_and_rules() {
        let crd = serde_json::to_value(TapMonitor::crd()).unwrap();
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["tapmon"]));
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], json!({}));
        assert_eq!(
            version["additionalPrinterColumns"][0]["name"],
            ConditionType::Ready.as_str()
        );
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
        let groups = spec["properties"]["groups"]["properties"]
            .as_object()
            .unwrap();
        assert_eq!(groups.len(), TapGroup::ALL.len());
        assert_eq!(
            groups["serviceBindings"]["description"],
            TapGroup::ServiceBindings.description()
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
        assert_eq!(config.spec.resources.len(), 22);
        assert_eq!(config.own_from, 21);
        assert_eq!(config.spec.resources[21].group_version_kind.kind, "Foo");
    }
}
