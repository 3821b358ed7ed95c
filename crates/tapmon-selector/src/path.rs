//! The one internal path form both user syntaxes compile to.

use std::fmt;

use serde_json::Value;

use crate::jsonpath;

/// Why a path could not be compiled. The message quotes the path as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `[key=value]` segment without `=` or without a key.
    #[error("invalid list filter {segment:?}: expected [key=value]")]
    InvalidFilter {
        /// The offending segment.
        segment: String,
    },
    /// A JSONPath string that does not parse.
    #[error("invalid JSONPath `{path}` at byte {offset}: {reason}")]
    InvalidJsonPath {
        /// The JSONPath as written.
        path: String,
        /// Byte offset of the problem.
        offset: usize,
        /// What was expected or is not supported.
        reason: String,
    },
}

/// A literal a list filter compares against.
///
/// Strings must match exactly; a numeric literal also matches the same number written as a
/// JSON number or a numeric string (`[replicas=3]` matches `3`, `"3"` and `3.0`); a boolean
/// literal matches a JSON boolean. kube-state-metrics compares with its lenient value
/// conversion instead, so its `[status=False]` also selects `"Unknown"` and `"no"`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterValue {
    text: Box<str>,
    number: Option<f64>,
    boolean: Option<bool>,
}

impl FilterValue {
    /// Builds the comparisons for a literal as written in a path.
    pub fn new(text: &str) -> Self {
        Self {
            text: text.into(),
            number: text.parse().ok(),
            boolean: parse_go_bool(text),
        }
    }

    /// The literal as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn matches(&self, candidate: &Value) -> bool {
        match candidate {
            Value::String(s) => {
                s.as_str() == &*self.text
                    || self
                        .number
                        .is_some_and(|n| s.parse::<f64>().is_ok_and(|c| c == n))
            }
            Value::Number(n) => self.number.is_some_and(|want| n.as_f64() == Some(want)),
            Value::Bool(b) => self.boolean == Some(*b),
            Value::Null | Value::Array(_) | Value::Object(_) => false,
        }
    }
}

/// Go's `strconv.ParseBool`, which kube-state-metrics uses for filter literals.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// A map key; on a list, an index when the key is an integer (negative counts from the end).
    Key {
        /// The key as written.
        name: Box<str>,
        /// The key as a list index, when it is one.
        index: Option<i64>,
    },
    /// The first element of a list that is a map whose `key` equals `value`.
    Filter {
        /// The field of each element to compare.
        key: Box<str>,
        /// What it must equal.
        value: FilterValue,
    },
}

impl Segment {
    /// A key segment; integer keys also index lists.
    pub fn key(name: &str) -> Self {
        Segment::Key {
            name: name.into(),
            index: name.parse().ok(),
        }
    }

    fn step<'v>(&self, node: &'v Value) -> Option<&'v Value> {
        match (self, node) {
            (Segment::Key { name, .. }, Value::Object(map)) => map.get(&**name),
            (Segment::Key { index: Some(i), .. }, Value::Array(list)) => {
                let len = i64::try_from(list.len()).ok()?;
                let at = if *i < 0 { len + *i } else { *i };
                list.get(usize::try_from(at).ok()?)
            }
            (Segment::Filter { key, value }, Value::Array(list)) => list.iter().find(|element| {
                element
                    .as_object()
                    .and_then(|m| m.get(&**key))
                    .is_some_and(|candidate| value.matches(candidate))
            }),
            _ => None,
        }
    }
}

/// A compiled path: evaluated against an object, it finds at most one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    segments: Vec<Segment>,
    source: Box<str>,
}

impl Path {
    /// The empty path, which finds the object itself.
    pub fn root() -> Self {
        Self {
            segments: Vec::new(),
            source: "[]".into(),
        }
    }

