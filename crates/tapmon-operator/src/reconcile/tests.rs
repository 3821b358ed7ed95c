//! The order of API calls, against a scripted fake API server: each test answers the calls it
//! expects, in order, and fails on any other.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tapmon_api::{ConditionType, EventReason, Reason, TapMonitor, status_str};

use super::{FINALIZER, error_policy, reconcile};
use crate::context::{ApiServer, Context};
use crate::monitor::MonitorKey;
use crate::publish::PublishKind;

fn monitor(spec: Value) -> TapMonitor {
    serde_json::from_value(json!({
        "apiVersion": "tapmon.io/v1alpha1", "kind": "TapMonitor",
        "metadata": {"name": "m", "namespace": "ns", "uid": "u-1", "generation": 3, "finalizers": [FINALIZER]},
        "spec": spec
    }))
    .unwrap()
}

/// Reads the next call, checks its method and path, answers `reply`; returns the call's body.
async fn expect(handle: &mut ApiServer, method: Method, path: &str, reply: Value) -> Value {
    let (req, send) = handle
        .next_request()
        .await
        .expect("the reconciler makes another call");
    assert_eq!(
        (req.method().clone(), req.uri().path().to_owned()),
        (method, path.to_owned())
    );
    let body = req.into_body().collect().await.unwrap().to_bytes();
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// The API server's answer to a failed call: a `Status` with `code`.
fn api_error(code: u16, reason: &str, message: &str) -> Response<Body> {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "reason": reason, "code": code});
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&status).unwrap()))
        .unwrap()
}

const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";
const STATUS: &str = "/apis/tapmon.io/v1alpha1/namespaces/ns/tapmonitors/m/status";

fn event_reply() -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null})
}

fn condition(status: &Value, t: ConditionType) -> &Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t.as_str())
        .unwrap()
}

/// The status patch: answered with the monitor, checked to be of its generation.
async fn expect_status(handle: &mut ApiServer, m: &TapMonitor) -> Value {
    let patch = expect(
        handle,
        Method::PATCH,
        STATUS,
        serde_json::to_value(m).unwrap(),
    )
    .await;
    assert_eq!(patch["status"]["observedGeneration"], 3);
    patch
}

/// Nothing else is asked of the API server once the reconcile is done.
async fn no_more_calls(handle: &mut ApiServer) {
    let next = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
    assert!(
        next.is_err(),
        "an unexpected call: {:?}",
        next.ok().flatten().map(|(r, _)| r.uri().clone())
    );
}

