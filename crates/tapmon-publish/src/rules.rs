//! Recording rules that roll each workload's supply chain into one series per stage, and alerts
//! on the states a platform team acts on.
//!
//! Every selector can be scoped to one TapMonitor's series (`tap_monitor="ns/name"`, stamped by
//! its ServiceMonitor), so two monitors never evaluate or alert on each other's series.

use std::collections::BTreeMap;

use serde::Serialize;
use tapmon_presets::TapGroup;

use crate::promql::{self, scoped};

/// Where runbooks live; each alert links `<base>/<AlertName>.md`.
pub const RUNBOOK_BASE: &str = "https://github.com/tapmon/tapmon/blob/main/docs/runbooks";

/// The recording rule every stage writes into.
pub const STAGE_RECORD: &str = "tap:workload_stage:status";

/// A Prometheus rule group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleGroup {
    /// Group name.
    pub name: String,
    /// How often the group is evaluated, when a rule depends on it; else Prometheus' global
    /// evaluation interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// The rules, evaluated in order.
    pub rules: Vec<Rule>,
}

/// A recording or alerting rule, serialised as Prometheus and the Prometheus Operator read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Rule {
    /// A recording rule.
    Record {
        /// The series written.
        record: String,
        /// PromQL.
        expr: String,
        /// Labels added.
        labels: BTreeMap<String, String>,
    },
    /// An alerting rule.
    Alert {
        /// Alert name.
        alert: String,
        /// PromQL.
        expr: String,
        /// How long the condition must hold.
        #[serde(rename = "for")]
        for_: String,
        /// `severity`.
        labels: BTreeMap<String, String>,
        /// `summary`, `description`, `runbook_url`.
        annotations: BTreeMap<String, String>,
    },
}

