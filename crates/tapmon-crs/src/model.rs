//! The configuration as users write it: kube-state-metrics' `CustomResourceStateMetrics`.
//!
//! Field names are kube-state-metrics' own, so an existing config deserialises unchanged. Maps
//! keep the order they were written in, so labels come out in the order the config lists them.
//! Unknown fields are skipped, as kube-state-metrics' decoder skips them, but never silently:
//! read a config with [`crate::ignored::from_value`], which names each one, so a misspelt
//! `labelFromPath` is a warning (or, with `--strict`, an error) rather than a missing label.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomResourceStateMetrics {
    /// `CustomResourceStateMetrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The resources to read.
    pub spec: Spec,
}

/// The `spec` of a config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// One entry per kind (or kind pattern) to read.
    #[serde(default)]
    pub resources: Vec<Resource>,
}

/// Which objects to read and the metrics to make of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// The kind; `version` and `kind` may be `*`.
    pub group_version_kind: GroupVersionKind,
    /// The resource's plural name, when it is not the lower-cased kind plus `s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_plural: Option<String>,
    /// Prefix of every metric name, joined with `_`. Absent: `kube_customresource`; empty: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name_prefix: Option<String>,
    /// Labels with fixed values on every metric of this resource.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub common_labels: OrderedMap<String>,
    /// Labels read from the object on every metric of this resource.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub labels_from_path: OrderedMap<PathSpec>,
    /// The metrics.
    #[serde(default)]
    pub metrics: Vec<Generator>,
    /// Log verbosity of evaluation errors (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_log_v: Option<i32>,
}

/// Group, version and kind of a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionKind {
    /// API group (empty for the core group).
    #[serde(default)]
    pub group: String,
    /// Version, or `*` for whichever the server serves.
    #[serde(default)]
    pub version: String,
    /// Kind, or `*` for every kind of the group and version.
    #[serde(default)]
    pub kind: String,
}

impl fmt::Display for GroupVersionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}/{}", self.version, self.kind)
        } else {
            write!(f, "{}/{}/{}", self.group, self.version, self.kind)
        }
    }
}

/// One metric family of a resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Generator {
    /// Name, after the resource's prefix.
    pub name: String,
    /// HELP text.
    #[serde(default)]
    pub help: String,
    /// How each series is made.
    pub each: Metric,
    /// Labels with fixed values on this metric.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub common_labels: OrderedMap<String>,
    /// Labels read from the object on this metric.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub labels_from_path: OrderedMap<PathSpec>,
    /// Log verbosity of evaluation errors (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_log_v: Option<i32>,
}

/// The metric type and its settings. Exactly the section named by `type` is used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// `Gauge`, `StateSet` or `Info`.
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// Settings of a Gauge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gauge: Option<Gauge>,
    /// Settings of a StateSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_set: Option<StateSet>,
    /// Settings of an Info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Info>,
    /// Settings of a Duration (tapmon extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// Settings of a Counter (tapmon extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<Counter>,
    /// Settings of a Histogram (tapmon extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    /// Settings of an Aggregate (tapmon extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
}

impl Metric {
    /// The tapmon extension this metric uses, if any: kube-state-metrics would refuse it
    /// (`type: Duration`) or read it differently (`ignoreKeys`), so `tapmon presets` leaves
    /// such metrics out of what it exports.
    pub fn extension(&self) -> Option<Extension> {
        match self.kind {
            MetricKind::Duration => Some(Extension::Duration),
            MetricKind::Counter => Some(Extension::Counter),
            MetricKind::Histogram => Some(Extension::Histogram),
            MetricKind::Aggregate => Some(Extension::Aggregate),
            MetricKind::Gauge
                if self
                    .gauge
                    .as_ref()
                    .is_some_and(|g| !g.ignore_keys.is_empty()) =>
            {
                Some(Extension::IgnoreKeys)
            }
            _ => None,
        }
    }
}

