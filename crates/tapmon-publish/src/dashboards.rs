//! Grafana dashboards, generated for the TAP groups a monitor enables: the TAP overview (the
//! ten sections users of the proof of concept know) and the per-workload supply chain.
//!
//! Every query uses the `datasource` variable; selectors carry the monitor's scope
//! (`tap_monitor="ns/name"`) and the `namespace` variable; the supply chain adds `workload`.

use serde_json::{Value, json};
use tapmon_presets::TapGroup;

use crate::rules;

/// A generated dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// Short name: `overview` or `supply-chain`.
    pub slug: &'static str,
    /// Stable uid (at most 40 characters, Grafana's limit).
    pub uid: String,
    /// The dashboard JSON model.
    pub json: Value,
}

/// FNV-1a: a stable hash for uids (std's hasher is randomly seeded per process).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A dashboard uid: stable for a monitor, at most 40 characters.
pub fn uid(slug: &str, scope: Option<&str>) -> String {
    match scope {
        Some(s) => format!("tapmon-{slug}-{:016x}", fnv(s)),
        None => format!("tapmon-{slug}"),
    }
}

/// Lays panels out on Grafana's 24-column grid.
struct Layout {
    panels: Vec<Value>,
    scope: String,
    x: u32,
    y: u32,
    row_height: u32,
}

const DS: &str = "${datasource}";

impl Layout {
    fn new(scope: Option<&str>) -> Self {
        let scope = crate::selector::scope_matcher(scope);
        Self {
            panels: Vec::new(),
            scope,
            x: 0,
            y: 0,
            row_height: 0,
        }
    }

    /// `{S ...}` in a query becomes the scope and namespace matchers; `{C ...}` (cluster-scoped
    /// kinds, which have no namespace) only the scope.
    fn q(&self, expr: &str) -> String {
        let scoped = crate::selector::fill(expr, "C", &self.scope);
        crate::selector::fill(
            &scoped,
            "S",
            &format!("{}namespace=~\"$namespace\", ", self.scope),
        )
    }

    fn next_line(&mut self) {
        if self.x > 0 {
            self.y += self.row_height;
            self.x = 0;
            self.row_height = 0;
        }
    }

    fn row(&mut self, title: &str) {
        self.next_line();
        let id = self.panels.len() + 1;
        self.panels.push(json!({
            "id": id, "type": "row", "title": title, "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []
        }));
        self.y += 1;
    }

    fn panel(
        &mut self,
        kind: &str,
        title: &str,
        w: u32,
        h: u32,
        targets: &[(&str, &str)],
        extra: Value,
    ) {
        if self.x + w > 24 {
            self.next_line();
        }
        let id = self.panels.len() + 1;
        let instant = kind != "timeseries";
        let targets: Vec<Value> = targets
            .iter()
            .enumerate()
            .map(|(i, (expr, legend))| {
                json!({
                    "refId": char::from(b'A' + i as u8).to_string(),
                    "datasource": {"type": "prometheus", "uid": DS},
                    "expr": self.q(expr),
                    "legendFormat": legend,
                    "instant": instant,
                    "range": !instant,
                    "format": if kind == "table" { "table" } else { "time_series" }
                })
            })
            .collect();
        let mut panel = json!({
            "id": id, "type": kind, "title": title,
            "datasource": {"type": "prometheus", "uid": DS},
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "targets": targets
        });
        if let (Some(p), Value::Object(extra)) = (panel.as_object_mut(), extra) {
            p.extend(extra);
        }
        self.panels.push(panel);
        self.x += w;
        self.row_height = self.row_height.max(h);
    }

    fn stat(&mut self, title: &str, expr: &str) {
        self.panel(
            "stat",
            title,
            4,
            4,
            &[(expr, "")],
            json!({"options": {"reduceOptions": {"calcs": ["lastNotNull"]}}}),
        );
    }

    fn bars(&mut self, title: &str, expr: &str, legend: &str) {
        self.panel(
            "bargauge",
            title,
            8,
            6,
            &[(expr, legend)],
            json!({"options": {"orientation": "horizontal"}}),
        );
    }