/// PromQL with `{S}` where the scope matcher goes (right after `{`): written out, or a shared
/// fragment ([`promql`]) with text around it.
#[derive(Debug, Clone, Copy)]
enum Expr {
    Plain(&'static str),
    Around(&'static str, &'static str, &'static str),
}

impl Expr {
    fn template(self) -> String {
        match self {
            Expr::Plain(e) => e.to_owned(),
            Expr::Around(before, fragment, after) => format!("{before}{fragment}{after}"),
        }
    }
}

/// One stage of a workload's supply chain: which group feeds it and how.
struct Stage {
    name: &'static str,
    group: TapGroup,
    expr: Expr,
}

/// The stages, in supply-chain order. Values: 1 healthy, 0 failing, -1 unknown.
const STAGES: [Stage; 9] = [
    Stage {
        name: "source",
        group: TapGroup::Flux,
        expr: Expr::Plain(
            r#"max by (namespace, workload) (flux_git_repository_status{S type="Ready", owner_type="Workload"})"#,
        ),
    },
    Stage {
        name: "tests",
        group: TapGroup::Tekton,
        expr: Expr::Plain(promql::TESTS_BY_WORKLOAD),
    },
    Stage {
        name: "build",
        group: TapGroup::Kpack,
        expr: Expr::Plain(r#"max by (namespace, workload) (kpack_image_status{S type="Ready"})"#),
    },
    Stage {
        name: "scan",
        group: TapGroup::Scanning,
        expr: Expr::Plain(
            r#"min by (namespace, workload) ({S __name__=~"scst_(image|source)_scan_status", type=~"Succeeded|PolicySucceeded"})"#,
        ),
    },
    Stage {
        name: "config",
        group: TapGroup::Tekton,
        expr: Expr::Plain(
            r#"max by (namespace, workload) (tekton_task_run_status{S component="config-writer", type="Succeeded"})"#,
        ),
    },
    Stage {
        name: "workload",
        group: TapGroup::Cartographer,
        expr: Expr::Plain(promql::WORKLOAD_READY_BY_WORKLOAD),
    },
    Stage {
        name: "delivery",
        group: TapGroup::Cartographer,
        expr: Expr::Around(
            "max by (namespace, workload) (",
            promql::DELIVERABLE_READY_BY_WORKLOAD,
            ")",
        ),
    },
    Stage {
        name: "runtime",
        group: TapGroup::Knative,
        expr: Expr::Plain(
            r#"max by (namespace, workload) (knative_service_status{S type="Ready"})"#,
        ),
    },
    Stage {
        name: "bindings",
        group: TapGroup::ServiceBindings,
        expr: Expr::Plain(
            r#"min by (namespace, workload) (service_binding_status{S type="Ready"})"#,
        ),
    },
];

/// The stage expressions a set of groups can fill, unscoped: `{S ` marks where scope matchers
/// go (`{S}` for a selector without matchers of its own).
pub fn stage_templates(groups: &[TapGroup]) -> Vec<(&'static str, String)> {
    STAGES
        .iter()
        .filter(|s| groups.contains(&s.group))
        .map(|s| (s.name, s.expr.template()))
        .collect()
}

/// The stages a set of groups can fill, by name.
pub fn stages(groups: &[TapGroup]) -> Vec<&'static str> {
    STAGES
        .iter()
        .filter(|s| groups.contains(&s.group))
        .map(|s| s.name)
        .collect()
}

struct AlertDef {
    name: &'static str,
    /// Every group whose series the expression reads.
    groups: &'static [TapGroup],
    severity: &'static str,
    for_: &'static str,
    expr: Expr,
    summary: &'static str,
    description: &'static str,
}

const ALERTS: [AlertDef; 12] = [
    AlertDef {
        name: "TapWorkloadNotReady",
        groups: &[TapGroup::Cartographer],
        severity: "warning",
        for_: "15m",
        expr: Expr::Plain(promql::WORKLOAD_NOT_READY),
        summary: "Workload {{ $labels.namespace }}/{{ $labels.name }} is not ready",
        description: "Its Ready condition has been False for 15 minutes: {{ $labels.reason }}: {{ $labels.message }}",
    },
    AlertDef {
        name: "TapSupplyChainMissing",
        groups: &[TapGroup::Cartographer],
        severity: "warning",
        for_: "5m",
        expr: Expr::Plain(promql::WORKLOAD_WITHOUT_SUPPLY_CHAIN),
        summary: "Workload {{ $labels.namespace }}/{{ $labels.name }} matches no supply chain",
        description: "No ClusterSupplyChain selects it ({{ $labels.reason }}); nothing is built or deployed.",
    },
    AlertDef {
        name: "TapBuildFailing",
        groups: &[TapGroup::Kpack],
        severity: "warning",
        for_: "15m",
        expr: Expr::Plain(r#"kpack_image_status{S type="Ready", status="False"}"#),
        summary: "Builds of {{ $labels.namespace }}/{{ $labels.name }} are failing",
        description: "The kpack Image is not Ready: its latest build failed ({{ $labels.reason }}).",
    },
    AlertDef {
        name: "TapTestsFailing",
        groups: &[TapGroup::Tekton],
        severity: "warning",
        for_: "15m",
        expr: Expr::Around("", promql::TESTS_BY_WORKLOAD, " == 0"),
        summary: "Tests of workload {{ $labels.namespace }}/{{ $labels.workload }} are failing",
        description: "None of its testing pipeline runs succeeded.",
    },
    AlertDef {
        name: "TapScanCriticalCVEs",
        groups: &[TapGroup::Scanning],
        severity: "critical",
        for_: "0m",
        expr: Expr::Around("", promql::CRITICAL_CVES, " > 0"),
        summary: "{{ $labels.namespace }}/{{ $labels.name }} has {{ $value }} critical CVEs",
        description: "A supply chain scan of workload {{ $labels.workload }} found critical vulnerabilities.",
    },
    AlertDef {
        name: "TapBuildSlowerThanUsual",
        groups: &[TapGroup::Kpack],
        severity: "info",
        for_: "0m",
        expr: Expr::Plain(promql::BUILD_SLOWER_THAN_USUAL),
        summary: "The newest build of image {{ $labels.namespace }}/{{ $labels.owner }} took {{ $value | humanizeDuration }}",
        description: "Build {{ $labels.name }} of workload {{ $labels.workload }} was slower than 90% of the image's earlier successful builds that kpack keeps.",
    },
    AlertDef {
        name: "TapWorkloadNotDeployed",
        groups: &[TapGroup::Flux, TapGroup::Knative],
        severity: "warning",
        for_: "1h",
        expr: Expr::Plain(promql::SOURCE_MOVED_NOT_DEPLOYED),
        summary: "Workload {{ $labels.namespace }}/{{ $labels.workload }} has not been deployed for 7 days though its source moved",
        description: "Its source has a new revision, but no Knative revision of it has become Ready since, and the last one did more than 7 days ago.",
    },
    AlertDef {
        name: "TapSourceFetchFailing",
        groups: &[TapGroup::Flux],
        severity: "warning",
        for_: "15m",
        expr: Expr::Plain(r#"flux_git_repository_status{S type="Ready", status="False"}"#),
        summary: "Source {{ $labels.namespace }}/{{ $labels.name }} cannot be fetched",
        description: "The Flux GitRepository of {{ $labels.owner_type }} {{ $labels.owner }} is not Ready: {{ $labels.reason }}: {{ $labels.message }}",
    },
    AlertDef {
        name: "TapPackageInstallFailing",
        groups: &[TapGroup::Carvel],
        severity: "critical",
        for_: "15m",
        expr: Expr::Plain(promql::PACKAGE_INSTALL_FAILING),
        summary: "Package install {{ $labels.namespace }}/{{ $labels.name }} fails to reconcile",
        description: "kapp-controller cannot reconcile {{ $labels.package_name }} {{ $labels.package_version }}.",
    },
    AlertDef {
        name: "TapKnativeLatestRevisionNotReady",
        groups: &[TapGroup::Knative],
        severity: "warning",
        for_: "15m",
        expr: Expr::Plain(promql::LATEST_REVISION_NOT_READY),
        summary: "The latest revision of Knative service {{ $labels.namespace }}/{{ $labels.name }} is not ready",
        description: "{{ $labels.latest_created_revision }} was created but traffic still goes to {{ $labels.latest_ready_revision }}.",
    },
    AlertDef {
        name: "TapDeliverableFailing",
        groups: &[TapGroup::Cartographer],
        severity: "warning",
        for_: "15m",
        expr: Expr::Plain(promql::DELIVERABLE_NOT_READY),
        summary: "Deliverable {{ $labels.namespace }}/{{ $labels.name }} is failing",
        description: "Its Ready condition is False: {{ $labels.reason }}: {{ $labels.message }}",
    },
    AlertDef {
        name: "TapClaimNotReady",
        groups: &[TapGroup::ServicesToolkit],
        severity: "warning",
        for_: "15m",
        expr: Expr::Plain(promql::CLAIM_NOT_READY),
        summary: "Class claim {{ $labels.namespace }}/{{ $labels.name }} is not ready",
        description: "Its Ready condition is {{ $labels.status }}: {{ $labels.reason }}: {{ $labels.message }}",
    },
];

/// Names of every alert, for docs and tests.
pub fn alert_names() -> Vec<&'static str> {
    ALERTS.iter().map(|a| a.name).collect()
}

/// The rule groups for `groups`; with `scope`, every selector is limited to the series of
/// that TapMonitor (`namespace/name`).
pub fn rule_groups(groups: &[TapGroup], scope: Option<&str>) -> Vec<RuleGroup> {
    let records: Vec<Rule> = STAGES
        .iter()
        .filter(|s| groups.contains(&s.group))
        .map(|s| Rule::Record {
            record: STAGE_RECORD.into(),
            expr: scoped(&s.expr.template(), scope),
            labels: BTreeMap::from([("stage".into(), s.name.into())]),
        })
        .collect();
    let alerts: Vec<Rule> = ALERTS
        .iter()
        .filter(|a| a.groups.iter().all(|g| groups.contains(g)))
        .map(|a| Rule::Alert {
            alert: a.name.into(),
            expr: scoped(&a.expr.template(), scope),
            for_: a.for_.into(),
            labels: BTreeMap::from([("severity".into(), a.severity.into())]),
            annotations: BTreeMap::from([
                ("summary".into(), a.summary.into()),
                ("description".into(), a.description.into()),
                (
                    "runbook_url".into(),
                    format!("{RUNBOOK_BASE}/{}.md", a.name),
                ),
            ]),
        })
        .collect();
    [
        ("tap.workload-stages", None, records),
        (
            "tap.dora",
            Some(crate::dora::INTERVAL),
            crate::dora::records(groups, scope),
        ),
        ("tap.alerts", None, alerts),
    ]
    .into_iter()
    .filter(|(_, _, rules)| !rules.is_empty())
    .map(|(name, interval, rules)| RuleGroup {
        name: name.into(),
        interval: interval.map(str::to_owned),
        rules,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoping_adds_the_monitor_matcher_to_every_selector() {
        assert_eq!(
            scoped(r#"a{S type="x"} unless b{S}"#, Some("ns/tap")),
            r#"max without (instance, pod) (a{tap_monitor="ns/tap", type="x"}) unless max without (instance, pod) (b{tap_monitor="ns/tap"})"#
        );
        assert_eq!(
            scoped(r#"a{S type="x"} unless b{S}"#, None),
            r#"max without (instance, pod) (a{type="x"}) unless max without (instance, pod) (b{})"#
        );
        for group in rule_groups(&TapGroup::ALL, Some("ns/tap")) {
            for rule in group.rules {
                let expr = match rule {
                    Rule::Record { expr, .. } | Rule::Alert { expr, .. } => expr,
                };
                assert!(!expr.contains("{S"), "{expr}");
                assert!(expr.contains("tap_monitor=\"ns/tap\""), "{expr}");
            }
        }
    }

    #[test]
    fn only_enabled_groups_get_rules() {
        let groups = rule_groups(&[TapGroup::Kpack], None);
        let names: Vec<String> = groups
            .iter()
            .flat_map(|g| g.rules.iter())
            .map(|r| match r {
                Rule::Record { labels, .. } => labels["stage"].clone(),
                Rule::Alert { alert, .. } => alert.clone(),
            })
            .collect();
        assert_eq!(
            names,
            ["build", "TapBuildFailing", "TapBuildSlowerThanUsual"]
        );
        assert!(rule_groups(&[], None).is_empty());
        assert_eq!(stages(&TapGroup::ALL).len(), 9);
    }

    #[test]
    fn every_alert_has_a_runbook() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/runbooks");
        for name in alert_names() {
            let page = dir.join(format!("{name}.md"));
            let text = std::fs::read_to_string(&page)
                .unwrap_or_else(|_| panic!("{} missing", page.display()));
            assert!(text.starts_with(&format!("# {name}")), "{name}");
        }
    }
}
