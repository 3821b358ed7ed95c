//! A shared cluster, as its tenants and their Prometheus see it, with RBAC as users have it:
//! a TapMonitor reads its own namespace only, scrapes need a token allowed to read that
//! monitor, the operator never writes to objects it does not own, one monitor the engine cannot
//! read stops nothing else, and hostile label values stay readable.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use kube::Client;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tapmon_api::{ConditionType, KindState, Reason};
use tapmon_e2e::operator::Settings;
use tapmon_e2e::status::{condition, kind_state, ready};
use tapmon_e2e::tls::{TestCa, served_certificate};
use tapmon_e2e::{
    Cluster, Operator, apply, apply_tap_monitor, dynamic_api, eventually, install_crds,
    install_publishing_crds, load_tap_environment, operator_identity, parse_exposition,
    promtool_findings, python_samples, root, serial, tapmonitors, yaml_files,
};

const WAIT: Duration = Duration::from_secs(90);

/// The status of TapMonitor `namespace/name` once `check` accepts it.
async fn status_when(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let api = tapmonitors(client, namespace);
    eventually(what, WAIT, || {
        let api = api.clone();
        let check = &check;
        async move {
            let status = api.get(name).await.ok()?.data.get("status")?.clone();
            check(&status).then_some(status)
        }
    })
    .await
}

/// Binds ClusterRole `role` to ServiceAccount `namespace/account` in `namespace`.
async fn bind(admin: &Client, namespace: &str, role: &str, account: &str) {
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("{account}-{role}"), "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    });
    apply(admin, binding, None).await.unwrap();
}

/// A Workload named `name` in `namespace` with environment variables `env`.
fn workload(namespace: &str, name: &str, env: &[(&str, &str)]) -> Value {
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    json!({"apiVersion": "carto.run/v1alpha1", "kind": "Workload",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"apps.tanzu.vmware.com/workload-type": "web"}},
        "spec": {"env": env, "source": {"git": {"url": "https://example.tapmon.io/x.git", "ref": {"branch": "main"}}}}})
}

/// The values of label `label` across an exposition.
fn label_values(exposition: &str, label: &str) -> BTreeSet<String> {
    parse_exposition(exposition)
        .unwrap()
        .keys()
        .filter_map(|(_, labels)| labels.get(label).cloned())
        .collect()
}

