//! The operator against a real kube-apiserver, running as its ServiceAccount with the
//! ClusterRole from `deploy/`: a missing permission fails these tests.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use tapmon_api::{ConditionType, EventReason, KindState, Reason, status_str};
use tapmon_crs::Compiled;
use tapmon_e2e::status::{Cond, condition, kind_state, ready};
use tapmon_e2e::{
    Cluster, Operator, apply, apply_cluster_monitor, cluster_monitors, cluster_with_operator,
    dynamic_api, eventually, install_crds, load_tap_environment, operator_identity, root, serial,
    series, tap_objects, tap_objects_as_loaded,
};

const WAIT: Duration = Duration::from_secs(60);

async fn monitor(client: &Client, name: &str, spec: Value) {
    apply_cluster_monitor(client, name, spec).await.unwrap();
}

/// The monitor's status once `check` accepts it.
async fn status_when(
    client: &Client,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let api = cluster_monitors(client);
    eventually(what, WAIT, || {
        let api = api.clone();
        let check = &check;
        async move {
            let m = api.get(name).await.ok()?;
            let status = m.data.get("status")?.clone();
            check(&status).then_some(status)
        }
    })
    .await
}

/// Series lines without `created_at`, which the API server sets and offline fixtures lack.
fn normalized(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut out = l.to_owned();
            while let Some(start) = out.find(",created_at=\"") {
                let end = out[start + 13..]
                    .find('"')
                    .map(|e| start + 13 + e + 1)
                    .unwrap_or(out.len());
                out.replace_range(start..end, "");
            }
            out
        })
        .collect()
}

