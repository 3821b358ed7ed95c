//! Reconciling a monitor (a `TapMonitor` or a `ClusterTapMonitor`), in phases:
//!
//! ```text
//! decode ─▶ validate ─▶ discover ─▶ plan ─▶ subscribe ─▶ publish ─▶ status ─▶ events
//! (pure)    (pure)      (API)       (pure)  (watches)    (API)      (pure)     (pure, then API)
//! ```
//!
//! [`crate::object`], [`crate::validate`] and [`crate::plan`] are the pure middle; [`status`]
//! and [`events`] build the status and the Events between two statuses from what was observed;
//! this module is the I/O loop that runs them in order and writes the result.
//!
//! Monitors carry no finalizer: what they publish is garbage-collected through owner
//! references, and their watches are released when a watch of the kind sees them go
//! ([`forget`]). One left by an earlier version is removed, so deleting a monitor never waits
//! for the operator.

mod events;
mod status;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use tapmon_api::TapMonitorStatus;
use tracing::{info, warn};

pub use status::{KindObserved, MonitorHealth, Observed, Stamp, WatchObserved};

use crate::context::Context;
use crate::monitor::Monitor;
use crate::object::{self, MonitorKey, MonitorKind, MonitorObject};
use crate::plan::{self, Plan};
use crate::publish::{self, MONITORING_GROUP, MONITORING_VERSION, PublishKind};
use crate::validate;

/// The finalizer earlier versions put on monitors; removed when found.
pub const LEGACY_FINALIZER: &str = "tapmon.io/cleanup";

/// How soon a monitor whose kinds are still listing (or failing) is looked at again.
const SETTLING_REQUEUE: Duration = Duration::from_secs(2);
/// How often a settled monitor's status counts are refreshed.
const REFRESH_REQUEUE: Duration = Duration::from_secs(60);
/// Longest error text in a log line: an error may quote a whole object.
const LOG_LIMIT: usize = 2000;

