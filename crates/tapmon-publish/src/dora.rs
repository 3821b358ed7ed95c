//! The four DORA figures for TAP workloads as recording rules (`tap:dora:*`), from series the
//! presets make. What each measures, and where it is an approximation, is in the README
//! ("DORA metrics").
//!
//! Deployment frequency, lead time and change failure rate read the objects' own timestamps
//! and states, so they are right from the first evaluation and across restarts of tapmon or
//! Prometheus. Time to restore needs the history of Workload readiness, which no object keeps:
//! it is recorded here and read back over 7 days, so it is complete only after 7 days.

use std::collections::BTreeMap;

use tapmon_presets::TapGroup;

use crate::promql::scoped;
use crate::rules::Rule;

/// How often the DORA group is evaluated: time to restore counts the samples of
/// [`WORKLOAD_FAILING`] it recorded, so it must know their spacing.
pub const INTERVAL: &str = "1m";

/// Prefix of every DORA recording rule.
pub const PREFIX: &str = "tap:dora:";

/// Deployments per workload in the last day: Knative revisions that became Ready.
pub const DEPLOYMENTS_1D: &str = "tap:dora:deployments:count1d";
/// Deployments per workload in the last 7 days.
pub const DEPLOYMENTS_7D: &str = "tap:dora:deployments:count7d";
/// Lead time for changes, per deployed image: from the creation of the kpack Build that made
/// the image to the Knative revision running it becoming Ready.
pub const LEAD_TIME: &str = "tap:dora:lead_time_seconds";
/// Change failure rate per workload: revisions that failed to become Ready over all that
/// finished trying.
pub const CHANGE_FAILURE_RATE: &str = "tap:dora:change_failure_rate:ratio";
/// 1 while a Workload's Ready condition is False, else 0: the history time to restore reads.
pub const WORKLOAD_FAILING: &str = "tap:dora:workload_failing";
/// Failures (Ready turning False) per workload in the last 7 days.
pub const FAILURES_7D: &str = "tap:dora:failures:count7d";
/// Mean time to restore per workload over the last 7 days: seconds not Ready per failure.
pub const TIME_TO_RESTORE: &str = "tap:dora:time_to_restore_seconds:avg7d";

/// The rules, in evaluation order (later ones read earlier ones), each with every group whose
/// series it reads. `{R}` marks a rule's own recorded series (scoped, not deduplicated). Each
/// keeps `tap_monitor`, so the records of two monitors never collide and dashboards can scope
/// them.
const RECORDS: [(&str, &[TapGroup], &str); 7] = [
    (
        DEPLOYMENTS_1D,
        &[TapGroup::Knative],
        concat!(
            "count by (tap_monitor, namespace, workload) (",
            r#"knative_revision_ready_timestamp_seconds{S status="True"}"#,
            " > time() - 86400)"
        ),
    ),
    (
        DEPLOYMENTS_7D,
        &[TapGroup::Knative],
        concat!(
            "count by (tap_monitor, namespace, workload) (",
            r#"knative_revision_ready_timestamp_seconds{S status="True"}"#,
            " > time() - 7 * 86400)"
        ),
    ),
    (
        LEAD_TIME,
        &[TapGroup::Knative, TapGroup::Kpack],
        // Joined by image digest: a tag names different images over time, a digest one.
        concat!(
            r#"(max by (tap_monitor, namespace, workload, image) (label_replace(knative_revision_ready_timestamp_seconds{S status="True", workload_image=~".+@sha256:.+"}, "image", "$1", "workload_image", "(.+)"))"#,
            r#" - on (tap_monitor, image) group_left () min by (tap_monitor, image) (label_replace(kpack_build_created_timestamp_seconds{S latest_image=~".+@sha256:.+"}, "image", "$1", "latest_image", "(.+)"))) >= 0"#
        ),
    ),
    (
        CHANGE_FAILURE_RATE,
        &[TapGroup::Knative],
        concat!(
            r#"(count by (tap_monitor, namespace, workload) (knative_revision_status{S type="Ready", status="False"})"#,
            r#" or 0 * count by (tap_monitor, namespace, workload) (knative_revision_status{S type="Ready", status=~"True|False"}))"#,
            r#" / count by (tap_monitor, namespace, workload) (knative_revision_status{S type="Ready", status=~"True|False"})"#
        ),
    ),
    (
        WORKLOAD_FAILING,
        &[TapGroup::Cartographer],
        r#"max by (tap_monitor, namespace, workload) (label_replace(cartographer_workload_status{S type="Ready"}, "workload", "$1", "name", "(.*)")) == bool 0"#,
    ),
    (
        FAILURES_7D,
        &[TapGroup::Cartographer],
        // Each failure is one rise of the 0/1 series; changes() counts rises and falls.
        "ceil((changes(tap:dora:workload_failing{R}[7d]) + tap:dora:workload_failing{R}) / 2)",
    ),
    (
        TIME_TO_RESTORE,
        &[TapGroup::Cartographer],
        // Each sample of the 0/1 series stands for one interval ([`INTERVAL`], 60 s).
        "sum_over_time(tap:dora:workload_failing{R}[7d]) * 60 / (tap:dora:failures:count7d{R} > 0)",
    ),
];

/// The DORA recording rules that `groups` can fill, scoped to `scope` when given.
pub fn records(groups: &[TapGroup], scope: Option<&str>) -> Vec<Rule> {
    RECORDS
        .iter()
        .filter(|(_, needs, _)| needs.iter().all(|g| groups.contains(g)))
        .map(|(record, _, template)| Rule::Record {
            record: (*record).into(),
            expr: scoped(template, scope),
            labels: BTreeMap::new(),
        })
        .collect()
}

/// Names of every DORA record, for docs and tests.
pub fn record_names() -> Vec<&'static str> {
    RECORDS.iter().map(|(name, _, _)| *name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_is_named_under_the_prefix_and_scoped() {
        let rules = records(&TapGroup::ALL, Some("ns/tap"));
        assert_eq!(rules.len(), RECORDS.len());
        for rule in rules {
            let Rule::Record { record, expr, .. } = rule else {
                panic!("only records");
            };
            assert!(record.starts_with(PREFIX), "{record}");
            assert!(!expr.contains("{S") && !expr.contains("{R"), "{expr}");
            assert!(expr.contains(r#"tap_monitor="ns/tap""#), "{expr}");
        }
    }

    #[test]
    fn a_record_needs_every_group_it_reads() {
        let names = |groups: &[TapGroup]| -> Vec<String> {
            records(groups, None)
                .into_iter()
                .map(|r| match r {
                    Rule::Record { record, .. } => record,
                    Rule::Alert { alert, .. } => alert,
                })
                .collect()
        };
        assert_eq!(
            names(&[TapGroup::Knative]),
            [DEPLOYMENTS_1D, DEPLOYMENTS_7D, CHANGE_FAILURE_RATE]
        );
        assert!(names(&[TapGroup::Knative, TapGroup::Kpack]).contains(&LEAD_TIME.to_owned()));
        assert_eq!(
            names(&[TapGroup::Cartographer]),
            [WORKLOAD_FAILING, FAILURES_7D, TIME_TO_RESTORE]
        );
    }
}
