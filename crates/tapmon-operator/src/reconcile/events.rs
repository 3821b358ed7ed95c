//! The Events that mark what changed between two statuses of a TapMonitor: becoming stalled or
//! ready, kinds changing state, published objects changing state. Pure, so a restart that finds
//! the same status emits nothing.

use kube::runtime::events::{Event, EventType};
use tapmon_api::{ConditionType, EventReason, KindState, Reason, TapMonitorStatus, status_str};

use super::status::truncate;
use crate::publish::PublishKind;

/// Longest Event note.
const NOTE_LIMIT: usize = 1000;

fn condition(s: &TapMonitorStatus, t: ConditionType) -> Option<(&str, &str, &str)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

fn event(type_: EventType, reason: EventReason, note: String, action: &str) -> Event {
    Event {
        type_,
        reason: reason.to_string(),
        note: Some(truncate(&note, NOTE_LIMIT)),
        action: action.into(),
        secondary: None,
    }
}

/// The Events between `before` and `after`, in the order they are published.
pub fn events(before: &TapMonitorStatus, after: &TapMonitorStatus) -> Vec<Event> {
    let mut out = Vec::new();
    // Stalled by its config or spec; a kind or a published object that stalls it has its own
    // Event.
    let stalled = |s| condition(s, ConditionType::Stalled);
    if let Some((status, reason, message)) = stalled(after)
        && status == status_str(true)
        && reason != Reason::WatchForbidden.as_str()
        && reason != Reason::PublishFailed.as_str()
        && stalled(before) != Some((status, reason, message))
    {
        out.push(event(
            EventType::Warning,
            EventReason::InvalidConfig,
            message.to_owned(),
            "Validate",
        ));
    }
    let ready = |s| condition(s, ConditionType::Ready).map(|(st, _, _)| st == status_str(true));
    if ready(after) == Some(true) && ready(before) != Some(true) {
        let watching = after
            .kinds
            .iter()
            .filter(|k| k.state == KindState::Watching)
            .count();
        out.push(event(
            EventType::Normal,
            EventReason::Ready,
            format!("watching {watching} kinds, {} objects", after.objects),
            "Watch",
        ));
    }
    for kind in &after.kinds {
        let was = before
            .kinds
            .iter()
            .find(|k| k.group == kind.group && k.kind == kind.kind)
            .map(|k| k.state);
        if was.is_some_and(|w| w != kind.state) {
            let detail = kind
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            out.push(event(
                if kind.state.is_failure() {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                EventReason::Kind(kind.state),
                format!("{} ({}): {}{detail}", kind.kind, kind.group, kind.state),
                "Watch",
            ));
        }
    }
    let limit = |s| condition(s, ConditionType::SeriesLimit).map(|(_, r, m)| (r, m));
    if let Some((reason, message)) = limit(after)
        && limit(before).map(|b| b.0) != Some(reason)
        && let Some(reason) = Reason::parse(reason)
        // A first status within the limit is no news.
        && (reason == Reason::LimitReached || limit(before).is_some())
    {
        out.push(event(
            if reason == Reason::LimitReached {
                EventType::Warning
            } else {
                EventType::Normal
            },
            EventReason::SeriesLimit(reason),
            message.to_owned(),
            "Evaluate",
        ));
    }
    for kind in PublishKind::ALL {
        let of = |s| condition(s, kind.condition()).map(|(_, r, m)| (r, m));
        if let Some((reason, message)) = of(after)
            && of(before).map(|b| b.0) != Some(reason)
            && let Some(reason) = Reason::parse(reason)
        {
            out.push(event(
                if matches!(reason, Reason::ApplyFailed | Reason::Conflict) {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                EventReason::Published(kind.condition(), reason),
                if message.is_empty() {
                    format!("{} applied", kind.condition())
                } else {
                    message.to_owned()
                },
                "Publish",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use tapmon_api::KindStatus;

    use super::*;

    fn status(
        conditions: &[(ConditionType, bool, Reason, &str)],
        kinds: &[KindState],
    ) -> TapMonitorStatus {
        TapMonitorStatus {
            conditions: conditions
                .iter()
                .map(|(t, s, r, m)| Condition {
                    type_: t.as_str().into(),
                    status: status_str(*s).into(),
                    reason: r.as_str().into(),
                    message: (*m).into(),
                    observed_generation: Some(1),
                    last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                })
                .collect(),
            kinds: kinds
                .iter()
                .map(|state| KindStatus {
                    group: "kpack.io".into(),
                    kind: "Build".into(),
                    version: Some("v1alpha2".into()),
                    state: *state,
                    message: None,
                    objects: 3,
                    series: 9,
                })
                .collect(),
            objects: 3,
            ..Default::default()
        }
    }

    #[test]
    fn the_same_status_twice_is_no_event() {
        let s = status(
            &[
                (ConditionType::Ready, true, Reason::Watching, ""),
                (ConditionType::ServiceMonitor, true, Reason::Applied, ""),
            ],
            &[KindState::Watching],
        );
        assert!(events(&s, &s).is_empty());
    }

    #[test]
    fn transitions_each_give_one_event() {
        let before = status(
            &[
                (ConditionType::Ready, false, Reason::InitialList, ""),
                (
                    ConditionType::ServiceMonitor,
                    false,
                    Reason::CrdNotInstalled,
                    "x",
                ),
            ],
            &[KindState::Watching],
        );
        let after = status(
            &[
                (ConditionType::Ready, true, Reason::Watching, ""),
                (
                    ConditionType::Stalled,
                    true,
                    Reason::InvalidConfig,
                    "spec.resources[0] bad",
                ),
                (ConditionType::ServiceMonitor, true, Reason::Applied, ""),
            ],
            &[KindState::Forbidden],
        );
        let got: Vec<(String, String)> = events(&before, &after)
            .into_iter()
            .map(|e| (e.reason, e.note.unwrap_or_default()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    EventReason::InvalidConfig.to_string(),
                    "spec.resources[0] bad".to_owned()
                ),
                (
                    EventReason::Ready.to_string(),
                    "watching 0 kinds, 3 objects".to_owned()
                ),
                (
                    EventReason::Kind(KindState::Forbidden).to_string(),
                    "Build (kpack.io): Forbidden".to_owned()
                ),
                (
                    EventReason::Published(ConditionType::ServiceMonitor, Reason::Applied)
                        .to_string(),
                    "ServiceMonitor applied".to_owned()
                ),
            ]
        );
    }
}
