//! Where a config is wrong and what is wrong there, named for the user who can fix it.

use std::fmt;

use tapmon_selector::PathError;

/// Where in a config something is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Index in `spec.resources`.
    pub resource: usize,
    /// The resource's group/version/kind as written.
    pub gvk: String,
    /// The metric's full name, when the problem is inside a metric.
    pub metric: Option<String>,
    /// The field, e.g. `each.gauge.labelsFromPath.status`.
    pub field: String,
}

impl Location {
    /// Writes the location after `place`, the name of its resource.
    fn write_after(&self, f: &mut fmt::Formatter<'_>, place: fmt::Arguments<'_>) -> fmt::Result {
        write!(f, "{place} ({})", self.gvk)?;
        if let Some(metric) = &self.metric {
            write!(f, " metric {metric}")?;
        }
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        Ok(())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_after(f, format_args!("resources[{}]", self.resource))
    }
}

/// A config error named by the place a user can fix: the resources before `own_from` are
/// built-in presets, the rest are the user's own `spec.resources`. See [`ConfigError::placed`].
#[derive(Debug, Clone, Copy)]
pub struct Placed<'a> {
    error: &'a ConfigError,
    own_from: usize,
}

impl fmt::Display for Placed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let location = &self.error.location;
        match location.resource.checked_sub(self.own_from) {
            Some(own) => location.write_after(f, format_args!("spec.resources[{own}]"))?,
            None => location.write_after(
                f,
                format_args!("built-in preset resource {}", location.resource),
            )?,
        }
        write!(f, ": {}", self.error.kind)
    }
}

/// What is wrong at a [`Location`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// A path that does not compile.
    #[error(transparent)]
    Path(#[from] PathError),
    /// `each.type` names a section that is absent.
    #[error("type {0} needs its settings section")]
    MissingSection(&'static str),
    /// The full metric name is not a valid Prometheus name.
    #[error("{0:?} is not a valid metric name")]
    InvalidMetricName(String),
    /// Two declarations of one family disagree.
    #[error("{0}")]
    Family(String),
    /// Two labels of one map end up with the same name.
    #[error("labels {first:?} and {second:?} both become {sanitized:?}")]
    LabelCollision {
        /// First label as written.
        first: String,
        /// Second label as written.
        second: String,
        /// The name both sanitise to.
        sanitized: String,
    },
    /// A StateSet without states or with a state twice.
    #[error("{0}")]
    StateList(String),
    /// A Counter or Histogram that cannot be kept as written.
    #[error("{0}")]
    Live(String),
    /// The group is required (an empty or `*` group cannot be resolved).
    #[error("group is required")]
    MissingGroup,
}

/// A config problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {kind}")]
pub struct ConfigError {
    /// Where.
    pub location: Location,
    /// What.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// The error named by where a user fixes it, when resources from `own_from` on are the
    /// user's own (`spec.resources[0]` is resource `own_from`) and those before are presets.
    pub fn placed(&self, own_from: usize) -> Placed<'_> {
        Placed {
            error: self,
            own_from,
        }
    }
}
