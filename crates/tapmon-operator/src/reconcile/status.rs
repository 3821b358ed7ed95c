//! A TapMonitor's status from what the reconcile observed: pure functions of their inputs (and
//! the time), so every condition and message is tested without a cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use tapmon_api::{ConditionType, KindState, KindStatus, Reason, TapMonitorStatus, status_str};
use tapmon_crs::ConfigError;

use crate::publish::{PublishError, PublishKind, Published};
use crate::watches::WatchState;

/// Longest condition message; longer ones are cut with an ellipsis.
const MESSAGE_LIMIT: usize = 2000;
/// Longest message of a published object's condition or of one kind.
const SHORT_MESSAGE_LIMIT: usize = 1000;
/// Longest per-kind message.
const KIND_MESSAGE_LIMIT: usize = 500;

/// What the reconcile saw of one kind a monitor reads.
#[derive(Debug, Clone, PartialEq)]
pub struct KindObserved {
    /// API group.
    pub group: String,
    /// Kind (`*` when a wildcard matched nothing).
    pub kind: String,
    /// Its watch, when the kind is served.
    pub watch: Option<WatchObserved>,
}

/// The state of a kind's watch as the monitor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchObserved {
    /// The version watched.
    pub version: String,
    /// The resource as RBAC names it: `plural.group` (`plural` in the core group).
    pub resource: String,
    /// The watch's state; `None` when it is not running yet.
    pub state: Option<WatchState>,
    /// Whether its initial list is done.
    pub synced: bool,
    /// Objects of the kind the monitor holds.
    pub objects: usize,
    /// Their series.
    pub series: usize,
}

/// Everything a monitor's status is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed<'a> {
    /// The kinds, in config order.
    pub kinds: Vec<KindObserved>,
    /// Series the monitor serves, all kinds together.
    pub series: usize,
    /// Most series it may serve.
    pub series_limit: usize,
    /// Objects left out to stay within the limit.
    pub left_out: usize,
    /// Config problems (those parts are left out).
    pub problems: &'a [ConfigError],
    /// Index of the monitor's first own resource, to name problems.
    pub own_from: usize,
}

impl Observed<'_> {
    /// True while a served kind's initial list is not done (and it is not refused).
    pub fn listing(&self) -> bool {
        self.kinds.iter().filter_map(|k| k.watch.as_ref()).any(|w| {
            !w.synced
                && !matches!(
                    w.state,
                    Some(WatchState::Forbidden(_) | WatchState::Failed(_))
                )
        })
    }

    /// True while a kind is still being listed or cannot be watched: worth looking again soon.
    pub fn settling(&self) -> bool {
        self.kinds.iter().filter_map(|k| k.watch.as_ref()).any(|w| {
            !w.synced
                || matches!(
                    w.state,
                    Some(WatchState::Forbidden(_) | WatchState::Failed(_))
                )
        })
    }
}

/// A monitor's health as kstatus reads its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorHealth {
    /// Ready (kstatus Current).
    Ready,
    /// Not ready yet, still being worked on (kstatus InProgress).
    Progressing,
    /// Not ready until something changes (kstatus Failed).
    Stalled,
}

impl MonitorHealth {
    /// Every value.
    pub const ALL: [MonitorHealth; 3] = [
        MonitorHealth::Ready,
        MonitorHealth::Progressing,
        MonitorHealth::Stalled,
    ];

    /// The `health` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            MonitorHealth::Ready => "ready",
            MonitorHealth::Progressing => "progressing",
            MonitorHealth::Stalled => "stalled",
        }
    }

    /// The health `status` says.
    pub fn of(status: &TapMonitorStatus) -> MonitorHealth {
        let is_true = |t: ConditionType| {
            status
                .conditions
                .iter()
                .any(|c| c.type_ == t && c.status == status_str(true))
        };
        if is_true(ConditionType::Stalled) {
            MonitorHealth::Stalled
        } else if is_true(ConditionType::Ready) {
            MonitorHealth::Ready
        } else {
            MonitorHealth::Progressing
        }
    }
}

