//! kube-state-metrics beside tapmon: built from its Go module (`e2e/ksm`), run with tapmon's
//! presets as its custom-resource-state config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use tapmon_crs::model::{CustomResourceStateMetrics, Spec};
use tapmon_presets::TapGroup;

use crate::cluster::{Cluster, built};
use crate::http::{free_port, get};
use crate::wait::eventually;

/// tapmon's presets for every group as kube-state-metrics' custom-resource-state config, as
/// `tapmon presets` exports them (one version per kind).
pub fn ksm_config() -> String {
    let spec: Spec = tapmon_presets::export_spec(TapGroup::ALL, &Default::default())
        .unwrap()
        .spec;
    serde_saphyr::to_string(&CustomResourceStateMetrics {
        kind: Some("CustomResourceStateMetrics".into()),
        spec,
    })
    .unwrap()
}

/// Builds (or finds cached) kube-state-metrics; its path.
pub async fn ksm_binary() -> anyhow::Result<PathBuf> {
    tokio::task::spawn_blocking(|| built("build-ksm")).await?
}

/// kube-state-metrics on loopback with a custom-resource-state config, stopped by PID on drop.
pub struct KubeStateMetrics {
    child: std::process::Child,
    /// Where `/metrics` is served.
    pub addr: SocketAddr,
}

impl KubeStateMetrics {
    /// Builds (or finds cached) kube-state-metrics and starts it with `config` against the
    /// cluster, as cluster admin, custom resources only.
    pub async fn start(cluster: &Cluster, config: &Path) -> anyhow::Result<KubeStateMetrics> {
        Self::start_with(cluster, &ksm_binary().await?, config, &[], None).await
    }

    /// As [`KubeStateMetrics::start`], with the binary given, more flags, and pinned to `cpu`
    /// when given.
    pub async fn start_with(
        cluster: &Cluster,
        bin: &Path,
        config: &Path,
        flags: &[&str],
        cpu: Option<usize>,
    ) -> anyhow::Result<KubeStateMetrics> {
        let (addr, telemetry) = (free_port(), free_port());
        let log = std::fs::File::create(cluster.dir.join("logs/kube-state-metrics.log"))?;
        let mut command = match cpu {
            // taskset execs the program, so the child's PID is kube-state-metrics'.
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .args(flags)
            .arg(format!("--kubeconfig={}", cluster.kubeconfig().display()))
            .arg("--custom-resource-state-only")
            .arg(format!(
                "--custom-resource-state-config-file={}",
                config.display()
            ))
            .arg(format!("--host={}", addr.ip()))
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--telemetry-host={}", telemetry.ip()))
            .arg(format!("--telemetry-port={}", telemetry.port()))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting kube-state-metrics")?;
        let ksm = KubeStateMetrics { child, addr };
        eventually(
            "kube-state-metrics /healthz",
            Duration::from_secs(60),
            || async { get(addr, "/healthz").await.ok().filter(|(s, _)| *s == 200) },
        )
        .await;
        Ok(ksm)
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exposition.
    pub async fn scrape(&self) -> Option<String> {
        match get(self.addr, "/metrics").await {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    }
}

impl Drop for KubeStateMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
