//! Panels laid out on Grafana's 24-column grid, queries filled with a monitor's scope. Every
//! panel carries a description and a unit, and each plugin's options in full: Grafana's schema
//! (grafana-foundation-sdk, strict) requires them, and the e2e suite checks it.

use serde_json::{Value, json};

/// Lays panels out on Grafana's 24-column grid.
pub(super) struct Layout {
    pub(super) panels: Vec<Value>,
    pub(super) scope: String,
    /// The uid of the supply-chain dashboard that workload panels link to, if any.
    pub(super) workload_link: Option<String>,
    x: u32,
    y: u32,
    row_height: u32,
}

/// What a panel tells its reader beside its title: what it shows, and the unit of its values.
#[derive(Debug, Clone, Copy)]
pub(super) struct About {
    pub(super) description: &'static str,
    pub(super) unit: &'static str,
}

/// Counts of objects.
pub(super) const fn count(description: &'static str) -> About {
    About {
        description,
        unit: "short",
    }
}

/// Series listed with their labels; the value is a condition's (1, 0, -1) or 1.
pub(super) const fn listing(description: &'static str) -> About {
    About {
        description,
        unit: "none",
    }
}

/// Every option of a panel plugin, at Grafana's defaults (the schema requires them all).
fn plugin_defaults(kind: &str) -> Value {
    let reduce = json!({"values": false, "calcs": ["lastNotNull"], "fields": ""});
    let legend = |show: bool| json!({"showLegend": show, "displayMode": "list", "placement": "bottom", "calcs": []});
    match kind {
        "stat" => json!({"options": {
            "reduceOptions": reduce, "orientation": "auto", "textMode": "auto",
            "wideLayout": true, "colorMode": "value", "graphMode": "none",
            "justifyMode": "auto", "showPercentChange": false,
            "percentChangeColorMode": "standard"
        }}),
        "bargauge" => json!({"options": {
            "reduceOptions": reduce, "orientation": "horizontal", "displayMode": "gradient",
            "valueMode": "color", "namePlacement": "auto", "showUnfilled": true,
            "sizing": "auto", "minVizWidth": 8, "minVizHeight": 16, "maxVizHeight": 300,
            "legend": legend(false)
        }}),
        "table" => json!({
            "options": {"showHeader": true, "frameIndex": 0, "cellHeight": "sm"},
            "fieldConfig": {"defaults": {"custom": {
                "align": "auto", "inspect": false, "cellOptions": {"type": "auto"}
            }}}
        }),
        "timeseries" => json!({
            "options": {"legend": legend(true), "tooltip": {"mode": "multi", "sort": "none"}},
            "fieldConfig": {"defaults": {"custom": {
                "drawStyle": "line", "lineInterpolation": "stepAfter", "lineWidth": 1,
                "fillOpacity": 0, "showPoints": "never", "spanNulls": false
            }}}
        }),
        _ => json!({}),
    }
}

/// Merges `from` into `into`: objects key by key, anything else replaced.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (k, v) in from {
                merge(into.entry(k).or_insert(Value::Null), v);
            }
        }
        (into, from) => *into = from,
    }
}

pub(super) const DS: &str = "${datasource}";

impl Layout {
    pub(super) fn new(scope: Option<&str>) -> Self {
        let scope = crate::selector::scope_matcher(scope);
        Self {
            panels: Vec::new(),
            scope,
            workload_link: None,
            x: 0,
            y: 0,
            row_height: 0,
        }
    }

    /// `{S ...}` in a query becomes the scope and namespace matchers; `{C ...}` (cluster-scoped
    /// kinds, which have no namespace) only the scope; `{R ...}` (a series a rule recorded,
    /// served once, not by replicas) the scope and namespace without deduplicating.
    fn q(&self, expr: &str) -> String {
        // Each series counts once however many replicas of tapmon Prometheus scrapes.
        let once = crate::selector::deduplicate(expr);
        let scoped = crate::selector::fill(&once, "C", &self.scope);
        let namespaced = format!("{}namespace=~\"$namespace\", ", self.scope);
        let filled = crate::selector::fill(&scoped, "S", &namespaced);
        crate::selector::fill(&filled, "R", &namespaced)
    }