/// A capability of tapmon's config that kube-state-metrics' format does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// `type: Duration`: seconds between two timestamps.
    Duration,
    /// `gauge.ignoreKeys`: keys of a map left out.
    IgnoreKeys,
    /// `type: Counter`: transitions counted live.
    Counter,
    /// `type: Histogram`: durations observed at transitions, live.
    Histogram,
    /// `type: Aggregate`: a count or sum over objects instead of a series per object.
    Aggregate,
}

impl Extension {
    /// The field that uses it, as written in a config.
    pub fn field(self) -> &'static str {
        match self {
            Extension::Duration => "type: Duration",
            Extension::IgnoreKeys => "gauge.ignoreKeys",
            Extension::Counter => "type: Counter",
            Extension::Histogram => "type: Histogram",
            Extension::Aggregate => "type: Aggregate",
        }
    }
}

/// The three metric types of the format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MetricKind {
    /// A number from the object.
    #[default]
    Gauge,
    /// One series per listed state.
    StateSet,
    /// Value 1, information in labels.
    Info,
    /// tapmon extension: seconds from one timestamp of the object to another.
    Duration,
    /// tapmon extension: objects whose state changed to a listed one, counted as tapmon sees
    /// it happen, summed over objects with the same labels.
    Counter,
    /// tapmon extension: a duration of the object observed when its state changes to a listed
    /// one, as tapmon sees it happen, summed over objects with the same labels.
    Histogram,
    /// tapmon extension: how many objects, or the sum of a value of them, per label set: one
    /// series per set instead of one per object.
    Aggregate,
}

/// A number read from the object; over a list or map, one series per element.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gauge {
    /// Where to look; a list or map here yields one series per element.
    #[serde(default, skip_serializing_if = "PathSpec::is_empty")]
    pub path: PathSpec,
    /// The value, relative to `path` (or to each element).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<PathSpec>,
    /// Over a map: the label that carries each key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_from_key: Option<String>,
    /// Labels relative to `path` (or to each element).
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub labels_from_path: OrderedMap<PathSpec>,
    /// A missing value is 0 instead of no series.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nil_is_zero: bool,
    /// tapmon extension: over a map with `labelFromKey`, keys that make no series (a `total`
    /// beside the parts it sums, which would double every `sum`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_keys: Vec<String>,
}

/// tapmon extension: the seconds from `start` to `end`, two RFC 3339 timestamps. Written only
/// once both are there (a run still going has no series) and, with `when`, only in the listed
/// states. An end before its start (clock skew between controllers) or a value that is not a
/// timestamp makes no series and is reported as an evaluation error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Duration {
    /// Where to look; a list here yields one series per element.
    #[serde(default, skip_serializing_if = "PathSpec::is_empty")]
    pub path: PathSpec,
    /// The start timestamp, relative to `path` (or to each element).
    pub start: PathSpec,
    /// The end timestamp, relative to `path` (or to each element).
    pub end: PathSpec,
    /// Only elements whose value here is one of the listed states have a series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
    /// Labels relative to `path` (or to each element).
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub labels_from_path: OrderedMap<PathSpec>,
}

/// tapmon extension: counts, live, the times an object's state changes to one of `to`. Only
/// the metric's own `commonLabels` and `labelsFromPath` label it (the resource's are per object
/// and would defeat the sum), read from the object as it is after the change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counter {
    /// Where the state is, relative to the object.
    pub state: PathSpec,
    /// The states a change into counts; empty: a change to any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
}

/// tapmon extension: observes, live, the seconds from `start` to `end` each time an object's
/// state changes to one of `to`. Labelled as a [`Counter`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// Where the state is, relative to the object.
    pub state: PathSpec,
    /// The states a change into observes; empty: a change to any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// The start timestamp, relative to the object.
    pub start: PathSpec,
    /// The end timestamp, relative to the object.
    pub end: PathSpec,
    /// Upper bounds of the buckets, in seconds, increasing (`+Inf` is added).
    pub buckets: Vec<f64>,
}

