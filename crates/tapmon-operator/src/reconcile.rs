//! Reconciling a TapMonitor, in phases: validate and compile → resolve kinds by discovery →
//! plan the watches → apply (subscribe) → write status. Validate and plan are pure
//! ([`crate::plan`]); status is built by a pure function here and written in one patch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};
use tapmon_api::{KindState, KindStatus, TapMonitor, TapMonitorStatus};
use tracing::{info, warn};

use crate::context::Context;
use crate::monitor::{Monitor, MonitorKey, lock};
use crate::plan::{self, Plan, ValidateError};
use crate::publish::{self, MONITORING_GROUP, Published};
use crate::watches::{Registry, WatchState};

/// The finalizer that lets the operator stop a deleted monitor's watches.
pub const FINALIZER: &str = "tapmon.io/cleanup";

/// Why a reconcile failed. The variant name is the `error` label of the self-metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Discovery of served kinds failed; retried.
    #[error("failed to discover the kinds the API server serves: {0}")]
    Discovery(#[source] kube::Error),
    /// Writing status failed; retried.
    #[error("failed to patch the status of TapMonitor {monitor}: {source}")]
    PatchStatus {
        /// Which monitor.
        monitor: MonitorKey,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Adding or removing the finalizer failed; retried.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    /// The object has no namespace (cannot happen for a namespaced kind).
    #[error("TapMonitor without a namespace")]
    MissingNamespace,
}

impl Error {
    /// A bounded label for the self-metric: the variant name, never the text.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Discovery(_) => "Discovery",
            Error::PatchStatus { .. } => "PatchStatus",
            Error::Finalizer(_) => "Finalizer",
            Error::MissingNamespace => "MissingNamespace",
        }
    }
}

