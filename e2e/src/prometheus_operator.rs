//! The Prometheus Operator (built from `e2e/prometheus-operator`) on loopback, and Debian's
//! Prometheus running the configuration it generates, so tests check what kube-prometheus-stack
//! would really do with what tapmon publishes.
//!
//! Debian builds Prometheus without Kubernetes service discovery. [`runnable`] therefore swaps
//! each job's `kubernetes_sd_configs` for a file listing what the endpoints role would find: the
//! cluster's real Services, their labels and port names, with the loopback address the test
//! gives each port. Everything else the operator wrote (job names, relabeling, paths, scheme,
//! credentials, rule files) runs as written.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::cluster::{Cluster, built};
use crate::http::{free_port, get};
use crate::kube::install_crds;
use crate::prometheus::prometheus_operator_crds;
use crate::wait::eventually;

/// The CRDs the operator's Prometheus controller waits for: without one of them it reconciles
/// nothing for ten minutes and exits. It looks for them once, at start.
pub const REQUIRED_CRDS: [&str; 5] = [
    "prometheuses",
    "servicemonitors",
    "podmonitors",
    "probes",
    "prometheusrules",
];

/// Where a Prometheus pod reads the token of its ServiceAccount (what tapmon's ServiceMonitor
/// names as its credentials).
const POD_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Where the operator mounts rule ConfigMaps in the Prometheus pod.
const POD_RULES_DIR: &str = "/etc/prometheus/rules/";

/// The Prometheus Operator on loopback as cluster admin, stopped by PID on drop.
pub struct PrometheusOperator {
    child: Child,
    /// Its `/metrics` and `/healthz`.
    pub addr: SocketAddr,
}

impl PrometheusOperator {
    /// Builds (or finds cached) the operator, installs its CRDs, starts it against `cluster`
    /// and waits until its Prometheus controller has synced.
    pub async fn start(cluster: &Cluster) -> anyhow::Result<PrometheusOperator> {
        let bin = tokio::task::spawn_blocking(|| built("build-prometheus-operator")).await??;
        install_crds(&cluster.admin, &prometheus_operator_crds(&REQUIRED_CRDS)?).await?;
        let addr = free_port();
        let log = std::fs::File::create(cluster.dir.join("logs/prometheus-operator.log"))?;
        // No --kubeconfig flag: it reads KUBECONFIG. Its listener defaults to every interface.
        let child = Command::new(bin)
            .env("KUBECONFIG", cluster.kubeconfig())
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log-format=logfmt")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the Prometheus Operator")?;
        let operator = PrometheusOperator { child, addr };
        eventually(
            "the Prometheus Operator's Prometheus controller ready",
            Duration::from_secs(120),
            || async {
                let (_, body) = get(addr, "/metrics").await.ok()?;
                body.lines()
                    .any(|l| l == "prometheus_operator_ready{controller=\"prometheus\"} 1")
                    .then_some(())
            },
        )
        .await;
        Ok(operator)
    }
}

impl Drop for PrometheusOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the operator generated for one `Prometheus` object.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The Prometheus object's name.
    pub name: String,
    /// Its configuration, as the operator wrote it (the config reloader's placeholders still
    /// in).
    pub config: Value,
    /// Its rule files: `<ConfigMap>/<key>` → content.
    pub rule_files: BTreeMap<String, String>,
}

impl Generated {
    /// The scrape job named `job_name`, if there is one.
    pub fn job(&self, job_name: &str) -> Option<&Value> {
        self.config["scrape_configs"]
            .as_array()?
            .iter()
            .find(|j| j["job_name"] == job_name)
    }

    /// The rule file of PrometheusRule `namespace/name`, if there is one.
    pub fn rules_of(&self, namespace: &str, name: &str) -> Option<&str> {
        let prefix = format!("{namespace}-{name}-");
        self.rule_files
            .iter()
            .find(|(file, _)| {
                file.split_once('/')
                    .is_some_and(|(_, key)| key.starts_with(&prefix))
            })
            .map(|(_, content)| content.as_str())
    }

