//! Test support for the end-to-end suite: a real control plane (`cluster.sh`), fixtures loaded
//! as controllers write them, the operator running as its ServiceAccount, and waiting on
//! conditions with deadlines.

// Test support: a failed setup should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, Scope, pinned_kind};
use kube::{Api, Client, Config};
use serde_json::{Value, json};
use tapmon_crs::model::{CustomResourceStateMetrics, Spec};
use tapmon_presets::TapGroup;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod generate;

/// The repository root.
pub fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// Serialises the tests of one binary: each starts its own control plane, and two on two
/// cores at once only make both slow.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A control plane on loopback, torn down on drop.
pub struct Cluster {
    dir: PathBuf,
    env: BTreeMap<String, String>,
    /// Cluster-admin client.
    pub admin: Client,
}

fn cluster_sh(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(root().join("e2e/cluster.sh"))
        .args(args)
        .output()
        .context("running e2e/cluster.sh")?;
    if !out.status.success() {
        bail!(
            "cluster.sh {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

async fn client_from(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

impl Cluster {
    /// Starts a control plane (building its binary first if needed).
    pub async fn up(name: &str) -> anyhow::Result<Cluster> {
        let dir = root()
            .join("target/e2e")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let arg = dir.to_string_lossy().to_string();
        tokio::task::spawn_blocking(move || cluster_sh(&["up", &arg])).await??;
        let env = std::fs::read_to_string(dir.join("env"))?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<BTreeMap<_, _>>();
        let admin = client_from(&dir.join("admin.kubeconfig")).await?;
        Ok(Cluster { dir, env, admin })
    }

    /// The directory `cluster.sh` keeps this cluster's state in.
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster-admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// Restarts kube-apiserver with the same flags and port, and waits until it is ready.
    pub async fn restart_apiserver(&self) -> anyhow::Result<()> {
        let arg = self.dir.to_string_lossy().to_string();
        tokio::task::spawn_blocking(move || cluster_sh(&["restart-apiserver", &arg])).await?
    }

    /// A client that authenticates as `namespace/name` with a TokenRequest token.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Client> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.admin.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let token = sas
            .create_token_request(name, &PostParams::default(), &request)
            .await?
            .status
            .context("TokenRequest without status")?
            .token;
        let kubeconfig = self.dir.join(format!("{namespace}-{name}.kubeconfig"));
        let ca = &self.env["TAPMON_E2E_CA_CERT"];
        let server = &self.env["TAPMON_E2E_SERVER"];
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}\nusers:\n- name: sa\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: sa\n  context: {{cluster: e2e, user: sa}}\ncurrent-context: sa\n"
            ),
        )?;
        client_from(&kubeconfig).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let arg = self.dir.to_string_lossy().to_string();
        if let Err(e) = cluster_sh(&["down", "--remove", &arg]) {
            eprintln!("tearing down the test cluster: {e:#}");
        }
    }
}

/// The API of a kind given as (group, version, kind) and plural, in `namespace` or cluster-wide.
pub fn dynamic_api(
    client: &Client,
    namespace: Option<&str>,
    gvk: (&str, &str, &str),
    plural: &str,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(gvk.0, gvk.1, gvk.2), plural);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// TapMonitors in `tapmon-system`.
pub fn tapmonitors(client: &Client) -> Api<DynamicObject> {
    dynamic_api(
        client,
        Some("tapmon-system"),
        ("tapmon.io", "v1alpha1", "TapMonitor"),
        "tapmonitors",
    )
}

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

/// Reads every document of a YAML file.
pub fn documents(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok(tapmon_crs::yaml::from_multiple(&text)?)
}

/// Every YAML file of a directory, sorted.
pub fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    Ok(files)
}

pub(crate) async fn resource_of(
    client: &Client,
    obj: &Value,
) -> anyhow::Result<(ApiResource, ApiCapabilities)> {
    let api_version = obj["apiVersion"].as_str().context("apiVersion")?;
    let kind = obj["kind"].as_str().context("kind")?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Ok(pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await?)
}

/// The API of an object's kind, in its namespace when namespaced.
pub async fn api_for(
    client: &Client,
    obj: &Value,
    default_namespace: Option<&str>,
) -> anyhow::Result<Api<DynamicObject>> {
    let (ar, caps) = resource_of(client, obj).await?;
    Ok(match caps.scope {
        Scope::Cluster => Api::all_with(client.clone(), &ar),
        Scope::Namespaced => {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .or(default_namespace)
                .context("namespaced object without namespace")?;
            Api::namespaced_with(client.clone(), ns, &ar)
        }
    })
}

