//! One workload's supply chain: each stage's state and history, then the objects of each stage.

use serde_json::json;
use tapmon_presets::TapGroup;

use super::layout::Layout;
use super::{Dashboard, Query};
use crate::{promql, rules};

/// The objects of each stage in the supply-chain view: group, row title, then (title, width,
/// query) per table.
type Tables = &'static [(&'static str, u32, Query)];
const STAGE_TABLES: [(TapGroup, &str, Tables); 7] = [
    (
        TapGroup::Flux,
        "Source",
        &[(
            "Git source",
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
                12,
                Query::Text(
                    r#"tekton_pipeline_run_status{S workload="$workload", type="Succeeded"}"#,
                ),
            ),
            (
                "Config writer runs",
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
                16,
                Query::Text(r#"kpack_build_status{S workload="$workload", type="Succeeded"}"#),
            ),
            (
                "Buildpacks",
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
                12,
                Query::Text(r#"scst_image_scan_info{S workload="$workload"}"#),
            ),
            (
                "Source scans (CVE counts)",
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
                12,
                Query::Text(r#"knative_service_info{S workload="$workload"}"#),
            ),
            (
                "Revisions",
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
            24,
            Query::Text(r#"service_binding_status{S workload="$workload", type="Ready"}"#),
        )],
    ),
];

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
            3,
            4,
            &[(expr.as_str(), "")],
            json!({"options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
                   "fieldConfig": {"defaults": {"thresholds": {"mode": "absolute", "steps": [
                       {"color": "orange", "value": null}, {"color": "red", "value": 0}, {"color": "green", "value": 1}]}}}}),
        );
    }
    let history: Vec<(&str, &str)> = stages
        .iter()
        .map(|(s, e)| (e.as_str(), s.as_str()))
        .collect();
    if !history.is_empty() {
        l.next_line();
        l.panel("timeseries", "Stage history", 24, 8, &history, json!({}));
    }
    for (group, row, tables) in STAGE_TABLES {
        if on(group) {
            l.row(row);
            for (title, width, query) in tables {
                l.table(title, *width, &query.template());
            }
        }
    }
    Dashboard::new("supply-chain", "TAP workload supply chain", scope, true, l)
}
