//! The order of API calls, against a scripted fake API server: each test answers the calls it
//! expects, in order, and fails on any other.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Response};
use http_body_util::BodyExt;
use kube::api::DynamicObject;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tapmon_api::{ConditionType, EventReason, Reason, status_str};

use super::{LEGACY_FINALIZER, error_policy, reconcile};
use crate::context::{ApiServer, Context};
use crate::monitor::MonitorKey;
use crate::object::MonitorKind;
use crate::publish::PublishKind;

const KIND: MonitorKind = MonitorKind::TapMonitor;

fn monitor(spec: Value) -> DynamicObject {
    let mut obj = DynamicObject::new("m", &KIND.api_resource())
        .within("ns")
        .data(json!({ "spec": spec }));
    obj.metadata.uid = Some("u-1".into());
    obj.metadata.generation = Some(3);
    obj
}

/// Starts reconciling `m` in the background.
fn start(
    ctx: &Arc<Context>,
    m: &DynamicObject,
) -> tokio::task::JoinHandle<Result<Action, super::Error>> {
    tokio::spawn(reconcile(KIND, Arc::new(m.clone()), Arc::clone(ctx)))
}

/// Answers a read of an object that does not exist.
async fn expect_absent(handle: &mut ApiServer, path: &str) {
    let (req, send) = handle.next_request().await.expect("a read");
    assert_eq!(
        (req.method().clone(), req.uri().path().to_owned()),
        (Method::GET, path.to_owned())
    );
    send.send_response(api_error(404, "NotFound", "not found"));
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
async fn expect_status(handle: &mut ApiServer, m: &DynamicObject) -> Value {
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

/// `spec.groups` with every group off.
pub(super) fn no_groups() -> Value {
    serde_json::to_value(tapmon_api::Groups::only(&[])).unwrap()
}

/// Discovery's answer: the Prometheus Operator's group is served.
fn monitoring_groups() -> Value {
    json!({
        "kind": "APIGroupList", "apiVersion": "v1",
        "groups": [{"name": "monitoring.coreos.com", "versions": [{"groupVersion": "monitoring.coreos.com/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "monitoring.coreos.com/v1", "version": "v1"}}]
    })
}

/// Discovery's answer: ServiceMonitor and PrometheusRule.
fn monitoring_resources() -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
        "resources": [
            {"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true, "kind": "ServiceMonitor", "verbs": ["get", "list", "watch", "patch"]},
            {"name": "prometheusrules", "singularName": "prometheusrule", "namespaced": true, "kind": "PrometheusRule", "verbs": ["get", "list", "watch", "patch"]}
        ]
    })
}

#[tokio::test]
async fn a_valid_monitor_is_discovered_published_announced_then_its_status_written() {
    let (ctx, mut handle) = Context::test();
    // No TAP group and no resource: nothing to watch, so the calls are only what a monitor
    // publishes and reports.
    let m = monitor(json!({ "groups": no_groups() }));
    let reconciled = start(&ctx, &m);

    // Discovery of the Prometheus Operator's group.
    expect(&mut handle, Method::GET, "/apis", monitoring_groups()).await;
    expect(
        &mut handle,
        Method::GET,
        "/apis/monitoring.coreos.com/v1",
        monitoring_resources(),
    )
    .await;
    // Published in order: each read (absent, so nobody else's), then server-side applied.
    expect_absent(
        &mut handle,
        "/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/m",
    )
    .await;
    let sm = expect(
        &mut handle,
        Method::PATCH,
        "/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/m",
        json!({}),
    )
    .await;
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/monitors/ns/m/metrics");
    expect_absent(
        &mut handle,
        "/apis/monitoring.coreos.com/v1/namespaces/ns/prometheusrules/m",
    )
    .await;
    let rule = expect(
        &mut handle,
        Method::PATCH,
        "/apis/monitoring.coreos.com/v1/namespaces/ns/prometheusrules/m",
        json!({}),
    )
    .await;
    assert_eq!(rule["metadata"]["ownerReferences"][0]["uid"], "u-1");
    for slug in tapmon_publish::dashboards::SLUGS {
        expect_absent(
            &mut handle,
            &format!("/api/v1/namespaces/ns/configmaps/m-{slug}"),
        )
        .await;
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
    let reconciled = start(&ctx, &m);

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
            .monitor(&MonitorKey::namespaced("ns", "m"))
            .is_none()
    );
    no_more_calls(&mut handle).await;
}

#[tokio::test]
async fn a_reconcile_before_the_watch_delivers_a_write_neither_announces_nor_writes_it_again() {
    let (ctx, mut handle) = Context::test();
    let mut m =
        monitor(json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Sometimes"}]}}));
    m.metadata.resource_version = Some("7".into());
    let first = start(&ctx, &m);
    expect(&mut handle, Method::POST, EVENTS, event_reply()).await;
    expect_status(&mut handle, &m).await;
    first.await.unwrap().unwrap();

    // The watch cache still has the object the write replaced: nothing to say or write.
    let again = tokio::time::timeout(Duration::from_secs(5), start(&ctx, &m)).await;
    assert!(again.is_ok(), "the second reconcile called the API server");
    no_more_calls(&mut handle).await;

    // Once the cache has moved on, it is the truth again: a status someone else changed is
    // written back.
    m.metadata.resource_version = Some("9".into());
    let third = start(&ctx, &m);
    expect(&mut handle, Method::POST, EVENTS, event_reply()).await;
    expect_status(&mut handle, &m).await;
    third.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_deleted_monitor_with_an_earlier_versions_finalizer_is_released() {
    let (ctx, mut handle) = Context::test();
    let mut m = monitor(json!({}));
    m.metadata.finalizers = Some(vec![LEGACY_FINALIZER.into(), "other.io/keep".into()]);
    m.metadata.resource_version = Some("7".into());
    m.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    let reconciled = start(&ctx, &m);
    let patch = expect(
        &mut handle,
        Method::PATCH,
        "/apis/tapmon.io/v1alpha1/namespaces/ns/tapmonitors/m",
        serde_json::to_value(&m).unwrap(),
    )
    .await;
    assert_eq!(
        patch,
        json!({"metadata": {"finalizers": ["other.io/keep"], "resourceVersion": "7"}})
    );
    assert_eq!(reconciled.await.unwrap().unwrap(), Action::await_change());
    no_more_calls(&mut handle).await;
}

#[tokio::test]
async fn a_monitor_the_engine_cannot_read_is_stalled_naming_the_field() {
    let (ctx, mut handle) = Context::test();
    let m = monitor(
        json!({"resources": [{"groupVersionKind": {"group": "g", "version": "v1", "kind": "K"},
        "metrics": [{"name": "x", "each": {"type": "Gauge", "gauge": {"path": {"status": "conditions"}}}}]}]}),
    );
    let reconciled = start(&ctx, &m);
    let event = expect(&mut handle, Method::POST, EVENTS, event_reply()).await;
    assert_eq!(event["reason"], EventReason::InvalidConfig.to_string());
    let patch = expect_status(&mut handle, &m).await;
    let stalled = condition(&patch["status"], ConditionType::Stalled);
    assert_eq!(stalled["status"], status_str(true));
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.resources[0].metrics[0].each.gauge.path: "),
        "{stalled}"
    );
    assert_eq!(reconciled.await.unwrap().unwrap(), Action::await_change());
    no_more_calls(&mut handle).await;
}

#[tokio::test]
async fn an_object_of_the_same_name_owned_by_another_is_a_conflict_never_written() {
    let (ctx, mut handle) = Context::test();
    let m = monitor(
        json!({"groups": no_groups(), "prometheusRule": {"enabled": false}, "dashboard": {"enabled": false}}),
    );
    let reconciled = start(&ctx, &m);
    expect(&mut handle, Method::GET, "/apis", monitoring_groups()).await;
    expect(
        &mut handle,
        Method::GET,
        "/apis/monitoring.coreos.com/v1",
        monitoring_resources(),
    )
    .await;
    // The admin's ServiceMonitor of that name, controlled by something else.
    expect(
        &mut handle,
        Method::GET,
        "/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/m",
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
               "metadata": {"name": "m", "namespace": "ns", "uid": "sm-1", "resourceVersion": "5",
                            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "admin", "uid": "other", "controller": true}]},
               "spec": {}}),
    )
    .await;
    // Disabled kinds: nothing of ours to delete (absent).
    expect_absent(
        &mut handle,
        "/apis/monitoring.coreos.com/v1/namespaces/ns/prometheusrules/m",
    )
    .await;
    for slug in tapmon_publish::dashboards::SLUGS {
        expect_absent(
            &mut handle,
            &format!("/api/v1/namespaces/ns/configmaps/m-{slug}"),
        )
        .await;
    }
    let mut reasons = Vec::new();
    loop {
        let (req, send) = handle.next_request().await.unwrap();
        let path = req.uri().path().to_owned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        if path == EVENTS {
            reasons.push(body["reason"].as_str().unwrap().to_owned());
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&event_reply()).unwrap()))
                    .unwrap(),
            );
            continue;
        }
        assert_eq!(path, STATUS, "nothing is written but Events and status");
        let sm = condition(&body["status"], ConditionType::ServiceMonitor);
        assert_eq!(sm["reason"], Reason::Conflict.as_str());
        assert!(
            sm["message"]
                .as_str()
                .unwrap()
                .contains("ServiceMonitor ns/m exists and is not this monitor's"),
            "{sm}"
        );
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&m).unwrap()))
                .unwrap(),
        );
        break;
    }
    assert!(
        reasons.contains(
            &EventReason::Published(ConditionType::ServiceMonitor, Reason::Conflict).to_string()
        ),
        "{reasons:?}"
    );
    reconciled.await.unwrap().unwrap();
    no_more_calls(&mut handle).await;
}

#[tokio::test]
async fn a_failed_status_patch_is_an_error_counted_by_variant() {
    let (ctx, mut handle) = Context::test();
    let m =
        monitor(json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Sometimes"}]}}));
    let reconciled = start(&ctx, &m);
    expect(&mut handle, Method::POST, EVENTS, event_reply()).await;
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(api_error(409, "Conflict", "conflict"));
    let err = reconciled.await.unwrap().unwrap_err();
    assert_eq!(err.metric_label(), "PatchStatus");
    assert!(
        err.to_string()
            .starts_with("failed to patch the status of ns/m"),
        "{err}"
    );
    let action = error_policy(KIND, Arc::new(m), &err, Arc::clone(&ctx));
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    let text = String::from_utf8(ctx.state.telemetry.encode()).unwrap();
    assert!(
        text.contains("tapmon_reconcile_errors_total{error=\"PatchStatus\"} 1"),
        "{text}"
    );
}