#[tokio::test]
async fn a_valid_monitor_is_discovered_published_announced_then_its_status_written() {
    let (ctx, mut handle) = Context::test();
    // No TAP group and no resource: nothing to watch, so the calls are only what a monitor
    // publishes and reports.
    let m = monitor(json!({"groups": {
        "cartographer": {"enabled": false}, "serviceBindings": {"enabled": false}, "servicesToolkit": {"enabled": false},
        "knative": {"enabled": false}, "carvel": {"enabled": false}, "apiDescriptors": {"enabled": false},
        "tekton": {"enabled": false}, "accelerators": {"enabled": false}, "flux": {"enabled": false},
        "scanning": {"enabled": false}, "kpack": {"enabled": false}
    }}));
    let reconciled = tokio::spawn(reconcile(Arc::new(m.clone()), Arc::clone(&ctx)));

    // Discovery of the Prometheus Operator's group.
    expect(&mut handle, Method::GET, "/apis", json!({
        "kind": "APIGroupList", "apiVersion": "v1",
        "groups": [{"name": "monitoring.coreos.com", "versions": [{"groupVersion": "monitoring.coreos.com/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "monitoring.coreos.com/v1", "version": "v1"}}]
    })).await;
    expect(&mut handle, Method::GET, "/apis/monitoring.coreos.com/v1", json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
        "resources": [
            {"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true, "kind": "ServiceMonitor", "verbs": ["get", "list", "watch", "patch"]},
            {"name": "prometheusrules", "singularName": "prometheusrule", "namespaced": true, "kind": "PrometheusRule", "verbs": ["get", "list", "watch", "patch"]}
        ]
    })).await;
    // Published in order, each server-side applied.
    let sm = expect(
        &mut handle,
        Method::PATCH,
        "/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/m",
        json!({}),
    )
    .await;
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/monitors/ns/m/metrics");
    let rule = expect(
        &mut handle,
        Method::PATCH,
        "/apis/monitoring.coreos.com/v1/namespaces/ns/prometheusrules/m",
        json!({}),
    )
    .await;
    assert_eq!(rule["metadata"]["ownerReferences"][0]["uid"], "u-1");
    for slug in ["overview", "supply-chain"] {
        let cm = expect(
            &mut handle,
            Method::PATCH,
            &format!("/api/v1/namespaces/ns/configmaps/m-{slug}"),
            json!({}),
        )
        .await;
        assert_eq!(cm["kind"], "ConfigMap");
    }
    // Events: Ready, then each published kind.
    let mut reasons = Vec::new();
    for _ in 0..4 {
        let event = expect(&mut handle, Method::POST, EVENTS, event_reply()).await;
        reasons.push(event["reason"].as_str().unwrap().to_owned());
    }
    let mut expected = vec![EventReason::Ready.to_string()];
    expected.extend(
        PublishKind::ALL
            .map(|k| EventReason::Published(k.condition(), Reason::Applied).to_string()),
    );
    assert_eq!(reasons, expected);
    // Status last.
    let patch = expect_status(&mut handle, &m).await;
    let status = &patch["status"];
    let ready = condition(status, ConditionType::Ready);
    assert_eq!(ready["status"], status_str(true));
    assert_eq!(ready["reason"], Reason::Watching.as_str());
    for kind in PublishKind::ALL {
        assert_eq!(
            condition(status, kind.condition())["reason"],
            Reason::Applied.as_str()
        );
    }

    let action = reconciled.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    no_more_calls(&mut handle).await;
}

#[tokio::test]
async fn an_invalid_selector_publishes_an_event_then_writes_stalled_status_and_waits() {
    let (ctx, mut handle) = Context::test();
    let m =
        monitor(json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Sometimes"}]}}));
    let reconciled = tokio::spawn(reconcile(Arc::new(m.clone()), Arc::clone(&ctx)));

    let event = expect(&mut handle, Method::POST, EVENTS, event_reply()).await;
    assert_eq!(event["reason"], EventReason::InvalidConfig.to_string());
    assert!(
        event["note"].as_str().unwrap().contains("spec.selector"),
        "{event}"
    );
    let patch = expect_status(&mut handle, &m).await;
    let status = &patch["status"];
    let stalled = condition(status, ConditionType::Stalled);
    assert_eq!(stalled["status"], status_str(true));
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.selector")
    );

    let action = reconciled.await.unwrap().unwrap();
    assert_eq!(action, Action::await_change());
    assert!(
        ctx.state
            .monitor(&MonitorKey {
                namespace: "ns".into(),
                name: "m".into()
            })
            .is_none()
    );
    no_more_calls(&mut handle).await;
}

#[tokio::test]
async fn a_deletion_seen_after_the_object_is_gone_is_done() {
    let (ctx, mut handle) = Context::test();
    let mut m = monitor(json!({}));
    m.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    let reconciled = tokio::spawn(reconcile(Arc::new(m), Arc::clone(&ctx)));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(
        (req.method().clone(), req.uri().path()),
        (
            Method::PATCH,
            "/apis/tapmon.io/v1alpha1/namespaces/ns/tapmonitors/m"
        )
    );
    send.send_response(api_error(
        404,
        "NotFound",
        "tapmonitors.tapmon.io \"m\" not found",
    ));
    assert_eq!(reconciled.await.unwrap().unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_failed_status_patch_is_an_error_counted_by_variant() {
    let (ctx, mut handle) = Context::test();
    let m =
        monitor(json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Sometimes"}]}}));
    let reconciled = tokio::spawn(reconcile(Arc::new(m.clone()), Arc::clone(&ctx)));
    expect(&mut handle, Method::POST, EVENTS, event_reply()).await;
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(api_error(409, "Conflict", "conflict"));
    let err = reconciled.await.unwrap().unwrap_err();
    assert_eq!(err.metric_label(), "PatchStatus");
    assert!(
        err.to_string()
            .starts_with("failed to patch the status of TapMonitor ns/m"),
        "{err}"
    );
    let action = error_policy(Arc::new(m), &err, Arc::clone(&ctx));
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    let text = String::from_utf8(ctx.state.telemetry.encode()).unwrap();
    assert!(
        text.contains("tapmon_reconcile_errors_total{error=\"PatchStatus\"} 1"),
        "{text}"
    );
}
