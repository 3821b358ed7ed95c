//! The operator, running in the test process as its ServiceAccount with `deploy/`'s RBAC.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::fixtures::{load_tap_environment, root, yaml_files};
use crate::http::{Client as HttpClient, free_port, get};
use crate::kube::{apply, install_crds};
use crate::tls::insecure_client;
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

/// What of `deploy/` the tests leave out: they run the operator themselves.
const NOT_INSTALLED: &[&str] = &["Deployment", "Service", "PodDisruptionBudget"];

/// Installs the CRDs and the operator's namespace and RBAC from `deploy/`, as kustomize renders
/// it, and returns a client for its ServiceAccount.
pub async fn operator_identity(cluster: &Cluster) -> anyhow::Result<Client> {
    install_crds(&cluster.admin, &yaml_files(&root().join("crds"))?).await?;
    let rendered =
        tokio::task::spawn_blocking(|| crate::install::kustomize(&root().join("deploy"))).await??;
    for obj in crate::install::objects(&rendered)? {
        let kind = obj["kind"].as_str().unwrap_or_default();
        if !NOT_INSTALLED.contains(&kind) {
            apply(&cluster.admin, obj, None).await?;
        }
    }
    cluster
        .service_account_client("tapmon-system", "tapmon")
        .await
}

/// How a test runs the operator.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Scrapes need an authorised bearer token (and HTTPS).
    pub auth: bool,
    /// The serving certificate's files (certificate, key); self-signed when absent and `auth`.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// How a client trusts the serving certificate (when there is one).
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// The operator's series limit per monitor.
    pub series_limit: Option<usize>,
    /// Take part in leader election as this identity (a Lease in `tapmon-system`); without,
    /// the operator always writes.
    pub leader: Option<String>,
    /// Bounds of the metrics server.
    pub http: Option<tapmon_operator::http::Limits>,
    /// Labels on every published object (`--published-label`).
    pub published_labels: BTreeMap<String, String>,
}

/// The operator, running in this process as its ServiceAccount.
pub struct Operator {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Per-monitor metrics, `/healthz`, `/readyz`.
    pub metrics: SocketAddr,
    /// Self-metrics.
    pub telemetry: SocketAddr,
}

impl Operator {
    /// Starts the operator with `client`, scrapes open to anyone on loopback.
    pub async fn start(client: Client) -> Operator {
        Self::start_with(client, Settings::default()).await
    }

    /// Starts the operator with `client` as `settings` say.
    pub async fn start_with(client: Client, settings: Settings) -> Operator {
        let (metrics, telemetry) = (free_port(), free_port());
        let (stop, stopped) = oneshot::channel::<()>();
        let mut limits = tapmon_operator::validate::Limits::default();
        if let Some(series) = settings.series_limit {
            limits.series = series;
        }
        let config = tapmon_operator::RunConfig {
            metrics_addr: metrics,
            telemetry_addr: telemetry,
            initial_list: None,
            service: tapmon_operator::publish::OperatorService {
                published_labels: settings.published_labels.clone(),
                ..Default::default()
            },
            metrics_auth: if settings.auth {
                tapmon_operator::MetricsAuth::Kubernetes
            } else {
                tapmon_operator::MetricsAuth::None
            },
            tls_files: settings.tls_files.clone(),
            limits,
            // No stop delay: nothing routes by this operator's readiness, and tests stop many.
            http: settings.http.unwrap_or(tapmon_operator::http::Limits {
                stop_delay: Duration::ZERO,
                ..Default::default()
            }),
            leader: settings
                .leader
                .as_deref()
                .map(|id| tapmon_operator::leader::LeaderConfig::new("tapmon-system", id)),
            shard: tapmon_operator::Shard::WHOLE,
        };
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = tapmon_operator::run(client, config, shutdown).await {
                panic!("operator failed: {e}");
            }
        });
        let tls = match (
            &settings.tls_client,
            settings.auth || settings.tls_files.is_some(),
        ) {
            (Some(client), _) => Some(Arc::clone(client)),
            (None, true) => Some(insecure_client().expect("a TLS client")),
            (None, false) => None,
        };
        let op = Operator {
            stop: Some(stop),
            task,
            tls,
            metrics,
            telemetry,
        };
        eventually("operator /healthz", Duration::from_secs(10), || async {
            op.get("/healthz", None)
                .await
                .ok()
                .filter(|(s, _)| *s == 200)
        })
        .await;
        op
    }

    /// A GET of the metrics port, as a client of its TLS (if any) with `token` (if any).
    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|b| vec![("Authorization", b)])
            .unwrap_or_default();
        self.get_with(path, &headers).await
    }

    /// A GET of the metrics port with `headers`, as a client of its TLS (if any).
    async fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, String)> {
        let mut client = match &self.tls {
            Some(config) => HttpClient::tls(Arc::clone(config)),
            None => HttpClient::default(),
        };
        let response = client.request(self.metrics, path, headers, false).await?;
        Ok((response.status, response.text()))
    }

    /// A ClusterTapMonitor's exposition in OpenMetrics, or None while it is not served.
    pub async fn scrape_cluster_openmetrics(&self, name: &str) -> Option<String> {
        let accept = [("Accept", "application/openmetrics-text; version=1.0.0")];
        match self
            .get_with(&format!("/clustermonitors/{name}/metrics"), &accept)
            .await
        {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    }

    /// A TapMonitor's exposition, or None while it is not served.
    pub async fn scrape(&self, namespace: &str, name: &str) -> Option<String> {
        self.scrape_path(&format!("/monitors/{namespace}/{name}/metrics"))
            .await
    }

    /// A ClusterTapMonitor's exposition, or None while it is not served.
    pub async fn scrape_cluster(&self, name: &str) -> Option<String> {
        self.scrape_path(&format!("/clustermonitors/{name}/metrics"))
            .await
    }

    async fn scrape_path(&self, path: &str) -> Option<String> {
        match self.get(path, None).await {
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
