//! Grafana dashboards, generated for the TAP groups a monitor enables: the TAP overview (the
//! ten sections users of the proof of concept know), the per-workload supply chain, and DORA
//! metrics.
//!
//! Every query uses the `datasource` variable; selectors carry the monitor's scope
//! (`tap_monitor="ns/name"`) and the `namespace` variable; the supply chain adds `workload`.

use serde_json::{Value, json};
use tapmon_presets::TapGroup;

use crate::promql;

mod dora;
mod layout;
mod overview;
mod supply_chain;

use layout::DS;

pub use dora::dora;
pub use overview::overview;
pub use supply_chain::supply_chain;

/// The slug of every dashboard a monitor publishes, in [`dashboards`] order.
pub const SLUGS: [&str; 3] = ["overview", "supply-chain", "dora"];

/// A generated dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// Short name: one of [`SLUGS`].
    pub slug: &'static str,
    /// Stable uid (at most 40 characters, Grafana's limit).
    pub uid: String,
    /// The dashboard JSON model.
    pub json: Value,
}

impl Dashboard {
    /// The dashboard `slug` titled `title` (with the monitor's scope, when it has one), its
    /// variables (`workload` too when asked) and the panels laid out.
    fn new(
        slug: &'static str,
        title: &str,
        scope: Option<&str>,
        workload: bool,
        layout: layout::Layout,
    ) -> Dashboard {
        let uid = uid(slug, scope);
        let title = match scope {
            Some(s) => format!("{title} ({s})"),
            None => title.to_owned(),
        };
        // Each dashboard links to the other, keeping time range and variables.
        let (other, other_title) = match slug {
            "overview" => ("supply-chain", "Workload supply chain"),
            _ => ("overview", "TAP overview"),
        };
        let links = json!([{
            "title": other_title, "type": "link", "url": format!("/d/{}", self::uid(other, scope)),
            "icon": "dashboard", "tooltip": "", "tags": [], "asDropdown": false,
            "targetBlank": false, "includeVars": true, "keepTime": true
        }]);
        let mut json = model(&uid, &title, &layout.scope, workload, layout.panels);
        json["links"] = links;
        Dashboard { slug, json, uid }
    }
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

fn templating(scope: &str, workload: bool) -> Value {
    let info = format!(
        "{{{scope}__name__=~\"(cartographer|kpack|tekton|flux|knative|scst|service_binding|stk|api_descriptor|carvel|accelerator).*_info\"}}"
    );
    let mut list = vec![
        json!({"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "hide": 0}),
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
        // Generated and re-applied by the operator: edits in Grafana would be overwritten.
        "editable": false,
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

/// A query of a panel: written out, or how many series match a shared fragment.
#[derive(Debug, Clone, Copy)]
enum Query {
    Text(&'static str),
    /// `count(<fragment>) or vector(0)`.
    Count(&'static str),
    /// The fragment's series of the workload chosen in the dashboard.
    OfChosenWorkload(&'static str),
}

impl Query {
    fn template(self) -> String {
        match self {
            Query::Text(q) => q.to_owned(),
            Query::Count(fragment) => promql::count_or_zero(fragment),
            Query::OfChosenWorkload(fragment) => {
                format!("{fragment} {}", promql::ONLY_CHOSEN_WORKLOAD)
            }
        }
    }
}

/// Every dashboard, in [`SLUGS`] order.
pub fn dashboards(groups: &[TapGroup], scope: Option<&str>) -> Vec<Dashboard> {
    vec![
        overview(groups, scope),
        supply_chain(groups, scope),
        dora(groups, scope),
    ]
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
        let operator = operator_panels(&board.json);
        assert!(operator.contains(&"Leader".to_owned()), "{operator:?}");
        for (title, expr) in queries(&board.json, ".*", "w") {
            if operator.contains(&title) {
                // tapmon's own metrics, no TAP data: nothing of another monitor's to scope.
                assert!(expr.contains("{job=\"tapmon\""), "{title}: {expr}");
                continue;
            }
            assert!(expr.contains("tap_monitor=\"ns/m\""), "{title}: {expr}");
            assert!(!expr.contains("{S"), "{title}: {expr}");
        }
        for board in dashboards(&TapGroup::ALL, Some("ns/m")) {
            let operator = operator_panels(&board.json);
            for (title, expr) in queries(&board.json, ".*", "w") {
                if operator.contains(&title) {
                    continue;
                }
                assert!(expr.contains("tap_monitor=\"ns/m\""), "{title}: {expr}");
                assert!(
                    !expr.contains("{S") && !expr.contains("{C") && !expr.contains("{R"),
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
        assert_eq!(rows, 11, "the ten sections and tapmon's own");
    }

    /// Titles of the panels in the operator row (the last).
    fn operator_panels(board: &Value) -> Vec<String> {
        board["panels"]
            .as_array()
            .unwrap()
            .iter()
            .skip_while(|p| p["title"] != overview::OPERATOR_ROW)
            .skip(1)
            .filter_map(|p| p["title"].as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn dashboards_come_in_slug_order() {
        let slugs: Vec<&str> = dashboards(&TapGroup::ALL, None)
            .iter()
            .map(|d| d.slug)
            .collect();
        assert_eq!(slugs, SLUGS);
    }

    #[test]
    fn dora_panels_only_for_groups_that_feed_them() {
        let titles = |groups: &[TapGroup]| -> Vec<String> {
            dora(groups, None).json["panels"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["type"] != "row")
                .filter_map(|p| p["title"].as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(titles(&TapGroup::ALL).len(), 12);
        let knative = titles(&[TapGroup::Knative]);
        assert!(
            knative.contains(&"Change failure rate".to_owned()),
            "{knative:?}"
        );
        assert!(
            !knative.iter().any(|t| t.starts_with("Lead time")),
            "{knative:?}"
        );
        assert!(titles(&[]).is_empty());
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