    /// Reads what the operator generated for Prometheus `namespace/name` now: its config Secret
    /// and rule ConfigMaps.
    pub async fn read(client: &Client, namespace: &str, name: &str) -> anyhow::Result<Generated> {
        let secret_name = format!("prometheus-{name}");
        let secret = Api::<Secret>::namespaced(client.clone(), namespace)
            .get(&secret_name)
            .await?;
        let gz = secret
            .data
            .as_ref()
            .and_then(|d| d.get("prometheus.yaml.gz"))
            .with_context(|| format!("Secret {namespace}/{secret_name}: no prometheus.yaml.gz"))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz.0.as_slice()).read_to_string(&mut text)?;
        let config: Value = serde_saphyr::from_str(&text)
            .with_context(|| format!("the generated config:\n{text}"))?;
        let configmaps = Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().labels(&format!("prometheus-name={name}")))
            .await?;
        let rule_files = configmaps
            .items
            .into_iter()
            .flat_map(|cm| {
                let cm_name = cm.metadata.name.unwrap_or_default();
                cm.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |(key, content)| (format!("{cm_name}/{key}"), content))
            })
            .collect();
        Ok(Generated {
            name: name.to_owned(),
            config,
            rule_files,
        })
    }

    /// Waits until what the operator generated for `namespace/name` satisfies `done`.
    pub async fn wait_for(
        client: &Client,
        namespace: &str,
        name: &str,
        done: impl Fn(&Generated) -> bool,
    ) -> Generated {
        // The operator deletes and recreates rule ConfigMaps on every change: a read may miss
        // them, the next one sees them.
        eventually(
            &format!("the Prometheus Operator's config for {namespace}/{name}"),
            Duration::from_secs(90),
            || async {
                Generated::read(client, namespace, name)
                    .await
                    .ok()
                    .filter(|g| done(g))
            },
        )
        .await
    }
}

/// One port of a Service that a test serves on loopback: what the endpoints role would find
/// behind it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The port's name.
    pub port: String,
    /// Where the test serves it.
    pub addr: SocketAddr,
}

/// Files to put beside a [`runnable`] config: path relative to it, content.
pub type Files = Vec<(String, String)>;

/// `generated` made runnable by Debian's Prometheus: the config reloader's placeholders filled
/// in as for the first replica of shard 0, rule files and the scraping ServiceAccount's
/// `token` beside the config, and service discovery from files describing the `services`
/// (real objects read from the cluster) with the loopback addresses of `endpoints`.
pub fn runnable(
    generated: &Generated,
    services: &[Service],
    endpoints: &[Endpoint],
    token: &str,
) -> anyhow::Result<(String, Files)> {
    let pod = format!("prometheus-{}-0", generated.name);
    let mut config = generated.config.clone();
    replace_strings(&mut config, &|s| {
        let s = s.replace("$(SHARD)", "0").replace("$(POD_NAME)", &pod);
        let s = if s == POD_TOKEN_FILE {
            "token".to_owned()
        } else {
            s
        };
        s.strip_prefix(POD_RULES_DIR)
            .map(|rest| format!("rules/{rest}"))
            .unwrap_or(s)
    });
    let mut files: Files = vec![("token".into(), token.into())];
    for (file, content) in &generated.rule_files {
        files.push((format!("rules/{file}"), content.clone()));
    }
    let jobs = config["scrape_configs"]
        .as_array_mut()
        .context("no scrape_configs")?;
    for (i, job) in jobs.iter_mut().enumerate() {
        let Some(object) = job.as_object_mut() else {
            bail!("scrape config {i} is not a map");
        };
        let Some(sd) = object.remove("kubernetes_sd_configs") else {
            continue;
        };
        let groups = discovered(&sd, services, endpoints)
            .with_context(|| format!("job {}", object["job_name"]))?;
        let file = format!("sd/{i}.json");
        files.push((file.clone(), serde_json::to_string_pretty(&groups)?));
        object.insert("file_sd_configs".into(), json!([{"files": [file]}]));
    }
    // JSON is YAML: Prometheus reads it as written.
    Ok((serde_json::to_string_pretty(&config)?, files))
}

