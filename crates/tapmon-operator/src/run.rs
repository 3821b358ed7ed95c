//! `run`: the operator's tasks wired together: the HTTP servers, the namespace watch, the
//! CRD-change stream and one controller per monitor kind.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use kube::api::DynamicObject;
use std::collections::HashSet;

use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tracing::{info, warn};

use crate::context::Context;
use crate::http::auth::Authorizer;
use crate::http::tls::{CertSource, Certificate, TlsError};
use crate::object::{MonitorKey, MonitorKind};
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
}

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

/// A controller for one monitor kind, until `shutdown`.
async fn control(
    kind: MonitorKind,
    ctx: Arc<Context>,
    crd_changes: impl futures::Stream<Item = ()> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let ar = kind.api_resource();
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    Controller::new_with(api, watcher::Config::default(), ar)
        .reconcile_all_on(crd_changes)
        .graceful_shutdown_on(shutdown)
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
    let mut stream =
        std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
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
            Ok(Event::InitDone) => {
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

/// Runs the operator until `shutdown` completes.
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
    let mut service = config.service.clone();
    service.authorized_scrapes = config.metrics_auth == MetricsAuth::Kubernetes;
    let ctx = Context::new(client.clone(), initial_list, service, config.limits)?;
    let state = Arc::clone(&ctx.state);

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
    let mut tasks = vec![
        tokio::spawn(http::serve(
            metrics,
            http::Server::Metrics,
            Arc::clone(&state),
            access,
        )),
        tokio::spawn(http::serve(
            telemetry_listener,
            http::Server::Telemetry,
            Arc::clone(&state),
            http::Access::default(),
        )),
        tokio::spawn(watches::watch_namespaces(
            client.clone(),
            Arc::clone(&state),
        )),
    ];
    tasks.extend(certificate.and_then(|(_, reload)| reload));

    // One stream of CRD changes, shared by both controllers.
    let crd_changes = discovery::crd_changes(client.clone(), Arc::clone(&ctx.discovery));
    let (changes_tx, _) = tokio::sync::broadcast::channel::<()>(16);
    let fan_out = {
        let tx = changes_tx.clone();
        tokio::spawn(crd_changes.for_each(move |()| {
            // No receiver yet, or a lagging one: both mean "reconcile all" is coming anyway.
            let _ = tx.send(());
            futures::future::ready(())
        }))
    };
    let changes = || {
        tokio_stream::wrappers::BroadcastStream::new(changes_tx.subscribe())
            .filter_map(|r| futures::future::ready(r.ok()))
    };
    let shutdown = shutdown.shared();
    info!("tapmon operator running");
    for kind in MonitorKind::ALL {
        tasks.push(tokio::spawn(forget_deleted(kind, Arc::clone(&ctx))));
    }
    futures::future::join_all(
        MonitorKind::ALL.map(|kind| control(kind, Arc::clone(&ctx), changes(), shutdown.clone())),
    )
    .await;
    fan_out.abort();
    state.registry.stop_all();
    for task in tasks {
        task.abort();
    }
    info!("tapmon operator stopped");
    Ok(())
}