/// What the fixtures imply: the engine run offline over the same YAML.
/// The presets run offline over the fixture objects as the API server holds them (its
/// creation times; the fixtures' status times moved with them).
async fn expected_exposition(client: &Client) -> String {
    let (compiled, errors) =
        Compiled::compile(&tapmon_presets::spec_for(tapmon_presets::TapGroup::ALL).unwrap());
    assert!(errors.is_empty());
    let objects = tap_objects_as_loaded(client).await.unwrap();
    assert_eq!(objects.len(), tap_objects().unwrap().len());
    compiled.render_objects(&objects).text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_groups_serve_every_family_with_the_values_the_fixtures_imply() {
    let _serial = serial().await;
    let cluster = Cluster::up("all-groups").await.unwrap();
    let loaded = load_tap_environment(&cluster.admin).await.unwrap();
    let operator = Operator::start(operator_identity(&cluster).await.unwrap()).await;
    monitor(&cluster.admin, "tap", json!({})).await;

    let status = status_when(&cluster.admin, "tap", "TapMonitor tap Ready", ready).await;
    let kinds = status["kinds"].as_array().unwrap();
    assert_eq!(kinds.len(), 21, "{status}");
    assert!(
        kinds
            .iter()
            .all(|k| k["state"] == KindState::Watching.as_str() && k["objects"].as_i64() > Some(0)),
        "{status}"
    );
    assert_eq!(status["objects"].as_u64(), Some(loaded as u64));
    assert!(!condition(&status, ConditionType::Stalled).is_true());

    let expected = normalized(&expected_exposition(&cluster.admin).await);
    let scrape = eventually("all series", WAIT, || async {
        let s = operator.scrape_cluster("tap").await?;
        (normalized(&s) == expected).then_some(s)
    })
    .await;
    let families: BTreeSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    // The 42 catalogue families, 4 timestamps and the 6 of tapmon's extensions.
    assert_eq!(families.len(), 52);
    // Durations from creation are the fixture's, though the API server chose the creation time.
    let duration = |family: &str, object: &str| {
        scrape
            .lines()
            .find(|l| {
                l.starts_with(&format!("{family}{{")) && l.contains(&format!(",name=\"{object}\","))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(
        duration("kpack_build_duration_seconds", "petclinic-build-1-w82l5"),
        Some("257".into())
    );
    assert_eq!(
        duration("knative_revision_time_to_ready_seconds", "petclinic-00002"),
        Some("154".into())
    );

    // Update → the series changes; delete → it goes; create → it comes.
    let workloads = dynamic_api(
        &cluster.admin,
        Some("dev-team-a"),
        ("carto.run", "v1alpha1", "Workload"),
        "workloads",
    );
    let patch = json!({"status": {"conditions": [{"type": ConditionType::Ready.as_str(), "status": status_str(false), "reason": "Broken", "message": "e2e", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    workloads
        .patch_status("petclinic", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("updated status series", WAIT, || async {
        let s = operator.scrape_cluster("tap").await?;
        series(&s, "cartographer_workload_status")
            .iter()
            .any(|l| {
                l.contains("name=\"petclinic\"")
                    && l.contains("reason=\"Broken\"")
                    && l.ends_with(" 0")
            })
            .then_some(())
    })
    .await;
    workloads
        .delete("petclinic", &DeleteParams::default())
        .await
        .unwrap();
    eventually("deleted object's series gone", WAIT, || async {
        let s = operator.scrape_cluster("tap").await?;
        (!s.contains("cartographer_workload_info{")
            || !series(&s, "cartographer_workload_info")
                .iter()
                .any(|l| l.contains("name=\"petclinic\"")))
        .then_some(())
    })
    .await;
    let new = json!({"apiVersion": "carto.run/v1alpha1", "kind": "Workload",
        "metadata": {"name": "brand-new", "namespace": "dev-team-a", "labels": {"apps.tanzu.vmware.com/workload-type": "web"}},
        "spec": {"source": {"git": {"url": "https://example.com/new.git", "ref": {"branch": "main"}}}}});
    apply(&cluster.admin, new, None).await.unwrap();
    eventually("created object's series", WAIT, || async {
        let s = operator.scrape_cluster("tap").await?;
        series(&s, "cartographer_workload_info")
            .iter()
            .any(|l| {
                l.contains("name=\"brand-new\"")
                    && l.contains("source_git_url=\"https://example.com/new.git\"")
            })
            .then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_installed_later_is_watched_and_a_deleted_one_drops_its_series() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("crd-later", false).await.unwrap();
    monitor(&cluster.admin, "tap", json!({})).await;
    let status = status_when(&cluster.admin, "tap", "Ready with nothing installed", ready).await;
    assert_eq!(
        kind_state(&status, "Workload"),
        Some(KindState::NotInstalled)
    );

    let fixtures = root().join("e2e/fixtures");
    install_crds(
        &cluster.admin,
        &[fixtures.join("crds/workloads.carto.run.yaml")],
    )
    .await
    .unwrap();
    tapmon_e2e::apply_files(
        &cluster.admin,
        &[
            fixtures.join("tap/namespaces.yaml"),
            fixtures.join("tap/workloads.yaml"),
        ],
        None,
    )
    .await
    .unwrap();
    eventually("workload series after the CRD appeared", WAIT, || async {
        let s = operator.scrape_cluster("tap").await?;
        (series(&s, "cartographer_workload_info").len() == 7).then_some(())
    })
    .await;
    status_when(&cluster.admin, "tap", "Workload Watching", |s| {
        kind_state(s, "Workload") == Some(KindState::Watching)
    })
    .await;

    let crds = dynamic_api(
        &cluster.admin,
        None,
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    crds.delete("workloads.carto.run", &DeleteParams::default())
        .await
        .unwrap();
    eventually("workload series gone with the CRD", WAIT, || async {
        let s = operator.scrape_cluster("tap").await?;
        series(&s, "cartographer_workload_info")
            .is_empty()
            .then_some(())
    })
    .await;
    status_when(&cluster.admin, "tap", "Workload NotInstalled", |s| {
        kind_state(s, "Workload") == Some(KindState::NotInstalled)
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_monitors_share_one_watch_per_kind_and_serve_only_their_own_series() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("two-monitors", true).await.unwrap();
    monitor(
        &cluster.admin,
        "team-a",
        json!({"namespaceSelector": {"names": ["dev-team-a"]}}),
    )
    .await;
    monitor(&cluster.admin, "team-b", json!({"namespaceSelector": {"names": ["dev-team-b"]}, "groups": {"kpack": {"enabled": false}}})).await;
    status_when(&cluster.admin, "team-a", "team-a Ready", ready).await;
    status_when(&cluster.admin, "team-b", "team-b Ready", ready).await;

    let telemetry = operator.self_metrics().await;
    let watches: Vec<&str> = telemetry
        .lines()
        .filter(|l| l.starts_with("tapmon_watches{"))
        .collect();
    assert_eq!(watches.len(), 21, "{telemetry}");
    assert!(
        watches.iter().all(|l| l.ends_with(" 1")),
        "one watch per kind: {watches:?}"
    );

    for (name, ns) in [("team-a", "dev-team-a"), ("team-b", "dev-team-b")] {
        let s = operator.scrape_cluster(name).await.unwrap();
        let namespaces: BTreeSet<&str> = s
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(",namespace=\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .filter(|n| !n.is_empty())
            .collect();
        assert_eq!(namespaces, BTreeSet::from([ns]), "{name}");
    }
    let b = operator.scrape_cluster("team-b").await.unwrap();
    assert!(!b.contains("kpack_"), "kpack disabled for team-b");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_monitor_is_stalled_and_a_valid_one_beside_it_is_not() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("invalid", false).await.unwrap();
    monitor(&cluster.admin, "good", json!({})).await;
    monitor(
        &cluster.admin,
        "bad",
        json!({"resources": [{"groupVersionKind": {"group": "carto.run", "version": "*", "kind": "Workload"},
            "metrics": [{"name": "phase", "each": {"type": "Gauge", "gauge": {"path": ["status", "[phase]"]}}}]}]}),
    )
    .await;
    let bad = status_when(&cluster.admin, "bad", "bad Stalled", |s| {
        condition(s, ConditionType::Stalled).is_true()
    })
    .await;
    let Cond {
        reason, message, ..
    } = condition(&bad, ConditionType::Stalled);
    assert_eq!(reason, Reason::InvalidConfig.as_str());
    assert!(
        message.contains("spec.resources[0]")
            && message.contains("each.gauge.path")
            && message.contains("[phase]"),
        "{message}"
    );
    assert!(!condition(&bad, ConditionType::Ready).is_true());
    status_when(&cluster.admin, "good", "good Ready", ready).await;

    // Events about cluster-scoped objects are recorded in `default`.
    let events = dynamic_api(
        &cluster.admin,
        Some("default"),
        ("events.k8s.io", "v1", "Event"),
        "events",
    );
    eventually("InvalidConfig Event", WAIT, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.data["reason"] == EventReason::InvalidConfig.to_string()
                    && e.data["note"]
                        .as_str()
                        .is_some_and(|n| n.contains("[phase]"))
            })
            .then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_monitor_stops_serving_it_and_its_watches() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("delete", true).await.unwrap();
    monitor(&cluster.admin, "tap", json!({})).await;
    status_when(&cluster.admin, "tap", "Ready", ready).await;
    assert!(operator.scrape_cluster("tap").await.is_some());
    cluster_monitors(&cluster.admin)
        .delete("tap", &DeleteParams::default())
        .await
        .unwrap();
    eventually("monitor gone", WAIT, || async {
        let gone = cluster_monitors(&cluster.admin)
            .get_opt("tap")
            .await
            .ok()?
            .is_none();
        let unserved = operator.scrape_cluster("tap").await.is_none();
        let telemetry = operator.self_metrics().await;
        let no_watches = !telemetry.lines().any(|l| l.starts_with("tapmon_watches{"));
        (gone && unserved && no_watches).then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_recovers_from_an_apiserver_restart_without_stale_or_duplicate_series() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("restart", true).await.unwrap();
    monitor(&cluster.admin, "tap", json!({})).await;
    status_when(&cluster.admin, "tap", "Ready", ready).await;

    cluster.restart_apiserver().await.unwrap();
    let builds = dynamic_api(
        &cluster.admin,
        Some("dev-team-a"),
        ("kpack.io", "v1alpha2", "Build"),
        "builds",
    );
    builds
        .delete("petclinic-build-1-w82l5", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "series correct after the restart",
        Duration::from_secs(120),
        || async {
            let s = operator.scrape_cluster("tap").await?;
            let lines: Vec<&str> = s.lines().filter(|l| !l.starts_with('#')).collect();
            let unique: BTreeSet<&&str> = lines.iter().collect();
            let stale = s.contains("name=\"petclinic-build-1-w82l5\"");
            (!stale && unique.len() == lines.len()).then_some(())
        },
    )
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_the_operator_may_not_watch_is_forbidden_in_status_and_the_rest_works() {
    let _serial = serial().await;
    let cluster = Cluster::up("forbidden").await.unwrap();
    load_tap_environment(&cluster.admin).await.unwrap();
    let client = operator_identity(&cluster).await.unwrap();
    // Take kpack away from the operator's ClusterRole.
    let roles = dynamic_api(
        &cluster.admin,
        None,
        ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
        "clusterroles",
    );
    let mut role = roles.get("tapmon").await.unwrap();
    let rules = role.data["rules"].as_array_mut().unwrap();
    rules.retain(|r| r["apiGroups"] != json!(["kpack.io"]));
    roles
        .patch(
            "tapmon",
            &PatchParams::default(),
            &Patch::Merge(&json!({"rules": role.data["rules"]})),
        )
        .await
        .unwrap();
    let operator = Operator::start(client).await;
    monitor(&cluster.admin, "tap", json!({})).await;
    let status = status_when(&cluster.admin, "tap", "kpack Forbidden", |s| {
        kind_state(s, "Build") == Some(KindState::Forbidden)
    })
    .await;
    assert_eq!(
        condition(&status, ConditionType::Ready).reason,
        Reason::WatchForbidden.as_str()
    );
    // It does not mend itself: Stalled (kstatus Failed), naming what to grant.
    let stalled = condition(&status, ConditionType::Stalled);
    assert!(stalled.is_true(), "{stalled:?}");
    assert!(
        stalled.message.contains("builds.kpack.io")
            && stalled.message.contains("aggregate-to-tapmon"),
        "{}",
        stalled.message
    );
    eventually("other kinds still served", WAIT, || async {
        let s = operator.scrape_cluster("tap").await?;
        (!series(&s, "cartographer_workload_info").is_empty()
            && series(&s, "kpack_build_info").is_empty())
        .then_some(())
    })
    .await;
    operator.stop().await;
}

/// The value of the first series of `scrape` whose line starts with `prefix` and contains
/// every one of `having`.
fn value_of(scrape: &str, prefix: &str, having: &[&str]) -> Option<String> {
    scrape
        .lines()
        .find(|l| l.starts_with(prefix) && having.iter().all(|h| l.contains(h)))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_counters_count_changes_seen_and_start_at_zero_after_a_restart() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("live", true).await.unwrap();
    monitor(&cluster.admin, "tap", json!({})).await;
    status_when(&cluster.admin, "tap", "Ready", ready).await;
    // The initial list counts nothing: finished builds were already finished.
    let before = operator.scrape_cluster("tap").await.unwrap();
    assert!(!before.contains("kpack_build_completed_total"), "{before}");

    // The running build finishes 95 s after its creation.
    let builds = dynamic_api(
        &cluster.admin,
        Some("dev-team-b"),
        ("kpack.io", "v1alpha2", "Build"),
        "builds",
    );
    let name = "inventory-api-build-2-szjdr";
    let created = builds.get(name).await.unwrap().metadata.creation_timestamp;
    let created: jiff::Timestamp = serde_json::to_value(created)
        .unwrap()
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ended = created
        .checked_add(jiff::SignedDuration::from_secs(95))
        .unwrap();
    let finished = json!({"status": {"conditions": [{"type": "Succeeded", "status": "True", "lastTransitionTime": ended.to_string()}]}});
    builds
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&finished))
        .await
        .unwrap();
    let labels = [
        "namespace=\"dev-team-b\"",
        "workload=\"inventory-api\"",
        "status=\"True\"",
    ];
    let counted = eventually("the finished build counted", WAIT, || async {
        let s = operator.scrape_cluster("tap").await?;
        (value_of(&s, "kpack_build_completed_total{", &labels)? == "1").then_some(s)
    })
    .await;
    let bucket = |le: &str| {
        let mut having = labels.to_vec();
        let le = format!("le=\"{le}\"");
        having.push(&le);
        value_of(
            &counted,
            "kpack_build_completed_duration_seconds_bucket{",
            &having,
        )
    };
    assert_eq!(bucket("60"), Some("0".into()));
    assert_eq!(bucket("120"), Some("1".into()));
    assert_eq!(
        value_of(
            &counted,
            "kpack_build_completed_duration_seconds_sum{",
            &labels
        ),
        Some("95".into())
    );
    assert_eq!(
        value_of(&counted, "kpack_build_duration_seconds{", &[name]),
        Some("95".into())
    );
    let om = operator.scrape_cluster_openmetrics("tap").await.unwrap();
    assert!(
        om.contains("# TYPE kpack_build_completed counter\n"),
        "{om}"
    );
    assert!(value_of(&om, "kpack_build_completed_created{", &labels).is_some());
    assert!(om.ends_with("# EOF\n"));

    // The same state again (another field changed) does not count twice; a later change to
    // another object shows the build's event was handled.
    let touched = json!({"metadata": {"annotations": {"e2e": "touched"}}});
    builds
        .patch(name, &PatchParams::default(), &Patch::Merge(&touched))
        .await
        .unwrap();
    let broken = json!({"status": {"conditions": [{"type": "Succeeded", "status": "False", "lastTransitionTime": ended.to_string()}]}});
    let other = "node-frontend-build-2-lrfjq";
    builds
        .patch_status(other, &PatchParams::default(), &Patch::Merge(&broken))
        .await
        .unwrap();
    let after = eventually("the other change seen", WAIT, || async {
        let s = operator.scrape_cluster("tap").await?;
        value_of(
            &s,
            "kpack_build_status{",
            &[other, "type=\"Succeeded\"", "status=\"False\""],
        )?;
        Some(s)
    })
    .await;
    assert_eq!(
        value_of(&after, "kpack_build_completed_total{", &labels),
        Some("1".into())
    );

    // After a restart the counters start again at zero; what the objects hold is exact.
    operator.stop().await;
    let operator = Operator::start(operator_identity(&cluster).await.unwrap()).await;
    let restarted = eventually("served after the restart", WAIT, || async {
        let s = operator.scrape_cluster("tap").await?;
        value_of(&s, "kpack_build_duration_seconds{", &[name]).map(|_| s)
    })
    .await;
    assert!(
        !restarted.contains("kpack_build_completed_total"),
        "{restarted}"
    );
    assert_eq!(
        value_of(&restarted, "kpack_build_duration_seconds{", &[name]),
        Some("95".into())
    );
    operator.stop().await;
}
