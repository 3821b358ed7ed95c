//! PromQL fragments for concepts that rules, dashboards and tests share, each written once.
//! `{S ...}` (or `{S}`) marks where a monitor's scope matchers go ([`crate::selector`]).

/// Workloads whose `Ready` condition is False.
pub const WORKLOAD_NOT_READY: &str =
    r#"cartographer_workload_status{S type="Ready", status="False"}"#;

/// Workloads that no supply chain selects.
pub const WORKLOAD_WITHOUT_SUPPLY_CHAIN: &str =
    r#"cartographer_workload_status{S type="SupplyChainReady", status="False"}"#;

/// Deliverables whose `Ready` condition is False.
pub const DELIVERABLE_NOT_READY: &str =
    r#"cartographer_deliverable_status{S type="Ready", status="False"}"#;

/// Each Deliverable's `Ready` condition with a `workload` label: a deliverable carries no
/// workload label, its name is the workload's.
pub const DELIVERABLE_READY_BY_WORKLOAD: &str = r#"label_replace(cartographer_deliverable_status{S type="Ready"}, "workload", "$1", "name", "(.*)")"#;

/// Package installs kapp-controller fails to reconcile.
pub const PACKAGE_INSTALL_FAILING: &str =
    r#"carvel_packageinstall_info{S type="ReconcileFailed", status="True"}"#;

/// Knative services whose latest created revision is not their latest ready one.
pub const LATEST_REVISION_NOT_READY: &str = r#"knative_service_info{S} unless ignoring(__dst__) (label_replace(knative_service_info{S}, "__dst__", "$1", "latest_created_revision", "(.*)") == label_replace(knative_service_info{S}, "__dst__", "$1", "latest_ready_revision", "(.*)"))"#;

/// Class claims that are not Ready.
pub const CLAIM_NOT_READY: &str = r#"stk_class_claim_status{S type="Ready", status!="True"}"#;

/// Per workload, whether any testing pipeline run succeeded (1), none did (0), or unknown (-1).
pub const TESTS_BY_WORKLOAD: &str =
    r#"max by (namespace, workload) (tekton_pipeline_run_status{S type="Succeeded"})"#;

/// Keeps the series of the workload chosen in a dashboard: cheaper than a selector on every
/// stage.
pub const ONLY_CHOSEN_WORKLOAD: &str =
    r#"and on (workload) label_replace(vector(1), "workload", "$workload", "", "")"#;

/// The fragment with the matchers of `scope` (a monitor's `namespace/name`, or none), each
/// selector counting once however many replicas of tapmon Prometheus scrapes.
pub fn scoped(fragment: &str, scope: Option<&str>) -> String {
    let matchers = crate::selector::scope_matcher(scope);
    let once = crate::selector::deduplicate(fragment);
    crate::selector::fill(
        &crate::selector::fill(&once, "C", &matchers),
        "S",
        &matchers,
    )
}

/// `count(<fragment>) or vector(0)`: how many series match, 0 when none do.
pub fn count_or_zero(fragment: &str) -> String {
    format!("count({fragment}) or vector(0)")
}