/// Reconciles one TapMonitor.
pub async fn reconcile(obj: Arc<TapMonitor>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = obj.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<TapMonitor> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            finalizer::Event::Apply(m) => apply(&m, &ctx, &api).await,
            finalizer::Event::Cleanup(m) => {
                let key = key_of(&m)?;
                info!(monitor = %key, "TapMonitor deleted: releasing its watches");
                ctx.state.remove(&key);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .or_else(|e| match e {
        // A deletion can be seen twice (the second time from a cache that still holds the
        // finalizer): the object being gone when we remove it means the cleanup is done.
        finalizer::Error::RemoveFinalizer(kube::Error::Api(s)) if s.code == 404 => {
            Ok(Action::await_change())
        }
        // Our own errors keep their variant (and metric label).
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => Err(e),
        other => Err(Error::Finalizer(Box::new(other))),
    });
    ctx.state
        .telemetry
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// What to do after a failed reconcile: count it by variant and retry with backoff.
pub fn error_policy(obj: Arc<TapMonitor>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.state
        .telemetry
        .reconcile_errors
        .with_label_values(&[error.metric_label()])
        .inc();
    let key = MonitorKey {
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
    };
    let failures = {
        let mut f = lock(&ctx.failures);
        let n = f.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        *n
    };
    let delay =
        Duration::from_secs(2u64.saturating_pow(failures.min(8))).min(Duration::from_secs(300));
    warn!(monitor = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn key_of(m: &TapMonitor) -> Result<MonitorKey, Error> {
    Ok(MonitorKey {
        namespace: m.namespace().ok_or(Error::MissingNamespace)?,
        name: m.name_any(),
    })
}

async fn apply(m: &TapMonitor, ctx: &Context, api: &Api<TapMonitor>) -> Result<Action, Error> {
    let key = key_of(m)?;
    let generation = m.metadata.generation.unwrap_or_default();
    let uid = m.uid().unwrap_or_default();
    let previous = m.status.clone().unwrap_or_default();

    // Validate and compile (pure). An invalid selector stops the whole monitor. A change that
    // does not touch what is watched or evaluated (the ServiceMonitor) keeps the monitor.
    let source = Monitor::source_of(&m.spec);
    let monitor = match ctx.state.monitor(&key) {
        Some(existing) if existing.uid == uid && existing.source == source => existing,
        _ => match plan::validate(&m.spec) {
            Ok(validated) => Arc::new(Monitor::new(
                key.clone(),
                uid,
                generation,
                validated,
                source,
            )),
            Err(e) => {
                ctx.state.remove(&key);
                let status = stalled_status(&e, generation, &previous);
                announce(ctx, m, &previous, &status).await;
                patch_status(api, &key, &status).await?;
                return Ok(Action::await_change());
            }
        },
    };
    ctx.state.insert(Arc::clone(&monitor));

    // Resolve kinds by discovery, then plan (pure) and apply.
    let mut groups = plan::groups(&monitor.validated.compiled);
    groups.insert(MONITORING_GROUP.to_owned());
    let discovery = ctx
        .discovery
        .get(&ctx.client, &groups)
        .await
        .map_err(Error::Discovery)?;
    let plan = plan::plan(
        &monitor.validated.compiled,
        &discovery,
        monitor.validated.object_selector.as_deref(),
    );
    monitor.rebind(&plan.watches);
    ctx.state.registry.sync(&monitor, &plan.watches);

    // Publish the ServiceMonitor and PrometheusRule, when the Prometheus Operator CRDs are there.
    let served = |kind: publish::Kind| {
        !discovery
            .resolve(MONITORING_GROUP, "v1", kind.name())
            .is_empty()
    };
    let published = [
        (
            publish::Kind::ServiceMonitor,
            m.spec
                .service_monitor
                .enabled
                .then(|| publish::service_monitor(m, &ctx.service)),
        ),
        (
            publish::Kind::PrometheusRule,
            m.spec
                .prometheus_rule
                .enabled
                .then(|| publish::prometheus_rule(m)),
        ),
    ];
    let mut outcomes = Vec::new();
    for (kind, desired) in published {
        let outcome = publish::apply_owned(&ctx.client, m, kind, desired, served(kind)).await;
        outcomes.push((kind.name(), outcome));
    }
    outcomes.push((
        "Dashboards",
        publish::apply_dashboards(&ctx.client, m).await,
    ));

    // Status.
    let mut status = build_status(&monitor, &plan, &ctx.state.registry, generation, &previous);
    for (kind, outcome) in &outcomes {
        status
            .conditions
            .push(published_condition(kind, outcome, generation, &previous));
    }
    announce(ctx, m, &previous, &status).await;
    patch_status(api, &key, &status).await?;
    lock(&ctx.failures).remove(&key);
    ctx.state.refresh_counts();
    let settling = status
        .kinds
        .iter()
        .any(|k| k.state != KindState::Watching && k.state != KindState::NotInstalled)
        || !plan.watches.keys().all(|w| {
            ctx.state
                .registry
                .state(w)
                .is_some_and(|(_, synced)| synced)
        });
    Ok(if settling {
        Action::requeue(Duration::from_secs(2))
    } else {
        // Counts in status go stale; refresh them now and then.
        Action::requeue(Duration::from_secs(60))
    })
}

async fn patch_status(
    api: &Api<TapMonitor>,
    key: &MonitorKey,
    status: &TapMonitorStatus,
) -> Result<(), Error> {
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::PatchStatus {
            monitor: key.clone(),
            source,
        })?;
    Ok(())
}

/// Publishes Events for what changed between two statuses: becoming stalled or ready, and
/// kinds changing state.
async fn announce(
    ctx: &Context,
    m: &TapMonitor,
    before: &TapMonitorStatus,
    after: &TapMonitorStatus,
) {
    let mut events = Vec::new();
    let cond = |s: &TapMonitorStatus, t: &str| {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status.clone(), c.message.clone()))
    };
    if let Some((status, message)) = cond(after, "Stalled")
        && status == "True"
        && cond(before, "Stalled") != Some((status.clone(), message.clone()))
    {
        events.push(Event {
            type_: EventType::Warning,
            reason: "InvalidConfig".into(),
            note: Some(truncate(&message, 1000)),
            action: "Validate".into(),
            secondary: None,
        });
    }
    if cond(after, "Ready").map(|c| c.0) == Some("True".into())
        && cond(before, "Ready").map(|c| c.0) != Some("True".into())
    {
        events.push(Event {
            type_: EventType::Normal,
            reason: "Ready".into(),
            note: Some(format!(
                "watching {} kinds, {} objects",
                after
                    .kinds
                    .iter()
                    .filter(|k| k.state == KindState::Watching)
                    .count(),
                after.objects
            )),
            action: "Watch".into(),
            secondary: None,
        });
    }
    for kind in &after.kinds {
        let was = before
            .kinds
            .iter()
            .find(|k| k.group == kind.group && k.kind == kind.kind)
            .map(|k| k.state);
        if was.is_some_and(|w| w != kind.state) {
            events.push(Event {
                type_: if matches!(kind.state, KindState::Forbidden | KindState::Error) {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: format!("Kind{:?}", kind.state),
                note: Some(truncate(
                    &format!(
                        "{} ({}): {:?}{}",
                        kind.kind,
                        kind.group,
                        kind.state,
                        kind.message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ),
                    1000,
                )),
                action: "Watch".into(),
                secondary: None,
            });
        }
    }
    for kind in ["ServiceMonitor", "PrometheusRule", "Dashboards"] {
        let of = |s: &TapMonitorStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == kind)
                .map(|c| (c.reason.clone(), c.message.clone()))
        };
        if let Some((reason, message)) = of(after)
            && of(before).map(|b| b.0) != Some(reason.clone())
        {
            events.push(Event {
                type_: if reason == "ApplyFailed" {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: format!("{kind}{reason}"),
                note: Some(if message.is_empty() {
                    format!("{kind} applied")
                } else {
                    truncate(&message, 1000)
                }),
                action: "Publish".into(),
                secondary: None,
            });
        }
    }
    let reference = m.object_ref(&());
    for event in events {
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %e, reason = %event.reason, "failed to publish an Event");
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: i64,
    previous: &TapMonitorStatus,
) -> Condition {
    let status = if status { "True" } else { "False" };
    // Keep the transition time while the status stays the same.
    let last_transition_time = previous
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(generation),
        last_transition_time,
    }
}