/// True when `status` said Ready for `generation`: what a restart finds when nothing changed.
pub fn was_ready(status: &TapMonitorStatus, generation: i64) -> bool {
    status.observed_generation == Some(generation)
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == ConditionType::Ready && c.status == status_str(true))
}

/// Cuts `s` to at most `max` bytes at a character boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The times and generation every condition of one status shares.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    /// The generation observed.
    pub generation: i64,
    /// The status before, whose transition times are kept while a status stays the same.
    pub previous: &'a TapMonitorStatus,
    /// Now.
    pub now: Timestamp,
}

impl Stamp<'_> {
    fn condition(
        &self,
        type_: ConditionType,
        status: bool,
        reason: Reason,
        message: &str,
    ) -> Condition {
        let status = status_str(status);
        // Keep the transition time while the status stays the same.
        let last_transition_time = self
            .previous
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(self.now));
        Condition {
            type_: type_.as_str().into(),
            status: status.into(),
            reason: reason.as_str().into(),
            message: message.into(),
            observed_generation: Some(self.generation),
            last_transition_time,
        }
    }
}

/// The status of a monitor whose spec cannot be used at all; `error` names the field.
pub fn invalid_spec(error: &str, stamp: Stamp<'_>) -> TapMonitorStatus {
    let message = truncate(error, MESSAGE_LIMIT);
    TapMonitorStatus {
        observed_generation: Some(stamp.generation),
        conditions: vec![
            stamp.condition(ConditionType::Ready, false, Reason::InvalidSpec, &message),
            stamp.condition(ConditionType::Reconciling, false, Reason::InvalidSpec, ""),
            stamp.condition(ConditionType::Stalled, true, Reason::InvalidSpec, &message),
        ],
        kinds: Vec::new(),
        objects: 0,
        series: 0,
    }
}

fn kind_status(k: &KindObserved) -> KindStatus {
    let Some(watch) = &k.watch else {
        return KindStatus {
            group: k.group.clone(),
            kind: k.kind.clone(),
            version: None,
            state: KindState::NotInstalled,
            message: None,
            objects: 0,
            series: 0,
        };
    };
    let (state, message) = match &watch.state {
        Some(WatchState::Forbidden(m)) => (KindState::Forbidden, Some(m)),
        Some(WatchState::Failed(m)) => (KindState::Error, Some(m)),
        // Starting or watching: the kind is being watched.
        _ => (KindState::Watching, None),
    };
    KindStatus {
        group: k.group.clone(),
        kind: k.kind.clone(),
        version: Some(watch.version.clone()),
        state,
        message: message.map(|m| truncate(m, KIND_MESSAGE_LIMIT)),
        objects: watch.objects as i64,
        series: watch.series as i64,
    }
}

/// The label that aggregates a ClusterRole into the operator's rights for extra kinds.
const AGGREGATE_LABEL: &str = "tapmon.io/aggregate-to-tapmon";

/// Why a monitor is not Ready, from the most to the least fundamental.
struct NotReady {
    reason: Reason,
    message: String,
    /// Only a change (to the monitor, the cluster's RBAC or a conflicting object) mends it:
    /// kstatus reads Stalled as Failed, so Flux and Argo CD report it instead of waiting.
    stalled: bool,
}

