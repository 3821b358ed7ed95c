//! `run`: the operator's tasks wired together: the HTTP servers, the namespace watch, the
//! CRD-change stream and one controller per monitor kind.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::DynamicObject;
use std::collections::HashSet;

use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tracing::{info, warn};

use tokio::sync::watch;

use crate::context::Context;
use crate::http::auth::Authorizer;
use crate::http::tls::{CertSource, Certificate, TlsError};
use crate::leader::{self, LeaderConfig};
use crate::object::{MonitorKey, MonitorKind};
use crate::shard::Shard;
use crate::telemetry::TelemetryError;
use crate::validate::Limits;
use crate::watches::{self, InitialList};
use crate::{discovery, http, publish, reconcile};

/// Who may read a monitor's series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAuth {
    /// Anyone who reaches the port (local use, the demo).
    None,
    /// A bearer token the API server authenticates, whose user may `get` the monitor's
    /// `metrics` subresource; served over HTTPS.
    Kubernetes,
}

/// How to run the operator.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Address of the per-monitor metrics, `/healthz` and `/readyz`.
    pub metrics_addr: SocketAddr,
    /// Address of the self-metrics.
    pub telemetry_addr: SocketAddr,
    /// How watches fetch their initial state; `None` picks by server version.
    pub initial_list: Option<InitialList>,
    /// The operator's Service, for published ServiceMonitors.
    pub service: publish::OperatorService,
    /// Who may read a monitor's series.
    pub metrics_auth: MetricsAuth,
    /// The serving certificate's PEM files (certificate, key); with `Kubernetes` auth and none
    /// given, a self-signed certificate is made at start.
    pub tls_files: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// What every monitor is allowed.
    pub limits: Limits,
    /// What bounds the metrics server.
    pub http: http::Limits,
    /// The lease that elects the one replica that writes; `None`: this replica always writes
    /// (run only one).
    pub leader: Option<LeaderConfig>,
    /// The objects this replica serves ([`Shard::WHOLE`]: all of them).
    pub shard: Shard,
}

/// The longest a shutdown takes, whatever the API server does: the drain of in-flight
/// scrapes, then what is left of the controllers' work, then the lease's release.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20);

/// Streaming lists (WatchList) are on by default from Kubernetes 1.32; older servers, and any
/// whose version cannot be read, get paged lists.
async fn pick_initial_list(client: &Client) -> InitialList {
    match client.apiserver_version().await {
        Ok(info) => {
            let minor: u32 = info.minor.trim_end_matches('+').parse().unwrap_or(0);
            let major: u32 = info.major.parse().unwrap_or(0);
            if major > 1 || (major == 1 && minor >= 32) {
                InitialList::Streaming
            } else {
                InitialList::Paged
            }
        }
        Err(e) => {
            warn!(error = %e, "cannot read the server version; using paged lists");
            InitialList::Paged
        }
    }
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Self-metrics could not be set up.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The serving certificate could not be loaded or made.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A serving certificate and the task that reloads it from its files (none when self-signed).
type Served = (Arc<Certificate>, Option<tokio::task::JoinHandle<()>>);

/// The certificate the metrics port serves, if any, and the task that reloads it.
fn certificate(config: &RunConfig) -> Result<Option<Served>, RunError> {
    let source = match (&config.tls_files, config.metrics_auth) {
        (Some((cert, key)), _) => CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (None, MetricsAuth::Kubernetes) => {
            let ns = &config.service.namespace;
            CertSource::SelfSigned(vec![
                "tapmon".into(),
                format!("tapmon.{ns}.svc"),
                format!("tapmon.{ns}.svc.cluster.local"),
                "localhost".into(),
                config.metrics_addr.ip().to_string(),
            ])
        }
        (None, MetricsAuth::None) => return Ok(None),
    };
    let cert = Certificate::new(&source)?;
    let reload = match source {
        CertSource::Files { cert: c, key } => Some(tokio::spawn(Arc::clone(&cert).reload(c, key))),
        CertSource::SelfSigned(_) => None,
    };
    Ok(Some((cert, reload)))
}

/// A controller for one monitor kind, until `stop` turns true.
async fn control(
    kind: MonitorKind,
    ctx: Arc<Context>,
    reconcile_all: impl futures::Stream<Item = ()> + Send + 'static,
    mut stop: watch::Receiver<bool>,
) {
    let ar = kind.api_resource();
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    Controller::new_with(api, watcher::Config::default(), ar)
        .trigger_backoff(crate::watches::WatchBackoff::default())
        .reconcile_all_on(reconcile_all)
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(
            move |obj, ctx| reconcile::reconcile(kind, obj, ctx),
            move |obj, error, ctx| reconcile::error_policy(kind, obj, error, ctx),
            ctx,
        )
        .for_each(move |result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, ?kind, "controller");
            }
            futures::future::ready(())
        })
        .await;
}

