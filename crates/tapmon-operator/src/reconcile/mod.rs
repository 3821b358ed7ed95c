//! Reconciling a TapMonitor, in phases:
//!
//! ```text
//! validate ─▶ discover ─▶ plan ─▶ subscribe ─▶ publish ─▶ status ─▶ events
//! (pure)      (API)       (pure)  (watches)    (API)      (pure)     (pure, then API)
//! ```
//!
//! [`crate::validate`] and [`crate::plan`] are the pure middle; [`status`] and [`events`] build
//! the status and the Events between two statuses from what was observed; this module is the
//! I/O loop that runs them in order and writes the result.

mod events;
mod status;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};
use tapmon_api::{TapMonitor, TapMonitorStatus};
use tracing::{info, warn};

pub use status::{KindObserved, Observed, Stamp, WatchObserved};

use crate::context::Context;
use crate::monitor::{Monitor, MonitorKey};
use crate::plan::{self, Plan};
use crate::publish::{self, MONITORING_GROUP, MONITORING_VERSION, PublishKind};
use crate::validate;

/// The finalizer that lets the operator stop a deleted monitor's watches.
pub const FINALIZER: &str = "tapmon.io/cleanup";

/// How soon a monitor whose kinds are still listing (or failing) is looked at again.
const SETTLING_REQUEUE: Duration = Duration::from_secs(2);
/// How often a settled monitor's status counts are refreshed.
const REFRESH_REQUEUE: Duration = Duration::from_secs(60);

/// Why a reconcile failed. The variant name is the `error` label of the self-metric.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
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
        self.into()
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
        let mut f = ctx.failures.lock();
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

/// The monitor to serve for `m`: the running one when what it watches and evaluates is
/// unchanged (a change to what is published keeps it), else a new build.
fn current_monitor(
    ctx: &Context,
    key: &MonitorKey,
    m: &TapMonitor,
) -> Result<Arc<Monitor>, validate::ValidateError> {
    let uid = m.uid().unwrap_or_default();
    let source = Monitor::source_of(&m.spec);
    match ctx.state.monitor(key) {
        Some(existing) if existing.uid == uid && existing.source == source => Ok(existing),
        _ => Ok(Arc::new(Monitor::new(
            key.clone(),
            uid,
            m.metadata.generation.unwrap_or_default(),
            validate::validate(&m.spec)?,
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
        problems: &monitor.validated.problems,
        own_from: monitor.validated.own_from,
    }
}

async fn apply(m: &TapMonitor, ctx: &Context, api: &Api<TapMonitor>) -> Result<Action, Error> {
    let key = key_of(m)?;
    let previous = m.status.clone().unwrap_or_default();
    let stamp = Stamp {
        generation: m.metadata.generation.unwrap_or_default(),
        previous: &previous,
        now: k8s_openapi::jiff::Timestamp::now(),
    };

    // Validate and compile (pure). An invalid selector stops the whole monitor.
    let monitor = match current_monitor(ctx, &key, m) {
        Ok(monitor) => monitor,
        Err(e) => {
            ctx.state.remove(&key);
            let status = status::invalid_spec(&e, stamp);
            announce(ctx, m, &previous, &status).await;
            patch_status(api, &key, &status).await?;
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

    // Publish: the Prometheus Operator kinds only when their CRDs are served.
    let installed = |kind: PublishKind| {
        !kind.needs_prometheus_operator()
            || !discovery
                .resolve(MONITORING_GROUP, MONITORING_VERSION, kind.object_kind().0)
                .is_empty()
    };
    let published = publish::publish(&ctx.client, m, &ctx.service, installed).await;

    // Status (pure), then Events (pure) and the writes.
    let observed = observe(&monitor, &plan, ctx);
    let mut status = status::monitor_status(&observed, stamp);
    status.conditions.extend(
        published
            .iter()
            .map(|(kind, outcome)| status::publish_condition(*kind, outcome, stamp)),
    );
    announce(ctx, m, &previous, &status).await;
    patch_status(api, &key, &status).await?;
    ctx.failures.lock().remove(&key);
    ctx.state.refresh_counts();
    Ok(Action::requeue(if observed.settling() {
        SETTLING_REQUEUE
    } else {
        // Counts in status go stale; refresh them now and then.
        REFRESH_REQUEUE
    }))
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

/// Publishes the Events between two statuses; a failure to publish one is logged, not fatal.
async fn announce(
    ctx: &Context,
    m: &TapMonitor,
    before: &TapMonitorStatus,
    after: &TapMonitorStatus,
) {
    let reference = m.object_ref(&());
    for event in events::events(before, after) {
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %e, reason = %event.reason, "failed to publish an Event");
        }
    }
}
