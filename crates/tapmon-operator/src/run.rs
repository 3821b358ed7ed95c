//! `run`: the operator's tasks wired together: the HTTP servers, the namespace watch, the
//! CRD-change stream and the TapMonitor controller.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::Controller;
use kube::runtime::watcher;
use kube::{Api, Client};
use tapmon_api::TapMonitor;
use tracing::{info, warn};

use crate::context::Context;
use crate::telemetry::TelemetryError;
use crate::watches::{self, InitialList};
use crate::{discovery, http, publish, reconcile};

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
    let initial_list = match config.initial_list {
        Some(mode) => mode,
        None => pick_initial_list(&client).await,
    };
    info!(?initial_list, "initial lists");
    let ctx = Context::new(client.clone(), initial_list, config.service.clone())?;
    let state = Arc::clone(&ctx.state);

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
        tokio::spawn(watches::watch_namespaces(
            client.clone(),
            Arc::clone(&state),
        )),
    ];

    let crd_changes = discovery::crd_changes(client.clone(), Arc::clone(&ctx.discovery));
    let monitors = Api::<TapMonitor>::all(client);
    let controller = Controller::new(monitors, watcher::Config::default())
        .reconcile_all_on(crd_changes)
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