/// Forgets monitors of `kind` that are deleted, or found gone by a relist (deleted while the
/// watch was down): with no finalizer, the controller is not asked about them.
async fn forget_deleted(kind: MonitorKind, ctx: Arc<Context>) {
    let api: Api<PartialObjectMeta<DynamicObject>> =
        Api::all_with(ctx.client.clone(), &kind.api_resource());
    let mut stream = std::pin::pin!(
        watcher::watcher(api, watcher::Config::default())
            .backoff(crate::watches::WatchBackoff::default())
    );
    let key = |meta: &kube::api::ObjectMeta| {
        let name = meta.name.as_deref().unwrap_or_default();
        match (&meta.namespace, kind) {
            (Some(ns), MonitorKind::TapMonitor) => MonitorKey::namespaced(ns, name),
            _ => MonitorKey::cluster(name),
        }
    };
    let mut listed = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(m)) => {
                listed.insert(key(&m.metadata));
            }
            // The kind is not installed (an older install without ClusterTapMonitor): there
            // are none to wait for.
            Err(watcher::Error::InitialListFailed(kube::Error::Api(s))) if s.code == 404 => {
                ctx.state.mark_listed(kind);
            }
            Ok(Event::InitDone) => {
                ctx.state.mark_listed(kind);
                for monitor in ctx.state.monitors() {
                    if monitor.key.kind() == kind && !listed.contains(&monitor.key) {
                        reconcile::forget(&ctx, &monitor.key);
                    }
                }
            }
            Ok(Event::Delete(m)) => reconcile::forget(&ctx, &key(&m.metadata)),
            Ok(Event::Apply(_)) | Err(_) => {}
        }
    }
}

/// How often settled blocks of series are compacted: a block unchanged for this long is made
/// into one buffer and a gzip member.
const COMPACT_INTERVAL: Duration = Duration::from_secs(1);

/// Compacts every monitor's settled blocks, every [`COMPACT_INTERVAL`], on a blocking thread:
/// compressing the first complete store of 50k objects takes about half a second.
async fn compact_settled(state: Arc<crate::State>) {
    let mut tick = tokio::time::interval(COMPACT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let state = Arc::clone(&state);
        let pass = tokio::task::spawn_blocking(move || {
            for monitor in state.monitors() {
                monitor.compact_settled();
            }
        });
        if let Err(e) = pass.await {
            warn!(error = %e, "compacting series failed; retrying at the next tick");
        }
    }
}

/// A stream that yields when `leader` turns true: a new leader reconciles every monitor.
fn on_becoming_leader(leader: watch::Receiver<bool>) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::unfold(leader, |mut rx| async move {
        rx.wait_for(|l| !*l).await.ok()?;
        rx.wait_for(|l| *l).await.ok()?;
        Some(((), rx))
    })
}

/// A stream that yields when any watch's state changes, so status follows the data within
/// seconds (after an outage, say) instead of at the next requeue.
fn on_watch_changes(changes: watch::Receiver<u64>) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::unfold(changes, |mut rx| async move {
        rx.changed().await.ok()?;
        // A burst of changes (a relist of every kind) becomes one reconcile of all.
        tokio::time::sleep(Duration::from_millis(500)).await;
        rx.borrow_and_update();
        Some(((), rx))
    })
}

