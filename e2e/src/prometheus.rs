//! Prometheus (Debian package `prometheus`) on loopback, and the Prometheus Operator's CRDs
//! from its Go module.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::fixtures::root;
use crate::http::{free_port, get, percent_encode};
use crate::wait::eventually;

/// Prometheus (Debian package `prometheus`) on loopback, scraping the given targets every
/// second; stopped by PID on drop.
pub struct Prometheus {
    child: std::process::Child,
    dir: PathBuf,
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
}

/// One scrape job: a name, a loopback address and a path.
pub struct ScrapeTarget<'a> {
    /// `job` label.
    pub job: &'a str,
    /// Address to scrape.
    pub addr: SocketAddr,
    /// Metrics path.
    pub path: &'a str,
    /// The `tap_monitor` label the ServiceMonitor's relabeling stamps, if any.
    pub tap_monitor: Option<&'a str>,
}

impl Prometheus {
    /// Starts Prometheus with a static config for `targets`, waits until it is ready.
    pub async fn start(name: &str, targets: &[ScrapeTarget<'_>]) -> anyhow::Result<Prometheus> {
        Self::start_with_rules(name, targets, None).await
    }

    /// As [`Prometheus::start`], evaluating the rule file `rules` (Prometheus' YAML, or JSON).
    pub async fn start_with_rules(
        name: &str,
        targets: &[ScrapeTarget<'_>],
        rules: Option<&str>,
    ) -> anyhow::Result<Prometheus> {
        let mut config = String::from(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\nscrape_configs:\n",
        );
        for t in targets {
            let labels = t
                .tap_monitor
                .map(|m| format!(", labels: {{tap_monitor: '{m}'}}"))
                .unwrap_or_default();
            config.push_str(&format!(
                "- job_name: {}\n  honor_labels: true\n  metrics_path: {}\n  static_configs: [{{targets: ['{}']{labels}}}]\n",
                t.job, t.path, t.addr
            ));
        }
        let mut files = Vec::new();
        if let Some(rules) = rules {
            files.push(("rules.yml".to_owned(), rules.to_owned()));
            config.push_str("rule_files: [rules.yml]\n");
        }
        Self::start_with_config(name, &config, &files).await
    }

    /// Starts Prometheus with `config`, `files` (path relative to the config, content) beside
    /// it, and waits until it is ready. Relative paths in the config (rule files, service
    /// discovery files, credentials) are read from beside it. The config is checked with
    /// `promtool check config` first, so a mistake reads as promtool's message.
    pub async fn start_with_config(
        name: &str,
        config: &str,
        files: &[(String, String)],
    ) -> anyhow::Result<Prometheus> {
        let dir = root()
            .join("target/e2e")
            .join(format!("prometheus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data"))?;
        for (path, content) in files {
            let path = dir.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, content)?;
        }
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config)?;
        let check = Command::new("promtool")
            .args(["check", "config"])
            .arg(&config_file)
            .output()
            .context("running promtool (Debian package prometheus; `make deps` installs it)")?;
        if !check.status.success() {
            bail!(
                "promtool check config: {}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let addr = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting prometheus (Debian package prometheus; `make deps` installs it)")?;
        let prometheus = Prometheus { child, dir, addr };
        eventually("Prometheus ready", Duration::from_secs(60), || async {
            get(addr, "/-/ready").await.ok().filter(|(s, _)| *s == 200)
        })
        .await;
        Ok(prometheus)
    }

    /// A GET of its HTTP API (`/api/v1/...`): the parsed `data`, or the error it gives.
    pub async fn api(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = get(self.addr, path).await?;
        let reply: Value =
            serde_json::from_str(&body).with_context(|| format!("HTTP {status}: {body}"))?;
        if reply["status"] != "success" {
            bail!("{path}: {}: {}", reply["errorType"], reply["error"]);
        }
        Ok(reply["data"].clone())
    }

    /// Runs an instant query; the parsed `data.result`, or the error Prometheus gives.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Value>> {
        let data = self
            .api(&format!("/api/v1/query?query={}", percent_encode(promql)))
            .await
            .map_err(|e| anyhow::anyhow!("{promql}: {e}"))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// A query whose result is one number, or None when it is empty.
    pub async fn scalar(&self, promql: &str) -> anyhow::Result<Option<f64>> {
        let result = self.query(promql).await?;
        Ok(result
            .first()
            .and_then(|r| r["value"][1].as_str())
            .and_then(|v| v.parse().ok()))
    }

    /// A `by (label)` query as label value → number.
    pub async fn by(&self, promql: &str, label: &str) -> anyhow::Result<BTreeMap<String, f64>> {
        Ok(self
            .query(promql)
            .await?
            .iter()
            .map(|r| {
                (
                    r["metric"][label].as_str().unwrap_or("").to_owned(),
                    r["value"][1]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN),
                )
            })
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Prometheus Operator release whose CRDs check what the operator publishes.
pub const PROMETHEUS_OPERATOR: &str = "v0.85.0";

/// Installs the Prometheus Operator CRDs monitors publish: ServiceMonitor and PrometheusRule.
pub async fn install_publishing_crds(client: &kube::Client) -> anyhow::Result<()> {
    let crds = prometheus_operator_crds(&["servicemonitors", "prometheusrules"])?;
    crate::kube::install_crds(client, &crds).await
}

/// The Prometheus Operator CRDs of `kinds` (plurals, e.g. `servicemonitors`), taken from its Go
/// module at test time (downloaded once into the Go module cache, never committed).
pub fn prometheus_operator_crds(kinds: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let module =
        format!("github.com/prometheus-operator/prometheus-operator@{PROMETHEUS_OPERATOR}");
    let out = Command::new("go")
        .args(["mod", "download", "-json", &module])
        .current_dir(std::env::temp_dir())
        .output()
        .context("running go mod download")?;
    let info: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| String::from_utf8_lossy(&out.stderr).to_string())?;
    if let Some(e) = info["Error"].as_str() {
        bail!("downloading {module}: {e}");
    }
    let dir = PathBuf::from(info["Dir"].as_str().context("no Dir")?)
        .join("example/prometheus-operator-crd");
    Ok(kinds
        .iter()
        .map(|k| dir.join(format!("monitoring.coreos.com_{k}.yaml")))
        .collect())
}