    /// A table of series, their labels as columns, time and value columns hidden.
    fn table(&mut self, title: &str, w: u32, expr: &str) {
        self.panel(
            "table",
            title,
            w,
            8,
            &[(expr, "")],
            json!({"transformations": [{"id": "organize", "options": {"excludeByName": {"Time": true, "__name__": true, "customresource_group": true, "customresource_kind": true, "customresource_version": true, "job": true, "instance": true, "tap_monitor": true}}}]}),
        );
    }
}

fn templating(scope: &str, workload: bool) -> Value {
    let info = format!(
        "{{{scope}__name__=~\"(cartographer|kpack|tekton|flux|knative|scst|service_binding|stk|api_descriptor|carvel|accelerator).*_info\"}}"
    );
    let mut list = vec![
        json!({"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0}),
        json!({
            "name": "namespace", "label": "Namespace", "type": "query",
            "datasource": {"type": "prometheus", "uid": DS},
            "query": {"query": format!("label_values({info}, namespace)"), "refId": "namespace"},
            "definition": format!("label_values({info}, namespace)"),
            "includeAll": true, "multi": true, "allValue": ".*", "refresh": 2, "sort": 1,
            "current": {"text": "All", "value": "$__all"}
        }),
    ];
    if workload {
        let workloads = format!(
            "label_values({{{scope}namespace=~\"$namespace\", __name__=~\".+\", workload!=\"\"}}, workload)"
        );
        list.push(json!({
            "name": "workload", "label": "Workload", "type": "query",
            "datasource": {"type": "prometheus", "uid": DS},
            "query": {"query": workloads, "refId": "workload"},
            "definition": workloads,
            "includeAll": false, "multi": false, "refresh": 2, "sort": 1
        }));
    }
    json!({"list": list})
}

fn model(uid: &str, title: &str, scope: &str, workload: bool, panels: Vec<Value>) -> Value {
    json!({
        "uid": uid,
        "title": title,
        "tags": ["tap", "tapmon"],
        "editable": true,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "timezone": "browser",
        "templating": templating(scope, workload),
        "annotations": {"list": []},
        "panels": panels
    })
}

/// The TAP overview: the ten sections of the catalogue, panels only for enabled groups.
pub fn overview(groups: &[TapGroup], scope: Option<&str>) -> Dashboard {
    let on = |g: TapGroup| groups.contains(&g);
    let mut l = Layout::new(scope);
    if on(TapGroup::Carvel) {
        l.row("Package installations and repositories");
        l.stat("Package installs failing", r#"count(carvel_packageinstall_info{S type="ReconcileFailed", status="True"}) or vector(0)"#);
        l.stat("Package installs reconciled", r#"count(carvel_packageinstall_info{S type="ReconcileSucceeded", status="True"}) or vector(0)"#);
        l.stat("Repositories failing", r#"count(carvel_packagerepository_info{S type="ReconcileFailed", status="True"}) or vector(0)"#);
        l.stat(
            "Packages with overlays",
            r#"count(carvel_packageinstall_info{S ytt_overlay_secret!=""}) or vector(0)"#,
        );
        l.table("Package installs", 24, "carvel_packageinstall_info{S}");
        l.table(
            "Package repositories",
            12,
            "carvel_packagerepository_info{S}",
        );
        l.table("Namespaces provisioned", 12, "carvel_app_namespaces{S}");
    }
    if on(TapGroup::Cartographer) {
        l.row("Workloads");
        l.stat(
            "Workloads",
            "count(cartographer_workload_info{S}) or vector(0)",
        );
        l.stat(
            "Not ready",
            r#"count(cartographer_workload_status{S type="Ready", status="False"}) or vector(0)"#,
        );
        l.stat("Without a supply chain", r#"count(cartographer_workload_status{S type="SupplyChainReady", status="False"}) or vector(0)"#);
        l.stat(
            "Git source",
            r#"count(cartographer_workload_info{S source_image=""}) or vector(0)"#,
        );
        l.stat(
            "Image source",
            r#"count(cartographer_workload_info{S source_git_url=""}) or vector(0)"#,
        );
        l.stat(
            "Live update on",
            r#"count(cartographer_workload_info{S live_update_enabled="true"}) or vector(0)"#,
        );
        l.bars(
            "Workloads per type",
            "count by (type) (cartographer_workload_info{S})",
            "{{type}}",
        );
        l.bars(
            "Workloads per supply chain",
            "count by (supply_chain) (cartographer_workload_info{S})",
            "{{supply_chain}}",
        );
        l.stat(
            "Debug on",
            r#"count(cartographer_workload_info{S debug_enabled="true"}) or vector(0)"#,
        );
        l.table(
            "Workloads not ready",
            24,
            r#"cartographer_workload_status{S type="Ready", status!="True"}"#,
        );
    }
    if on(TapGroup::Flux) {
        l.row("Flux source controller");
        l.table(
            "Git sources of workloads",
            12,
            r#"flux_git_repository_status{S type="Ready", owner_type="Workload"}"#,
        );
        l.table(
            "Git sources of deliverables",
            12,
            r#"flux_git_repository_status{S type="Ready", owner_type="Deliverable"}"#,
        );
    }
    if on(TapGroup::Kpack) {
        l.row("Tanzu Build Service (kpack)");
        l.bars(
            "Successful builds per workload",
            r#"count by (workload) (kpack_build_status{S type="Succeeded", status="True"})"#,
            "{{workload}}",
        );
        l.bars(
            "Failed builds per workload",
            r#"count by (workload) (kpack_build_status{S type="Succeeded", status="False"})"#,
            "{{workload}}",
        );
        l.bars("Workloads using each buildpack", "count by (id) (topk(1000, count by (id, workload) (kpack_build_involved_buildpacks{S})))", "{{id}}");
    }
    if on(TapGroup::Tekton) {
        l.row("Tekton");
        l.bars("Successful test runs per workload", r#"count by (workload) (tekton_pipeline_run_status{S type="Succeeded", status="True"})"#, "{{workload}}");
        l.bars("Failed test runs per workload", r#"count by (workload) (tekton_pipeline_run_status{S type="Succeeded", status="False"})"#, "{{workload}}");
        l.bars("Failed config writer runs per workload", r#"count by (workload) (tekton_task_run_status{S component="config-writer", type="Succeeded", status="False"})"#, "{{workload}}");
    }
    if on(TapGroup::Scanning) {
        l.row("Image and source scanning");
        l.table("Image scans", 12, "scst_image_scan_info{S}");
        l.table("Source scans", 12, "scst_source_scan_info{S}");
    }
    if on(TapGroup::Knative) {
        l.row("Knative");
        l.stat(
            "Services not ready",
            r#"count(knative_service_status{S type="Ready", status="False"}) or vector(0)"#,
        );
        l.stat(
            "Unhealthy revisions",
            r#"count(knative_revision_status{S type="Ready", status="False"}) or vector(0)"#,
        );
        l.table(
            "Services whose latest revision is not ready",
            16,
            r#"knative_service_info{S} unless ignoring(__dst__) (label_replace(knative_service_info{S}, "__dst__", "$1", "latest_created_revision", "(.*)") == label_replace(knative_service_info{S}, "__dst__", "$1", "latest_ready_revision", "(.*)"))"#,
        );
    }
    if on(TapGroup::Accelerators) || on(TapGroup::ApiDescriptors) {
        l.row("Application accelerators and API descriptors");
        if on(TapGroup::Accelerators) {
            l.stat("Accelerators", "count(accelerator_info{S}) or vector(0)");
            l.stat(
                "Accelerators not ready",
                r#"count(accelerator_info{S ready!="true"}) or vector(0)"#,
            );
            l.stat(
                "Fragments",
                "count(accelerator_fragment_info{S}) or vector(0)",
            );
            l.stat(
                "Fragments not ready",
                r#"count(accelerator_fragment_info{S ready!="true"}) or vector(0)"#,
            );
        }
        if on(TapGroup::ApiDescriptors) {
            l.stat(
                "API descriptors registered",
                r#"count(api_descriptor_status{S type="Ready", status="True"}) or vector(0)"#,
            );
            l.stat(
                "API descriptors not ready",
                r#"count(api_descriptor_status{S type="Ready", status="False"}) or vector(0)"#,
            );
        }
    }
    if on(TapGroup::Cartographer) {
        l.row("Deliverables");
        l.stat("Deliverables failing", r#"count(cartographer_deliverable_status{S type="Ready", status="False"}) or vector(0)"#);
        l.stat(
            "Git source",
            r#"count(cartographer_deliverable_info{S source_image=""}) or vector(0)"#,
        );
        l.stat(
            "Image source",
            r#"count(cartographer_deliverable_info{S source_git_url=""}) or vector(0)"#,
        );
        l.table(
            "Deliverables",
            12,
            r#"cartographer_deliverable_status{S type="Ready"}"#,
        );
    }
    if on(TapGroup::ServiceBindings) || on(TapGroup::ServicesToolkit) {
        l.row("Service bindings and Services Toolkit");
        if on(TapGroup::ServiceBindings) {
            l.bars(
                "Bindings per service kind",
                "count by (service_kind) (service_binding_info{S})",
                "{{service_kind}}",
            );
            l.table(
                "Bindings not ready",
                16,
                r#"service_binding_status{S type="Ready", status!="True"}"#,
            );
        }
        if on(TapGroup::ServicesToolkit) {
            l.bars(
                "Class claims per class",
                "count by (class) (stk_class_claim_info{S})",
                "{{class}}",
            );
            l.stat(
                "Claims ready",
                r#"count(stk_class_claim_status{S type="Ready", status="True"}) or vector(0)"#,
            );
            l.stat(
                "Claims failing",
                r#"count(stk_class_claim_status{S type="Ready", status="False"}) or vector(0)"#,
            );
            l.stat(
                "Resource claims without a class claim",
                r#"count(stk_resource_claim_info{S class_claim=""}) or vector(0)"#,
            );
            l.table(
                "Cluster instance classes not ready",
                24,
                r#"stk_cluster_instance_class_status{C type="Ready", status!="True"}"#,
            );
        }
    }
    let id = uid("overview", scope);
    let title = match scope {
        Some(s) => format!("TAP overview ({s})"),
        None => "TAP overview".to_owned(),
    };
    Dashboard {
        slug: "overview",
        json: model(&id, &title, &l.scope, false, l.panels),
        uid: id,
    }
}

/// Keeps the series of the chosen workload: cheaper than a selector on every stage.
const ONLY_WORKLOAD: &str =
    r#"and on (workload) label_replace(vector(1), "workload", "$workload", "", "")"#;

/// The objects of each stage in the supply-chain view: group, row title, then (title, width,
/// query) per table.
type Tables = &'static [(&'static str, u32, &'static str)];
const STAGE_TABLES: [(TapGroup, &str, Tables); 7] = [
    (
        TapGroup::Flux,
        "Source",
        &[(
            "Git source",
            24,
            r#"flux_git_repository_status{S workload="$workload", type="Ready"}"#,
        )],
    ),
    (
        TapGroup::Tekton,
        "Tests and config",
        &[
            (
                "Test pipeline runs",
                12,
                r#"tekton_pipeline_run_status{S workload="$workload", type="Succeeded"}"#,
            ),
            (
                "Config writer runs",
                12,
                r#"tekton_task_run_status{S workload="$workload", component="config-writer", type="Succeeded"}"#,
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
                r#"kpack_build_status{S workload="$workload", type="Succeeded"}"#,
            ),
            (
                "Buildpacks",
                8,
                r#"kpack_build_involved_buildpacks{S workload="$workload"}"#,
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
                r#"scst_image_scan_info{S workload="$workload"}"#,
            ),
            (
                "Source scans (CVE counts)",
                12,
                r#"scst_source_scan_info{S workload="$workload"}"#,
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
            r#"label_replace(cartographer_deliverable_status{S type="Ready"}, "workload", "$1", "name", "(.*)") and on (workload) label_replace(vector(1), "workload", "$workload", "", "")"#,
        )],
    ),
    (
        TapGroup::Knative,
        "Runtime",
        &[
            (
                "Knative service",
                12,
                r#"knative_service_info{S workload="$workload"}"#,
            ),
            (
                "Revisions",
                12,
                r#"knative_revision_status{S workload="$workload", type="Ready"}"#,
            ),
        ],
    ),
    (
        TapGroup::ServiceBindings,
        "Bindings",
        &[(
            "Service bindings",
            24,
            r#"service_binding_status{S workload="$workload", type="Ready"}"#,
        )],
    ),
];

/// One workload's supply chain: each stage's state and history, then the objects of each stage.
pub fn supply_chain(groups: &[TapGroup], scope: Option<&str>) -> Dashboard {
    let on = |g: TapGroup| groups.contains(&g);
    let mut l = Layout::new(scope);
    let stages: Vec<(String, String)> = rules::stage_templates(groups)
        .into_iter()
        .map(|(stage, template)| (stage.to_owned(), format!("({template}) {ONLY_WORKLOAD}")))
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
            for (title, width, expr) in tables {
                l.table(title, *width, expr);
            }
        }
    }
    let id = uid("supply-chain", scope);
    let title = match scope {
        Some(s) => format!("TAP workload supply chain ({s})"),
        None => "TAP workload supply chain".to_owned(),
    };
    Dashboard {
        slug: "supply-chain",
        json: model(&id, &title, &l.scope, true, l.panels),
        uid: id,
    }
}

/// Both dashboards.
pub fn dashboards(groups: &[TapGroup], scope: Option<&str>) -> Vec<Dashboard> {
    vec![overview(groups, scope), supply_chain(groups, scope)]
}

/// Every query of a dashboard with its variables given values, as Prometheus would run it.
pub fn queries(dashboard: &Value, namespace: &str, workload: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let expr = expr
                    .replace("$namespace", namespace)
                    .replace("$workload", workload);
                out.push((panel["title"].as_str().unwrap_or("").to_owned(), expr));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_stable_short_and_distinct() {
        let a = uid("supply-chain", Some("tapmon-system/tap"));
        assert_eq!(a, uid("supply-chain", Some("tapmon-system/tap")));
        assert_ne!(a, uid("supply-chain", Some("other/tap")));
        assert!(a.len() <= 40, "{a}");
        assert_eq!(uid("overview", None), "tapmon-overview");
    }

    #[test]
    fn panels_only_for_enabled_groups_every_query_scoped() {
        let board = overview(&[TapGroup::Kpack], Some("ns/m"));
        let titles: Vec<&str> = board.json["panels"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["title"].as_str())
            .collect();
        assert_eq!(titles[0], "Tanzu Build Service (kpack)");
        assert!(!titles.contains(&"Workloads not ready") && !titles.contains(&"Tekton"));
        for (title, expr) in queries(&board.json, ".*", "w") {
            assert!(expr.contains("tap_monitor=\"ns/m\""), "{title}: {expr}");
            assert!(!expr.contains("{S"), "{title}: {expr}");
        }
        for board in dashboards(&TapGroup::ALL, Some("ns/m")) {
            for (title, expr) in queries(&board.json, ".*", "w") {
                assert!(expr.contains("tap_monitor=\"ns/m\""), "{title}: {expr}");
                assert!(
                    !expr.contains("{S") && !expr.contains("{C"),
                    "{title}: {expr}"
                );
            }
        }
        let all = overview(&TapGroup::ALL, None);
        let rows = all.json["panels"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == "row")
            .count();
        assert_eq!(rows, 10, "the ten sections");
    }

    #[test]
    fn ids_and_positions_are_valid() {
        for board in dashboards(&TapGroup::ALL, Some("ns/m")) {
            let panels = board.json["panels"].as_array().unwrap();
            let ids: std::collections::BTreeSet<u64> =
                panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
            assert_eq!(ids.len(), panels.len());
            for p in panels {
                let g = &p["gridPos"];
                assert!(
                    g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
                    "{p}"
                );
            }
            let vars: Vec<&str> = board.json["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v["name"].as_str())
                .collect();
            assert_eq!(&vars[..2], ["datasource", "namespace"]);
            assert!(serde_json::to_vec(&board.json).unwrap().len() < 1 << 20);
        }
    }
}