/// Creates or updates an object by server-side apply, then writes its `status` through the
/// status subresource, as a controller would. Returns the object's UID.
pub async fn apply(
    client: &Client,
    mut obj: Value,
    default_namespace: Option<&str>,
) -> anyhow::Result<String> {
    let status = obj.as_object_mut().and_then(|o| o.remove("status"));
    let api = api_for(client, &obj, default_namespace).await?;
    let name = obj["metadata"]["name"].as_str().context("name")?.to_owned();
    let params = PatchParams::apply("tapmon-e2e").force();
    let applied = api
        .patch(&name, &params, &Patch::Apply(&obj))
        .await
        .with_context(|| format!("applying {} {name}", obj["kind"]))?;
    if let Some(status) = status {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .with_context(|| format!("writing the status of {} {name}", obj["kind"]))?;
    }
    Ok(applied.metadata.uid.unwrap_or_default())
}

/// Applies every document of the files, in order.
pub async fn apply_files(
    client: &Client,
    files: &[PathBuf],
    default_namespace: Option<&str>,
) -> anyhow::Result<()> {
    for file in files {
        for doc in documents(file)? {
            apply(client, doc, default_namespace).await?;
        }
    }
    Ok(())
}

/// Installs CRDs and waits until each is established.
pub async fn install_crds(client: &Client, files: &[PathBuf]) -> anyhow::Result<()> {
    apply_files(client, files, None).await?;
    let crds = dynamic_api(
        client,
        None,
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    for file in files {
        for doc in documents(file)? {
            let name = doc["metadata"]["name"]
                .as_str()
                .context("CRD name")?
                .to_owned();
            eventually(
                &format!("CRD {name} established"),
                Duration::from_secs(30),
                || {
                    let crds = crds.clone();
                    let name = name.clone();
                    async move {
                        let crd = crds.get(&name).await.ok()?;
                        let conditions = crd.data["status"]["conditions"].as_array()?.clone();
                        conditions
                            .iter()
                            .any(|c| c["type"] == "Established" && c["status"] == "True")
                            .then_some(())
                    }
                },
            )
            .await;
        }
    }
    Ok(())
}

/// Loads the fixture TAP environment: CRDs, namespaces, then objects with owners before their
/// dependents, owner UIDs replaced by the real ones, status through the subresource.
pub async fn load_tap_environment(client: &Client) -> anyhow::Result<usize> {
    let fixtures = root().join("e2e/fixtures");
    install_crds(client, &yaml_files(&fixtures.join("crds"))?).await?;
    apply_files(client, &[fixtures.join("tap/namespaces.yaml")], None).await?;
    let mut pending: Vec<Value> = Vec::new();
    for file in yaml_files(&fixtures.join("tap"))? {
        if file.file_stem().is_some_and(|s| s != "namespaces") {
            pending.extend(documents(&file)?);
        }
    }
    let loadable: std::collections::HashSet<String> = pending
        .iter()
        .filter_map(|o| o["kind"].as_str().map(str::to_owned))
        .collect();
    let key = |o: &Value| {
        format!(
            "{}/{}/{}",
            o["kind"].as_str().unwrap_or(""),
            o["metadata"]["namespace"].as_str().unwrap_or(""),
            o["metadata"]["name"].as_str().unwrap_or("")
        )
    };
    let mut uids: HashMap<String, String> = HashMap::new();
    let mut loaded = 0;
    while !pending.is_empty() {
        let before = pending.len();
        let mut next = Vec::new();
        for mut obj in pending {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let refs = obj["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let owners: Vec<String> = refs
                .iter()
                .filter(|r| r["kind"].as_str().is_some_and(|k| loadable.contains(k)))
                .map(|r| {
                    format!(
                        "{}/{ns}/{}",
                        r["kind"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or("")
                    )
                })
                .collect();
            if owners.iter().any(|o| !uids.contains_key(o)) {
                next.push(obj);
                continue;
            }
            if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
                for r in refs {
                    let owner = format!(
                        "{}/{ns}/{}",
                        r["kind"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or("")
                    );
                    if let Some(uid) = uids.get(&owner) {
                        r["uid"] = Value::String(uid.clone());
                    }
                }
            }
            let k = key(&obj);
            let uid = apply(client, obj, None).await?;
            uids.insert(k, uid);
            loaded += 1;
        }
        if next.len() == before {
            bail!(
                "fixtures with owners that never load: {:?}",
                next.iter().map(key).collect::<Vec<_>>()
            );
        }
        pending = next;
    }
    Ok(loaded)
}

/// Creates or updates TapMonitor `tapmon-system/{name}` with `spec`.
pub async fn apply_tap_monitor(client: &Client, name: &str, spec: Value) -> anyhow::Result<()> {
    let obj = json!({
        "apiVersion": "tapmon.io/v1alpha1", "kind": "TapMonitor",
        "metadata": {"name": name, "namespace": "tapmon-system"}, "spec": spec
    });
    apply(client, obj, None).await.map(drop)
}

/// A TapMonitor `spec.groups` with only the groups in `on` enabled.
pub fn groups_only(on: &[TapGroup]) -> Value {
    serde_json::to_value(tapmon_api::Groups::only(on)).expect("groups serialise")
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

/// A free port on loopback (bound and released, so taken by whoever binds next).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    l.local_addr().expect("local address")
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

/// A plain HTTP/1.0 GET on loopback: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8(raw)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, body.to_owned()))
}

/// Polls `check` until it returns Some, or fails the test naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Series lines of an exposition whose metric name is `family`.
pub fn series<'a>(exposition: &'a str, family: &str) -> Vec<&'a str> {
    exposition
        .lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

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
        let dir = root()
            .join("target/e2e")
            .join(format!("prometheus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data"))?;
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
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let addr = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
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

    /// Runs an instant query; the parsed `data.result`, or the error Prometheus gives.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Value>> {
        let (status, body) = get(
            self.addr,
            &format!("/api/v1/query?query={}", percent_encode(promql)),
        )
        .await?;
        let reply: Value =
            serde_json::from_str(&body).with_context(|| format!("HTTP {status}: {body}"))?;
        if reply["status"] != "success" {
            bail!("{promql}: {}: {}", reply["errorType"], reply["error"]);
        }
        Ok(reply["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
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

/// Percent-encodes a query-string value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The PromQL of every query in the catalogue's "Queries users run".
pub fn catalogue_queries() -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(root().join("docs/tap-metrics.md"))?;
    let section = text
        .split("## Queries users run")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .context("no queries section")?;
    Ok(section
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .filter_map(|l| {
            let (what, rest) = l.split_once(": `")?;
            Some((what.to_owned(), rest.strip_suffix('`')?.to_owned()))
        })
        .collect())
}

/// The Prometheus Operator release whose CRDs check what the operator publishes.
pub const PROMETHEUS_OPERATOR: &str = "v0.85.0";

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

/// The versions the fixture CRDs serve first: kube-state-metrics reads a `*` kind once per
/// served version, so its config pins them (`tapmon presets --version-of`).
const PINNED: [(&str, &str); 3] = [
    ("tekton.dev", "v1"),
    ("source.toolkit.fluxcd.io", "v1"),
    ("servicebinding.io", "v1"),
];

/// tapmon's presets for every group as kube-state-metrics' custom-resource-state config, with
/// the versions of multi-version kinds pinned.
pub fn ksm_config() -> String {
    let mut spec: Spec = tapmon_presets::spec_for(TapGroup::ALL).unwrap();
    for r in &mut spec.resources {
        if let Some((_, v)) = PINNED
            .iter()
            .find(|(g, _)| *g == r.group_version_kind.group)
        {
            r.group_version_kind.version = (*v).to_owned();
        }
    }
    serde_saphyr::to_string(&CustomResourceStateMetrics {
        kind: Some("CustomResourceStateMetrics".into()),
        spec,
    })
    .unwrap()
}

/// Builds (or finds cached) kube-state-metrics; its path.
pub async fn ksm_binary() -> anyhow::Result<PathBuf> {
    let out = tokio::task::spawn_blocking(|| {
        Command::new(root().join("e2e/cluster.sh"))
            .arg("build-ksm")
            .output()
    })
    .await??;
    if !out.status.success() {
        bail!(
            "building kube-state-metrics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
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

/// One series: its name and labels.
pub type SeriesKey = (String, BTreeMap<String, String>);

/// Parses a text exposition into series and values (comments skipped).
pub fn parse_exposition(text: &str) -> anyhow::Result<BTreeMap<SeriesKey, f64>> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => bail!("no value: {line}"),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '}' {
                    end = Some(i);
                    break;
                }
                if c == ',' || c == ' ' {
                    continue;
                }
                let name_start = i;
                let mut name_end = i;
                for (j, c) in chars.by_ref() {
                    if c == '=' {
                        name_end = j;
                        break;
                    }
                }
                let label = body[name_start..name_end].to_owned();
                if chars.next().map(|(_, c)| c) != Some('"') {
                    bail!("label value not quoted: {line}");
                }
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(other) => value.push(other),
                            None => bail!("dangling escape: {line}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(label, value);
            }
            let end = end.with_context(|| format!("unclosed labels: {line}"))?;
            rest = &body[end + 1..];
        }
        let value = rest.split_whitespace().next().context("no value")?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().with_context(|| format!("bad value in {line}"))?,
        };
        out.insert((name.to_owned(), labels), value);
    }
    Ok(out)
}
