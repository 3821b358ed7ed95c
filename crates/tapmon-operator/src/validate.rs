//! The first phase of a reconcile: a TapMonitor's spec checked and compiled. Pure: nothing here
//! touches the API server.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use tapmon_api::TapMonitorSpec;
use tapmon_crs::{Compiled, ConfigError};

use crate::object::MonitorKey;

/// Why a TapMonitor cannot be used as written. Permanent until the spec changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    /// `spec.selector` does not parse.
    #[error("spec.selector: {0}")]
    Selector(String),
    /// `spec.namespaceSelector.labelSelector` does not parse.
    #[error("spec.namespaceSelector.labelSelector: {0}")]
    NamespaceSelector(String),
    /// A TapMonitor names namespaces other than its own.
    #[error(
        "spec.namespaceSelector: a TapMonitor reads its own namespace {own} only, not {}; a ClusterTapMonitor reads other namespaces",
        others.join(", ")
    )]
    OutsideNamespace {
        /// The monitor's namespace.
        own: String,
        /// The others it names (or `labelSelector`).
        others: Vec<String>,
    },
    /// A built-in preset does not parse (a defect of the build).
    #[error(transparent)]
    Preset(#[from] tapmon_presets::PresetError),
}

/// What the operator allows every monitor, whatever its spec says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most series a monitor serves (its `spec.seriesLimit` may only lower it).
    pub series: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { series: 1_000_000 }
    }
}

/// Which namespaces' objects a monitor admits.
#[derive(Debug, Clone, Default)]
pub struct NamespaceFilter {
    names: BTreeSet<String>,
    labels: Option<Selector>,
    /// Cluster-scoped objects (no namespace) belong to cluster-wide monitors only.
    cluster_scoped: bool,
}

impl NamespaceFilter {
    /// True when the filter needs namespace labels to decide.
    pub fn uses_labels(&self) -> bool {
        self.labels.is_some()
    }

    /// True when objects of `namespace` belong to the monitor. Cluster-scoped objects (empty
    /// namespace) belong to ClusterTapMonitors only.
    pub fn admits(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        if namespace.is_empty() {
            return self.cluster_scoped;
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
    /// Most series served.
    pub series_limit: usize,
}

fn selector(ls: &LabelSelector) -> Result<Selector, String> {
    Selector::try_from(ls.clone()).map_err(|e| e.0)
}

/// Which namespaces a monitor reads: a TapMonitor its own (and nothing cluster-scoped), a
/// ClusterTapMonitor those its `namespaceSelector` selects, all when absent.
fn namespaces(spec: &TapMonitorSpec, key: &MonitorKey) -> Result<NamespaceFilter, ValidateError> {
    let selector = spec.namespace_selector.as_ref();
    let Some(own) = &key.namespace else {
        return Ok(NamespaceFilter {
            names: selector
                .map(|s| s.names.iter().cloned().collect())
                .unwrap_or_default(),
            labels: selector
                .and_then(|s| s.label_selector.as_ref())
                .map(self::selector)
                .transpose()
                .map_err(ValidateError::NamespaceSelector)?,
            cluster_scoped: true,
        });
    };
    let mut others: Vec<String> = selector
        .map(|s| s.names.iter().filter(|n| *n != own).cloned().collect())
        .unwrap_or_default();
    if selector.is_some_and(|s| s.label_selector.is_some()) {
        others.push("namespaces by label".into());
    }
    if !others.is_empty() {
        return Err(ValidateError::OutsideNamespace {
            own: own.clone(),
            others,
        });
    }
    Ok(NamespaceFilter {
        names: BTreeSet::from([own.clone()]),
        labels: None,
        cluster_scoped: false,
    })
}

/// Validates and compiles the spec of monitor `key`. Invalid selectors and namespaces outside a
/// TapMonitor's own are errors (watching without them would read more than the user may);
/// config problems only leave their metric out.
pub fn validate(
    spec: &TapMonitorSpec,
    key: &MonitorKey,
    limits: Limits,
) -> Result<Validated, ValidateError> {
    let object_selector = spec
        .selector
        .as_ref()
        .map(selector)
        .transpose()
        .map_err(ValidateError::Selector)?
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty());
    let namespaces = namespaces(spec, key)?;
    let config = spec.config()?;
    let (compiled, problems) = Compiled::compile(&config.spec);
    let series_limit = spec
        .series_limit
        .map_or(limits.series, |own| limits.series.min(own as usize));
    Ok(Validated {
        compiled,
        own_from: config.own_from,
        problems,
        object_selector,
        namespaces,
        series_limit,
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

    fn cluster(spec: &TapMonitorSpec) -> Result<Validated, ValidateError> {
        validate(spec, &MonitorKey::cluster("m"), Limits::default())
    }

    #[test]
    fn config_problems_name_the_monitors_own_path_and_keep_the_rest() {
        let v = cluster(&spec(json!({"resources": [
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
        let v = cluster(&spec(json!({
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
        assert_eq!(v.series_limit, Limits::default().series);

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
        assert!(matches!(cluster(&bad), Err(ValidateError::Selector(_))));
    }

    #[test]
    fn a_tapmonitor_reads_its_own_namespace_only() {
        let key = MonitorKey::namespaced("team-a", "m");
        let v = validate(
            &spec(json!({"seriesLimit": 10})),
            &key,
            Limits { series: 100 },
        )
        .unwrap();
        assert!(v.namespaces.admits("team-a", None));
        assert!(!v.namespaces.admits("prod", None));
        assert!(!v.namespaces.admits("", None), "no cluster-scoped objects");
        assert_eq!(v.series_limit, 10);
        let own = spec(json!({"namespaceSelector": {"names": ["team-a"]}}));
        assert!(validate(&own, &key, Limits::default()).is_ok());
        for outside in [
            json!({"namespaceSelector": {"names": ["team-a", "prod"]}}),
            json!({"namespaceSelector": {"labelSelector": {"matchLabels": {"tap": "on"}}}}),
        ] {
            let err = validate(&spec(outside), &key, Limits::default()).unwrap_err();
            assert!(
                matches!(err, ValidateError::OutsideNamespace { .. }),
                "{err}"
            );
            assert!(
                err.to_string().starts_with("spec.namespaceSelector"),
                "{err}"
            );
        }
        // The operator's ceiling wins over a larger spec.
        let v = validate(
            &spec(json!({"seriesLimit": 1000})),
            &key,
            Limits { series: 100 },
        )
        .unwrap();
        assert_eq!(v.series_limit, 100);
    }
}