    pub(super) fn next_line(&mut self) {
        if self.x > 0 {
            self.y += self.row_height;
            self.x = 0;
            self.row_height = 0;
        }
    }

    pub(super) fn row(&mut self, title: &str) {
        self.next_line();
        let id = self.panels.len() + 1;
        self.panels.push(json!({
            "id": id, "type": "row", "title": title, "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []
        }));
        self.y += 1;
    }

    /// A panel of plugin `kind`; `extra` is merged over the plugin's defaults.
    #[allow(clippy::too_many_arguments)] // A panel is this many things; a builder would hide none.
    pub(super) fn panel(
        &mut self,
        kind: &str,
        title: &str,
        about: About,
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
            "id": id, "type": kind, "title": title, "description": about.description,
            "datasource": {"type": "prometheus", "uid": DS},
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": about.unit}, "overrides": []},
            "targets": targets
        });
        merge(&mut panel, plugin_defaults(kind));
        merge(&mut panel, extra);
        self.panels.push(panel);
        self.x += w;
        self.row_height = self.row_height.max(h);
    }

    pub(super) fn stat(&mut self, title: &str, about: About, expr: &str) {
        self.panel("stat", title, about, 4, 4, &[(expr, "")], json!({}));
    }

    /// Horizontal bars, one per legend value; bars per workload link to its supply chain.
    pub(super) fn bars(&mut self, title: &str, about: About, expr: &str, legend: &str) {
        let links = match &self.workload_link {
            Some(uid) if legend == "{{workload}}" => {
                json!([supply_chain_link(uid, "${__field.labels.workload}")])
            }
            _ => json!([]),
        };
        self.panel(
            "bargauge",
            title,
            about,
            8,
            6,
            &[(expr, legend)],
            json!({"fieldConfig": {"defaults": {"links": links}}}),
        );
    }

    /// A table of series, their labels as columns, time and value columns hidden. A table of
    /// Workload series links each row to that workload's supply chain.
    pub(super) fn table(&mut self, title: &str, about: About, w: u32, expr: &str) {
        let links = match &self.workload_link {
            Some(uid) if expr.starts_with("cartographer_workload_") => {
                json!([supply_chain_link(uid, "${__data.fields.name}")])
            }
            _ => json!([]),
        };
        self.panel(
            "table",
            title,
            about,
            w,
            8,
            &[(expr, "")],
            json!({
                "fieldConfig": {"defaults": {"links": links}},
                "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": true, "__name__": true, "customresource_group": true, "customresource_kind": true, "customresource_version": true, "job": true, "instance": true, "tap_monitor": true}}}]
            }),
        );
    }
}

/// A data link to the supply-chain dashboard `uid` for the workload `workload` names,
/// keeping the data source, the namespaces chosen and the time range.
fn supply_chain_link(uid: &str, workload: &str) -> Value {
    json!({
        "title": "Supply chain of this workload",
        "url": format!("/d/{uid}?${{datasource:queryparam}}&${{namespace:queryparam}}&var-workload={workload}&${{__url_time_range}}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_settings_merge_over_the_plugin_defaults() {
        let mut l = Layout::new(None);
        l.panel(
            "stat",
            "t",
            count("d"),
            4,
            4,
            &[("up", "")],
            json!({"options": {"colorMode": "background"}}),
        );
        let p = &l.panels[0];
        assert_eq!(p["options"]["colorMode"], "background");
        assert_eq!(p["options"]["graphMode"], "none");
        assert_eq!(p["fieldConfig"]["defaults"]["unit"], "short");
        assert_eq!(p["description"], "d");
    }
}
