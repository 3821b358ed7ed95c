//! The pure middle of a reconcile: validate and compile a TapMonitor, then decide which
//! watches it needs. Nothing here touches the API server.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use tapmon_api::TapMonitorSpec;
use tapmon_crs::Compiled;

use crate::discovery::{DiscoverySnapshot, ServedKind};

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
    /// Problems in the config, each naming resource, metric and path; those parts are left out.
    pub problems: Vec<String>,
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
    let own_from = config.own_from;
    let (compiled, errors) = Compiled::compile(&config.spec);
    let problems = errors
        .iter()
        .map(|e| {
            let place = if e.location.resource >= own_from {
                format!("spec.resources[{}]", e.location.resource - own_from)
            } else {
                format!("preset resource {}", e.location.resource)
            };
            let metric = e
                .location
                .metric
                .as_deref()
                .map(|m| format!(" metric {m}"))
                .unwrap_or_default();
            format!("{place}{metric} {}: {}", e.location.field, e.kind)
        })
        .collect();
    Ok(Validated {
        compiled,
        own_from,
        problems,
        object_selector,
        namespaces,
    })
}

/// One shared watch: a served kind and the label selector passed to the API server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchKey {
    /// The kind and version watched.
    pub kind: ServedKind,
    /// Server-side label selector.
    pub label_selector: Option<String>,
}

impl std::fmt::Display for WatchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} {}",
            self.kind.group, self.kind.version, self.kind.kind
        )?;
        if let Some(s) = &self.label_selector {
            write!(f, " ({s})")?;
        }
        Ok(())
    }
}

/// A kind a monitor reads, installed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindPlan {
    /// API group.
    pub group: String,
    /// Kind (`*` when a wildcard matched nothing).
    pub kind: String,
    /// The watch, when the kind is served.
    pub watch: Option<WatchKey>,
}

/// What a monitor needs: watches (each with the config resources it feeds) and the kinds to
/// report in status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Desired watches and the indices of the resources that read each.
    pub watches: BTreeMap<WatchKey, Vec<u32>>,
    /// Kinds for status, in config order, each once.
    pub kinds: Vec<KindPlan>,
}

/// The API groups a config reads, for discovery.
pub fn groups(compiled: &Compiled) -> BTreeSet<String> {
    compiled
        .resources()
        .iter()
        .map(|r| r.gvk().group.clone())
        .collect()
}

/// Resolves every resource of the config against what the server serves.
pub fn plan(
    compiled: &Compiled,
    discovery: &DiscoverySnapshot,
    label_selector: Option<&str>,
) -> Plan {
    let mut out = Plan::default();
    for (index, resource) in compiled.resources().iter().enumerate() {
        let gvk = resource.gvk();
        let served = discovery.resolve(&gvk.group, &gvk.version, &gvk.kind);
        if served.is_empty() {
            let kind = if gvk.kind.is_empty() {
                "*"
            } else {
                gvk.kind.as_str()
            };
            if !out
                .kinds
                .iter()
                .any(|k| k.group == gvk.group && k.kind == kind)
            {
                out.kinds.push(KindPlan {
                    group: gvk.group.clone(),
                    kind: kind.to_owned(),
                    watch: None,
                });
            }
            continue;
        }
        for kind in served {
            let key = WatchKey {
                kind: kind.clone(),
                label_selector: label_selector.map(str::to_owned),
            };
            out.watches
                .entry(key.clone())
                .or_default()
                .push(index as u32);
            match out
                .kinds
                .iter_mut()
                .find(|k| k.group == kind.group && k.kind == kind.kind)
            {
                Some(existing) => existing.watch = Some(key),
                None => out.kinds.push(KindPlan {
                    group: kind.group.clone(),
                    kind: kind.kind.clone(),
                    watch: Some(key),
                }),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> TapMonitorSpec {
        serde_json::from_value(value).unwrap()
    }

    use crate::discovery::served_kind as served;

    #[test]
    fn only_installed_kinds_get_watches_the_rest_are_not_installed() {
        let v = validate(&spec(json!({"groups": {
            "cartographer": {"enabled": true}, "serviceBindings": {"enabled": false}, "servicesToolkit": {"enabled": false},
            "knative": {"enabled": false}, "carvel": {"enabled": false}, "apiDescriptors": {"enabled": false},
            "tekton": {"enabled": true}, "accelerators": {"enabled": false}, "flux": {"enabled": false},
            "scanning": {"enabled": false}, "kpack": {"enabled": false}
        }})))
        .unwrap();
        assert!(v.problems.is_empty());
        assert_eq!(
            groups(&v.compiled),
            BTreeSet::from(["carto.run".to_owned(), "tekton.dev".to_owned()])
        );
        let mut d = DiscoverySnapshot::default();
        d.insert(served("carto.run", "v1alpha1", "Workload"), true);
        d.insert(served("tekton.dev", "v1", "TaskRun"), true);
        d.insert(served("tekton.dev", "v1beta1", "TaskRun"), false);
        let p = plan(&v.compiled, &d, Some("app=x"));
        let watched: Vec<String> = p.watches.keys().map(ToString::to_string).collect();
        assert_eq!(
            watched,
            [
                "carto.run/v1alpha1 Workload (app=x)",
                "tekton.dev/v1 TaskRun (app=x)"
            ]
        );
        let missing: Vec<&str> = p
            .kinds
            .iter()
            .filter(|k| k.watch.is_none())
            .map(|k| k.kind.as_str())
            .collect();
        assert_eq!(missing, ["Deliverable", "PipelineRun"]);
    }

    #[test]
    fn two_resources_of_one_kind_share_a_watch() {
        let v = validate(&spec(json!({"resources": [
            {"groupVersionKind": {"group": "kpack.io", "version": "*", "kind": "Build"}, "metricNamePrefix": "mine",
             "metrics": [{"name": "n", "each": {"type": "Info", "info": {}}}]}
        ]})))
        .unwrap();
        let mut d = DiscoverySnapshot::default();
        d.insert(served("kpack.io", "v1alpha2", "Build"), true);
        let p = plan(&v.compiled, &d, None);
        let own = v.own_from as u32;
        let build = p
            .watches
            .iter()
            .find(|(k, _)| k.kind.kind == "Build")
            .unwrap();
        assert_eq!(build.1.last(), Some(&own));
        assert_eq!(build.1.len(), 2);
        assert_eq!(p.kinds.iter().filter(|k| k.kind == "Build").count(), 1);
    }

    #[test]
    fn config_problems_name_the_monitors_own_path_and_keep_the_rest() {
        let v = validate(&spec(json!({"resources": [
            {"groupVersionKind": {"group": "example.com", "version": "v1", "kind": "Foo"},
             "metrics": [{"name": "bad", "each": {"type": "Gauge", "gauge": {"path": ["[x]"]}}},
                         {"name": "good", "each": {"type": "Info", "info": {}}}]}
        ]})))
        .unwrap();
        assert_eq!(
            v.problems,
            [
                "spec.resources[0] metric kube_customresource_bad metrics[0].each.gauge.path: invalid list filter \"[x]\": expected [key=value]"
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
