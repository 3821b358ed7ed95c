//! Objects rendered offline, as the operator would serve them: the one path from a list of
//! saved objects to an exposition, used by `tapmon render`, the tests and the end-to-end
//! expectations.

use std::sync::Arc;

use serde_json::Value;
use tapmon_exposition::{Format, ObjectKey, ObjectRenderer, Store, StoreStats};

use crate::live::{Live, Seen};
use crate::{Compiled, EvalErrors, ObjectKind};

/// What could not be evaluated in one object.
#[derive(Debug)]
pub struct ObjectErrors {
    /// The object's position in the input.
    pub index: usize,
    /// Its kind.
    pub kind: String,
    /// Its namespace (empty for a cluster-scoped object).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The errors, the first few in detail.
    pub errors: EvalErrors,
}

/// Saved objects rendered by a compiled config.
#[derive(Debug)]
pub struct Offline {
    store: Store,
    /// Aggregates over the objects; counters and histograms stay empty (a list counts nothing).
    live: Live,
    errors: Vec<ObjectErrors>,
}

impl Offline {
    /// The exposition, families by name and objects by namespace and name, then the
    /// aggregates.
    pub fn encode(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.store.encoded_len(format));
        self.store.encode(format, &mut out);
        if !self.live.is_empty() {
            let trailer = format.trailer();
            out.truncate(out.len() - trailer.len());
            self.live.encode(format, &mut out);
            out.extend_from_slice(trailer);
        }
        out
    }

    /// The text exposition as a string.
    pub fn text(&self) -> String {
        // The renderer writes UTF-8 only: label values come from JSON strings.
        String::from_utf8_lossy(&self.encode(Format::Text)).into_owned()
    }

    /// Objects and series held.
    pub fn stats(&self) -> StoreStats {
        self.store.total()
    }

    /// The objects that had values which could not be evaluated, in input order.
    pub fn errors(&self) -> &[ObjectErrors] {
        &self.errors
    }
}

fn metadata<'v>(object: &'v Value, field: &str) -> &'v str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Compiled {
    /// Renders `objects` with every resource that reads their kind. Objects without
    /// `apiVersion` and `kind` match nothing; a later object with the namespace and name of an
    /// earlier one replaces it, as a watch update would.
    pub fn render_objects<'v>(&self, objects: impl IntoIterator<Item = &'v Value>) -> Offline {
        let mut store = Store::new(Arc::clone(self.families()));
        let mut renderer = ObjectRenderer::new(self.families());
        let mut live = Live::new(0.0);
        let mut errors = Vec::new();
        for (index, object) in objects.into_iter().enumerate() {
            let (namespace, name) = (metadata(object, "namespace"), metadata(object, "name"));
            let mut found = EvalErrors::default();
            let mut resources = Vec::new();
            self.render(object, &mut renderer, &mut found, |resource, rendered| {
                store.upsert(ObjectKey::new(resource, namespace, name), rendered);
                resources.push(resource);
            });
            for resource in resources {
                let id = (namespace, name);
                let at = (0.0, usize::MAX);
                live.observe(self, resource, object, id, Seen::Listed, at, &mut found);
            }
            if !found.is_empty() {
                errors.push(ObjectErrors {
                    index,
                    kind: ObjectKind::of(object)
                        .map(|k| k.kind.to_owned())
                        .unwrap_or_default(),
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    errors: found,
                });
            }
        }
        Offline {
            store,
            live,
            errors,
        }
    }
}