/// The status of a monitor from what was observed and what became of its published objects:
/// kinds, totals, the kstatus conditions and one condition per published kind.
pub fn monitor_status(
    observed: &Observed<'_>,
    published: &[(PublishKind, Published)],
    stamp: Stamp<'_>,
) -> TapMonitorStatus {
    let kinds: Vec<KindStatus> = observed.kinds.iter().map(kind_status).collect();
    // Per kind, an object read by two resources counts once; series add up.
    let objects: i64 = kinds.iter().map(|k| k.objects).sum();
    let synced = observed
        .kinds
        .iter()
        .filter_map(|k| k.watch.as_ref())
        .all(|w| w.synced);
    let not_ready = not_ready(observed, &kinds, published, synced);
    let (ready, reason, message, stalled) = match &not_ready {
        Some(n) => (false, n.reason, n.message.as_str(), n.stalled),
        None => (true, Reason::Watching, "", false),
    };
    let watching = format!(
        "watching {} kinds",
        kinds
            .iter()
            .filter(|k| k.state == KindState::Watching)
            .count()
    );
    let message = if ready { watching.as_str() } else { message };
    let reconciling = !ready && !stalled;
    let mut conditions = vec![
        stamp.condition(ConditionType::Ready, ready, reason, message),
        stamp.condition(
            ConditionType::Reconciling,
            reconciling,
            if reconciling { reason } else { Reason::Done },
            if reconciling { message } else { "" },
        ),
        stamp.condition(
            ConditionType::Stalled,
            stalled,
            if stalled { reason } else { Reason::Valid },
            if stalled { message } else { "" },
        ),
        series_limit_condition(observed, stamp),
    ];
    conditions.extend(
        published
            .iter()
            .map(|(kind, outcome)| publish_condition(*kind, outcome, stamp)),
    );
    TapMonitorStatus {
        observed_generation: Some(stamp.generation),
        conditions,
        kinds,
        objects,
        series: observed.series as i64,
    }
}

