//! One workload's supply chain: each stage's state and history, then the objects of each stage.

use serde_json::json;
use tapmon_presets::TapGroup;

use super::layout::{About, Layout, listing};
use super::{Dashboard, Query};
use crate::{promql, rules};

/// The objects of each stage in the supply-chain view: group, row title, then (title, what it
/// shows, width, query) per table.
type Tables = &'static [(&'static str, About, u32, Query)];
const STAGE_TABLES: [(TapGroup, &str, Tables); 7] = [
    (
        TapGroup::Flux,
        "Source",
        &[(
            "Git source",
            listing(
                "The Flux GitRepository the workload's source comes from: Ready, reason and last fetched revision.",
            ),
            24,
            Query::Text(r#"flux_git_repository_status{S workload="$workload", type="Ready"}"#),
        )],
    ),
    (
        TapGroup::Tekton,
        "Tests and config",
        &[
            (
                "Test pipeline runs",
                listing(
                    "The Tekton PipelineRuns that tested the workload, with their Succeeded condition.",
                ),
                12,
                Query::Text(
                    r#"tekton_pipeline_run_status{S workload="$workload", type="Succeeded"}"#,
                ),
            ),
            (
                "Config writer runs",
                listing(
                    "The Tekton TaskRuns that wrote the workload's delivery config, with their Succeeded condition.",
                ),
                12,
                Query::Text(
                    r#"tekton_task_run_status{S workload="$workload", component="config-writer", type="Succeeded"}"#,
                ),
            ),
        ],
    ),
    (
        TapGroup::Kpack,
        "Build",
        &[
            (
                "Builds",
                listing(
                    "The kpack Builds of the workload's image (those kpack keeps), with their Succeeded condition.",
                ),
                16,
                Query::Text(r#"kpack_build_status{S workload="$workload", type="Succeeded"}"#),
            ),
            (
                "Buildpacks",
                listing("The buildpacks and versions the workload's builds used."),
                8,
                Query::Text(r#"kpack_build_involved_buildpacks{S workload="$workload"}"#),
            ),
        ],
    ),
    (
        TapGroup::Scanning,
        "Scans",
        &[
            (
                "Image scans (CVE counts)",
                listing(
                    "Scans of the workload's image: scanner, policy result and CVE counts by severity.",
                ),
                12,
                Query::Text(r#"scst_image_scan_info{S workload="$workload"}"#),
            ),
            (
                "Source scans (CVE counts)",
                listing(
                    "Scans of the workload's source: scanner, policy result and CVE counts by severity.",
                ),
                12,
                Query::Text(r#"scst_source_scan_info{S workload="$workload"}"#),
            ),
        ],
    ),
    (
        TapGroup::Cartographer,
        "Delivery",
        // Deliverables carry no workload label; their name is the workload's.
        &[(
            "Deliverable",
            listing("The Deliverable of the workload (same name) and its Ready condition."),
            24,
            Query::OfChosenWorkload(promql::DELIVERABLE_READY_BY_WORKLOAD),
        )],
    ),
    (
        TapGroup::Knative,
        "Runtime",
        &[
            (
                "Knative service",
                listing("The Knative Service running the workload: its URL and latest revisions."),
                12,
                Query::Text(r#"knative_service_info{S workload="$workload"}"#),
            ),
            (
                "Revisions",
                listing("The workload's Knative Revisions with their Ready condition."),
                12,
                Query::Text(r#"knative_revision_status{S workload="$workload", type="Ready"}"#),
            ),
        ],
    ),
    (
        TapGroup::ServiceBindings,
        "Bindings",
        &[(
            "Service bindings",
            listing("The ServiceBindings of the workload with their Ready condition."),
            24,
            Query::Text(r#"service_binding_status{S workload="$workload", type="Ready"}"#),
        )],
    ),
];

/// A stage's state, as its recording rule gives it.
const STAGE: About = About {
    description: "This stage for the chosen workload: 1 when its objects are healthy, 0 when one is failing, -1 when unknown (still running, or no condition yet), from the tap:stage recording rules.",
    unit: "none",
};

/// The words for a stage's values.
static STAGE_WORDS: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
    json!([{"type": "value", "options": {
        "1": {"text": "healthy", "index": 0},
        "0": {"text": "failing", "index": 1},
        "-1": {"text": "unknown", "index": 2}
    }}])
});

/// One workload's supply chain: each stage's state and history, then the objects of each stage.
pub fn supply_chain(groups: &[TapGroup], scope: Option<&str>) -> Dashboard {
    let on = |g: TapGroup| groups.contains(&g);
    let mut l = Layout::new(scope);
    let stages: Vec<(String, String)> = rules::stage_templates(groups)
        .into_iter()
        .map(|(stage, template)| {
            (
                stage.to_owned(),
                format!("({template}) {}", promql::ONLY_CHOSEN_WORKLOAD),
            )
        })
        .collect();
    l.row("Stages: 1 healthy, 0 failing, -1 unknown");
    for (stage, expr) in &stages {
        l.panel(
            "stat",
            stage,
            STAGE,
            3,
            4,
            &[(expr.as_str(), "")],
            json!({"options": {"colorMode": "background"},
                   "fieldConfig": {"defaults": {
                       "thresholds": {"mode": "absolute", "steps": [
                           {"color": "orange", "value": null}, {"color": "red", "value": 0}, {"color": "green", "value": 1}]},
                       "mappings": STAGE_WORDS.clone()}}}),
        );
    }
    let history: Vec<(&str, &str)> = stages
        .iter()
        .map(|(s, e)| (e.as_str(), s.as_str()))
        .collect();
    if !history.is_empty() {
        l.next_line();
        l.panel(
            "timeseries",
            "Stage history",
            About {
                description: "Each stage of the workload over time: 1 healthy, 0 failing, -1 unknown. A dip is a failed build, test, scan or rollout; its length is how long the stage stayed broken.",
                unit: "none",
            },
            24,
            8,
            &history,
            json!({"fieldConfig": {"defaults": {"mappings": STAGE_WORDS.clone()}}}),
        );
    }
    for (group, row, tables) in STAGE_TABLES {
        if on(group) {
            l.row(row);
            for (title, about, width, query) in tables {
                l.table(title, *about, *width, &query.template());
            }
        }
    }
    Dashboard::new("supply-chain", "TAP workload supply chain", scope, true, l)
}
