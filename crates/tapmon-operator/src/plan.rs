//! The pure middle of a reconcile: from a validated monitor and what the cluster serves, the
//! watches it needs and the kinds its status reports. Nothing here touches the API server.

use std::collections::{BTreeMap, BTreeSet};

use tapmon_crs::Compiled;

use crate::discovery::DiscoverySnapshot;
use crate::kinds::WatchKey;

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
    use serde_json::json;
    use tapmon_api::TapMonitorSpec;

    use super::*;
    use crate::kinds::served_kind as served;
    use crate::object::MonitorKey;
    use crate::validate::{Limits, Validated, validate as validate_for};

    fn validate(spec: &TapMonitorSpec) -> Result<Validated, crate::validate::ValidateError> {
        validate_for(spec, &MonitorKey::cluster("m"), Limits::default())
    }

    fn spec(value: serde_json::Value) -> TapMonitorSpec {
        serde_json::from_value(value).unwrap()
    }

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
}