    /// Compiles a kube-state-metrics path list, e.g. `["status", "conditions", "[type=Ready]"]`.
    pub fn from_segments<S: AsRef<str>>(parts: &[S]) -> Result<Self, PathError> {
        let segments = parts
            .iter()
            .map(|p| parse_list_segment(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let source = format!(
            "[{}]",
            parts
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Self {
            segments,
            source: source.into(),
        })
    }

    /// Compiles a kubectl-dialect JSONPath, e.g. `.status.conditions[?(@.type=="Ready")].status`.
    pub fn from_jsonpath(expr: &str) -> Result<Self, PathError> {
        Ok(Self {
            segments: jsonpath::parse(expr)?,
            source: expr.into(),
        })
    }

    /// Builds a path from already compiled segments; `source` is how messages name it.
    pub fn from_parts(segments: Vec<Segment>, source: impl Into<Box<str>>) -> Self {
        Self {
            segments,
            source: source.into(),
        }
    }

    /// The path's steps.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True for the path that finds the object itself.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// This path followed by `rest`.
    pub fn join(&self, rest: &Path) -> Path {
        if rest.is_root() {
            return self.clone();
        }
        if self.is_root() {
            return rest.clone();
        }
        let mut segments = self.segments.clone();
        segments.extend(rest.segments.iter().cloned());
        Path {
            segments,
            source: format!("{} + {}", self.source, rest.source).into(),
        }
    }

    /// Follows the path. `None` when any step is missing or does not fit the value's shape.
    pub fn get<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.segments
            .iter()
            .try_fold(root, |node, segment| segment.step(node))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn parse_list_segment(part: &str) -> Result<Segment, PathError> {
    let Some(inner) = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) else {
        return Ok(Segment::key(part));
    };
    match inner.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok(Segment::Filter {
            key: key.into(),
            value: FilterValue::new(value),
        }),
        _ => Err(PathError::InvalidFilter {
            segment: part.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object() -> Value {
        json!({
            "metadata": {"name": "app", "labels": {"carto.run/workload-name": "app"}},
            "spec": {"params": [{"name": "debug", "value": "true"}, {"name": "live-update", "value": false}],
                     "replicas": 3, "ports": [{"port": 8080}, {"port": 9090}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Succeeded", "status": "Unknown", "reason": "Building"}
            ]}
        })
    }

    #[test]
    fn keys_with_dots_are_one_segment() {
        let p = Path::from_segments(&["metadata", "labels", "carto.run/workload-name"]).unwrap();
        assert_eq!(p.get(&object()), Some(&json!("app")));
    }

    #[test]
    fn integer_keys_index_lists_and_negative_counts_from_the_end() {
        let o = object();
        let first = Path::from_segments(&["spec", "ports", "0", "port"]).unwrap();
        let last = Path::from_segments(&["spec", "ports", "-1", "port"]).unwrap();
        let past = Path::from_segments(&["spec", "ports", "2", "port"]).unwrap();
        let before = Path::from_segments(&["spec", "ports", "-3", "port"]).unwrap();
        assert_eq!(first.get(&o), Some(&json!(8080)));
        assert_eq!(last.get(&o), Some(&json!(9090)));
        assert_eq!(past.get(&o), None);
        assert_eq!(before.get(&o), None);
    }

    #[test]
    fn integer_keys_on_maps_are_map_keys() {
        let o = json!({"a": {"0": "zero"}});
        assert_eq!(
            Path::from_segments(&["a", "0"]).unwrap().get(&o),
            Some(&json!("zero"))
        );
    }

    #[test]
    fn filters_pick_the_first_matching_element() {
        let o = object();
        let p =
            Path::from_segments(&["status", "conditions", "[type=Succeeded]", "reason"]).unwrap();
        assert_eq!(p.get(&o), Some(&json!("Building")));
        let p = Path::from_segments(&["spec", "params", "[name=debug]", "value"]).unwrap();
        assert_eq!(p.get(&o), Some(&json!("true")));
        let missing = Path::from_segments(&["spec", "params", "[name=nope]", "value"]).unwrap();
        assert_eq!(missing.get(&o), None);
    }

    #[test]
    fn filters_compare_numbers_and_booleans_by_value() {
        let o = json!({"l": [{"n": 3, "b": true, "s": "3"}, {"n": 4, "b": false, "s": "x"}]});
        let n = Path::from_segments(&["l", "[n=3.0]", "s"]).unwrap();
        assert_eq!(n.get(&o), Some(&json!("3")));
        let s = Path::from_segments(&["l", "[s=3]", "n"]).unwrap();
        assert_eq!(s.get(&o), Some(&json!(3)));
        let b = Path::from_segments(&["l", "[b=false]", "n"]).unwrap();
        assert_eq!(b.get(&o), Some(&json!(4)));
        let words = json!({"l": [{"s": "no"}, {"s": "Unknown"}, {"s": "0"}, {"s": "False"}]});
        let f = Path::from_segments(&["l", "[s=False]", "s"]).unwrap();
        assert_eq!(f.get(&words), Some(&json!("False")));
    }

    #[test]
    fn malformed_filters_are_errors_naming_the_segment() {
        let err = Path::from_segments(&["status", "[type]"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid list filter \"[type]\": expected [key=value]"
        );
        assert!(Path::from_segments(&["[=x]"]).is_err());
    }

    #[test]
    fn shape_mismatches_are_missing_not_errors() {
        let o = object();
        assert_eq!(
            Path::from_segments(&["metadata", "name", "x"])
                .unwrap()
                .get(&o),
            None
        );
        assert_eq!(
            Path::from_segments(&["spec", "ports", "port"])
                .unwrap()
                .get(&o),
            None
        );
        assert_eq!(
            Path::from_segments(&["metadata", "[a=b]"]).unwrap().get(&o),
            None
        );
    }

    #[test]
    fn root_and_join() {
        let o = object();
        assert_eq!(Path::root().get(&o), Some(&o));
        let base = Path::from_segments(&["status", "conditions"]).unwrap();
        let rel = Path::from_segments(&["0", "type"]).unwrap();
        assert_eq!(base.join(&rel).get(&o), Some(&json!("Ready")));
        assert_eq!(base.join(&Path::root()), base);
    }

    #[test]
    fn display_is_the_source() {
        let p = Path::from_segments(&["status", "[type=Ready]"]).unwrap();
        assert_eq!(p.to_string(), "[status, [type=Ready]]");
        let j = Path::from_jsonpath(".status.phase").unwrap();
        assert_eq!(j.to_string(), ".status.phase");
    }
}
