//! The tapmon operator: reconciles TapMonitors, runs one shared dynamic watch per kind, and
//! serves each monitor's series at `/monitors/{namespace}/{name}/metrics`.
//!
//! ```text
//! TapMonitor ──reconcile──▶ validate ▶ discover ▶ plan ▶ subscribe ──▶ status
//!                                                        │
//! kind watch ──event──▶ evaluate per subscribing monitor ▶ monitor store ◀── scrape
//! ```

mod body;
mod context;
pub mod diff;
pub mod discovery;
mod http;
pub mod monitor;
pub mod plan;
pub mod publish;
pub mod reconcile;
mod telemetry;
pub mod watches;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Controller, WatchStreamExt};
use kube::{Api, Client};
use tapmon_api::TapMonitor;
use tracing::{info, warn};

pub use context::{Context, State};
pub use telemetry::{Telemetry, TelemetryError};
pub use watches::InitialList;

/// How long after a CRD change discovery is asked again.
const REDISCOVER_AFTER: Duration = Duration::from_secs(2);

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
}

/// Runs the operator until `shutdown` completes.
pub async fn run(
    client: Client,
    config: RunConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    let telemetry = Arc::new(Telemetry::new()?);
    let initial_list = match config.initial_list {
        Some(mode) => mode,
        None => pick_initial_list(&client).await,
    };
    info!(?initial_list, "initial lists");
    let namespaces = Arc::new(watches::NamespaceLabels::default());
    let registry = Arc::new(watches::Registry::new(
        client.clone(),
        Arc::clone(&telemetry),
        initial_list,
        Arc::clone(&namespaces),
    ));
    let state = Arc::new(State::new(registry, telemetry, namespaces));

    let bind = |addr: SocketAddr| async move {
        http::bind(addr)
            .await
            .map_err(|source| RunError::Bind { addr, source })
    };
    let metrics = bind(config.metrics_addr).await?;
    let telemetry_listener = bind(config.telemetry_addr).await?;
    let servers = [
        tokio::spawn(http::serve(
            metrics,
            http::Server::Metrics,
            Arc::clone(&state),
        )),
        tokio::spawn(http::serve(
            telemetry_listener,
            http::Server::Telemetry,
            Arc::clone(&state),
        )),
        tokio::spawn(watch_namespaces(client.clone(), Arc::clone(&state))),
    ];

    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), Reporter::from("tapmon".to_owned())),
        client: client.clone(),
        state: Arc::clone(&state),
        discovery: context::DiscoveryCache::default(),
        failures: Mutex::new(Default::default()),
        service: config.service.clone(),
    });

    // A CRD that appears, changes or goes away changes what can be watched: re-discover and
    // reconcile every monitor. Only the kinds that changed are started or stopped.
    // The API server's discovery trails a CRD becoming established by a moment, so each change
    // also brings a second look shortly after; without it a kind (or the Prometheus Operator)
    // installed just then would wait for the next periodic reconcile.
    let (later_tx, later_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let crd_ctx = Arc::clone(&ctx);
    let crd_changes = watcher::watcher(
        Api::<PartialObjectMeta<CustomResourceDefinition>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .filter_map(move |event| {
        let ctx = Arc::clone(&crd_ctx);
        let later_tx = later_tx.clone();
        async move {
            match event {
                Ok(Event::Apply(_) | Event::Delete(_) | Event::InitDone) => {
                    ctx.discovery.invalidate();
                    let later = later_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(REDISCOVER_AFTER).await;
                        let _ = later.send(());
                    });
                    Some(())
                }
                Ok(_) => None,
                Err(e) => {
                    warn!(error = %e, "watching CustomResourceDefinitions failed; retrying");
                    None
                }
            }
        }
    });

    let later_ctx = Arc::clone(&ctx);
    let second_looks = futures::stream::unfold(later_rx, move |mut rx| {
        let ctx = Arc::clone(&later_ctx);
        async move {
            rx.recv().await?;
            ctx.discovery.invalidate();
            Some(((), rx))
        }
    });

    let monitors = Api::<TapMonitor>::all(client);
    let controller = Controller::new(monitors, watcher::Config::default())
        .reconcile_all_on(futures::stream::select(crd_changes, second_looks))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller");
            }
        });
    info!("tapmon operator running");
    controller.await;
    state.registry.stop_all();
    for server in servers {
        server.abort();
    }
    info!("tapmon operator stopped");
    Ok(())
}

/// Keeps namespace labels for namespace label selectors; a change relists the monitors that
/// select by label, so objects come and go with their namespace.
async fn watch_namespaces(client: Client, state: Arc<State>) {
    let mut stream = std::pin::pin!(
        watcher::watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client),
            watcher::Config::default()
        )
        .default_backoff()
    );
    while let Some(event) = stream.next().await {
        let changed = match event {
            Ok(Event::Apply(ns) | Event::InitApply(ns)) => {
                let name = ns.metadata.name.clone().unwrap_or_default();
                state
                    .namespaces
                    .set(&name, ns.metadata.labels.clone().unwrap_or_default())
            }
            Ok(Event::Delete(ns)) => {
                state
                    .namespaces
                    .remove(&ns.metadata.name.unwrap_or_default());
                false
            }
            Ok(Event::InitDone) => {
                state.namespaces.mark_synced();
                true
            }
            Ok(Event::Init) => false,
            Err(e) => {
                warn!(error = %e, "watching namespaces failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                false
            }
        };
        if changed && state.namespaces.synced() {
            for monitor in state.monitors() {
                if monitor.validated.namespaces.uses_labels() {
                    state.registry.restart_for(&monitor.key);
                }
            }
        }
    }
}
