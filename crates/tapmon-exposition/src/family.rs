//! Metric families: each name once, with its headers rendered ahead of time.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::names::is_valid_metric_name;
use crate::text::write_escaped_help;

/// How a family's series are meant to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A number taken from the object.
    Gauge,
    /// Value 1; the information is in the labels.
    Info,
    /// One series per possible state, 1 for the current one, 0 for the others.
    StateSet,
}

impl MetricType {
    /// The name kube-state-metrics configs use for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Gauge => "Gauge",
            MetricType::Info => "Info",
            MetricType::StateSet => "StateSet",
        }
    }
}

/// A family as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyDesc {
    /// Full metric name.
    pub name: String,
    /// HELP text.
    pub help: String,
    /// Type of its series.
    pub kind: MetricType,
    /// For a StateSet, the label that carries the state.
    pub state_label: Option<String>,
}

/// Index of a family in its [`FamilySet`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FamilyId(pub(crate) u32);

impl FamilyId {
    /// The index as a usize.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Why a set of families cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FamilySetError {
    /// The name is not a valid Prometheus metric name.
    #[error("invalid metric name {0:?}")]
    InvalidName(String),
    /// Two declarations of one name disagree on the type.
    #[error("metric {name:?} is declared as both {first} and {second}")]
    ConflictingTypes {
        /// The family name.
        name: String,
        /// Type of the first declaration.
        first: &'static str,
        /// Type of the conflicting one.
        second: &'static str,
    },
}

#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) desc: FamilyDesc,
    pub(crate) text_header: Bytes,
    pub(crate) openmetrics_header: Bytes,
}

/// Every family a configuration can produce, sorted by name, each name once.
#[derive(Debug, Default)]
pub struct FamilySet {
    families: Vec<Family>,
}

impl FamilySet {
    /// Builds the set. Declarations sharing a name merge into one family (first HELP wins) when
    /// their types agree; the returned ids follow the order of `descs`.
    pub fn new(descs: &[FamilyDesc]) -> Result<(FamilySet, Vec<FamilyId>), FamilySetError> {
        let mut by_name: BTreeMap<&str, &FamilyDesc> = BTreeMap::new();
        for desc in descs {
            if !is_valid_metric_name(&desc.name) {
                return Err(FamilySetError::InvalidName(desc.name.clone()));
            }
            match by_name.get(desc.name.as_str()) {
                Some(first) if first.kind != desc.kind => {
                    return Err(FamilySetError::ConflictingTypes {
                        name: desc.name.clone(),
                        first: first.kind.as_str(),
                        second: desc.kind.as_str(),
                    });
                }
                Some(_) => {}
                None => {
                    by_name.insert(&desc.name, desc);
                }
            }
        }
        let families: Vec<Family> = by_name
            .values()
            .map(|d| Family::new((*d).clone()))
            .collect();
        let set = FamilySet { families };
        let ids = descs
            .iter()
            .map(|d| set.id(&d.name).unwrap_or(FamilyId(0)))
            .collect();
        Ok((set, ids))
    }

    /// Looks a family up by name.
    pub fn id(&self, name: &str) -> Option<FamilyId> {
        self.families
            .binary_search_by(|f| f.desc.name.as_str().cmp(name))
            .ok()
            .map(|i| FamilyId(i as u32))
    }

    /// The family's description.
    pub fn desc(&self, id: FamilyId) -> Option<&FamilyDesc> {
        self.families.get(id.index()).map(|f| &f.desc)
    }

    /// Number of families.
    pub fn len(&self) -> usize {
        self.families.len()
    }

    /// True when there are no families.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    /// All families in output order.
    pub fn iter(&self) -> impl Iterator<Item = (FamilyId, &FamilyDesc)> {
        self.families
            .iter()
            .enumerate()
            .map(|(i, f)| (FamilyId(i as u32), &f.desc))
    }

    #[cfg(test)]
    pub(crate) fn family(&self, id: FamilyId) -> Option<&Family> {
        self.families.get(id.index())
    }

    pub(crate) fn families(&self) -> &[Family] {
        &self.families
    }
}

impl Family {
    fn new(desc: FamilyDesc) -> Family {
        let text_header = header(&desc.name, &desc.help, "gauge", false);
        // OpenMetrics has types of its own for these two, with naming rules: an info family's
        // samples end in `_info` and the family name does not; a stateset's state label is the
        // family name. Families that do not follow those rules stay gauges, so that every
        // sample keeps the name users query.
        let openmetrics_header = match desc.kind {
            MetricType::Info => match desc.name.strip_suffix("_info") {
                Some(base) if !base.is_empty() => header(base, &desc.help, "info", true),
                _ => header(&desc.name, &desc.help, "gauge", true),
            },
            MetricType::StateSet if desc.state_label.as_deref() == Some(desc.name.as_str()) => {
                header(&desc.name, &desc.help, "stateset", true)
            }
            MetricType::StateSet | MetricType::Gauge => {
                header(&desc.name, &desc.help, "gauge", true)
            }
        };
        Family {
            desc,
            text_header,
            openmetrics_header,
        }
    }
}

fn header(name: &str, help: &str, kind: &str, openmetrics: bool) -> Bytes {
    let mut out = Vec::with_capacity(name.len() * 2 + help.len() + 24);
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    write_escaped_help(&mut out, help, openmetrics);
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn desc(name: &str, kind: MetricType) -> FamilyDesc {
        FamilyDesc {
            name: name.into(),
            help: format!("help for {name}"),
            kind,
            state_label: None,
        }
    }

    #[test]
    fn shared_names_merge_and_ids_follow_input_order() {
        let descs = [
            desc("b_status", MetricType::Gauge),
            desc("a_info", MetricType::Info),
            desc("b_status", MetricType::Gauge),
        ];
        let (set, ids) = FamilySet::new(&descs).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(ids, vec![FamilyId(1), FamilyId(0), FamilyId(1)]);
        assert_eq!(set.id("a_info"), Some(FamilyId(0)));
        assert_eq!(set.id("nope"), None);
    }

    #[test]
    fn conflicting_types_and_bad_names_are_errors() {
        let err = FamilySet::new(&[desc("x", MetricType::Gauge), desc("x", MetricType::Info)])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "metric \"x\" is declared as both Gauge and Info"
        );
        let err = FamilySet::new(&[desc("x-y", MetricType::Gauge)]).unwrap_err();
        assert_eq!(err, FamilySetError::InvalidName("x-y".into()));
    }

    #[test]
    fn headers_per_format() {
        let mut state = desc("phase", MetricType::StateSet);
        state.state_label = Some("phase".into());
        let (set, _) = FamilySet::new(&[
            desc("a_info", MetricType::Info),
            desc("b_namespaces", MetricType::Info),
            state,
        ])
        .unwrap();
        let f = |n: &str| set.family(set.id(n).unwrap()).unwrap();
        assert_eq!(
            &f("a_info").text_header[..],
            b"# HELP a_info help for a_info\n# TYPE a_info gauge\n"
        );
        assert_eq!(
            &f("a_info").openmetrics_header[..],
            b"# HELP a help for a_info\n# TYPE a info\n"
        );
        assert_eq!(
            &f("b_namespaces").openmetrics_header[..],
            b"# HELP b_namespaces help for b_namespaces\n# TYPE b_namespaces gauge\n"
        );
        assert_eq!(
            &f("phase").openmetrics_header[..],
            b"# HELP phase help for phase\n# TYPE phase stateset\n"
        );
    }
}