/// Applies `f` to every string in `value`.
fn replace_strings(value: &mut Value, f: &dyn Fn(&str) -> String) {
    match value {
        Value::String(s) => *s = f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, f)),
        _ => {}
    }
}

/// The target groups Kubernetes service discovery with `sd` (a `kubernetes_sd_configs` list)
/// would produce for the ports of `services` that `endpoints` serve: one group per port, the
/// meta labels of the endpoints (or endpointslice) role, no Pod behind them.
fn discovered(sd: &Value, services: &[Service], endpoints: &[Endpoint]) -> anyhow::Result<Value> {
    let mut groups = Vec::new();
    for config in sd
        .as_array()
        .context("kubernetes_sd_configs is not a list")?
    {
        let role = config["role"].as_str().context("no role")?;
        let port_label = match role {
            "endpoints" => "__meta_kubernetes_endpoint_port_name",
            "endpointslice" => "__meta_kubernetes_endpointslice_port_name",
            other => bail!("role {other} is not emulated"),
        };
        if config.get("selectors").is_some() {
            bail!("SD selectors are not emulated");
        }
        let namespaces: Option<Vec<&str>> = config["namespaces"]["names"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect());
        for service in services {
            let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
            let name = service.metadata.name.as_deref().unwrap_or_default();
            if namespaces.as_ref().is_some_and(|n| !n.contains(&namespace)) {
                continue;
            }
            let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
            for port in ports.into_iter().flatten() {
                let port_name = port.name.as_deref().unwrap_or_default();
                let targets: Vec<String> = endpoints
                    .iter()
                    .filter(|e| {
                        e.namespace == namespace && e.service == name && e.port == port_name
                    })
                    .map(|e| e.addr.to_string())
                    .collect();
                if targets.is_empty() {
                    continue;
                }
                let mut labels = BTreeMap::from([
                    (
                        "__meta_kubernetes_namespace".to_owned(),
                        namespace.to_owned(),
                    ),
                    ("__meta_kubernetes_service_name".to_owned(), name.to_owned()),
                    (port_label.to_owned(), port_name.to_owned()),
                ]);
                let (kind, protocol, ready) = if role == "endpoints" {
                    ("endpoints", "endpoint_port_protocol", "endpoint_ready")
                } else {
                    (
                        "endpointslice",
                        "endpointslice_port_protocol",
                        "endpointslice_endpoint_conditions_ready",
                    )
                };
                labels.insert(format!("__meta_kubernetes_{kind}_name"), name.to_owned());
                labels.insert(
                    format!("__meta_kubernetes_{protocol}"),
                    port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                );
                labels.insert(format!("__meta_kubernetes_{ready}"), "true".into());
                for (key, value) in service.metadata.labels.iter().flatten() {
                    let key = sanitized(key);
                    labels.insert(
                        format!("__meta_kubernetes_service_label_{key}"),
                        value.clone(),
                    );
                    labels.insert(
                        format!("__meta_kubernetes_service_labelpresent_{key}"),
                        "true".into(),
                    );
                }
                groups.push(json!({"targets": targets, "labels": labels}));
            }
        }
    }
    Ok(Value::Array(groups))
}

