//! The first phase of a reconcile: a TapMonitor's spec checked and compiled. Pure: nothing here
//! touches the API server.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use tapmon_api::TapMonitorSpec;
use tapmon_crs::{Compiled, ConfigError};

/// Why a TapMonitor cannot be used as written. Permanent until the spec changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    /// `spec.selector` does not parse.
    #[error("spec.selector: {0}")]
    Selector(String),
    /// `spec.namespaceSelector.labelSelector` does not parse.
    #[error("spec.namespaceSelector.labelSelector: {0}")]
    NamespaceSelector(String),
    /// A built-in preset does not parse (a defect of the build).
    #[error(transparent)]
    Preset(#[from] tapmon_presets::PresetError),
}

/// Which namespaces' objects a monitor admits.
#[derive(Debug, Clone, Default)]
pub struct NamespaceFilter {
    names: BTreeSet<String>,
    labels: Option<Selector>,
}

impl NamespaceFilter {
    /// True when the filter needs namespace labels to decide.
    pub fn uses_labels(&self) -> bool {
        self.labels.is_some()
    }

    /// True when objects of `namespace` belong to the monitor. Cluster-scoped objects
    /// (empty namespace) are always admitted.
    pub fn admits(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        if namespace.is_empty() {
            return true;
        }
        if !self.names.is_empty() && !self.names.contains(namespace) {
            return false;
        }
        match &self.labels {
            None => true,
            Some(selector) => labels.is_some_and(|l| selector.matches(l)),
        }
    }
}

/// A TapMonitor compiled: what to evaluate, and how to select objects.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The compiled config (presets of enabled groups, then own resources).
    pub compiled: Compiled,
    /// Index of the first of the monitor's own resources in `compiled`.
    pub own_from: usize,
    /// Problems in the config; those parts are left out. Named for the user with
    /// [`ConfigError::placed`] and `own_from`.
    pub problems: Vec<ConfigError>,
    /// Label selector for the watched objects, as the API server takes it.
    pub object_selector: Option<String>,
    /// Which namespaces count.
    pub namespaces: NamespaceFilter,
}

fn selector(ls: &LabelSelector) -> Result<Selector, String> {
    Selector::try_from(ls.clone()).map_err(|e| e.0)
}

/// Validates and compiles a spec. Invalid selectors are errors (watching without them would
/// read more than the user asked for); config problems only leave their metric out.
pub fn validate(spec: &TapMonitorSpec) -> Result<Validated, ValidateError> {
    let object_selector = spec
        .selector
        .as_ref()
        .map(selector)
        .transpose()
        .map_err(ValidateError::Selector)?
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty());
    let namespaces = match &spec.namespace_selector {
        None => NamespaceFilter::default(),
        Some(ns) => NamespaceFilter {
            names: ns.names.iter().cloned().collect(),
            labels: ns
                .label_selector
                .as_ref()
                .map(selector)
                .transpose()
                .map_err(ValidateError::NamespaceSelector)?,
        },
    };
    let config = spec.config()?;
    let (compiled, problems) = Compiled::compile(&config.spec);
    Ok(Validated {
        compiled,
        own_from: config.own_from,
        problems,
        object_selector,
        namespaces,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> TapMonitorSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn config_problems_name_the_monitors_own_path_and_keep_the_rest() {
        let v = validate(&spec(json!({"resources": [
            {"groupVersionKind": {"group": "example.com", "version": "v1", "kind": "Foo"},
             "metrics": [{"name": "bad", "each": {"type": "Gauge", "gauge": {"path": ["[x]"]}}},
                         {"name": "good", "each": {"type": "Info", "info": {}}}]}
        ]})))
        .unwrap();
        let problems: Vec<String> = v
            .problems
            .iter()
            .map(|p| p.placed(v.own_from).to_string())
            .collect();
        assert_eq!(
            problems,
            [
                "spec.resources[0] (example.com/v1/Foo) metric kube_customresource_bad metrics[0].each.gauge.path: invalid list filter \"[x]\": expected [key=value]"
            ]
        );
        assert_eq!(v.compiled.resources().len(), 22);
    }

    #[test]
    fn selectors_compile_and_bad_ones_are_errors() {
        let v = validate(&spec(json!({
            "selector": {"matchLabels": {"app": "x"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]},
            "namespaceSelector": {"names": ["a", "b"], "labelSelector": {"matchLabels": {"tap": "on"}}}
        })))
        .unwrap();
        assert_eq!(v.object_selector.as_deref(), Some("app=x,tier"));
        let on = BTreeMap::from([("tap".to_owned(), "on".to_owned())]);
        assert!(v.namespaces.admits("a", Some(&on)));
        assert!(!v.namespaces.admits("c", Some(&on)));
        assert!(!v.namespaces.admits("b", Some(&BTreeMap::new())));
        assert!(!v.namespaces.admits("b", None));
        assert!(v.namespaces.admits("", None), "cluster-scoped objects");

        let bad = TapMonitorSpec {
            selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "a".into(),
                    operator: "Sometimes".into(),
                    values: None,
                }]),
                match_labels: None,
            }),
            ..TapMonitorSpec::default()
        };
        assert!(matches!(validate(&bad), Err(ValidateError::Selector(_))));
    }
}