fn now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

fn published_condition(
    kind: &str,
    published: &Published,
    generation: i64,
    previous: &TapMonitorStatus,
) -> Condition {
    let k = kind;
    let (ok, reason, message) = match published {
        Published::Applied => (true, "Applied", String::new()),
        Published::Disabled => (
            false,
            "Disabled",
            format!("disabled in the spec; no {k} is published"),
        ),
        Published::NotInstalled => (
            false,
            "CRDNotInstalled",
            format!(
                "the Prometheus Operator's {k} CRD (monitoring.coreos.com/v1) is not installed; the {k} is created when it is"
            ),
        ),
        Published::Failed(m) => (false, "ApplyFailed", truncate(m, 1000)),
    };
    condition(k, ok, reason, &message, generation, previous)
}

fn stalled_status(
    error: &ValidateError,
    generation: i64,
    previous: &TapMonitorStatus,
) -> TapMonitorStatus {
    let message = error.to_string();
    TapMonitorStatus {
        observed_generation: Some(generation),
        conditions: vec![
            condition(
                "Ready",
                false,
                "InvalidSpec",
                &message,
                generation,
                previous,
            ),
            condition(
                "Reconciling",
                false,
                "InvalidSpec",
                "",
                generation,
                previous,
            ),
            condition(
                "Stalled",
                true,
                "InvalidSpec",
                &message,
                generation,
                previous,
            ),
        ],
        kinds: Vec::new(),
        objects: 0,
        series: 0,
    }
}

/// The status of a monitor from its plan and the state of its watches.
pub fn build_status(
    monitor: &Monitor,
    plan: &Plan,
    registry: &Registry,
    generation: i64,
    previous: &TapMonitorStatus,
) -> TapMonitorStatus {
    let kinds: Vec<KindStatus> = plan
        .kinds
        .iter()
        .map(|k| {
            let Some(watch) = &k.watch else {
                return KindStatus {
                    group: k.group.clone(),
                    kind: k.kind.clone(),
                    version: None,
                    state: KindState::NotInstalled,
                    message: None,
                    objects: 0,
                    series: 0,
                };
            };
            let (state, message) = match registry.state(watch) {
                Some((WatchState::Forbidden(m), _)) => (KindState::Forbidden, Some(m)),
                Some((WatchState::Failed(m), _)) => (KindState::Error, Some(m)),
                // Starting or watching: the kind is being watched.
                _ => (KindState::Watching, None),
            };
            let stats = monitor.stats(watch);
            KindStatus {
                group: k.group.clone(),
                kind: k.kind.clone(),
                version: Some(watch.kind.version.clone()),
                state,
                message: message.map(|m| truncate(&m, 500)),
                objects: stats.objects as i64,
                series: stats.series as i64,
            }
        })
        .collect();
    // Per kind, an object read by two resources counts once; series add up.
    let objects: i64 = kinds.iter().map(|k| k.objects).sum();
    let series = monitor.total().series as i64;
    let synced = plan
        .watches
        .keys()
        .all(|w| registry.state(w).is_some_and(|(_, s)| s));
    let failing: Vec<String> = kinds
        .iter()
        .filter(|k| matches!(k.state, KindState::Forbidden | KindState::Error))
        .map(|k| format!("{} ({:?})", k.kind, k.state))
        .collect();
    let problems = &monitor.validated.problems;
    let stalled = !problems.is_empty();
    let problem_text = problems.join("; ");
    let (ready, reason, message) = if stalled {
        (false, "InvalidConfig", truncate(&problem_text, 2000))
    } else if !failing.is_empty() {
        (
            false,
            "WatchFailed",
            format!("cannot watch: {}", failing.join(", ")),
        )
    } else if !synced {
        (
            false,
            "InitialList",
            "waiting for the initial list of every kind".to_owned(),
        )
    } else {
        let watching = kinds
            .iter()
            .filter(|k| k.state == KindState::Watching)
            .count();
        (true, "Watching", format!("watching {watching} kinds"))
    };
    TapMonitorStatus {
        observed_generation: Some(generation),
        conditions: vec![
            condition("Ready", ready, reason, &message, generation, previous),
            condition(
                "Reconciling",
                !ready && !stalled,
                if !ready && !stalled { reason } else { "Done" },
                if !ready && !stalled { &message } else { "" },
                generation,
                previous,
            ),
            condition(
                "Stalled",
                stalled,
                if stalled { "InvalidConfig" } else { "Valid" },
                if stalled { &message } else { "" },
                generation,
                previous,
            ),
        ],
        kinds,
        objects,
        series,
    }
}

