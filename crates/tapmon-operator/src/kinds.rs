//! The kinds the operator watches: a kind served at one version ([`ServedKind`], what discovery
//! finds) and one shared watch of it ([`WatchKey`], the kind plus a server-side selector).

use kube::api::ApiResource;
use tapmon_crs::ObjectKind;

/// One kind the API server serves at one version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServedKind {
    /// API group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Resource name in URLs.
    pub plural: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

impl ServedKind {
    /// The kind as the engine labels its series (`customresource_group` and so on).
    pub fn object_kind(&self) -> ObjectKind<'_> {
        ObjectKind {
            group: &self.group,
            version: &self.version,
            kind: &self.kind,
        }
    }

    /// The resource as RBAC rules name it: `plural.group`, or `plural` in the core group.
    pub fn rbac_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The kind as the API client addresses it.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: if self.group.is_empty() {
                self.version.clone()
            } else {
                format!("{}/{}", self.group, self.version)
            },
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }
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

/// A namespaced served kind with the usual plural, for tests.
#[cfg(test)]
pub(crate) fn served_kind(group: &str, version: &str, kind: &str) -> ServedKind {
    ServedKind {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
        namespaced: true,
    }
}

/// A watch of a namespaced served kind without a selector, for tests.
#[cfg(test)]
pub(crate) fn watch_key(group: &str, version: &str, kind: &str) -> WatchKey {
    WatchKey {
        kind: served_kind(group, version, kind),
        label_selector: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_kinds_have_no_group_in_their_api_version() {
        assert_eq!(
            served_kind("", "v1", "ConfigMap")
                .api_resource()
                .api_version,
            "v1"
        );
        let build = served_kind("kpack.io", "v1alpha2", "Build");
        assert_eq!(build.api_resource().api_version, "kpack.io/v1alpha2");
        assert_eq!(build.object_kind().version, "v1alpha2");
        let key = WatchKey {
            kind: build,
            label_selector: Some("app=x".into()),
        };
        assert_eq!(key.to_string(), "kpack.io/v1alpha2 Build (app=x)");
    }
}
