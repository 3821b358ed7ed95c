//! Panels laid out on Grafana's 24-column grid, queries filled with a monitor's scope.

use serde_json::{Value, json};

/// Lays panels out on Grafana's 24-column grid.
pub(super) struct Layout {
    pub(super) panels: Vec<Value>,
    pub(super) scope: String,
    x: u32,
    y: u32,
    row_height: u32,
}

pub(super) const DS: &str = "${datasource}";

impl Layout {
    pub(super) fn new(scope: Option<&str>) -> Self {
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
        // Each series counts once however many replicas of tapmon Prometheus scrapes.
        let once = crate::selector::deduplicate(expr);
        let scoped = crate::selector::fill(&once, "C", &self.scope);
        crate::selector::fill(
            &scoped,
            "S",
            &format!("{}namespace=~\"$namespace\", ", self.scope),
        )
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

    pub(super) fn panel(
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

    pub(super) fn stat(&mut self, title: &str, expr: &str) {
        self.panel(
            "stat",
            title,
            4,
            4,
            &[(expr, "")],
            json!({"options": {"reduceOptions": {"calcs": ["lastNotNull"]}}}),
        );
    }

    pub(super) fn bars(&mut self, title: &str, expr: &str, legend: &str) {
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
    pub(super) fn table(&mut self, title: &str, w: u32, expr: &str) {
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
