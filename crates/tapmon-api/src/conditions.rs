//! The words of `TapMonitor.status` and of the Events on TapMonitors: condition types, their
//! reasons and Event reasons, each spelled once here. kstatus reads `Ready`, `Reconciling` and
//! `Stalled`; the publish conditions say what became of each published object.

use std::fmt;

use crate::status::KindState;

/// The text of a condition's `status`.
pub fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[doc = $doc:literal])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[doc = $doc])* $variant,)*
        }

        impl $name {
            /// Every value.
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// The word as written in the API.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value a word names.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }
    };
}

vocabulary! {
    /// The type of a TapMonitor status condition.
    ConditionType {
        /// The monitor's series are complete and current (kstatus: Current when True).
        Ready = "Ready",
        /// The operator is still working towards Ready (kstatus: InProgress).
        Reconciling = "Reconciling",
        /// The monitor cannot become Ready without a change to it (kstatus: Failed).
        Stalled = "Stalled",
        /// What became of the published ServiceMonitor.
        ServiceMonitor = "ServiceMonitor",
        /// What became of the published PrometheusRule.
        PrometheusRule = "PrometheusRule",
        /// What became of the published dashboard ConfigMaps.
        Dashboards = "Dashboards",
        /// Whether the monitor's series limit left objects out (True when it did).
        SeriesLimit = "SeriesLimit",
    }
}

vocabulary! {
    /// Why a condition has its status.
    Reason {
        /// Ready: every kind is watched and listed.
        Watching = "Watching",
        /// Not ready yet: a kind's initial list is not done.
        InitialList = "InitialList",
        /// Not ready: a kind cannot be watched (see `status.kinds`).
        WatchFailed = "WatchFailed",
        /// Stalled: the operator may not list and watch a kind; an administrator must grant it.
        WatchForbidden = "WatchForbidden",
        /// Not ready: a published object could not be written (see its condition).
        PublishFailed = "PublishFailed",
        /// Part of the config is invalid and left out (the message names each place).
        InvalidConfig = "InvalidConfig",
        /// The spec cannot be used at all (a selector does not parse).
        InvalidSpec = "InvalidSpec",
        /// Reconciling: nothing left to do.
        Done = "Done",
        /// Stalled: the config is valid.
        Valid = "Valid",
        /// Published: applied as desired.
        Applied = "Applied",
        /// Published: disabled in the spec, nothing is published.
        Disabled = "Disabled",
        /// Published: the kind's CRD is not installed; published when it appears.
        CrdNotInstalled = "CRDNotInstalled",
        /// Published: the API server refused it.
        ApplyFailed = "ApplyFailed",
        /// Published: an object of that name exists and another owner controls it; it is left
        /// untouched.
        Conflict = "Conflict",
        /// SeriesLimit: every object's series are served.
        WithinLimit = "WithinLimit",
        /// SeriesLimit: objects are left out to stay within the limit.
        LimitReached = "LimitReached",
    }
}

/// The reason of an Event on a TapMonitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventReason {
    /// The config became invalid (Warning).
    InvalidConfig,
    /// The monitor became Ready.
    Ready,
    /// A kind changed state: `Kind<state>`, e.g. `KindForbidden`.
    Kind(KindState),
    /// A published object changed state: `<condition><reason>`, e.g. `ServiceMonitorApplied`.
    Published(ConditionType, Reason),
    /// The series limit started or stopped leaving objects out: `SeriesLimit<reason>`.
    SeriesLimit(Reason),
}

impl fmt::Display for EventReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventReason::InvalidConfig => f.write_str(Reason::InvalidConfig.as_str()),
            EventReason::Ready => f.write_str(ConditionType::Ready.as_str()),
            EventReason::Kind(state) => write!(f, "Kind{}", state.as_str()),
            EventReason::Published(kind, reason) => write!(f, "{kind}{reason}"),
            EventReason::SeriesLimit(reason) => write!(f, "{}{reason}", ConditionType::SeriesLimit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_event_reasons_compose() {
        for t in ConditionType::ALL {
            assert_eq!(ConditionType::parse(t.as_str()), Some(*t));
        }
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Reason::CrdNotInstalled.as_str(), "CRDNotInstalled");
        assert_eq!(
            EventReason::Kind(KindState::Forbidden).to_string(),
            "KindForbidden"
        );
        assert_eq!(
            EventReason::Published(ConditionType::Dashboards, Reason::ApplyFailed).to_string(),
            "DashboardsApplyFailed"
        );
        assert!(*"Ready" == ConditionType::Ready);
    }
}
