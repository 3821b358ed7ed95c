//! Which kinds the cluster serves, and at which version: the input of the resolve phase.
//! [`DiscoveryCache`] keeps the last answer until a CustomResourceDefinition changes, which
//! [`crd_changes`] notices.

mod cache;
mod crd_changes;

use std::collections::{BTreeMap, BTreeSet};

use kube::Client;
use kube::discovery::{Discovery, Scope};

pub use cache::DiscoveryCache;
pub use crd_changes::crd_changes;

use crate::kinds::ServedKind;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Group {
    preferred: Option<String>,
    /// Versions in the server's order of preference, with their kinds.
    versions: Vec<(String, Vec<ServedKind>)>,
}

/// What discovery found for the groups a set of monitors reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoverySnapshot {
    groups: BTreeMap<String, Group>,
}

impl DiscoverySnapshot {
    /// Asks the API server about `groups`; groups it does not serve are simply absent.
    pub async fn fetch(client: Client, groups: &BTreeSet<String>) -> Result<Self, kube::Error> {
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        let discovery = Discovery::new(client).filter(&names).run().await?;
        let mut snapshot = DiscoverySnapshot::default();
        for group in discovery.groups() {
            let entry = snapshot.groups.entry(group.name().to_owned()).or_default();
            entry.preferred = group.preferred_version().map(str::to_owned);
            for version in group.versions() {
                let kinds = group
                    .versioned_resources(version)
                    .into_iter()
                    .filter(|(ar, _)| !ar.plural.contains('/'))
                    .map(|(ar, caps)| ServedKind {
                        group: ar.group,
                        version: ar.version,
                        kind: ar.kind,
                        plural: ar.plural,
                        namespaced: caps.scope == Scope::Namespaced,
                    })
                    .collect();
                entry.versions.push((version.to_owned(), kinds));
            }
        }
        Ok(snapshot)
    }

    /// Records a served kind; `preferred` marks the group's preferred version. For tests and
    /// for building a snapshot from CRDs.
    pub fn insert(&mut self, kind: ServedKind, preferred: bool) {
        let group = self.groups.entry(kind.group.clone()).or_default();
        if preferred {
            group.preferred = Some(kind.version.clone());
        }
        match group.versions.iter_mut().find(|(v, _)| *v == kind.version) {
            Some((_, kinds)) => kinds.push(kind),
            None => group.versions.push((kind.version.clone(), vec![kind])),
        }
    }

    /// The kinds a config entry reads: `version` and `kind` may be `*` (or empty). A `*` version
    /// resolves to one version per kind — the group's preferred one when it serves the kind,
    /// otherwise the first that does — so no object is read twice.
    pub fn resolve(&self, group: &str, version: &str, kind: &str) -> Vec<ServedKind> {
        let Some(g) = self.groups.get(group) else {
            return Vec::new();
        };
        let any = |p: &str| p.is_empty() || p == "*";
        if !any(version) {
            return g
                .versions
                .iter()
                .filter(|(v, _)| v == version)
                .flat_map(|(_, kinds)| kinds.iter())
                .filter(|k| any(kind) || k.kind == kind)
                .cloned()
                .collect();
        }
        // Preferred version first, then the rest in server order.
        let mut order: Vec<&(String, Vec<ServedKind>)> = g.versions.iter().collect();
        order.sort_by_key(|(v, _)| Some(v) != g.preferred.as_ref());
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (_, kinds) in order {
            for k in kinds.iter().filter(|k| any(kind) || k.kind == kind) {
                if seen.insert(k.kind.clone()) {
                    out.push(k.clone());
                }
            }
        }
        out.sort_by(|a, b| a.kind.cmp(&b.kind));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kinds::served_kind as kind;

    fn snapshot() -> DiscoverySnapshot {
        let mut s = DiscoverySnapshot::default();
        s.insert(kind("tekton.dev", "v1", "PipelineRun"), true);
        s.insert(kind("tekton.dev", "v1", "TaskRun"), true);
        s.insert(kind("tekton.dev", "v1beta1", "PipelineRun"), false);
        s.insert(kind("tekton.dev", "v1beta1", "TaskRun"), false);
        s.insert(kind("tekton.dev", "v1beta1", "ClusterTask"), false);
        s
    }

    #[test]
    fn wildcard_versions_pick_one_version_per_kind_preferring_the_preferred() {
        let s = snapshot();
        let got: Vec<(String, String)> = s
            .resolve("tekton.dev", "*", "*")
            .into_iter()
            .map(|k| (k.kind, k.version))
            .collect();
        assert_eq!(
            got,
            [
                ("ClusterTask".to_owned(), "v1beta1".to_owned()),
                ("PipelineRun".to_owned(), "v1".to_owned()),
                ("TaskRun".to_owned(), "v1".to_owned())
            ]
        );
        assert_eq!(s.resolve("tekton.dev", "", "TaskRun")[0].version, "v1");
    }

    #[test]
    fn pinned_versions_and_absent_groups() {
        let s = snapshot();
        assert_eq!(
            s.resolve("tekton.dev", "v1beta1", "TaskRun")[0].version,
            "v1beta1"
        );
        assert!(s.resolve("tekton.dev", "v2", "TaskRun").is_empty());
        assert!(s.resolve("kpack.io", "*", "Build").is_empty());
        assert_eq!(s.resolve("tekton.dev", "v1", "*").len(), 2);
    }
}
