//! A control plane on loopback (`e2e/cluster.sh`), one per test, torn down on drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::fixtures::root;

/// A control plane on loopback, torn down on drop.
pub struct Cluster {
    pub(crate) dir: PathBuf,
    env: BTreeMap<String, String>,
    /// Cluster-admin client.
    pub admin: Client,
}

/// Runs `e2e/cluster.sh args...`; its stdout, or its stderr as the error.
pub(crate) fn cluster_sh(args: &[&str]) -> anyhow::Result<String> {
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
    Ok(String::from_utf8(out.stdout)?)
}

/// What `cluster.sh build...` built (or found cached): the path it prints last.
pub fn built(command: &str) -> anyhow::Result<PathBuf> {
    let out = cluster_sh(&[command])?;
    let path = out.lines().last().context("cluster.sh printed no path")?;
    Ok(PathBuf::from(path.trim()))
}

pub(crate) async fn client_from(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

impl Cluster {
    /// Starts a control plane (building its binary first if needed).
    pub async fn up(name: &str) -> anyhow::Result<Cluster> {
        Self::up_with_apiserver_flags(name, "").await
    }

    /// Starts a control plane whose kube-apiserver gets `flags` too (space-separated).
    pub async fn up_with_apiserver_flags(name: &str, flags: &str) -> anyhow::Result<Cluster> {
        let dir = root()
            .join("target/e2e")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let arg = dir.to_string_lossy().to_string();
        let flags = flags.to_owned();
        tokio::task::spawn_blocking(move || {
            let out = Command::new(root().join("e2e/cluster.sh"))
                .args(["up", &arg])
                .env("TAPMON_E2E_APISERVER_FLAGS", flags)
                .output()
                .context("running e2e/cluster.sh")?;
            if !out.status.success() {
                bail!(
                    "cluster.sh up {arg} failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            anyhow::Ok(())
        })
        .await??;
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

    /// A value of the cluster's `env` file: `key` without the `TAPMON_E2E_` prefix, such as
    /// `APISERVER_PORT` or `CA_CERT`.
    pub fn env(&self, key: &str) -> anyhow::Result<&str> {
        self.env
            .get(&format!("TAPMON_E2E_{key}"))
            .map(String::as_str)
            .with_context(|| format!("no TAPMON_E2E_{key} in the cluster's env"))
    }

    /// Runs the control plane's own `kubectl` as cluster-admin; its stdout, or its stderr as
    /// the error.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = tokio::process::Command::new(self.env("BIN")?);
        command
            .arg("kubectl")
            .arg(format!("--kubeconfig={}", self.kubeconfig().display()))
            .args(args);
        let out = command.output().await.context("running kubectl")?;
        if !out.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Restarts kube-apiserver with the same flags and port, and waits until it is ready.
    pub async fn restart_apiserver(&self) -> anyhow::Result<()> {
        let arg = self.dir.to_string_lossy().to_string();
        tokio::task::spawn_blocking(move || cluster_sh(&["restart-apiserver", &arg]).map(drop))
            .await?
    }

    /// A token of ServiceAccount `namespace/name` (TokenRequest, an hour long), creating the
    /// ServiceAccount when it does not exist.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.admin.clone(), namespace);
        if sas.get_opt(name).await?.is_none() {
            let sa = ServiceAccount {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            };
            sas.create(&PostParams::default(), &sa).await?;
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        Ok(sas
            .create_token_request(name, &PostParams::default(), &request)
            .await?
            .status
            .context("TokenRequest without status")?
            .token)
    }

    /// A kubeconfig that authenticates as ServiceAccount `namespace/name` with a TokenRequest
    /// token.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<PathBuf> {
        let token = self.service_account_token(namespace, name).await?;
        let kubeconfig = self.dir.join(format!("{namespace}-{name}.kubeconfig"));
        let ca = &self.env["TAPMON_E2E_CA_CERT"];
        let server = &self.env["TAPMON_E2E_SERVER"];
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}\nusers:\n- name: sa\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: sa\n  context: {{cluster: e2e, user: sa}}\ncurrent-context: sa\n"
            ),
        )?;
        Ok(kubeconfig)
    }

    /// A client that authenticates as `namespace/name` with a TokenRequest token.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Client> {
        client_from(&self.service_account_kubeconfig(namespace, name).await?).await
    }

    /// Stops kube-apiserver (SIGTERM, or SIGKILL with `kill`) and leaves it down.
    pub async fn stop_apiserver(&self, kill: bool) -> anyhow::Result<()> {
        let arg = self.dir.to_string_lossy().to_string();
        tokio::task::spawn_blocking(move || {
            if kill {
                cluster_sh(&["stop-apiserver", "--kill", &arg])
            } else {
                cluster_sh(&["stop-apiserver", &arg])
            }
            .map(drop)
        })
        .await?
    }

    /// Starts kube-apiserver again and waits until it is ready.
    pub async fn start_apiserver(&self) -> anyhow::Result<()> {
        let arg = self.dir.to_string_lossy().to_string();
        tokio::task::spawn_blocking(move || cluster_sh(&["start-apiserver", &arg]).map(drop))
            .await?
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
