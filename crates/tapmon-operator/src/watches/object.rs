//! A watched object, decoded once into the JSON value the engine reads.
//!
//! `DynamicObject` flattens two fields, so serde first buffers every object into an untyped
//! tree, builds the value from that tree, and the engine then needed `metadata` turned back
//! into JSON: three passes and three sets of allocations per object, during an initial list of
//! tens of thousands. Here the object is parsed straight into one `Value`, and the watch keeps
//! a copy of only the metadata it reads itself (name, namespace, resourceVersion).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ApiResource;
use kube::core::{DynamicResourceScope, Resource};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An object of any kind as a watch receives it.
#[derive(Debug, Clone)]
pub struct WatchedObject {
    /// Name, namespace and resourceVersion, copied out of `value` for the watcher (which resumes
    /// from the last resourceVersion) and for the shard and namespace filters.
    metadata: ObjectMeta,
    /// The whole object as the API server sent it.
    value: Value,
}

impl WatchedObject {
    /// Namespace; empty for a cluster-scoped object.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// Name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The object as the engine reads it, with `apiVersion` and `kind` set to what was watched:
    /// list items of built-in kinds come without them, and paths into them must work as in
    /// kube-state-metrics.
    pub fn into_value(self, api_version: &str, kind: &str) -> Value {
        let mut map = match self.value {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        map.insert("apiVersion".into(), Value::String(api_version.to_owned()));
        map.insert("kind".into(), Value::String(kind.to_owned()));
        Value::Object(map)
    }
}

impl<'de> Deserialize<'de> for WatchedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let metadata = value.get("metadata");
        let text = |field: &str| {
            metadata
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let metadata = ObjectMeta {
            name: text("name"),
            namespace: text("namespace"),
            resource_version: text("resourceVersion"),
            ..ObjectMeta::default()
        };
        Ok(Self { metadata, value })
    }
}

/// As for `DynamicObject`: the kind is known at run time, from discovery.
impl Resource for WatchedObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use kube::core::{ObjectList, WatchEvent};
    use serde_json::json;

    use super::*;

    fn workload() -> Value {
        json!({
            "apiVersion": "carto.run/v1alpha1",
            "kind": "Workload",
            "metadata": {
                "name": "web",
                "namespace": "dev",
                "resourceVersion": "42",
                "labels": {"app.kubernetes.io/part-of": "web"},
                "creationTimestamp": "2026-11-28T10:00:00Z"
            },
            "spec": {"source": {"git": {"url": "https://example.com/web"}}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        })
    }

    #[test]
    fn a_watch_event_decodes_to_the_object_as_sent() {
        let line = json!({"type": "MODIFIED", "object": workload()}).to_string();
        let event: WatchEvent<WatchedObject> = serde_json::from_str(&line).expect("event");
        let WatchEvent::Modified(obj) = event else {
            panic!("not a modification: {event:?}");
        };
        assert_eq!((obj.namespace(), obj.name()), ("dev", "web"));
        assert_eq!(obj.meta().resource_version.as_deref(), Some("42"));
        assert_eq!(obj.into_value("carto.run/v1alpha1", "Workload"), workload());
    }

    #[test]
    fn list_items_get_the_watched_api_version_and_kind() {
        let mut item = workload();
        let map = item.as_object_mut().expect("object");
        map.remove("apiVersion");
        map.remove("kind");
        let list = json!({
            "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "43"},
            "items": [item]
        });
        let list: ObjectList<WatchedObject> = serde_json::from_value(list).expect("list");
        let obj = list.items.into_iter().next().expect("one item");
        assert_eq!(obj.into_value("carto.run/v1alpha1", "Workload"), workload());
    }

    #[test]
    fn an_object_without_metadata_has_empty_identity() {
        let obj: WatchedObject = serde_json::from_value(json!({"spec": {}})).expect("object");
        assert_eq!((obj.namespace(), obj.name()), ("", ""));
        assert_eq!(obj.meta().resource_version, None);
        let obj: WatchedObject = serde_json::from_value(json!({"metadata": {"name": 7}}))
            .expect("a non-string name is left out, not an error");
        assert_eq!(obj.name(), "");
    }
}
