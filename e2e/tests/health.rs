//! Health as GitOps tools judge it, on live monitors in each state: kstatus (the library Flux
//! uses) and Argo CD's health script from `config/argocd` say Ready, Failed or in progress as
//! the monitor's conditions mean it, so Flux and Argo CD fail fast on what will not mend itself.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tapmon_api::{ConditionType, Reason};
use tapmon_e2e::health::{Health, argocd_health, argocd_script, kstatus};
use tapmon_e2e::status::condition;
use tapmon_e2e::{
    apply, apply_tap_monitor, cluster_with_operator, eventually, install_crds,
    install_publishing_crds, root, serial, tapmonitors,
};

const WAIT: Duration = Duration::from_secs(90);
const NS: &str = "dev-team-a";

/// The monitors, their specs, and the reason their status is expected to settle on.
fn monitors() -> Vec<(&'static str, Value, Reason)> {
    let widgets = json!([{"groupVersionKind": {"group": "example.tapmon.io", "version": "v1", "kind": "Widget"},
        "metrics": [{"name": "widget", "each": {"type": "Info", "info": {}}}]}]);
    let unreadable = json!([{"groupVersionKind": {"group": "carto.run", "version": "*", "kind": "Workload"},
        "metrics": [{"name": "phase", "each": {"type": "Gauge", "gauge": {"path": ["status", "[phase]"]}}}]}]);
    vec![
        ("healthy", json!({}), Reason::Watching),
        (
            "invalid",
            json!({"resources": unreadable}),
            Reason::InvalidConfig,
        ),
        // The Widget CRD is installed; no ClusterRole grants the operator its objects.
        (
            "forbidden",
            json!({"resources": widgets}),
            Reason::WatchForbidden,
        ),
        // A label value the API server refuses on the ServiceMonitor.
        (
            "rejected",
            json!({"serviceMonitor": {"labels": {"release": "not a valid value!"}}}),
            Reason::PublishFailed,
        ),
        // An administrator's ConfigMap holds the dashboard's name.
        ("conflict", json!({}), Reason::PublishFailed),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kstatus_and_argo_cd_judge_each_live_monitor_as_its_conditions_say() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("health", true).await.unwrap();
    install_publishing_crds(&cluster.admin).await.unwrap();
    install_crds(
        &cluster.admin,
        &[root().join("e2e/fixtures/features/crd.yaml")],
    )
    .await
    .unwrap();
    let admins = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "conflict-overview", "namespace": NS}, "data": {"owner": "admin"}});
    apply(&cluster.admin, admins, None).await.unwrap();
    for (name, spec, _) in monitors() {
        apply_tap_monitor(&cluster.admin, NS, name, spec)
            .await
            .unwrap();
    }

    let api = tapmonitors(&cluster.admin, NS);
    let mut objects = Vec::new();
    for (name, _, reason) in monitors() {
        let obj = eventually(&format!("{name}: {reason}"), WAIT, || async {
            let obj = api.get(name).await.ok()?;
            let ready = condition(obj.data.get("status")?, ConditionType::Ready);
            (ready.reason == reason.as_str()).then_some(obj)
        })
        .await;
        objects.push(serde_json::to_value(obj).unwrap());
    }
    let flux = kstatus(&objects).unwrap();
    let script = argocd_script("TapMonitor").unwrap();
    assert_eq!(script, argocd_script("ClusterTapMonitor").unwrap());
    for ((obj, (name, _, reason)), flux) in objects.iter().zip(monitors()).zip(flux) {
        let argo = argocd_health(&script, obj).unwrap();
        let status = &obj["status"];
        if reason == Reason::Watching {
            let ready = condition(status, ConditionType::Ready).message;
            assert_eq!(flux.status, "Current", "{name}: {flux:?}");
            assert_eq!(
                argo,
                Health {
                    status: "Healthy".into(),
                    message: ready
                },
                "{name}"
            );
        } else {
            let stalled = condition(status, ConditionType::Stalled);
            assert!(stalled.is_true(), "{name}: {stalled:?}");
            assert_eq!(flux.status, "Failed", "{name}: {flux:?}");
            assert_eq!(
                argo,
                Health {
                    status: "Degraded".into(),
                    message: stalled.message.clone()
                },
                "{name}"
            );
            let expected = match name {
                "forbidden" => "widgets.example.tapmon.io",
                "rejected" => "failed to apply ServiceMonitor dev-team-a/rejected",
                "conflict" => "ConfigMap dev-team-a/conflict-overview exists",
                _ => "spec.resources",
            };
            assert!(
                stalled.message.contains(expected),
                "{name}: {}",
                stalled.message
            );
        }
    }

    // A change the operator has not seen yet (it is down): in progress for both, never the
    // old verdict.
    operator.stop().await;
    api.patch(
        "healthy",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"dashboard": {"enabled": false}}})),
    )
    .await
    .unwrap();
    let obj = serde_json::to_value(api.get("healthy").await.unwrap()).unwrap();
    let flux = kstatus(std::slice::from_ref(&obj)).unwrap();
    assert_eq!(flux[0].status, "InProgress", "{flux:?}");
    let argo = argocd_health(&script, &obj).unwrap();
    assert_eq!(
        argo,
        Health {
            status: "Progressing".into(),
            message: "the operator has not seen generation 2 yet".into()
        }
    );
    // Before the operator has written any status at all.
    let fresh = json!({"apiVersion": "tapmon.io/v1alpha1", "kind": "TapMonitor",
        "metadata": {"name": "fresh", "namespace": NS, "generation": 1}, "spec": {}});
    assert_eq!(
        argocd_health(&script, &fresh).unwrap().status,
        "Progressing"
    );
    // kstatus calls an object without conditions Current (README says so).
    assert_eq!(kstatus(&[fresh]).unwrap()[0].status, "Current");
}
