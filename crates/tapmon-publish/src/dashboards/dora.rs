//! DORA for TAP: the four keys over the monitor's workloads, each per workload, then the
//! durations and CVE counts behind them. Reads the `tap:dora:*` records (`crate::dora`) and
//! the presets' duration and CVE families.

use serde_json::json;
use tapmon_presets::TapGroup;

use super::Dashboard;
use super::layout::{About, Layout};

/// A panel of the dashboard: the groups it needs, its title, what it shows, and its query.
type Panel = (&'static [TapGroup], &'static str, About, &'static str);

const fn about(description: &'static str, unit: &'static str) -> About {
    About { description, unit }
}

/// The four keys over every workload in the namespaces chosen.
const KEYS: [Panel; 4] = [
    (
        &[TapGroup::Knative],
        "Deployments, last 7 days",
        about(
            "Deployment frequency: Knative revisions of the workloads that became Ready in the last 7 days (tap:dora:deployments:count7d). Knative deletes old revisions, so a busy workload's count is a lower bound.",
            "short",
        ),
        "sum(tap:dora:deployments:count7d{R}) or vector(0)",
    ),
    (
        &[TapGroup::Knative, TapGroup::Kpack],
        "Lead time for changes, median",
        about(
            "From the creation of the kpack Build that made an image to the Knative revision running it becoming Ready, joined by image digest; the median over the deployments Knative still keeps (tap:dora:lead_time_seconds).",
            "s",
        ),
        "quantile(0.5, tap:dora:lead_time_seconds{R})",
    ),
    (
        &[TapGroup::Knative],
        "Change failure rate",
        about(
            "Knative revisions that failed to become Ready, of all that finished trying, over the revisions Knative still keeps.",
            "percentunit",
        ),
        r#"(count(knative_revision_status{S type="Ready", status="False"}) or vector(0)) / count(knative_revision_status{S type="Ready", status=~"True|False"})"#,
    ),
    (
        &[TapGroup::Cartographer],
        "Time to restore, 7-day mean",
        about(
            "How long a Workload stayed not Ready, per time it turned not Ready, over the last 7 days (tap:dora:time_to_restore_seconds:avg7d). Read from Prometheus' own history of the workloads: complete once it holds 7 days.",
            "s",
        ),
        "avg(tap:dora:time_to_restore_seconds:avg7d{R})",
    ),
];

/// The same per workload.
const PER_WORKLOAD: [Panel; 4] = [
    (
        &[TapGroup::Knative],
        "Deployments per workload, last 7 days",
        about(
            "Knative revisions of each workload that became Ready in the last 7 days.",
            "short",
        ),
        "sum by (workload) (tap:dora:deployments:count7d{R})",
    ),
    (
        &[TapGroup::Knative, TapGroup::Kpack],
        "Lead time per workload, median",
        about(
            "Median lead time for changes of each workload's deployments still kept.",
            "s",
        ),
        "quantile by (workload) (0.5, tap:dora:lead_time_seconds{R})",
    ),
    (
        &[TapGroup::Knative],
        "Change failure rate per workload",
        about(
            "Of each workload's revisions that finished trying, the share that failed to become Ready.",
            "percentunit",
        ),
        "max by (workload) (tap:dora:change_failure_rate:ratio{R})",
    ),
    (
        &[TapGroup::Cartographer],
        "Time to restore per workload, 7-day mean",
        about(
            "How long each workload stayed not Ready per failure in the last 7 days; only workloads that failed.",
            "s",
        ),
        "max by (workload) (tap:dora:time_to_restore_seconds:avg7d{R})",
    ),
];

/// Where the time goes, and what the scans found.
const BEHIND: [Panel; 4] = [
    (
        &[TapGroup::Kpack],
        "Build duration, 90th percentile",
        about(
            "Of each workload's finished kpack Builds that kpack keeps, the 90th percentile of creation to end (kpack_build_duration_seconds).",
            "s",
        ),
        r#"quantile by (workload) (0.9, kpack_build_duration_seconds{S})"#,
    ),
    (
        &[TapGroup::Tekton],
        "Test pipeline duration, 90th percentile",
        about(
            "Of each workload's finished Tekton PipelineRuns, the 90th percentile of start to completion (tekton_pipeline_run_duration_seconds).",
            "s",
        ),
        r#"quantile by (workload) (0.9, tekton_pipeline_run_duration_seconds{S})"#,
    ),
    (
        &[TapGroup::Knative],
        "Revision time to Ready, median",
        about(
            "Of each workload's Ready Knative revisions, the median time from creation to Ready (knative_revision_time_to_ready_seconds).",
            "s",
        ),
        r#"quantile by (workload) (0.5, knative_revision_time_to_ready_seconds{S})"#,
    ),
    (
        &[TapGroup::Scanning],
        "Critical and high CVEs",
        about(
            "CVEs of severity critical or high that the image and source scans of each workload found (scst_image_scan_cves, scst_source_scan_cves).",
            "short",
        ),
        r#"sum by (workload) ({S __name__=~"scst_(image|source)_scan_cves", severity=~"critical|high"})"#,
    ),
];

/// DORA for TAP: the four keys, per workload, and the durations behind them.
pub fn dora(groups: &[TapGroup], scope: Option<&str>) -> Dashboard {
    let on = |needs: &[TapGroup]| needs.iter().all(|g| groups.contains(g));
    let mut l = Layout::new(scope);
    l.workload_link = Some(super::uid("supply-chain", scope));
    let sections: [(&str, &[Panel]); 3] = [
        ("The four keys", &KEYS),
        ("Per workload", &PER_WORKLOAD),
        ("Behind the numbers", &BEHIND),
    ];
    for (row, panels) in sections {
        let enabled: Vec<&Panel> = panels.iter().filter(|(needs, ..)| on(needs)).collect();
        if enabled.is_empty() {
            continue;
        }
        l.row(row);
        for (_, title, about, expr) in enabled {
            if row == "The four keys" {
                l.panel("stat", title, *about, 6, 4, &[(expr, "")], json!({}));
            } else {
                l.bars(title, *about, expr, "{{workload}}");
            }
        }
    }
    Dashboard::new("dora", "TAP DORA metrics", scope, false, l)
}
