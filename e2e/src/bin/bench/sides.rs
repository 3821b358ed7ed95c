//! The two programs under test, started the same way: pinned to the measured core, against
//! the same cluster, serving one exposition of the same objects.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tapmon_e2e::{Cluster, KubeStateMetrics, free_port};

use crate::scrape::series_count;
use tapmon_e2e::http::Client;
use tapmon_e2e::probe::{Probe, Usage};

/// The core the program under test runs on; the control plane and this harness use the other.
pub const MEASURED_CPU: usize = 1;

/// Which program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// tapmon, one TapMonitor for every group.
    Tapmon,
    /// kube-state-metrics with the same presets as its custom-resource-state config.
    Ksm,
}

impl Side {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Side::Tapmon => "tapmon",
            Side::Ksm => "kube-state-metrics",
        }
    }
}

/// What is needed to start either program.
pub struct Programs<'a> {
    pub cluster: &'a Cluster,
    pub tapmon: &'a Path,
    pub ksm: &'a Path,
    pub ksm_config: &'a Path,
}

enum Process {
    Tapmon(Child),
    Ksm(KubeStateMetrics),
}

/// A started program.
pub struct Running {
    pub side: Side,
    process: Process,
    pub addr: SocketAddr,
    pub path: &'static str,
    pub probe: Probe,
    pub started: Instant,
}

/// The series count that makes a scrape complete.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    /// Exactly this many (tapmon: what its engine computes offline for the objects).
    pub exact: Option<usize>,
    /// Without an exact count (kube-state-metrics), at least this many, then holding still: a
    /// count that holds while kube-state-metrics is still listing is not complete.
    pub at_least: usize,
}

/// The first poll that showed everything, and what it cost to get there.
#[derive(Clone, Copy, Debug)]
pub struct Complete {
    pub wall: Duration,
    pub cpu: Duration,
    pub series: usize,
    pub usage: Usage,
}

impl Programs<'_> {
    /// Starts `side` on the measured core.
    pub async fn start(&self, side: Side) -> anyhow::Result<Running> {
        let started = Instant::now();
        let (process, addr, path, pid) = match side {
            Side::Tapmon => {
                let (addr, telemetry) = (free_port(), free_port());
                let log = std::fs::File::create(self.cluster.state_dir().join("logs/tapmon.log"))?;
                let child = Command::new("taskset")
                    .arg("-c")
                    .arg(MEASURED_CPU.to_string())
                    .arg(self.tapmon)
                    .arg("run")
                    .arg("--kubeconfig")
                    .arg(self.cluster.kubeconfig())
                    .arg(format!("--metrics-addr={addr}"))
                    .arg(format!("--telemetry-addr={telemetry}"))
                    // Measured like kube-state-metrics: plain HTTP, one replica.
                    .arg("--metrics-auth=none")
                    .arg("--leader-election=false")
                    .env("RUST_LOG", "warn")
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("starting {}", self.tapmon.display()))?;
                let pid = child.id();
                (
                    Process::Tapmon(child),
                    addr,
                    "/clustermonitors/tap/metrics",
                    pid,
                )
            }
            Side::Ksm => {
                let ksm = KubeStateMetrics::start_with(
                    self.cluster,
                    self.ksm,
                    self.ksm_config,
                    &["--enable-gzip-encoding"],
                    Some(MEASURED_CPU),
                )
                .await?;
                let (addr, pid) = (ksm.addr, ksm.pid());
                (Process::Ksm(ksm), addr, "/metrics", pid)
            }
        };
        Ok(Running {
            side,
            process,
            addr,
            path,
            probe: Probe::new(pid)?,
            started,
        })
    }
}

impl Running {
    /// Polls (plain scrapes, 250 ms apart) until the series count reaches `expected`, or, when
    /// no exact count is known, is at least `expected.at_least` and holds still for `hold`.
    /// Returns the first poll that showed the final count.
    pub async fn until_complete(
        &self,
        expected: Expected,
        hold: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Complete> {
        let mut first: Option<Complete> = None;
        let mut since = Instant::now();
        let mut scraper = Client::default();
        loop {
            if let Ok(s) = scraper.scrape(self.addr, self.path, false).await {
                let usage = self.probe.read()?;
                let series = series_count(&s.body);
                let poll = Complete {
                    wall: self.started.elapsed(),
                    cpu: usage.cpu,
                    series,
                    usage,
                };
                if first.is_none_or(|f| f.series != series) {
                    first = Some(poll);
                    since = Instant::now();
                }
                let done = match expected.exact {
                    Some(n) => series == n,
                    None => series >= expected.at_least.max(1) && since.elapsed() >= hold,
                };
                if done {
                    return Ok(first.unwrap_or(poll));
                }
            }
            if self.started.elapsed() > timeout {
                bail!(
                    "{} did not complete in {timeout:?}: {} series, expected {expected:?}",
                    self.side.name(),
                    first.map_or(0, |f| f.series)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops the program.
    pub fn stop(self) {
        match self.process {
            Process::Tapmon(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::Ksm(ksm) => drop(ksm),
        }
    }
}
