//! Label sources compiled from a config, and the per-series label set.

use std::borrow::Cow;

use serde_json::Value;
use tapmon_exposition::sanitize_label_name;
use tapmon_selector::Path;
use tapmon_selector::value::label_value;

/// Where one configured label gets its value.
#[derive(Debug, Clone)]
pub(crate) enum LabelSource {
    /// A fixed value (`commonLabels`).
    Fixed(Box<str>),
    /// The value at a path.
    Path(Path),
    /// One label per key of the map at a path (`*`, or `prefix_*`).
    Expand {
        /// Prepended to each key before sanitising.
        prefix: Box<str>,
        /// Where the map is.
        path: Path,
    },
}

/// A compiled label: its sanitised name and its source.
#[derive(Debug, Clone)]
pub(crate) struct LabelSpec {
    pub(crate) name: Box<str>,
    pub(crate) source: LabelSource,
}

/// Labels of one series under construction; a later `set` of a name overrides an earlier one
/// in place, which is how precedence between config levels is applied.
#[derive(Debug, Default, Clone)]
pub(crate) struct LabelSet<'a> {
    entries: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> LabelSet<'a> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    pub(crate) fn set(&mut self, name: Cow<'a, str>, value: Cow<'a, str>) {
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Applies compiled specs against `node`, in order. Star expansions go first so that plain
    /// names of the same level win, as in kube-state-metrics.
    pub(crate) fn apply(&mut self, specs: &'a [LabelSpec], node: &'a Value) {
        for spec in specs {
            if let LabelSource::Expand { prefix, path } = &spec.source
                && let Some(Value::Object(map)) = path.get(node)
            {
                for (key, value) in map {
                    let name = if prefix.is_empty() {
                        sanitize_label_name(key)
                    } else {
                        Cow::Owned(sanitize_label_name(&format!("{prefix}{key}")).into_owned())
                    };
                    self.set(name, label_value(Some(value)));
                }
            }
        }
        for spec in specs {
            match &spec.source {
                LabelSource::Fixed(value) => {
                    self.set(Cow::Borrowed(&spec.name), Cow::Borrowed(value))
                }
                LabelSource::Path(path) => {
                    if let Some(found) = path.get(node).filter(|v| !v.is_null()) {
                        self.set(Cow::Borrowed(&spec.name), label_value(Some(found)));
                    }
                }
                LabelSource::Expand { .. } => {}
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    /// A hash of the whole set, to spot two series of one metric with the same labels.
    pub(crate) fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.entries.hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(name: &str, source: LabelSource) -> LabelSpec {
        LabelSpec {
            name: name.into(),
            source,
        }
    }

    #[test]
    fn plain_labels_beat_expanded_ones_and_missing_values_are_omitted() {
        let o = json!({"metadata": {"name": "n", "labels": {"app.kubernetes.io/name": "x", "name": "from-map"}}});
        let specs = vec![
            spec(
                "name",
                LabelSource::Path(Path::from_segments(&["metadata", "name"]).unwrap()),
            ),
            spec(
                "gone",
                LabelSource::Path(Path::from_segments(&["nope"]).unwrap()),
            ),
            spec(
                "*",
                LabelSource::Expand {
                    prefix: "".into(),
                    path: Path::from_segments(&["metadata", "labels"]).unwrap(),
                },
            ),
            spec(
                "label_*",
                LabelSource::Expand {
                    prefix: "label_".into(),
                    path: Path::from_segments(&["metadata", "labels"]).unwrap(),
                },
            ),
        ];
        let mut set = LabelSet::default();
        set.apply(&specs, &o);
        let got: Vec<_> = set.iter().collect();
        assert_eq!(
            got,
            [
                ("app_kubernetes_io_name", "x"),
                ("name", "n"),
                ("label_app_kubernetes_io_name", "x"),
                ("label_name", "from-map"),
            ]
        );
    }

    #[test]
    fn later_sets_override_in_place() {
        let mut set = LabelSet::default();
        set.set("a".into(), "1".into());
        set.set("b".into(), "2".into());
        set.set("a".into(), "3".into());
        assert_eq!(set.iter().collect::<Vec<_>>(), [("a", "3"), ("b", "2")]);
    }
}