/// tapmon extension: over every object the resource reads, one gauge per set of the metric's
/// own labels (`commonLabels`, `labelsFromPath`, relative to the object): how many objects have
/// it, or the sum of `value` over them. For low cardinality: the per-object families can then
/// be left out of the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Aggregate {
    /// What to aggregate.
    pub function: AggregateFunction,
    /// With `sum`: the number to add up, relative to the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<PathSpec>,
}

/// How an [`Aggregate`] combines objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AggregateFunction {
    /// The number of objects.
    #[default]
    Count,
    /// The sum of `value`.
    Sum,
}

/// A state filter: the value at `path` must be one of `in`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct When {
    /// Where the state is, relative to the element.
    pub path: PathSpec,
    /// The accepted states.
    #[serde(rename = "in")]
    pub states: Vec<String>,
}

/// One series per listed state: 1 for the object's state, 0 for the others.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateSet {
    /// Where to look.
    #[serde(default, skip_serializing_if = "PathSpec::is_empty")]
    pub path: PathSpec,
    /// The states.
    #[serde(default)]
    pub list: Vec<String>,
    /// The label that carries the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_name: Option<String>,
    /// The state, relative to `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<PathSpec>,
    /// Labels relative to `path`.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub labels_from_path: OrderedMap<PathSpec>,
}

/// Value 1 with labels read from the object; over a list, one series per element.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// Where to look; a list here yields one series per element.
    #[serde(default, skip_serializing_if = "PathSpec::is_empty")]
    pub path: PathSpec,
    /// Labels relative to `path`; the key `*` adds one label per key of the map found.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub labels_from_path: OrderedMap<PathSpec>,
    /// Over a map: the label that carries each key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_from_key: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// A path as written: a list of segments or a kubectl JSONPath string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSpec {
    /// `[status, conditions, "[type=Ready]", status]`.
    Segments(Vec<String>),
    /// `.status.conditions[?(@.type=="Ready")].status`.
    JsonPath(String),
}

impl Default for PathSpec {
    fn default() -> Self {
        PathSpec::Segments(Vec::new())
    }
}

impl PathSpec {
    /// True for the empty list (the object itself).
    pub fn is_empty(&self) -> bool {
        matches!(self, PathSpec::Segments(s) if s.is_empty())
    }

    /// A segment list from string slices.
    pub fn segments<S: AsRef<str>>(parts: &[S]) -> Self {
        PathSpec::Segments(parts.iter().map(|s| s.as_ref().to_owned()).collect())
    }
}

impl fmt::Display for PathSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSpec::Segments(s) => write!(f, "[{}]", s.join(", ")),
            PathSpec::JsonPath(p) => f.write_str(p),
        }
    }
}

impl Serialize for PathSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PathSpec::Segments(s) => s.serialize(serializer),
            PathSpec::JsonPath(p) => p.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for PathSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// YAML writes `[spec, containers, 0]` with an integer; segments are strings.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Part {
            S(String),
            I(i64),
            B(bool),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<Part>),
            Str(String),
            // `path: null` (or `path: ~`) is the object itself, as in kube-state-metrics.
            Null(()),
        }
        let raw = Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("expected a path: a list of segments or a JSONPath string")
        })?;
        Ok(match raw {
            Raw::Null(()) => PathSpec::default(),
            Raw::Str(s) => PathSpec::JsonPath(s),
            Raw::List(parts) => PathSpec::Segments(
                parts
                    .into_iter()
                    .map(|p| match p {
                        Part::S(s) => s,
                        Part::I(i) => i.to_string(),
                        Part::B(b) => b.to_string(),
                    })
                    .collect(),
            ),
        })
    }
}

impl JsonSchema for PathSpec {
    fn schema_name() -> Cow<'static, str> {
        "PathSpec".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Either a list or a string: a structural CRD schema cannot say "one of two types", and
        // CEL rules cannot see a node without a type, so the node keeps whatever is written;
        // the admission policy (`tapmon_api::admission_policy`) refuses what does not decode,
        // and the controller reports, on the monitor, whatever got past it.
        json_schema!({
            "description": "A path: a list of segments ([status, conditions, \"[type=Ready]\", status]) or a kubectl JSONPath string (.status.conditions[?(@.type==\"Ready\")].status).",
            "x-kubernetes-preserve-unknown-fields": true,
            "nullable": true
        })
    }
}