/// A Kubernetes label name as Prometheus discovery puts it in a meta label name.
fn sanitized(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The Services in `namespace`, as discovery would read them.
pub async fn services(client: &Client, namespace: &str) -> anyhow::Result<Vec<Service>> {
    Ok(Api::<Service>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items)
}

/// The label kube-prometheus-stack's Prometheus selects ServiceMonitors and PrometheusRules by.
pub const RELEASE: (&str, &str) = ("release", "kube-prometheus-stack");

/// Namespace and name of the `Prometheus` object [`KubePrometheusStack`] creates.
pub const PROMETHEUS: (&str, &str) = ("monitoring", "kps");

/// What kube-prometheus-stack would run beside tapmon: the Prometheus Operator, a `Prometheus`
/// selecting by [`RELEASE`] in every namespace (its ServiceAccount allowed to scrape every
/// monitor), and Debian's Prometheus running what the operator generated.
pub struct KubePrometheusStack {
    /// The operator; keeps running, so later changes reach the config Secret.
    pub operator: PrometheusOperator,
    /// What it generated.
    pub generated: Generated,
    /// Prometheus running it.
    pub prometheus: crate::prometheus::Prometheus,
}

impl KubePrometheusStack {
    /// Installs tapmon's Service and self-monitoring (`deploy/`, `deploy/monitoring/`) and the
    /// `Prometheus` object, waits until `operator` has generated scrape jobs for every
    /// ServiceMonitor `namespace/name` in `service_monitors` and rule files for every
    /// PrometheusRule in `rules`, and runs that config with the Service's `metrics` and
    /// `telemetry` ports served by `tapmon`.
    pub async fn start(
        cluster: &Cluster,
        operator: PrometheusOperator,
        tapmon: &crate::operator::Operator,
        service_monitors: &[(&str, &str)],
        rules: &[(&str, &str)],
    ) -> anyhow::Result<KubePrometheusStack> {
        let client = &cluster.admin;
        let deploy = crate::fixtures::root().join("deploy");
        for dir in [deploy.clone(), deploy.join("monitoring")] {
            let rendered =
                tokio::task::spawn_blocking(move || crate::install::kustomize(&dir)).await??;
            for obj in crate::install::objects(&rendered)? {
                if matches!(
                    obj["kind"].as_str(),
                    Some("Service" | "ServiceMonitor" | "PrometheusRule")
                ) {
                    crate::kube::apply(client, obj, None).await?;
                }
            }
        }
        let (namespace, name) = PROMETHEUS;
        let account = format!("{name}-prometheus");
        crate::kube::apply(
            client,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            None,
        )
        .await?;
        let token = cluster.service_account_token(namespace, &account).await?;
        crate::kube::apply(
            client,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": format!("{account}-tapmon-metrics-reader")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "tapmon-metrics-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]}),
            None,
        )
        .await?;
        let selector = json!({"matchLabels": {RELEASE.0: RELEASE.1}});
        crate::kube::apply(
            client,
            json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                // What the operator may emit depends on it: the Prometheus that runs it.
                "version": debian_prometheus_version()?,
                "serviceAccountName": account,
                "scrapeInterval": "1s",
                "evaluationInterval": "1s",
                "serviceMonitorSelector": selector,
                "serviceMonitorNamespaceSelector": {},
                "ruleSelector": selector,
                "ruleNamespaceSelector": {}
            }}),
            None,
        )
        .await?;
        let generated = Generated::wait_for(client, namespace, name, |g| {
            service_monitors
                .iter()
                .all(|(ns, sm)| g.job(&format!("serviceMonitor/{ns}/{sm}/0")).is_some())
                && rules.iter().all(|(ns, r)| g.rules_of(ns, r).is_some())
        })
        .await;
        let endpoints: Vec<Endpoint> =
            [("metrics", tapmon.metrics), ("telemetry", tapmon.telemetry)]
                .into_iter()
                .map(|(port, addr)| Endpoint {
                    namespace: "tapmon-system".into(),
                    service: "tapmon".into(),
                    port: port.into(),
                    addr,
                })
                .collect();
        let services = services(client, "tapmon-system").await?;
        let (config, files) = runnable(&generated, &services, &endpoints, &token)?;
        let prometheus =
            crate::prometheus::Prometheus::start_with_config(name, &config, &files).await?;
        Ok(KubePrometheusStack {
            operator,
            generated,
            prometheus,
        })
    }
}

