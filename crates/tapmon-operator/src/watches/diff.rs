//! The difference between the watches a monitor needs and those running: a pure function, so
//! the rules (share, relist for a new subscriber, stop when unused) are tested without a
//! cluster.

use std::collections::{BTreeMap, BTreeSet};

use crate::kinds::WatchKey;
use crate::monitor::MonitorKey;

/// A subscriber of a running watch: which monitor, and which build of it.
pub type Subscription = (MonitorKey, u64);

/// What to do to make one monitor's subscriptions match what it needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WatchDiff {
    /// Watches to (re)start with the monitor subscribed: new ones, and running ones it joins or
    /// re-joins as a new build (they relist so it sees every object).
    pub start: Vec<WatchKey>,
    /// Watches to leave, still needed by other monitors.
    pub leave: Vec<WatchKey>,
    /// Watches to stop: the monitor was their last subscriber.
    pub stop: Vec<WatchKey>,
}

/// Compares `running` (each watch with its subscribers) with what `monitor` (build `build`)
/// needs. Watches the monitor keeps, as the same build, are not touched.
pub fn diff(
    running: &BTreeMap<WatchKey, Vec<Subscription>>,
    monitor: &MonitorKey,
    build: u64,
    desired: &BTreeSet<WatchKey>,
) -> WatchDiff {
    let mut out = WatchDiff::default();
    for (key, subscribers) in running {
        let mine = subscribers.iter().any(|(m, _)| m == monitor);
        if !mine || desired.contains(key) {
            continue;
        }
        if subscribers.iter().all(|(m, _)| m == monitor) {
            out.stop.push(key.clone());
        } else {
            out.leave.push(key.clone());
        }
    }
    for key in desired {
        let current = running
            .get(key)
            .and_then(|subs| subs.iter().find(|(m, _)| m == monitor));
        if current.is_none_or(|(_, b)| *b != build) {
            out.start.push(key.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::watch_key;

    fn key(kind: &str) -> WatchKey {
        watch_key("g", "v1", kind)
    }

    fn m(name: &str) -> MonitorKey {
        MonitorKey::namespaced("ns", name)
    }

    #[test]
    fn a_first_monitor_starts_everything() {
        let d = diff(
            &BTreeMap::new(),
            &m("a"),
            1,
            &BTreeSet::from([key("A"), key("B")]),
        );
        assert_eq!(
            d,
            WatchDiff {
                start: vec![key("A"), key("B")],
                ..Default::default()
            }
        );
    }

    #[test]
    fn an_unchanged_monitor_touches_nothing() {
        let running = BTreeMap::from([(key("A"), vec![(m("a"), 1)])]);
        assert_eq!(
            diff(&running, &m("a"), 1, &BTreeSet::from([key("A")])),
            WatchDiff::default()
        );
    }

    #[test]
    fn joining_or_rebuilding_relists_only_that_watch() {
        let running = BTreeMap::from([
            (key("A"), vec![(m("a"), 1)]),
            (key("B"), vec![(m("a"), 1), (m("b"), 7)]),
        ]);
        // b joins A; its build of B is unchanged.
        let d = diff(&running, &m("b"), 7, &BTreeSet::from([key("A"), key("B")]));
        assert_eq!(
            d,
            WatchDiff {
                start: vec![key("A")],
                ..Default::default()
            }
        );
        // b rebuilt (spec changed): both its watches relist.
        let d = diff(&running, &m("b"), 8, &BTreeSet::from([key("A"), key("B")]));
        assert_eq!(d.start, vec![key("A"), key("B")]);
    }

    #[test]
    fn leaving_stops_only_watches_nobody_else_needs() {
        let running = BTreeMap::from([
            (key("A"), vec![(m("a"), 1)]),
            (key("B"), vec![(m("a"), 1), (m("b"), 7)]),
            (key("C"), vec![(m("b"), 7)]),
        ]);
        let d = diff(&running, &m("a"), 1, &BTreeSet::new());
        assert_eq!(
            d,
            WatchDiff {
                start: vec![],
                leave: vec![key("B")],
                stop: vec![key("A")]
            }
        );
    }
}
