//! Prometheus scraping the operator: every query of the catalogue evaluates, and a chosen set
//! gives the answers the fixtures imply (e2e/fixtures/tap/EXPECTED.md).

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use tapmon_e2e::operator::Settings;
use tapmon_e2e::prometheus_operator::{
    Generated, KubePrometheusStack, PrometheusOperator, RELEASE,
};
use tapmon_e2e::{
    Cluster, Operator, Prometheus, apply, catalogue_queries, eventually, load_tap_environment,
    operator_identity, serial,
};
use tapmon_presets::TapGroup;
use tapmon_publish::promql;
use tapmon_publish::rules::{Rule, STAGE_RECORD, rule_groups};

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

/// The jobs the Prometheus Operator generated from the published ServiceMonitors: what
/// kube-prometheus-stack users get, not what we think it does.
fn what_the_prometheus_operator_generated(generated: &Generated) {
    let job = generated
        .job("serviceMonitor/tapmon-system/cluster-tap/0")
        .unwrap();
    assert_eq!(job["metrics_path"], "/clustermonitors/tap/metrics");
    assert_eq!(job["honor_labels"], true);
    assert_eq!(job["scrape_interval"], "1s");
    // Authorised scrapes: HTTPS with the Prometheus' own ServiceAccount token.
    assert_eq!(job["scheme"], "https");
    assert_eq!(job["tls_config"]["insecure_skip_verify"], true);
    let credentials = job["authorization"]["credentials_file"]
        .as_str()
        .or(job["bearer_token_file"].as_str());
    assert_eq!(
        credentials,
        Some("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        "{job:#}"
    );
    let relabelings = job["relabel_configs"].as_array().unwrap();
    assert!(
        relabelings
            .iter()
            .any(|r| r["target_label"] == "tap_monitor" && r["replacement"] == "tap"),
        "no tap_monitor relabeling: {relabelings:#?}"
    );
    let own = generated
        .job("serviceMonitor/tapmon-system/tapmon-self/0")
        .unwrap();
    assert_eq!(own["metrics_path"], "/metrics");
    assert_eq!(own["scheme"], "http");
    // Rule files: the monitor's groups and tapmon's own, valid for the Prometheus that runs them.
    let monitor_rules = generated.rules_of("tapmon-system", "cluster-tap").unwrap();
    for group in rule_groups(&TapGroup::ALL, Some("tap")) {
        assert!(
            monitor_rules.contains(&group.name),
            "group {} missing",
            group.name
        );
    }
    assert!(
        generated
            .rules_of("tapmon-system", "tapmon-self")
            .unwrap()
            .contains("TapmonDown")
    );
}

/// Targets as the operator's relabeling names them: `job` the Service, `endpoint` the port,
/// `tap_monitor` on the monitor's; both up.
async fn targets_are_labelled_as_kube_prometheus_stack_users_see_them(p: &Prometheus) {
    let targets = eventually("both targets up", Duration::from_secs(90), || async {
        let targets = p.api("/api/v1/targets?state=active").await.ok()?;
        let active = targets["activeTargets"].as_array()?.clone();
        (active.len() == 2 && active.iter().all(|t| t["health"] == "up")).then_some(active)
    })
    .await;
    for target in targets {
        let labels = &target["labels"];
        assert_eq!(labels["job"], "tapmon", "{target:#}");
        assert_eq!(labels["namespace"], "tapmon-system", "{target:#}");
        assert_eq!(labels["service"], "tapmon", "{target:#}");
        match target["scrapePool"].as_str().unwrap() {
            "serviceMonitor/tapmon-system/cluster-tap/0" => {
                assert_eq!(labels["endpoint"], "metrics");
                assert_eq!(labels["tap_monitor"], "tap");
            }
            "serviceMonitor/tapmon-system/tapmon-self/0" => {
                assert_eq!(labels["endpoint"], "telemetry");
                assert!(labels.get("tap_monitor").is_none());
            }
            other => panic!("unexpected scrape pool {other}"),
        }
    }
}

/// Every rule the Prometheus Operator handed to Prometheus evaluates without error, and the
/// stage records have series for every stage of the fixture workloads.
async fn rules_evaluate_as_the_prometheus_operator_loaded_them(p: &Prometheus) {
    let stages: BTreeSet<String> = rule_groups(&TapGroup::ALL, Some("tap"))
        .into_iter()
        .flat_map(|g| g.rules)
        .filter_map(|r| match r {
            Rule::Record { labels, .. } => labels.get("stage").cloned(),
            Rule::Alert { .. } => None,
        })
        .collect();
    eventually(
        "a record for every stage",
        Duration::from_secs(60),
        || async {
            let recorded = p
                .by(&format!("count by (stage) ({STAGE_RECORD})"), "stage")
                .await
                .ok()?;
            (recorded.keys().cloned().collect::<BTreeSet<_>>() == stages).then_some(())
        },
    )
    .await;
    let rules = eventually("every rule evaluated", Duration::from_secs(60), || async {
        let data = p.api("/api/v1/rules").await.ok()?;
        let rules: Vec<Value> = data["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        rules
            .iter()
            .all(|r| r["health"] != "unknown")
            .then_some(rules)
    })
    .await;
    let mine = rule_groups(&TapGroup::ALL, Some("tap"))
        .iter()
        .map(|g| g.rules.len())
        .sum::<usize>();
    assert!(rules.len() > mine, "{} rules loaded", rules.len());
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule:#}");
    }
}

fn counts(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// The ServiceMonitors and PrometheusRules this test expects the Prometheus Operator to pick
/// up: the monitor's, and tapmon's own (`deploy/monitoring/`).
const SERVICE_MONITORS: [(&str, &str); 2] = [
    ("tapmon-system", "cluster-tap"),
    ("tapmon-system", "tapmon-self"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogue_query_evaluates_and_a_chosen_set_gives_the_fixture_answers() {
    let _serial = serial().await;
    let cluster = Cluster::up("queries").await.unwrap();
    load_tap_environment(&cluster.admin).await.unwrap();
    // Its CRDs first: tapmon publishes only kinds the API server serves.
    let prometheus_operator = PrometheusOperator::start(&cluster).await.unwrap();
    let operator = Operator::start_with(
        operator_identity(&cluster).await.unwrap(),
        Settings {
            auth: true,
            published_labels: BTreeMap::from([(RELEASE.0.into(), RELEASE.1.into())]),
            ..Settings::default()
        },
    )
    .await;
    // Scraped every second, so the test need not wait for the default 30 s.
    let monitor = json!({"apiVersion": "tapmon.io/v1alpha1", "kind": "ClusterTapMonitor",
        "metadata": {"name": "tap"},
        "spec": {"serviceMonitor": {"interval": "1s", "scrapeTimeout": "1s"}}});
    apply(&cluster.admin, monitor, None).await.unwrap();
    let stack = KubePrometheusStack::start(
        &cluster,
        prometheus_operator,
        &operator,
        &SERVICE_MONITORS,
        &SERVICE_MONITORS,
    )
    .await
    .unwrap();
    what_the_prometheus_operator_generated(&stack.generated);
    let prometheus = &stack.prometheus;
    // Wait for a scrape that has every kind in it.
    eventually(
        "Prometheus has scraped every family",
        Duration::from_secs(90),
        || async {
            let families = prometheus
                // Scraped families only: rules' results (`ALERTS`, `tap:...`) carry the label too.
                .scalar("count(count by (__name__) ({tap_monitor=\"tap\", __name__!~\"up|scrape_.*|ALERTS.*|.*:.*\"}))")
                .await
                .ok()??;
            // The 42 catalogue families, 4 timestamps and the 6 of tapmon's extensions.
            (families == 52.0).then_some(())
        },
    )
    .await;
    targets_are_labelled_as_kube_prometheus_stack_users_see_them(prometheus).await;

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

    let p = prometheus;
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

    rules_evaluate_as_the_prometheus_operator_loaded_them(p).await;
    // The DORA group runs once a minute, and its first run may come before the first scrape
    // of the TAP target: wait until every record the sample environment fills has a series.
    for record in tapmon_publish::dora::record_names() {
        eventually(
            &format!("{record} recorded"),
            Duration::from_secs(150),
            || async {
                p.scalar(&format!("count({record})")).await.ok()??;
                Some(())
            },
        )
        .await;
    }
    // Every panel query of both dashboards evaluates; over the sample environment, for the
    // workload petclinic, every panel shows something, except those whose state the sample
    // environment does not have.
    let empty_in_fixtures = [
        "Cluster instance classes not ready",
        // tapmon has had no errors: its counters have no series yet.
        "Watch errors",
        "Reconcile errors",
    ];
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

    // Alerts the fixtures imply, evaluated by Prometheus from the operator's rule files
    // (pending: their `for` is not awaited here).
    let implied = [
        ("TapSupplyChainMissing", "legacy-batch has no supply chain"),
        (
            "TapPackageInstallFailing",
            "buildservice fails to reconcile",
        ),
        (
            "TapKnativeLatestRevisionNotReady",
            "a service's latest revision is not ready",
        ),
        ("TapScanCriticalCVEs", "a scan has critical CVEs"),
    ];
    let active = eventually(
        "the implied alerts active",
        Duration::from_secs(60),
        || async {
            let alerts = p.api("/api/v1/alerts").await.ok()?;
            let active: BTreeMap<String, String> = alerts["alerts"]
                .as_array()?
                .iter()
                .map(|a| {
                    (
                        a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                        a["state"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            implied
                .iter()
                .all(|(name, _)| active.contains_key(*name))
                .then_some(active)
        },
    )
    .await;
    for (name, why) in implied {
        assert!(
            ["pending", "firing"].contains(&active[name].as_str()),
            "{name} ({why}): {}",
            active[name]
        );
    }
    // tapmon's own alerts read the labels the operator's job gives its telemetry target:
    // TapmonDown, pending until the first scrape of it, goes once that scrape is evaluated.
    eventually("TapmonDown resolved", Duration::from_secs(60), || async {
        let alerts = p.api("/api/v1/alerts").await.ok()?;
        let names: Vec<&str> = alerts["alerts"]
            .as_array()?
            .iter()
            .filter_map(|a| a["labels"]["alertname"].as_str())
            .collect();
        (!names.contains(&"TapmonDown")).then_some(())
    })
    .await;
    operator.stop().await;
}