/// An extra-resource metric exposing a Workload's environment, as a curious tenant writes it.
fn env_reader() -> Value {
    json!([{"groupVersionKind": {"group": "carto.run", "version": "*", "kind": "Workload"},
        "metricNamePrefix": "leak",
        "metrics": [{"name": "env", "each": {"type": "Info", "info": {
            "path": ["spec", "env"], "labelsFromPath": {"var": ["name"], "value": ["value"]}}}}]}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_reads_her_own_namespace_only_and_cannot_go_further() {
    let _serial = serial().await;
    let cluster = Cluster::up("tenancy").await.unwrap();
    load_tap_environment(&cluster.admin).await.unwrap();
    let operator = Operator::start(operator_identity(&cluster).await.unwrap()).await;
    apply(
        &cluster.admin,
        workload("prod", "payments", &[("DB_PASSWORD", "s3cret-prod")]),
        None,
    )
    .await
    .unwrap();
    apply(
        &cluster.admin,
        workload("dev-team-a", "web", &[("GREETING", "hello")]),
        None,
    )
    .await
    .unwrap();

    // Alice may only manage TapMonitors in dev-team-a; Bob is an editor of dev-team-b (the
    // built-in `edit` role, which tapmon's rules are aggregated into).
    let alice = cluster
        .service_account_client("dev-team-a", "alice")
        .await
        .unwrap();
    bind(&cluster.admin, "dev-team-a", "tapmon-edit", "alice").await;
    let bob = cluster
        .service_account_client("dev-team-b", "bob")
        .await
        .unwrap();
    bind(&cluster.admin, "dev-team-b", "edit", "bob").await;

    // Every series of her monitor is of her namespace; the environment of prod's Workload is
    // not among them.
    let spec = json!({"resources": env_reader()});
    eventually("alice may create a TapMonitor", WAIT, || {
        let (alice, spec) = (alice.clone(), spec.clone());
        async move {
            apply_tap_monitor(&alice, "dev-team-a", "mine", spec)
                .await
                .ok()
        }
    })
    .await;
    status_when(&alice, "dev-team-a", "mine", "alice's monitor Ready", ready).await;
    let scrape = eventually("alice's series", WAIT, || async {
        let s = operator.scrape("dev-team-a", "mine").await?;
        s.contains("GREETING").then_some(s)
    })
    .await;
    assert_eq!(
        label_values(&scrape, "namespace"),
        BTreeSet::from(["dev-team-a".to_owned()])
    );
    assert!(!scrape.contains("s3cret-prod") && !scrape.contains("prod"));
    eprintln!(
        "tenant scrape: {} series, namespaces {:?}",
        parse_exposition(&scrape).unwrap().len(),
        label_values(&scrape, "namespace")
    );

    // Reaching out: another namespace by name is a validation error in status...
    apply_tap_monitor(
        &alice,
        "dev-team-a",
        "outside",
        json!({"namespaceSelector": {"names": ["dev-team-a", "prod"]}}),
    )
    .await
    .unwrap();
    let status = status_when(&alice, "dev-team-a", "outside", "outside Stalled", |s| {
        condition(s, ConditionType::Stalled).is_true()
    })
    .await;
    let stalled = condition(&status, ConditionType::Stalled);
    assert_eq!(stalled.reason, Reason::InvalidSpec.as_str());
    assert!(
        stalled.message.contains("own namespace dev-team-a only"),
        "{}",
        stalled.message
    );
    assert!(operator.scrape("dev-team-a", "outside").await.is_none());
    // ...and the whole cluster is for those with the cluster-wide right: the API server refuses.
    let cluster_wide = json!({"apiVersion": "tapmon.io/v1alpha1", "kind": "ClusterTapMonitor",
        "metadata": {"name": "alice-everything"}, "spec": {}});
    let refused = apply(&alice, cluster_wide, None).await.unwrap_err();
    assert!(format!("{refused:#}").contains("forbidden"), "{refused:#}");

    // An extra kind granted to tapmon for a team (Widgets, by a labelled ClusterRole that the
    // aggregation controller adds to tapmon's rights): each team's monitor reads its own only.
    let features = root().join("e2e/fixtures/features");
    install_crds(&cluster.admin, &[features.join("crd.yaml")])
        .await
        .unwrap();
    apply(
        &cluster.admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "tapmon-widgets", "labels": {"tapmon.io/aggregate-to-tapmon": "true"}},
            "rules": [{"apiGroups": ["example.tapmon.io"], "resources": ["widgets"], "verbs": ["list", "watch"]}]}),
        None,
    )
    .await
    .unwrap();
    for (namespace, name) in [
        ("dev-team-a", "secret-widget"),
        ("dev-team-b", "team-b-widget"),
    ] {
        let widget = json!({"apiVersion": "example.tapmon.io/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"size": 1}});
        apply(&cluster.admin, widget, None).await.unwrap();
    }
    let widgets = json!({"groups": tapmon_e2e::groups_only(&[]), "resources": [
        {"groupVersionKind": {"group": "example.tapmon.io", "version": "v1", "kind": "Widget"},
         "labelsFromPath": {"name": ["metadata", "name"]},
         "metrics": [{"name": "widget", "each": {"type": "Info", "info": {}}}]}]});
    eventually("bob, an editor, may create a TapMonitor", WAIT, || {
        let (bob, spec) = (bob.clone(), widgets.clone());
        async move {
            apply_tap_monitor(&bob, "dev-team-b", "widgets", spec)
                .await
                .ok()
        }
    })
    .await;
    let status = status_when(
        &bob,
        "dev-team-b",
        "widgets",
        "bob's monitor watches Widgets",
        |s| ready(s) && kind_state(s, "Widget") == Some(KindState::Watching),
    )
    .await;
    assert_eq!(status["objects"], 1);
    let scrape = operator.scrape("dev-team-b", "widgets").await.unwrap();
    assert!(
        scrape.contains("team-b-widget") && !scrape.contains("secret-widget"),
        "{scrape}"
    );

    // A series limit cuts a monitor off, and its status says so.
    apply_tap_monitor(&alice, "dev-team-a", "small", json!({"seriesLimit": 3}))
        .await
        .unwrap();
    let status = status_when(
        &alice,
        "dev-team-a",
        "small",
        "small's limit reached",
        |s| condition(s, ConditionType::SeriesLimit).reason == Reason::LimitReached.as_str(),
    )
    .await;
    assert!(status["series"].as_i64().unwrap() <= 3, "{status}");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_need_a_token_allowed_to_read_that_monitor_over_a_rotating_certificate() {
    let _serial = serial().await;
    let cluster = Cluster::up("scrape-auth").await.unwrap();
    load_tap_environment(&cluster.admin).await.unwrap();
    let ca = TestCa::new().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, first) = ca.issue(certs.path()).unwrap();
    let operator = Operator::start_with(
        operator_identity(&cluster).await.unwrap(),
        Settings {
            auth: true,
            tls_files: Some((cert, key)),
            tls_client: Some(ca.client().unwrap()),
            ..Settings::default()
        },
    )
    .await;
    apply_tap_monitor(&cluster.admin, "dev-team-a", "tap", json!({}))
        .await
        .unwrap();
    status_when(&cluster.admin, "dev-team-a", "tap", "Ready", ready).await;

    // Readers as a team's Prometheus would be: one for dev-team-a, one for dev-team-b, one
    // with no right at all.
    let token = |account: &'static str, namespace: &'static str| {
        let cluster = &cluster;
        async move {
            cluster
                .service_account_token(namespace, account)
                .await
                .unwrap()
        }
    };
    let reader_a = token("reader", "dev-team-a").await;
    bind(
        &cluster.admin,
        "dev-team-a",
        "tapmon-metrics-reader",
        "reader",
    )
    .await;
    let reader_b = token("reader", "dev-team-b").await;
    bind(
        &cluster.admin,
        "dev-team-b",
        "tapmon-metrics-reader",
        "reader",
    )
    .await;
    let nobody = token("nobody", "dev-team-a").await;

    let path = "/monitors/dev-team-a/tap/metrics";
    let status = |token: Option<String>| {
        let operator = &operator;
        async move { operator.get(path, token.as_deref()).await.unwrap().0 }
    };
    eventually("reader-a allowed", WAIT, || async {
        (status(Some(reader_a.clone())).await == 200).then_some(())
    })
    .await;
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some("not-a-token".into())).await, 401);
    assert_eq!(status(Some(nobody.clone())).await, 403);
    assert_eq!(status(Some(reader_b.clone())).await, 403);
    assert_eq!(operator.get("/healthz", None).await.unwrap().0, 200);
    assert_eq!(operator.get("/readyz", None).await.unwrap().0, 200);
    let (_, body) = operator.get(path, Some(&reader_a)).await.unwrap();
    assert!(body.contains("cartographer_workload_info"));
    let self_metrics = operator.self_metrics().await;
    assert!(
        self_metrics.contains("tapmon_scrape_authorizations_total{result=\"forbidden\"}"),
        "{self_metrics}"
    );

    // A new certificate in the files: served to new connections without a restart.
    assert_eq!(
        served_certificate(operator.metrics, ca.client().unwrap())
            .await
            .unwrap(),
        first
    );
    let (_, _, second) = ca.issue(certs.path()).unwrap();
    eventually("the new certificate served", WAIT, || async {
        let served = served_certificate(operator.metrics, ca.client().unwrap())
            .await
            .ok()?;
        (served == second).then_some(())
    })
    .await;
    assert_eq!(status(Some(reader_a.clone())).await, 200);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_the_same_name_the_monitor_does_not_own_are_left_untouched() {
    let _serial = serial().await;
    let cluster = Cluster::up("deputy").await.unwrap();
    load_tap_environment(&cluster.admin).await.unwrap();
    install_publishing_crds(&cluster.admin).await.unwrap();
    let operator = Operator::start(operator_identity(&cluster).await.unwrap()).await;
    let ns = "dev-team-a";
    let configmaps = dynamic_api(
        &cluster.admin,
        Some(ns),
        ("", "v1", "ConfigMap"),
        "configmaps",
    );
    let sms = dynamic_api(
        &cluster.admin,
        Some(ns),
        ("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    );
    // An administrator's objects, with the names three tenant monitors would publish under.
    let mut before: Vec<(&str, DynamicObject)> = Vec::new();
    for name in ["app-overview", "web-overview"] {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": {"owner": "admin"}});
        apply(&cluster.admin, cm, None).await.unwrap();
        before.push(("configmap", configmaps.get(name).await.unwrap()));
    }
    let sm = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "billing", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": "billing"}}, "endpoints": [{"port": "http"}]}});
    apply(&cluster.admin, sm, None).await.unwrap();
    before.push(("servicemonitor", sms.get("billing").await.unwrap()));

    // `app` would delete app-overview (dashboards disabled), `web` would take web-overview
    // over, `billing` would delete the ServiceMonitor billing (disabled).
    apply_tap_monitor(
        &cluster.admin,
        ns,
        "app",
        json!({"dashboard": {"enabled": false}}),
    )
    .await
    .unwrap();
    apply_tap_monitor(&cluster.admin, ns, "web", json!({}))
        .await
        .unwrap();
    apply_tap_monitor(
        &cluster.admin,
        ns,
        "billing",
        json!({"serviceMonitor": {"enabled": false}}),
    )
    .await
    .unwrap();
    let web = status_when(
        &cluster.admin,
        ns,
        "web",
        "web's dashboards in conflict",
        |s| condition(s, ConditionType::Dashboards).reason == Reason::Conflict.as_str(),
    )
    .await;
    let message = condition(&web, ConditionType::Dashboards).message;
    assert!(
        message.contains("ConfigMap dev-team-a/web-overview exists and is not this monitor's"),
        "{message}"
    );
    // Only a rename or a delete mends it: Stalled, which kstatus reads as Failed.
    let stalled = condition(&web, ConditionType::Stalled);
    assert!(stalled.is_true(), "{stalled:?}");
    assert_eq!(stalled.reason, Reason::PublishFailed.as_str());
    // web's own ServiceMonitor, a name nobody else holds, is published as usual.
    assert_eq!(
        condition(&web, ConditionType::ServiceMonitor).reason,
        Reason::Applied.as_str()
    );
    for (name, type_) in [
        ("app", ConditionType::Dashboards),
        ("billing", ConditionType::ServiceMonitor),
    ] {
        status_when(&cluster.admin, ns, name, "disabled", |s| {
            condition(s, type_).reason == Reason::Disabled.as_str()
        })
        .await;
    }
    let events = dynamic_api(
        &cluster.admin,
        Some(ns),
        ("events.k8s.io", "v1", "Event"),
        "events",
    );
    eventually("a conflict Event", WAIT, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.data["reason"] == "DashboardsConflict" && e.data["type"] == "Warning")
            .then_some(())
    })
    .await;

    // Deleting `web` collects what it owns, never the administrator's ConfigMap.
    tapmonitors(&cluster.admin, ns)
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "web's ServiceMonitor collected",
        Duration::from_secs(120),
        || async { sms.get_opt("web").await.ok()?.is_none().then_some(()) },
    )
    .await;
    for (what, object) in &before {
        let api = if *what == "configmap" {
            &configmaps
        } else {
            &sms
        };
        let now = api
            .get(object.metadata.name.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(now.metadata.uid, object.metadata.uid, "{what} replaced");
        assert_eq!(
            now.metadata.resource_version, object.metadata.resource_version,
            "{what} changed"
        );
        assert!(now.metadata.owner_references.is_none(), "{what} owned");
    }
    operator.stop().await;
}

/// A monitor whose gauge path is `path` (what the engine cannot decode, written before the
/// admission policy existed).
fn gauge_path(path: Value) -> Value {
    json!({"groups": tapmon_e2e::groups_only(&[]), "resources": [
        {"groupVersionKind": {"group": "carto.run", "version": "*", "kind": "Workload"},
         "metrics": [{"name": "x", "each": {"type": "Gauge", "gauge": {"path": path}}}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_the_engine_cannot_read_is_stalled_and_the_others_keep_working() {
    let _serial = serial().await;
    let cluster = Cluster::up("bad-monitor").await.unwrap();
    load_tap_environment(&cluster.admin).await.unwrap();
    let identity = operator_identity(&cluster).await.unwrap();
    // Monitors stored before the admission policy existed (or with it removed).
    let policies = dynamic_api(
        &cluster.admin,
        None,
        (
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicyBinding",
        ),
        "validatingadmissionpolicybindings",
    );
    policies
        .delete(tapmon_api::POLICY_NAME, &DeleteParams::default())
        .await
        .unwrap();
    let ns = "dev-team-a";
    let bad = [
        ("map", json!({"status": "conditions"})),
        ("number", json!(7)),
        ("float", json!(["status", 0.5])),
    ];
    for (name, path) in &bad {
        eventually("a bad monitor stored", WAIT, || async {
            apply_tap_monitor(&cluster.admin, ns, name, gauge_path(path.clone()))
                .await
                .ok()
        })
        .await;
    }
    // A null path is the object itself, as in kube-state-metrics: valid.
    apply_tap_monitor(&cluster.admin, ns, "null", gauge_path(Value::Null))
        .await
        .unwrap();
    apply_tap_monitor(&cluster.admin, ns, "good", json!({}))
        .await
        .unwrap();

    let mut operator = Operator::start(identity.clone()).await;
    for round in [
        "after start",
        "after an operator restart",
        "after an API server restart",
    ] {
        if round == "after an operator restart" {
            operator.stop().await;
            operator = Operator::start(identity.clone()).await;
        }
        if round == "after an API server restart" {
            cluster.restart_apiserver().await.unwrap();
        }
        for (name, _) in &bad {
            let status = status_when(&cluster.admin, ns, name, "bad monitor Stalled", |s| {
                condition(s, ConditionType::Stalled).is_true()
            })
            .await;
            let message = condition(&status, ConditionType::Stalled).message;
            assert!(
                message.starts_with("spec.resources[0].metrics[0].each.gauge.path: "),
                "{round}: {name}: {message}"
            );
            assert!(message.len() < 1000, "{round}: bounded message");
        }
        for name in ["good", "null"] {
            status_when(&cluster.admin, ns, name, "valid monitor Ready", ready).await;
        }
        eventually(round, WAIT, || async {
            let s = operator.scrape(ns, "good").await?;
            s.contains("cartographer_workload_info").then_some(())
        })
        .await;
    }
    // No finalizer: a bad monitor is deleted at once.
    let monitors = tapmonitors(&cluster.admin, ns);
    monitors
        .delete("map", &DeleteParams::default())
        .await
        .unwrap();
    eventually("map deleted", Duration::from_secs(10), || async {
        monitors.get_opt("map").await.ok()?.is_none().then_some(())
    })
    .await;

    // With the admission policy in place, the API server refuses such a monitor outright.
    apply_files_again(&cluster).await;
    let refused = eventually("the policy refuses a bad path", WAIT, || async {
        apply_tap_monitor(&cluster.admin, ns, "refused", gauge_path(json!(7)))
            .await
            .err()
    })
    .await;
    assert!(
        format!("{refused:#}").contains("must be a list of segments"),
        "{refused:#}"
    );
    operator.stop().await;
}

/// Installs `crds/` (the CRDs and the admission policy) again.
async fn apply_files_again(cluster: &Cluster) {
    install_crds(&cluster.admin, &yaml_files(&root().join("crds")).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_label_values_are_read_by_every_parser() {
    let _serial = serial().await;
    let cluster = Cluster::up("hostile").await.unwrap();
    load_tap_environment(&cluster.admin).await.unwrap();
    let operator = Operator::start(operator_identity(&cluster).await.unwrap()).await;
    let ns = "dev-team-a";
    // Control characters and a very long message where a Workload's labels come from.
    let mut w = workload(ns, "hostile", &[]);
    w["spec"]["source"]["git"]["url"] = json!("https://x\u{0}\r\u{1b}[31m\u{7f}/\"quoted\\\n");
    w["status"] = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Bad",
        "message": "x".repeat(5000), "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    // Plain JSON: server-side apply reads its body as YAML, which refuses control characters.
    let workloads = dynamic_api(
        &cluster.admin,
        Some(ns),
        ("carto.run", "v1alpha1", "Workload"),
        "workloads",
    );
    let status = w.as_object_mut().unwrap().remove("status").unwrap();
    workloads
        .create(&PostParams::default(), &serde_json::from_value(w).unwrap())
        .await
        .unwrap();
    workloads
        .patch_status(
            "hostile",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .unwrap();
    apply_tap_monitor(&cluster.admin, ns, "tap", json!({}))
        .await
        .unwrap();
    let scrape = eventually("the hostile Workload served", WAIT, || async {
        let s = operator.scrape(ns, "tap").await?;
        s.contains("name=\"hostile\"").then_some(s)
    })
    .await;
    let findings = promtool_findings(&scrape).unwrap();
    assert!(
        findings.iter().all(|f| f.contains("snake_case")),
        "promtool: {findings:?}"
    );
    let samples = python_samples(&scrape).unwrap();
    assert_eq!(samples, parse_exposition(&scrape).unwrap().len());
    assert!(scrape.contains("https://x\u{FFFD}\u{FFFD}\u{FFFD}[31m\u{FFFD}/\\\"quoted\\\\\\n"));
    assert!(scrape.contains("…(truncated)"));
    let self_metrics = operator.self_metrics().await;
    assert!(
        self_metrics
            .contains("tapmon_label_values_truncated_total{group=\"carto.run\",kind=\"Workload\"}"),
        "{self_metrics}"
    );
    operator.stop().await;
}