/// Why a reconcile failed. The variant name is the `error` label of the self-metric.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
pub enum Error {
    /// Discovery of served kinds failed; retried.
    #[error("failed to discover the kinds the API server serves: {0}")]
    Discovery(#[source] kube::Error),
    /// Writing status failed; retried.
    #[error("failed to patch the status of {monitor}: {source}")]
    PatchStatus {
        /// Which monitor.
        monitor: MonitorKey,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Removing the finalizer of an earlier version failed; retried.
    #[error("failed to remove the finalizer of {monitor}: {source}")]
    RemoveFinalizer {
        /// Which monitor.
        monitor: MonitorKey,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A bounded label for the self-metric: the variant name, never the text.
    pub fn metric_label(&self) -> &'static str {
        self.into()
    }
}

/// The key of a monitor of `kind` from its metadata, decodable or not.
fn key_of(kind: MonitorKind, obj: &DynamicObject) -> MonitorKey {
    let name = obj.metadata.name.clone().unwrap_or_default();
    match (kind, &obj.metadata.namespace) {
        (MonitorKind::TapMonitor, Some(ns)) => MonitorKey::namespaced(ns, &name),
        _ => MonitorKey::cluster(&name),
    }
}

/// Reconciles one monitor of `kind`.
pub async fn reconcile(
    kind: MonitorKind,
    obj: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_object(kind, &obj, &ctx).await;
    ctx.state
        .telemetry
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_object(
    kind: MonitorKind,
    obj: &DynamicObject,
    ctx: &Context,
) -> Result<Action, Error> {
    let key = key_of(kind, obj);
    let api = monitor_api(ctx, &key);
    if ctx.leads() {
        remove_legacy_finalizer(&api, &key, obj).await?;
    }
    if obj.metadata.deletion_timestamp.is_some() {
        forget(ctx, &key);
        return Ok(Action::await_change());
    }
    let previous: TapMonitorStatus = last_written(ctx, &key, obj).unwrap_or_else(|| {
        obj.data
            .get("status")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default()
    });
    let stamp = Stamp {
        generation: obj.metadata.generation.unwrap_or_default(),
        previous: &previous,
        now: k8s_openapi::jiff::Timestamp::now(),
    };
    let m = match object::decode(kind, obj) {
        Ok(m) => m,
        Err(e) => {
            // Only this monitor stops; the rest are read one by one and keep working.
            warn!(monitor = %key, error = %status::truncate(&e.to_string(), LOG_LIMIT), "monitor cannot be read");
            ctx.state.remove(&key);
            let status = status::invalid_spec(&e.to_string(), stamp);
            let reference = object::reference(kind, &obj.metadata);
            write_status(ctx, &api, &key, &reference, &previous, &status).await?;
            return Ok(Action::await_change());
        }
    };
    apply(&m, ctx, &api, stamp).await
}

/// Stops serving a monitor that is gone: its series, and the watches only it needed.
pub fn forget(ctx: &Context, key: &MonitorKey) {
    if ctx.state.monitor(key).is_some() {
        info!(monitor = %key, "monitor deleted: releasing its watches");
    }
    ctx.state.remove(key);
    ctx.failures.lock().remove(key);
    ctx.written.lock().remove(key);
    record_health(ctx, key, None);
}

/// Sets (or, for a monitor that is gone, drops) a monitor's health and recounts the gauge.
fn record_health(ctx: &Context, key: &MonitorKey, health: Option<MonitorHealth>) {
    let mut all = ctx.health.lock();
    match health {
        Some(h) => all.insert(key.clone(), h),
        None => all.remove(key),
    };
    for h in MonitorHealth::ALL {
        let count = all.values().filter(|v| **v == h).count();
        ctx.state
            .telemetry
            .monitors_by_health
            .with_label_values(&[h.as_str()])
            .set(count as i64);
    }
}

/// What to do after a failed reconcile: count it by variant and retry with backoff.
pub fn error_policy(
    kind: MonitorKind,
    obj: Arc<DynamicObject>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.state
        .telemetry
        .reconcile_errors
        .with_label_values(&[error.metric_label()])
        .inc();
    let key = key_of(kind, &obj);
    let failures = {
        let mut f = ctx.failures.lock();
        let n = f.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        *n
    };
    let delay =
        Duration::from_secs(2u64.saturating_pow(failures.min(8))).min(Duration::from_secs(300));
    let error = status::truncate(&error.to_string(), LOG_LIMIT);
    warn!(monitor = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn monitor_api(ctx: &Context, key: &MonitorKey) -> Api<DynamicObject> {
    let ar = key.kind().api_resource();
    match &key.namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &ar),
        None => Api::all_with(ctx.client.clone(), &ar),
    }
}

async fn remove_legacy_finalizer(
    api: &Api<DynamicObject>,
    key: &MonitorKey,
    obj: &DynamicObject,
) -> Result<(), Error> {
    let finalizers = obj.metadata.finalizers.as_deref().unwrap_or_default();
    if !finalizers.iter().any(|f| f == LEGACY_FINALIZER) {
        return Ok(());
    }
    let rest: Vec<&String> = finalizers
        .iter()
        .filter(|f| *f != LEGACY_FINALIZER)
        .collect();
    // At the resourceVersion read: a list changed meanwhile fails the patch instead of losing
    // another controller's finalizer.
    let patch = serde_json::json!({"metadata": {
        "finalizers": rest,
        "resourceVersion": obj.metadata.resource_version,
    }});
    match api
        .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Gone already: nothing holds it.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::RemoveFinalizer {
            monitor: key.clone(),
            source,
        }),
    }
}

/// The monitor to serve for `m`: the running one when what it watches and evaluates is
/// unchanged (a change to what is published keeps it), else a new build.
fn current_monitor(
    ctx: &Context,
    m: &MonitorObject,
) -> Result<Arc<Monitor>, validate::ValidateError> {
    let source = Monitor::source_of(&m.spec);
    match ctx.state.monitor(&m.key) {
        Some(existing) if existing.uid == m.uid() && existing.source == source => Ok(existing),
        _ => Ok(Arc::new(Monitor::new(
            m.key.clone(),
            m.uid().to_owned(),
            m.generation(),
            validate::validate(&m.spec, &m.key, ctx.limits)?,
            source,
        ))),
    }
}

/// What the monitor's watches and store say about each kind of the plan.
fn observe<'m>(monitor: &'m Monitor, plan: &Plan, ctx: &Context) -> Observed<'m> {
    let kinds = plan
        .kinds
        .iter()
        .map(|k| KindObserved {
            group: k.group.clone(),
            kind: k.kind.clone(),
            watch: k.watch.as_ref().map(|watch| {
                let (state, synced) = match ctx.state.registry.state(watch) {
                    Some((state, synced)) => (Some(state), synced),
                    None => (None, false),
                };
                let stats = monitor.stats(watch);
                WatchObserved {
                    version: watch.kind.version.clone(),
                    resource: watch.kind.rbac_resource(),
                    state,
                    synced,
                    objects: stats.objects,
                    series: stats.series,
                }
            }),
        })
        .collect();
    Observed {
        kinds,
        series: monitor.total().series,
        series_limit: monitor.validated.series_limit,
        left_out: monitor.left_out(),
        problems: &monitor.validated.problems,
        own_from: monitor.validated.own_from,
    }
}

