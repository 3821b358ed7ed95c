//! Prometheus scraping the operator: every query of the catalogue evaluates, and a chosen set
//! gives the answers the fixtures imply (e2e/fixtures/tap/EXPECTED.md).

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tapmon_e2e::{
    Prometheus, ScrapeTarget, apply, catalogue_queries, cluster_with_operator, eventually, serial,
};
use tapmon_presets::TapGroup;
use tapmon_publish::promql;
use tapmon_publish::rules::{Rule, rule_groups};

/// Catalogue queries with a syntax slip, and their corrected form (README, "Built-in presets"):
/// the fragment the published alert and dashboard use, unscoped.
fn corrected(what: &str) -> Option<String> {
    (what == "Workloads where latest revision is not healthy").then(|| {
        format!(
            "count by (workload) ({})",
            promql::scoped(promql::LATEST_REVISION_NOT_READY, None)
        )
    })
}

fn counts(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogue_query_evaluates_and_a_chosen_set_gives_the_fixture_answers() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("queries", true).await.unwrap();
    let monitor = json!({"apiVersion": "tapmon.io/v1alpha1", "kind": "ClusterTapMonitor",
        "metadata": {"name": "tap"}, "spec": {}});
    apply(&cluster.admin, monitor, None).await.unwrap();
    let prometheus = Prometheus::start(
        "queries",
        &[ScrapeTarget {
            job: "tapmon",
            addr: operator.metrics,
            path: "/clustermonitors/tap/metrics",
            tap_monitor: Some("tap"),
        }],
    )
    .await
    .unwrap();
    // Wait for a scrape that has every kind in it.
    eventually(
        "Prometheus has scraped every family",
        Duration::from_secs(90),
        || async {
            let families = prometheus
                .scalar("count(count by (__name__) ({job=\"tapmon\", __name__!~\"up|scrape_.*\"}))")
                .await
                .ok()??;
            (families == 42.0).then_some(())
        },
    )
    .await;

    let queries = catalogue_queries().unwrap();
    assert_eq!(queries.len(), 49, "the catalogue's query list");
    for (what, promql) in &queries {
        match corrected(what) {
            // A slip in the catalogue: PromQL cannot parse it, whatever the exporter.
            Some(fixed) => {
                let err = prometheus.query(promql).await.unwrap_err().to_string();
                assert!(err.contains("unclosed left parenthesis"), "{what}: {err}");
                prometheus
                    .query(&fixed)
                    .await
                    .unwrap_or_else(|e| panic!("{what} (corrected): {e}"));
            }
            None => {
                prometheus
                    .query(promql)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
    }

    let p = &prometheus;
    assert_eq!(
        p.by("count by (type) (cartographer_workload_info)", "type")
            .await
            .unwrap(),
        counts(&[("server", 2.0), ("web", 3.0), ("worker", 2.0)])
    );
    assert_eq!(
        p.scalar("count(cartographer_workload_info{source_image=\"\"})")
            .await
            .unwrap(),
        Some(6.0)
    );
    assert_eq!(
        p.scalar("count(cartographer_workload_info{source_git_url=\"\"})")
            .await
            .unwrap(),
        Some(1.0)
    );
    assert_eq!(
        p.scalar("count(cartographer_workload_info{live_update_enabled=\"false\"} or cartographer_workload_info{live_update_enabled=\"\"})").await.unwrap(),
        Some(6.0)
    );
    assert_eq!(
        p.scalar("count(cartographer_workload_info{live_update_enabled=\"true\"})")
            .await
            .unwrap(),
        Some(1.0)
    );
    assert_eq!(
        p.scalar("count(cartographer_workload_info{debug_enabled=\"true\"})")
            .await
            .unwrap(),
        Some(2.0)
    );
    assert_eq!(
        p.scalar("count(cartographer_deliverable_info{source_image=\"\"})")
            .await
            .unwrap(),
        Some(5.0)
    );
    assert_eq!(
        p.scalar("count(cartographer_deliverable_info{source_git_url=\"\"})")
            .await
            .unwrap(),
        Some(1.0)
    );
    assert_eq!(
        p.scalar("count(stk_class_claim_status{type=\"Ready\",status=\"True\"})")
            .await
            .unwrap(),
        Some(2.0)
    );
    assert_eq!(
        p.scalar("count(stk_class_claim_status{type=\"Ready\",status=\"False\"})")
            .await
            .unwrap(),
        Some(1.0)
    );
    assert_eq!(
        p.scalar("count(stk_resource_claim_info{class_claim=\"\"})")
            .await
            .unwrap(),
        Some(3.0)
    );
    assert_eq!(
        p.scalar("count(api_descriptor_status{type=\"Ready\",status=\"True\"})")
            .await
            .unwrap(),
        Some(2.0)
    );
    assert_eq!(
        p.scalar("count(api_descriptor_status{type=\"Ready\",status=\"False\"})")
            .await
            .unwrap(),
        Some(2.0)
    );
    // Queries the catalogue keeps though they cannot match on a real cluster.
    assert_eq!(p.scalar("count(carvel_packageinstall_info{namespace=\"tap-install\",type=\"ReconcileSucceeded\",status=\"False\"})").await.unwrap(), None);
    assert_eq!(
        p.scalar("count(carvel_packageinstall_info{namespace=\"tap-install\",type=\"ReconcileSucceeded\",status=\"True\"})").await.unwrap(),
        Some(7.0)
    );
    // Supply chain missing: one workload, value 0 (False), and Unknown is -1, never 0.
    let missing = p
        .query("cartographer_workload_status{type=\"SupplyChainReady\",status=\"False\"}")
        .await
        .unwrap();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["metric"]["name"], "legacy-batch");
    assert_eq!(
        p.scalar("count(cartographer_workload_status{status=\"Unknown\"} != -1)")
            .await
            .unwrap(),
        None
    );
    assert!(
        p.scalar("count(cartographer_workload_status{status=\"Unknown\"})")
            .await
            .unwrap()
            .is_some()
    );
    // The provisioner's namespaces, as kube-state-metrics renders a list.
    let ns = p
        .query(
            "carvel_app_namespaces{namespace=\"tap-namespace-provisioning\",name=\"provisioner\"}",
        )
        .await
        .unwrap();
    assert_eq!(
        ns[0]["metric"]["namespaces_deployed_to"],
        "[dev-team-a dev-team-b prod]"
    );

    // Every generated rule, scoped to this monitor as its PrometheusRule is, evaluates; the
    // stage records have series for the fixture workloads.
    for group in rule_groups(&TapGroup::ALL, Some("tap")) {
        for rule in group.rules {
            match rule {
                Rule::Record { expr, labels, .. } => {
                    let result = p
                        .query(&expr)
                        .await
                        .unwrap_or_else(|e| panic!("stage {}: {e}", labels["stage"]));
                    assert!(
                        !result.is_empty(),
                        "stage {} has no series: {expr}",
                        labels["stage"]
                    );
                }
                Rule::Alert { alert, expr, .. } => {
                    p.query(&expr)
                        .await
                        .unwrap_or_else(|e| panic!("{alert}: {e}"));
                }
            }
        }
    }
    // Every panel query of both dashboards evaluates; over the sample environment, for the
    // workload petclinic, every panel shows something, except those whose state the sample
    // environment does not have.
    let empty_in_fixtures = ["Cluster instance classes not ready"];
    for board in tapmon_publish::dashboards::dashboards(&TapGroup::ALL, Some("tap")) {
        for (title, expr) in tapmon_publish::dashboards::queries(&board.json, ".*", "petclinic") {
            let result = p
                .query(&expr)
                .await
                .unwrap_or_else(|e| panic!("{} / {title}: {e}", board.slug));
            if !empty_in_fixtures.contains(&title.as_str()) {
                assert!(
                    !result.is_empty(),
                    "{} / {title} is empty: {expr}",
                    board.slug
                );
            }
        }
    }

    // Alerts the fixtures imply, on the condition alone (their `for` is not awaited here).
    let fires = |expr: &str| {
        let expr = expr.to_owned();
        async move { !p.query(&expr).await.unwrap().is_empty() }
    };
    let alerts: std::collections::BTreeMap<String, String> =
        rule_groups(&TapGroup::ALL, Some("tap"))
            .into_iter()
            .flat_map(|g| g.rules)
            .filter_map(|r| match r {
                Rule::Alert { alert, expr, .. } => Some((alert, expr)),
                Rule::Record { .. } => None,
            })
            .collect();
    assert!(
        fires(&alerts["TapSupplyChainMissing"]).await,
        "legacy-batch has no supply chain"
    );
    assert!(
        fires(&alerts["TapPackageInstallFailing"]).await,
        "buildservice fails to reconcile"
    );
    assert!(
        fires(&alerts["TapKnativeLatestRevisionNotReady"]).await,
        "a service's latest revision is not ready"
    );
    assert!(
        fires(&alerts["TapScanCriticalCVEs"]).await,
        "a scan has critical CVEs"
    );
    operator.stop().await;
}
