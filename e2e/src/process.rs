//! The operator as its own process (the `tapmon` binary), as a pod runs it: for what only a
//! process shows, its memory and CPU, signals, and two replicas side by side.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cluster::Cluster;
use crate::fixtures::root;
use crate::http::{free_port, get};
use crate::probe::{Probe, Usage};

/// The `tapmon` binary the workspace built (`cargo test --workspace` builds it; `cargo build -p
/// tapmon` otherwise), or `$TAPMON_BIN`.
pub fn tapmon_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("TAPMON_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let bin = root().join("target/debug/tapmon");
    if !bin.exists() {
        bail!(
            "{} not built: run `cargo build -p tapmon` (or set TAPMON_BIN)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running `tapmon run`, as ServiceAccount `tapmon-system/tapmon`.
pub struct OperatorProcess {
    child: Child,
    /// Its process ID.
    pub pid: u32,
    /// Per-monitor metrics, `/healthz`, `/readyz` (plain HTTP).
    pub metrics: SocketAddr,
    /// Self-metrics.
    pub telemetry: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts `tapmon run` against `cluster` with the operator's identity, plain HTTP on
    /// loopback, leader election as `identity`, and `args` added; waits for `/healthz`.
    pub async fn start(
        cluster: &Cluster,
        identity: &str,
        args: &[&str],
    ) -> anyhow::Result<OperatorProcess> {
        let kubeconfig = cluster
            .service_account_kubeconfig("tapmon-system", "tapmon")
            .await?;
        Self::start_as(cluster, &kubeconfig, identity, args).await
    }

    /// As [`OperatorProcess::start`], with a kubeconfig made beforehand (to start while the
    /// API server is down).
    pub async fn start_as(
        cluster: &Cluster,
        kubeconfig: &std::path::Path,
        identity: &str,
        args: &[&str],
    ) -> anyhow::Result<OperatorProcess> {
        let (metrics, telemetry) = (free_port(), free_port());
        let log = cluster
            .state_dir()
            .join(format!("logs/tapmon-{identity}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(tapmon_binary()?)
            .arg("run")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--metrics-addr={metrics}"))
            .arg(format!("--telemetry-addr={telemetry}"))
            .arg("--namespace=tapmon-system")
            .arg("--metrics-auth=none")
            .arg(format!("--leader-election-id={identity}"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting tapmon")?;
        let process = OperatorProcess {
            pid: child.id(),
            child,
            metrics,
            telemetry,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(metrics, "/healthz").await.ok().map(|r| r.0) != Some(200) {
            if Instant::now() > deadline {
                bail!(
                    "tapmon {identity} did not answer /healthz; see {}",
                    process.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(process)
    }

    /// Its memory and CPU now.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        Probe::new(self.pid)?.read()
    }

    /// Sends SIGTERM (by PID), as the kubelet does to stop a pod.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.pid);
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; how long it took, or None.
    pub async fn exited_within(&mut self, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Kills it (SIGKILL): a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The status of a GET of `path` on the metrics port.
    pub async fn status(&self, path: &str) -> Option<u16> {
        get(self.metrics, path).await.ok().map(|r| r.0)
    }

    /// Its self-metrics.
    pub async fn self_metrics(&self) -> String {
        get(self.telemetry, "/metrics")
            .await
            .map(|r| r.1)
            .unwrap_or_default()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
