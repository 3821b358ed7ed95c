//! The `TapMonitor` custom resource: which TAP groups to watch, where, and which extra
//! resources, in kube-state-metrics' format, to read; the status the operator reports, and the
//! words (condition types, reasons, Event reasons) it reports them in.

mod admission;
mod cluster;
mod conditions;
mod groups;
mod spec;
mod status;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
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

/// Both CRDs as installed: the derived ones, with a root that says what each kind is and lists
/// the standard fields, so that `kubectl explain tapmon` reads well.
pub fn crds() -> [CustomResourceDefinition; 2] {
    let mut namespaced = TapMonitor::crd();
    describe_root(
        &mut namespaced,
        "TapMonitor turns the status of the Tanzu Application Platform's resources in its own namespace into Prometheus series, served by the tapmon operator, and publishes a ServiceMonitor, a PrometheusRule and Grafana dashboards for them in the same namespace. It reads nothing outside its namespace; ClusterTapMonitor reads all of them.",
    );
    let mut cluster = ClusterTapMonitor::crd();
    describe_root(
        &mut cluster,
        "ClusterTapMonitor is a TapMonitor that reads every namespace (or those its namespaceSelector picks), for platform teams; what it publishes goes to the operator's namespace. Creating one takes a cluster-wide right that only cluster administrators have by default.",
    );
    [namespaced, cluster]
}

/// Sets the description of each version's root schema and adds `apiVersion`, `kind` and
/// `metadata`, which the derived schema leaves out.
fn describe_root(crd: &mut CustomResourceDefinition, description: &str) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
    let field = |type_: &str, description: &str| JSONSchemaProps {
        type_: Some(type_.into()),
        description: Some(description.into()),
        ..Default::default()
    };
    for version in &mut crd.spec.versions {
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        root.description = Some(description.into());
        let properties = root.properties.get_or_insert_with(Default::default);
        properties.insert(
            "apiVersion".into(),
            field("string", "APIVersion defines the versioned schema of this representation of an object: tapmon.io/v1alpha1."),
        );
        properties.insert(
            "kind".into(),
            field(
                "string",
                "Kind is the REST resource this object represents.",
            ),
        );
        // The API server allows `metadata` only as a bare object (no description).
        properties.insert(
            "metadata".into(),
            JSONSchemaProps {
                type_: Some("object".into()),
                ..Default::default()
            },
        );
    }
}

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
    for crd in crds() {
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
    fn kubectl_explain_reads_a_description_and_the_standard_fields() {
        for crd in crds() {
            let crd = serde_json::to_value(crd).unwrap();
            let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let text = root["description"].as_str().unwrap();
            assert!(!text.contains("Auto-generated"), "{text}");
            for field in ["apiVersion", "kind", "spec", "status"] {
                assert!(
                    root["properties"][field]["description"].is_string(),
                    "{field}"
                );
            }
            assert_eq!(root["properties"]["metadata"], json!({"type": "object"}));
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
