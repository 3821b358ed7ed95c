//! What a TapMonitor publishes for Prometheus, against the real Prometheus Operator CRD schema.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject};
use serde_json::{Value, json};
use tapmon_api::{ConditionType, Reason, status_str};
use tapmon_e2e::status;
use tapmon_e2e::{
    apply, cluster_monitors, cluster_with_operator, dynamic_api, eventually,
    install_publishing_crds, serial,
};

/// A condition of a TapMonitor read from the API: (status, reason).
fn condition(m: &DynamicObject, type_: ConditionType) -> Option<(String, String)> {
    let c = status::condition(m.data.get("status")?, type_);
    Some((c.status, c.reason))
}

fn monitor(labels: Value) -> Value {
    json!({"apiVersion": "tapmon.io/v1alpha1", "kind": "ClusterTapMonitor",
    "metadata": {"name": "tap"},
    "spec": {
        "serviceMonitor": {"labels": labels, "interval": "15s"},
        "dashboard": {"labels": {"grafana_dashboard": "1", "release": labels["release"]}}
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_monitor_appears_with_its_crd_updates_in_place_and_goes_with_the_monitor() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("publish", true).await.unwrap();
    let monitors = cluster_monitors(&cluster.admin);
    let sms = dynamic_api(
        &cluster.admin,
        Some("tapmon-system"),
        ("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    );

    // Without the Prometheus Operator: a clear condition, metrics still served.
    apply(&cluster.admin, monitor(json!({"release": "kps"})), None)
        .await
        .unwrap();
    eventually("CRDNotInstalled", Duration::from_secs(60), || async {
        let m = monitors.get("tap").await.ok()?;
        (condition(&m, ConditionType::ServiceMonitor)?
            == (
                status_str(false).into(),
                Reason::CrdNotInstalled.as_str().into(),
            )
            && condition(&m, ConditionType::Ready)?.0 == status_str(true))
        .then_some(())
    })
    .await;

    // The CRD appears: the ServiceMonitor follows, accepted by the real schema.
    install_publishing_crds(&cluster.admin).await.unwrap();
    let sm = eventually(
        "ServiceMonitor created",
        Duration::from_secs(60),
        || async { sms.get_opt("cluster-tap").await.ok()? },
    )
    .await;
    assert_eq!(sm.metadata.labels.as_ref().unwrap()["release"], "kps");
    let endpoint = &sm.data["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/clustermonitors/tap/metrics");
    assert_eq!(endpoint["interval"], "15s");
    assert_eq!(endpoint["honorLabels"], true);
    let owner = &sm.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("ClusterTapMonitor", Some(true))
    );
    eventually(
        "ServiceMonitor condition Applied",
        Duration::from_secs(60),
        || async {
            let m = monitors.get("tap").await.ok()?;
            (condition(&m, ConditionType::ServiceMonitor)?
                == (status_str(true).into(), Reason::Applied.as_str().into()))
                .then_some(())
        },
    )
    .await;

    // The PrometheusRule: accepted by the real schema, owned, scoped to this monitor.
    let rules = dynamic_api(
        &cluster.admin,
        Some("tapmon-system"),
        ("monitoring.coreos.com", "v1", "PrometheusRule"),
        "prometheusrules",
    );
    let rule = eventually(
        "PrometheusRule created",
        Duration::from_secs(60),
        || async { rules.get_opt("cluster-tap").await.ok()? },
    )
    .await;
    assert_eq!(
        rule.metadata.owner_references.as_ref().unwrap()[0].kind,
        "ClusterTapMonitor"
    );
    let groups = rule.data["spec"]["groups"].as_array().unwrap();
    let names: Vec<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(names, ["tap.workload-stages", "tap.dora", "tap.alerts"]);
    // The DORA group's records read back what it recorded, at the interval it says.
    assert_eq!(groups[1]["interval"], "1m");
    assert!(
        rule.data["spec"]
            .to_string()
            .contains("tap_monitor=\\\"tap\\\"")
    );

    // What the Prometheus Operator makes of both, and Prometheus running it: tests/queries.rs.

    // The dashboards: one ConfigMap each, labelled for the Grafana sidecar, in a folder, valid
    // JSON under the ConfigMap limit, data keys naming the monitor.
    let configmaps = dynamic_api(
        &cluster.admin,
        Some("tapmon-system"),
        ("", "v1", "ConfigMap"),
        "configmaps",
    );
    let mut dashboard_uids = Vec::new();
    for slug in tapmon_publish::dashboards::SLUGS {
        let cm = eventually("dashboard ConfigMap", Duration::from_secs(60), || async {
            configmaps
                .get_opt(&format!("cluster-tap-{slug}"))
                .await
                .ok()?
        })
        .await;
        assert_eq!(
            cm.metadata.labels.as_ref().unwrap()["grafana_dashboard"],
            "1"
        );
        assert_eq!(
            cm.metadata.annotations.as_ref().unwrap()["grafana_folder"],
            "TAP"
        );
        assert_eq!(
            cm.metadata.owner_references.as_ref().unwrap()[0].kind,
            "ClusterTapMonitor"
        );
        let key = format!("tapmon-tap-{slug}.json");
        let text = cm.data["data"][&key].as_str().unwrap();
        assert!(text.len() < 1 << 20);
        let board: Value = serde_json::from_str(text).unwrap();
        assert!(board["uid"].as_str().unwrap().len() <= 40);
        dashboard_uids.push(cm.metadata.uid.clone());
    }

    // Changing the labels updates the same objects in place.
    let uid = sm.metadata.uid.clone();
    apply(&cluster.admin, monitor(json!({"release": "other"})), None)
        .await
        .unwrap();
    eventually(
        "labels updated in place",
        Duration::from_secs(60),
        || async {
            let sm = sms.get("cluster-tap").await.ok()?;
            let cm = configmaps.get("cluster-tap-overview").await.ok()?;
            let dashboard_relabeled = cm.metadata.labels.as_ref()?.get("release")? == "other"
                && cm.metadata.uid == dashboard_uids[0];
            (sm.metadata.labels.as_ref()?.get("release")? == "other"
                && sm.metadata.uid == uid
                && dashboard_relabeled)
                .then_some(())
        },
    )
    .await;

    // A label value Kubernetes rejects: a condition and an Event, metrics keep being served.
    apply(
        &cluster.admin,
        monitor(json!({"release": "not a valid value!"})),
        None,
    )
    .await
    .unwrap();
    eventually("ApplyFailed", Duration::from_secs(60), || async {
        let m = monitors.get("tap").await.ok()?;
        (condition(&m, ConditionType::ServiceMonitor)?.1 == Reason::ApplyFailed.as_str())
            .then_some(())
    })
    .await;
    assert!(operator.scrape_cluster("tap").await.is_some());
    apply(&cluster.admin, monitor(json!({"release": "kps"})), None)
        .await
        .unwrap();

    // Deleting the TapMonitor: the garbage collector removes what it published.
    monitors
        .delete("tap", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "ServiceMonitor and PrometheusRule garbage-collected",
        Duration::from_secs(120),
        || async {
            let gone = sms.get_opt("cluster-tap").await.ok()?.is_none()
                && rules.get_opt("cluster-tap").await.ok()?.is_none();
            gone.then_some(())
        },
    )
    .await;
    operator.stop().await;
}

#[test]
fn dashboards_are_clean_under_grafanas_strict_schema() {
    use tapmon_presets::TapGroup;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for scope in [None, Some("dev-team-a/tap")] {
        for board in tapmon_publish::dashboards::dashboards(&TapGroup::ALL, scope) {
            let path = dir
                .path()
                .join(format!("{}-{}.json", board.slug, files.len()));
            std::fs::write(&path, serde_json::to_vec_pretty(&board.json).unwrap()).unwrap();
            files.push(path);
        }
    }
    // Grafana's own schema (grafana-foundation-sdk, strict), plus a description and a unit on
    // every panel: `e2e/tools/grafana-validate`.
    let out = std::process::Command::new(
        tapmon_e2e::install::tools_dir()
            .unwrap()
            .join("grafana-validate"),
    )
    .args(&files)
    .output()
    .unwrap();
    let problems = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && problems.is_empty(),
        "{} problems:\n{problems}{}",
        problems.lines().count(),
        String::from_utf8_lossy(&out.stderr)
    );
}