#[cfg(test)]
mod tests {
    //! The order of API calls, against a scripted fake API server.

    use std::collections::HashMap;

    use http::{Method, Request, Response};
    use http_body_util::BodyExt;
    use kube::Client;
    use kube::client::Body;
    use kube::runtime::events::{Recorder, Reporter};
    use serde_json::{Value, json};

    use super::*;
    use crate::context::{Context, DiscoveryCache, State};
    use crate::telemetry::Telemetry;
    use crate::watches::{InitialList, NamespaceLabels, Registry};

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn context(client: Client) -> Arc<Context> {
        let telemetry = Arc::new(Telemetry::new().unwrap());
        let namespaces = Arc::new(NamespaceLabels::default());
        let registry = Arc::new(Registry::new(
            client.clone(),
            Arc::clone(&telemetry),
            InitialList::Streaming,
            Arc::clone(&namespaces),
        ));
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), Reporter::from("tapmon".to_owned())),
            client,
            state: Arc::new(State::new(registry, telemetry, namespaces)),
            discovery: DiscoveryCache::default(),
            failures: std::sync::Mutex::new(HashMap::new()),
            service: crate::publish::OperatorService::default(),
        })
    }

    fn monitor(spec: Value) -> TapMonitor {
        serde_json::from_value(json!({
            "apiVersion": "tapmon.io/v1alpha1", "kind": "TapMonitor",
            "metadata": {"name": "m", "namespace": "ns", "uid": "u-1", "generation": 3, "finalizers": [FINALIZER]},
            "spec": spec
        }))
        .unwrap()
    }

    async fn expect(handle: &mut Handle, method: Method, path: &str, reply: Value) -> Value {
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

    #[tokio::test]
    async fn an_invalid_selector_publishes_an_event_then_writes_stalled_status_and_waits() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(service, "default"));
        let m = monitor(
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Sometimes"}]}}),
        );
        let reconciled = tokio::spawn(reconcile(Arc::new(m.clone()), Arc::clone(&ctx)));

        let event = expect(&mut handle, Method::POST, "/apis/events.k8s.io/v1/namespaces/ns/events", json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null})).await;
        assert_eq!(event["reason"], "InvalidConfig");
        assert!(
            event["note"].as_str().unwrap().contains("spec.selector"),
            "{event}"
        );
        let patch = expect(
            &mut handle,
            Method::PATCH,
            "/apis/tapmon.io/v1alpha1/namespaces/ns/tapmonitors/m/status",
            serde_json::to_value(&m).unwrap(),
        )
        .await;
        let status = &patch["status"];
        assert_eq!(status["observedGeneration"], 3);
        let stalled = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Stalled")
            .unwrap();
        assert_eq!(stalled["status"], "True");
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
    }

    #[tokio::test]
    async fn a_deletion_seen_after_the_object_is_gone_is_done() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(service, "default"));
        let mut m = monitor(json!({}));
        m.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
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
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(service, "default"));
        let m = monitor(
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Sometimes"}]}}),
        );
        let reconciled = tokio::spawn(reconcile(Arc::new(m.clone()), Arc::clone(&ctx)));
        expect(
            &mut handle,
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/ns/events",
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}}),
        )
        .await;
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
}