/// `v<version>` of the Prometheus on the PATH (`2.42.0+ds` → `v2.42.0`).
fn debian_prometheus_version() -> anyhow::Result<String> {
    let out = Command::new("prometheus")
        .arg("--version")
        .output()
        .context("running prometheus --version")?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| v.split('+').next())
        .with_context(|| format!("no version in {text:?}"))?;
    Ok(format!("v{version}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "tapmon", "namespace": "tapmon-system",
                "labels": {"app.kubernetes.io/name": "tapmon"}},
            "spec": {"ports": [{"name": "metrics", "port": 8080}, {"name": "telemetry", "port": 8081}]}
        }))
        .unwrap()
    }

    fn generated() -> Generated {
        Generated {
            name: "kps".into(),
            config: json!({
                "global": {"external_labels": {"prometheus_replica": "$(POD_NAME)"}},
                "rule_files": ["/etc/prometheus/rules/prometheus-kps-rulefiles-0/*.yaml"],
                "scrape_configs": [{
                    "job_name": "serviceMonitor/tapmon-system/cluster-tap/0",
                    "kubernetes_sd_configs": [{"role": "endpoints", "namespaces": {"names": ["tapmon-system"]}}],
                    "bearer_token_file": POD_TOKEN_FILE,
                    "relabel_configs": [{"regex": "$(SHARD);|.+;.+", "action": "keep"}]
                }]
            }),
            rule_files: BTreeMap::from([(
                "prometheus-kps-rulefiles-0/tapmon-system-cluster-tap-uid.yaml".into(),
                "groups: []".into(),
            )]),
        }
    }

    #[test]
    fn placeholders_paths_and_discovery_are_what_a_pod_would_see() {
        let endpoint = Endpoint {
            namespace: "tapmon-system".into(),
            service: "tapmon".into(),
            port: "metrics".into(),
            addr: "127.0.0.1:9999".parse().unwrap(),
        };
        let (config, files) = runnable(&generated(), &[service()], &[endpoint], "t0k3n").unwrap();
        let config: Value = serde_json::from_str(&config).unwrap();
        assert_eq!(
            config["global"]["external_labels"]["prometheus_replica"],
            "prometheus-kps-0"
        );
        assert_eq!(
            config["rule_files"][0],
            "rules/prometheus-kps-rulefiles-0/*.yaml"
        );
        let job = &config["scrape_configs"][0];
        assert_eq!(job["bearer_token_file"], "token");
        assert_eq!(job["relabel_configs"][0]["regex"], "0;|.+;.+");
        assert!(job.get("kubernetes_sd_configs").is_none());
        assert_eq!(job["file_sd_configs"][0]["files"][0], "sd/0.json");
        let files: BTreeMap<_, _> = files.into_iter().collect();
        assert_eq!(files["token"], "t0k3n");
        assert!(
            files.contains_key(
                "rules/prometheus-kps-rulefiles-0/tapmon-system-cluster-tap-uid.yaml"
            )
        );
        let groups: Value = serde_json::from_str(&files["sd/0.json"]).unwrap();
        // Only the port the test serves; the Service's labels as discovery names them.
        assert_eq!(groups.as_array().unwrap().len(), 1);
        assert_eq!(groups[0]["targets"][0], "127.0.0.1:9999");
        let labels = &groups[0]["labels"];
        assert_eq!(labels["__meta_kubernetes_endpoint_port_name"], "metrics");
        assert_eq!(
            labels["__meta_kubernetes_service_label_app_kubernetes_io_name"],
            "tapmon"
        );
        assert_eq!(
            labels["__meta_kubernetes_service_labelpresent_app_kubernetes_io_name"],
            "true"
        );
    }

    #[test]
    fn a_service_outside_the_jobs_namespaces_is_not_discovered() {
        let endpoint = Endpoint {
            namespace: "elsewhere".into(),
            service: "tapmon".into(),
            port: "metrics".into(),
            addr: "127.0.0.1:9999".parse().unwrap(),
        };
        let mut other = service();
        other.metadata.namespace = Some("elsewhere".into());
        let (_, files) = runnable(&generated(), &[other], &[endpoint], "t").unwrap();
        let files: BTreeMap<_, _> = files.into_iter().collect();
        assert_eq!(files["sd/0.json"].trim(), "[]");
    }
}