/// Why the monitor is not Ready, if it is not: its config, then the kinds it may not watch
/// (stalled: an administrator must grant them), then published objects that failed, then
/// kinds that fail for other reasons or are still being listed.
fn not_ready(
    observed: &Observed<'_>,
    kinds: &[KindStatus],
    published: &[(PublishKind, Published)],
    synced: bool,
) -> Option<NotReady> {
    if !observed.problems.is_empty() {
        let problems: Vec<String> = observed
            .problems
            .iter()
            .map(|p| p.placed(observed.own_from).to_string())
            .collect();
        return Some(NotReady {
            reason: Reason::InvalidConfig,
            message: truncate(&problems.join("; "), MESSAGE_LIMIT),
            stalled: true,
        });
    }
    let forbidden: Vec<&str> = observed
        .kinds
        .iter()
        .filter_map(|k| k.watch.as_ref())
        .filter(|w| matches!(w.state, Some(WatchState::Forbidden(_))))
        .map(|w| w.resource.as_str())
        .collect();
    if !forbidden.is_empty() {
        return Some(NotReady {
            reason: Reason::WatchForbidden,
            message: truncate(
                &format!(
                    "the operator may not list and watch {}: a cluster administrator can grant get, list and watch on them in a ClusterRole labelled {AGGREGATE_LABEL}: \"true\"; the other kinds are served meanwhile",
                    forbidden.join(", ")
                ),
                MESSAGE_LIMIT,
            ),
            stalled: true,
        });
    }
    // Applied, disabled or waiting for its CRD is no failure.
    let failed: Vec<&PublishError> = published
        .iter()
        .filter_map(|(_, p)| match p {
            Published::Failed(e) => Some(e),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        let messages: Vec<String> = failed.iter().map(|e| e.to_string()).collect();
        return Some(NotReady {
            reason: Reason::PublishFailed,
            message: truncate(&messages.join("; "), MESSAGE_LIMIT),
            stalled: failed.iter().any(|e| e.needs_change()),
        });
    }
    let failing: Vec<String> = kinds
        .iter()
        .filter(|k| k.state.is_failure())
        .map(|k| format!("{} ({})", k.kind, k.state))
        .collect();
    if !failing.is_empty() {
        return Some(NotReady {
            reason: Reason::WatchFailed,
            message: format!("cannot watch: {}", failing.join(", ")),
            stalled: false,
        });
    }
    (!synced).then(|| NotReady {
        reason: Reason::InitialList,
        message: "waiting for the initial list of every kind".to_owned(),
        stalled: false,
    })
}

/// Whether the series limit left objects out.
fn series_limit_condition(observed: &Observed<'_>, stamp: Stamp<'_>) -> Condition {
    let limit = observed.series_limit;
    if observed.left_out > 0 {
        stamp.condition(
            ConditionType::SeriesLimit,
            true,
            Reason::LimitReached,
            &format!(
                "{} objects are left out to keep within the limit of {limit} series (spec.seriesLimit, at most the operator's --series-limit)",
                observed.left_out
            ),
        )
    } else {
        stamp.condition(
            ConditionType::SeriesLimit,
            false,
            Reason::WithinLimit,
            &format!("{} of at most {limit} series", observed.series),
        )
    }
}

/// The condition reporting what became of a published kind.
fn publish_condition(kind: PublishKind, published: &Published, stamp: Stamp<'_>) -> Condition {
    let k = kind.condition().as_str();
    let message = match published {
        Published::Applied => String::new(),
        Published::Disabled => format!("disabled in the spec; no {k} is published"),
        Published::NotInstalled => format!(
            "the Prometheus Operator's {k} CRD (monitoring.coreos.com/v1) is not installed; the {k} is created when it is"
        ),
        Published::Failed(e) => truncate(&e.to_string(), SHORT_MESSAGE_LIMIT),
    };
    stamp.condition(
        kind.condition(),
        matches!(published, Published::Applied),
        published.reason(),
        &message,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(previous: &TapMonitorStatus) -> Stamp<'_> {
        Stamp {
            generation: 4,
            previous,
            now: Timestamp::from_second(1_800_000_000).unwrap(),
        }
    }

    fn kind(name: &str, state: Option<WatchState>, synced: bool) -> KindObserved {
        KindObserved {
            group: "g".into(),
            kind: name.into(),
            watch: Some(WatchObserved {
                version: "v1".into(),
                resource: format!("{}s.g", name.to_lowercase()),
                state,
                synced,
                objects: 2,
                series: 5,
            }),
        }
    }

    fn condition(s: &TapMonitorStatus, t: ConditionType) -> &Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn ready_when_every_kind_is_listed_and_transition_times_kept() {
        let observed = Observed {
            kinds: vec![
                kind("A", Some(WatchState::Watching), true),
                KindObserved {
                    group: "g".into(),
                    kind: "Missing".into(),
                    watch: None,
                },
            ],
            series: 5,
            series_limit: 10,
            left_out: 0,
            problems: &[],
            own_from: 0,
        };
        assert!(!observed.settling());
        let first = monitor_status(&observed, &[], stamp(&TapMonitorStatus::default()));
        let ready = condition(&first, ConditionType::Ready);
        assert_eq!(ready.status, status_str(true));
        assert!(ready.reason == Reason::Watching);
        assert_eq!(ready.message, "watching 1 kinds");
        assert_eq!(first.kinds[1].state, KindState::NotInstalled);
        assert_eq!((first.objects, first.series), (2, 5));
        // Later, unchanged: the transition time stays.
        let later = Stamp {
            now: Timestamp::from_second(1_900_000_000).unwrap(),
            ..stamp(&first)
        };
        let again = monitor_status(&observed, &[], later);
        assert_eq!(
            condition(&again, ConditionType::Ready).last_transition_time,
            ready.last_transition_time
        );
    }

    #[test]
    fn a_forbidden_kind_stalls_the_monitor_and_names_the_grant() {
        let observed = Observed {
            kinds: vec![kind("B", Some(WatchState::Forbidden("no".into())), false)],
            series: 0,
            series_limit: 10,
            left_out: 2,
            problems: &[],
            own_from: 0,
        };
        assert!(observed.settling());
        let s = monitor_status(&observed, &[], stamp(&TapMonitorStatus::default()));
        assert!(condition(&s, ConditionType::Ready).reason == Reason::WatchForbidden);
        assert_eq!(condition(&s, ConditionType::Reconciling).status, "False");
        let stalled = condition(&s, ConditionType::Stalled);
        assert_eq!(stalled.status, "True");
        assert!(stalled.reason == Reason::WatchForbidden);
        assert!(
            stalled
                .message
                .starts_with("the operator may not list and watch bs.g: ")
                && stalled.message.contains("tapmon.io/aggregate-to-tapmon"),
            "{}",
            stalled.message
        );
        assert_eq!(s.kinds[0].message.as_deref(), Some("no"));
        let limit = condition(&s, ConditionType::SeriesLimit);
        assert_eq!(limit.status, status_str(true));
        assert!(
            limit.message.starts_with("2 objects are left out"),
            "{}",
            limit.message
        );
    }

    fn synced() -> Observed<'static> {
        Observed {
            kinds: vec![kind("A", Some(WatchState::Watching), true)],
            series: 5,
            series_limit: 10,
            left_out: 0,
            problems: &[],
            own_from: 0,
        }
    }

    fn api_failure(code: u16, message: &str) -> Published {
        let status: kube::core::Status =
            serde_json::from_value(serde_json::json!({"code": code, "message": message})).unwrap();
        Published::Failed(crate::publish::PublishError::Apply {
            kind: "ServiceMonitor",
            namespace: "team-a".into(),
            name: "tap".into(),
            source: Box::new(kube::Error::Api(Box::new(status))),
        })
    }

    #[test]
    fn a_rejected_published_object_stalls_the_monitor_with_the_api_servers_words_once() {
        let published = [
            (
                PublishKind::ServiceMonitor,
                api_failure(422, "spec.endpoints: Invalid value"),
            ),
            (PublishKind::PrometheusRule, Published::Applied),
        ];
        let s = monitor_status(&synced(), &published, stamp(&TapMonitorStatus::default()));
        let ready = condition(&s, ConditionType::Ready);
        assert_eq!(ready.status, "False");
        assert!(ready.reason == Reason::PublishFailed);
        assert_eq!(
            ready.message,
            "failed to apply ServiceMonitor team-a/tap: spec.endpoints: Invalid value"
        );
        assert_eq!(condition(&s, ConditionType::Stalled).status, "True");
        assert_eq!(condition(&s, ConditionType::Reconciling).status, "False");
        let sm = condition(&s, ConditionType::ServiceMonitor);
        assert!(sm.reason == Reason::ApplyFailed);
        assert_eq!(condition(&s, ConditionType::PrometheusRule).status, "True");
    }

    #[test]
    fn an_unavailable_api_server_keeps_the_monitor_reconciling_and_a_conflict_stalls_it() {
        let published = [(PublishKind::ServiceMonitor, api_failure(503, "unavailable"))];
        let s = monitor_status(&synced(), &published, stamp(&TapMonitorStatus::default()));
        assert_eq!(condition(&s, ConditionType::Ready).status, "False");
        assert_eq!(condition(&s, ConditionType::Reconciling).status, "True");
        assert_eq!(condition(&s, ConditionType::Stalled).status, "False");

        let conflict = Published::Failed(crate::publish::PublishError::Conflict {
            kind: "ConfigMap",
            namespace: "team-a".into(),
            name: "tap-overview".into(),
            owner: "no owner".into(),
        });
        let s = monitor_status(
            &synced(),
            &[(PublishKind::Dashboards, conflict)],
            stamp(&TapMonitorStatus::default()),
        );
        let stalled = condition(&s, ConditionType::Stalled);
        assert_eq!(stalled.status, "True");
        assert!(
            stalled.message.contains("is not this monitor's"),
            "{}",
            stalled.message
        );
        // Disabled and not-installed publishing is no failure.
        let s = monitor_status(
            &synced(),
            &[
                (PublishKind::ServiceMonitor, Published::NotInstalled),
                (PublishKind::Dashboards, Published::Disabled),
            ],
            stamp(&TapMonitorStatus::default()),
        );
        assert_eq!(condition(&s, ConditionType::Ready).status, "True");
    }
}