async fn apply(
    m: &MonitorObject,
    ctx: &Context,
    api: &Api<DynamicObject>,
    stamp: Stamp<'_>,
) -> Result<Action, Error> {
    let reference = m.reference();
    // Validate and compile (pure). An invalid selector stops the whole monitor.
    let monitor = match current_monitor(ctx, m) {
        Ok(monitor) => monitor,
        Err(e) => {
            ctx.state.remove(&m.key);
            let status = status::invalid_spec(&e.to_string(), stamp);
            write_status(ctx, api, &m.key, &reference, stamp.previous, &status).await?;
            return Ok(Action::await_change());
        }
    };
    ctx.state.insert(Arc::clone(&monitor));

    // Discover, plan (pure), subscribe.
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

    let observed = observe(&monitor, &plan, ctx);
    let requeue = Action::requeue(if observed.settling() {
        SETTLING_REQUEUE
    } else {
        // Counts in status go stale; refresh them now and then.
        REFRESH_REQUEUE
    });
    ctx.failures.lock().remove(&m.key);
    ctx.state.refresh_counts();
    // Every replica watches and serves; only the leader writes.
    if !ctx.leads() {
        return Ok(requeue);
    }
    // A restart (or a new leader) that finds the monitor Ready at this generation says
    // nothing until its own lists are in: no flip to not-Ready and back, no Event.
    if observed.listing() && status::was_ready(stamp.previous, stamp.generation) {
        return Ok(Action::requeue(SETTLING_REQUEUE));
    }

    // Publish: the Prometheus Operator kinds only when their CRDs are served.
    let installed = |kind: PublishKind| {
        !kind.needs_prometheus_operator()
            || !discovery
                .resolve(MONITORING_GROUP, MONITORING_VERSION, kind.object_kind().0)
                .is_empty()
    };
    let published = publish::publish(&ctx.client, m, &ctx.service, installed).await;

    // Status (pure), then Events (pure) and the writes.
    let status = status::monitor_status(&observed, &published, stamp);
    write_status(ctx, api, &m.key, &reference, stamp.previous, &status).await?;
    Ok(requeue)
}

/// A status this replica wrote, and the resourceVersion of the object it replaced.
#[derive(Debug, Clone)]
pub struct Written {
    over: Option<String>,
    status: TapMonitorStatus,
}

/// What this replica last wrote for `key`, while `obj` (from the watch cache) is still the
/// object that write replaced. A reconcile can run again before the watch delivers a write;
/// compared with the stale cached status, it would announce the same Ready twice and write
/// the same status again.
fn last_written(ctx: &Context, key: &MonitorKey, obj: &DynamicObject) -> Option<TapMonitorStatus> {
    let mut written = ctx.written.lock();
    match written.get(key) {
        Some(w) if w.over == obj.metadata.resource_version => Some(w.status.clone()),
        // The cache has moved on (our write, or someone else's): it is the truth again.
        Some(_) => {
            written.remove(key);
            None
        }
        None => None,
    }
}

/// Writes `status` and the Events since `previous`, when this replica leads and anything
/// changed: an unchanged status is not patched again.
async fn write_status(
    ctx: &Context,
    api: &Api<DynamicObject>,
    key: &MonitorKey,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    previous: &TapMonitorStatus,
    status: &TapMonitorStatus,
) -> Result<(), Error> {
    if !ctx.leads() {
        return Ok(());
    }
    record_health(ctx, key, Some(MonitorHealth::of(status)));
    if status == previous {
        return Ok(());
    }
    announce(ctx, reference, previous, status).await;
    patch_status(api, key, status).await?;
    ctx.written.lock().insert(
        key.clone(),
        Written {
            over: reference.resource_version.clone(),
            status: status.clone(),
        },
    );
    ctx.state.telemetry.status_writes.inc();
    Ok(())
}

async fn patch_status(
    api: &Api<DynamicObject>,
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

/// Publishes the Events between two statuses; a failure to publish one is logged, not fatal.
async fn announce(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    before: &TapMonitorStatus,
    after: &TapMonitorStatus,
) {
    for event in events::events(before, after) {
        match ctx.recorder.publish(&event, reference).await {
            Ok(()) => ctx.state.telemetry.events.inc(),
            Err(e) => warn!(error = %e, reason = %event.reason, "failed to publish an Event"),
        }
    }
}
