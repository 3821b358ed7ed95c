//! The operator, running in the test process as its ServiceAccount with `deploy/`'s RBAC.

use std::net::SocketAddr;
use std::time::Duration;

use kube::Client;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::fixtures::{load_tap_environment, root};
use crate::http::{free_port, get};
use crate::kube::{apply_files, install_crds};
use crate::wait::eventually;

/// A control plane with the operator running as its ServiceAccount, and with the fixture TAP
/// environment loaded when `with_tap` is set.
pub async fn cluster_with_operator(
    name: &str,
    with_tap: bool,
) -> anyhow::Result<(Cluster, Operator)> {
    let cluster = Cluster::up(name).await?;
    if with_tap {
        load_tap_environment(&cluster.admin).await?;
    }
    let operator = Operator::start(operator_identity(&cluster).await?).await;
    Ok((cluster, operator))
}

/// Installs the operator's RBAC from `deploy/` and returns a client for its ServiceAccount.
pub async fn operator_identity(cluster: &Cluster) -> anyhow::Result<Client> {
    install_crds(
        &cluster.admin,
        &[root().join("crds/tapmon.io_tapmonitors.yaml")],
    )
    .await?;
    let deploy = root().join("deploy");
    for file in [
        "namespace.yaml",
        "serviceaccount.yaml",
        "clusterrole.yaml",
        "clusterrolebinding.yaml",
    ] {
        apply_files(&cluster.admin, &[deploy.join(file)], Some("tapmon-system")).await?;
    }
    cluster
        .service_account_client("tapmon-system", "tapmon")
        .await
}

/// The operator, running in this process as its ServiceAccount.
pub struct Operator {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    /// Per-monitor metrics, `/healthz`, `/readyz`.
    pub metrics: SocketAddr,
    /// Self-metrics.
    pub telemetry: SocketAddr,
}

impl Operator {
    /// Starts the operator with `client`.
    pub async fn start(client: Client) -> Operator {
        let (metrics, telemetry) = (free_port(), free_port());
        let (stop, stopped) = oneshot::channel::<()>();
        let config = tapmon_operator::RunConfig {
            metrics_addr: metrics,
            telemetry_addr: telemetry,
            initial_list: None,
            service: tapmon_operator::publish::OperatorService::default(),
        };
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = tapmon_operator::run(client, config, shutdown).await {
                panic!("operator failed: {e}");
            }
        });
        let op = Operator {
            stop: Some(stop),
            task,
            metrics,
            telemetry,
        };
        eventually("operator /healthz", Duration::from_secs(10), || async {
            get(metrics, "/healthz")
                .await
                .ok()
                .filter(|(s, _)| *s == 200)
        })
        .await;
        op
    }

    /// A monitor's exposition, or None while it is not served.
    pub async fn scrape(&self, namespace: &str, name: &str) -> Option<String> {
        match get(
            self.metrics,
            &format!("/monitors/{namespace}/{name}/metrics"),
        )
        .await
        {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    }

    /// The self-metrics.
    pub async fn self_metrics(&self) -> String {
        get(self.telemetry, "/metrics")
            .await
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// Stops the operator and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut self.task).await;
        self.task.abort();
    }
}
