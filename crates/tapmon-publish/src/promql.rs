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

/// Each Workload's `Ready` condition with a `workload` label (its name): 1 True, 0 False, -1
/// Unknown.
pub const WORKLOAD_READY_BY_WORKLOAD: &str = r#"max by (namespace, workload) (label_replace(cartographer_workload_status{S type="Ready"}, "workload", "$1", "name", "(.*)"))"#;

/// When each workload was last deployed (Unix seconds): its newest Ready revision.
macro_rules! last_deployed_at {
    () => {
        r#"max by (namespace, workload) (knative_revision_ready_timestamp_seconds{S status="True"})"#
    };
}

/// Critical CVEs per image or source scan, from the numeric per-severity counts.
pub const CRITICAL_CVES: &str =
    r#"{S __name__=~"scst_(image|source)_scan_cves", severity="critical"}"#;

/// The creation time of each kpack Build that finished successfully.
macro_rules! successful_build_created {
    () => {
        r#"(kpack_build_created_timestamp_seconds{S} and on (namespace, name) kpack_build_duration_seconds{S status="True"})"#
    };
}

/// Each image's newest successful build (its creation time): the one an alert compares.
macro_rules! newest_successful_build {
    () => {
        concat!(
            "(",
            successful_build_created!(),
            " == on (namespace, owner) group_left () max by (namespace, owner) ",
            successful_build_created!(),
            ")"
        )
    };
}

/// The duration of each image's newest successful build, where the image has at least five
/// earlier successful builds, when it is above the 90th percentile of those.
pub const BUILD_SLOWER_THAN_USUAL: &str = concat!(
    r#"(kpack_build_duration_seconds{S status="True"} and on (namespace, name) "#,
    newest_successful_build!(),
    r#") > on (namespace, owner) group_left () (quantile by (namespace, owner) (0.9, kpack_build_duration_seconds{S status="True"} unless on (namespace, name) "#,
    newest_successful_build!(),
    r#") and on (namespace, owner) count by (namespace, owner) (kpack_build_duration_seconds{S status="True"}) > 5)"#
);

/// Workloads whose source moved after their last deployment, which is more than 7 days old;
/// the value is when the source moved.
pub const SOURCE_MOVED_NOT_DEPLOYED: &str = concat!(
    r#"(max by (namespace, workload) (flux_git_repository_artifact_timestamp_seconds{S owner_type="Workload"}) > on (namespace, workload) "#,
    last_deployed_at!(),
    ") and on (namespace, workload) (time() - ",
    last_deployed_at!(),
    " > 7 * 86400)"
);

/// Keeps the series of the workload chosen in a dashboard: cheaper than a selector on every
/// stage.
pub const ONLY_CHOSEN_WORKLOAD: &str =
    r#"and on (workload) label_replace(vector(1), "workload", "$workload", "", "")"#;

/// The fragment with the matchers of `scope` (a monitor's `namespace/name`, or none), each
/// selector counting once however many replicas of tapmon Prometheus scrapes. `{R}` marks a
/// series a rule recorded: scoped, and not deduplicated (it has no replica labels, and a
/// range or offset may follow it).
pub fn scoped(fragment: &str, scope: Option<&str>) -> String {
    let matchers = crate::selector::scope_matcher(scope);
    let once = crate::selector::deduplicate(fragment);
    let filled = crate::selector::fill(
        &crate::selector::fill(&once, "C", &matchers),
        "S",
        &matchers,
    );
    crate::selector::fill(&filled, "R", &matchers)
}

/// `count(<fragment>) or vector(0)`: how many series match, 0 when none do.
pub fn count_or_zero(fragment: &str) -> String {
    format!("count({fragment}) or vector(0)")
}