/// Runs the operator until `shutdown` completes, then stops within [`SHUTDOWN_LIMIT`]: stop
/// accepting, let in-flight scrapes finish, stop the controllers, release the lease.
pub async fn run(
    client: Client,
    config: RunConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    let initial_list = match config.initial_list {
        Some(mode) => mode,
        None => pick_initial_list(&client).await,
    };
    info!(?initial_list, "initial lists");
    let (stop_tx, stop) = watch::channel(false);
    let (leader_tx, leader) = watch::channel(config.leader.is_none());
    let mut service = config.service.clone();
    service.authorized_scrapes = config.metrics_auth == MetricsAuth::Kubernetes;
    let ctx = Context::new(
        client.clone(),
        initial_list,
        service,
        config.limits,
        leader.clone(),
        config.shard,
    )?;
    let state = Arc::clone(&ctx.state);
    state.telemetry.shard.set(i64::from(config.shard.index()));
    state.telemetry.shards.set(i64::from(config.shard.total()));
    if config.shard != Shard::WHOLE {
        info!(shard = %config.shard, "serving one shard of the objects");
    }

    let bind = |addr: SocketAddr| async move {
        http::bind(addr)
            .await
            .map_err(|source| RunError::Bind { addr, source })
    };
    let metrics = bind(config.metrics_addr).await?;
    let telemetry_listener = bind(config.telemetry_addr).await?;
    let certificate = certificate(&config)?;
    let access = http::Access {
        tls: match &certificate {
            Some((cert, _)) => Some(cert.acceptor()?),
            None => None,
        },
        auth: (config.metrics_auth == MetricsAuth::Kubernetes)
            .then(|| Arc::new(Authorizer::new(client.clone()))),
    };
    let servers = [
        tokio::spawn(http::serve(
            metrics,
            http::Server::Metrics,
            Arc::clone(&state),
            access,
            config.http,
            stop.clone(),
        )),
        tokio::spawn(http::serve(
            telemetry_listener,
            http::Server::Telemetry,
            Arc::clone(&state),
            http::Access::default(),
            config.http,
            stop.clone(),
        )),
    ];
    let mut tasks = vec![tokio::spawn(watches::watch_namespaces(
        client.clone(),
        Arc::clone(&state),
    ))];
    tasks.extend(certificate.and_then(|(_, reload)| reload));
    for kind in MonitorKind::ALL {
        tasks.push(tokio::spawn(forget_deleted(kind, Arc::clone(&ctx))));
    }
    let election = config
        .leader
        .clone()
        .map(|cfg| tokio::spawn(leader::run(client.clone(), cfg, leader_tx, stop.clone())));
    tasks.push(tokio::spawn({
        let (mut leader, gauge) = (leader.clone(), state.telemetry.leader.clone());
        async move {
            loop {
                gauge.set(i64::from(*leader.borrow_and_update()));
                if leader.changed().await.is_err() {
                    break;
                }
            }
        }
    }));

    tasks.push(tokio::spawn(compact_settled(Arc::clone(&state))));

    // What makes every monitor be reconciled: CRD changes, watch state changes, a new leader.
    let crd_changes = discovery::crd_changes(client.clone(), Arc::clone(&ctx.discovery));
    let (all_tx, _) = tokio::sync::broadcast::channel::<()>(16);
    let triggers = futures::stream::select_all([
        crd_changes.boxed(),
        on_watch_changes(state.registry.changes()).boxed(),
        on_becoming_leader(leader.clone()).boxed(),
    ]);
    tasks.push(tokio::spawn({
        let tx = all_tx.clone();
        triggers.for_each(move |()| {
            // No receiver yet, or a lagging one: both mean "reconcile all" is coming anyway.
            let _ = tx.send(());
            futures::future::ready(())
        })
    }));
    let reconcile_all = || {
        tokio_stream::wrappers::BroadcastStream::new(all_tx.subscribe())
            .filter_map(|r| futures::future::ready(r.ok()))
    };
    let controllers = futures::future::join_all(
        MonitorKind::ALL.map(|kind| control(kind, Arc::clone(&ctx), reconcile_all(), stop.clone())),
    );
    info!("tapmon operator running");

    tokio::pin!(controllers);
    let shutdown = async move {
        shutdown.await;
        info!("shutting down: no new connections, in-flight scrapes finish, then the lease goes");
        let _ = stop_tx.send(true);
        stop_tx
    };
    tokio::pin!(shutdown);
    // The controllers end only on shutdown; the stop sender must outlive them.
    let stop_tx = tokio::select! {
        _ = &mut controllers => None,
        stop_tx = &mut shutdown => Some(stop_tx),
    };
    let bounded = async {
        if stop_tx.is_some() {
            controllers.await;
        }
        for server in servers {
            let _ = server.await;
        }
        if let Some(election) = election {
            let _ = election.await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_LIMIT, bounded).await.is_err() {
        warn!(limit = ?SHUTDOWN_LIMIT, "shutdown took too long; stopping anyway");
    }
    drop(stop_tx);
    state.registry.stop_all();
    for task in tasks {
        task.abort();
    }
    info!("tapmon operator stopped");
    Ok(())
}