/// A string-keyed map that keeps the order it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Entries in written order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<V, K: Into<String>> FromIterator<(K, V)> for OrderedMap<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        OrderedMap(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some((k, v)) = access.next_entry::<String, V>()? {
                    if entries.iter().any(|(existing, _)| *existing == k) {
                        return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    entries.push((k, v));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(std::marker::PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for OrderedMap<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let values = generator.subschema_for::<V>();
        json_schema!({
            "type": "object",
            "additionalProperties": values
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kube_state_metrics_config_deserialises_unchanged() {
        let yaml = r#"
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind: {group: myteam.io, kind: "Foo", version: "v1"}
      metricNamePrefix: myteam_foos
      labelsFromPath:
        name: [metadata, name]
        ns: .metadata.namespace
      commonLabels: {crd_type: foo}
      metrics:
        - name: uptime
          help: Foo uptime
          each:
            type: Gauge
            gauge:
              path: [status, ports, 0]
              valueFrom: [uptime]
              nilIsZero: true
        - name: phase
          each:
            type: StateSet
            stateSet:
              labelName: phase
              path: [status, phase]
              list: [Pending, Running]
"#;
        let cfg: CustomResourceStateMetrics = crate::yaml::from_str(yaml).unwrap();
        let r = &cfg.spec.resources[0];
        assert_eq!(r.group_version_kind.to_string(), "myteam.io/v1/Foo");
        let labels: Vec<_> = r.labels_from_path.iter().map(|(k, _)| k).collect();
        assert_eq!(labels, ["name", "ns"]);
        assert_eq!(
            r.labels_from_path.0[1].1,
            PathSpec::JsonPath(".metadata.namespace".into())
        );
        let gauge = r.metrics[0].each.gauge.as_ref().unwrap();
        assert_eq!(gauge.path, PathSpec::segments(&["status", "ports", "0"]));
        assert!(gauge.nil_is_zero);
        assert_eq!(r.metrics[1].each.kind, MetricKind::StateSet);
    }

    #[test]
    fn misspelt_and_unread_fields_are_named() {
        let yaml = "spec:\n  resources:\n    - groupVersionKind: {group: a, version: v1, kind: A}\n      labelFromPath: {}\n      metrics:\n        - name: info\n          each: {type: Info, info: {valueFrom: [x]}}\n";
        let value: serde_json::Value = crate::yaml::from_str(yaml).unwrap();
        let (cfg, ignored) =
            crate::ignored::from_value::<CustomResourceStateMetrics>(value).unwrap();
        assert_eq!(cfg.spec.resources[0].metrics[0].name, "info");
        assert_eq!(
            ignored,
            [
                "spec.resources[0].labelFromPath",
                "spec.resources[0].metrics[0].each.info.valueFrom"
            ]
        );
    }

    #[test]
    fn round_trips_through_yaml() {
        let resource = Resource {
            group_version_kind: GroupVersionKind {
                group: "a".into(),
                version: "*".into(),
                kind: "A".into(),
            },
            labels_from_path: [("name", PathSpec::segments(&["metadata", "name"]))]
                .into_iter()
                .collect(),
            metrics: vec![Generator {
                name: "info".into(),
                each: Metric {
                    kind: MetricKind::Info,
                    info: Some(Info::default()),
                    ..Metric::default()
                },
                ..Generator::default()
            }],
            ..Resource::default()
        };
        let cfg = CustomResourceStateMetrics {
            kind: Some("CustomResourceStateMetrics".into()),
            spec: Spec {
                resources: vec![resource],
            },
        };
        let yaml = serde_saphyr::to_string(&cfg).unwrap();
        let back: CustomResourceStateMetrics = crate::yaml::from_str(&yaml).unwrap();
        assert_eq!(back, cfg);
    }
}
