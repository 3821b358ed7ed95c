//! The container image run as the kubelet would run a Deployment's container, without a
//! kubelet: its layers unpacked into a root filesystem, the image's entrypoint with the
//! container's args and env, as the container's user, read-only root, the ServiceAccount token
//! mounted where in-cluster clients look for it, in its own user, PID, IPC and UTS namespaces
//! (`bwrap`). The network is the host's loopback, so listen addresses are moved to free ports
//! on 127.0.0.1; everything else is as the manifest says.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::fixtures::root;
use crate::http::{Client as HttpClient, free_port};
use crate::tls::insecure_client;

/// The archive `make image` writes for this version, or `$TAPMON_IMAGE`.
pub fn archive() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("TAPMON_IMAGE") {
        return Ok(PathBuf::from(path));
    }
    let path = root().join(format!(
        "target/image/tapmon-{}.oci.tar",
        env!("CARGO_PKG_VERSION")
    ));
    if !path.exists() {
        bail!(
            "{} not built: run `make image` (or set TAPMON_IMAGE)",
            path.display()
        );
    }
    Ok(path)
}

/// An image unpacked from an OCI image layout archive.
pub struct Image {
    /// The root filesystem, every layer applied.
    pub rootfs: PathBuf,
    /// The image configuration (`config.Entrypoint`, `config.User`, `config.Labels`, ...).
    pub config: Value,
    /// Bytes of its layers as stored and pulled (compressed).
    pub compressed_size: u64,
    /// Every path in the root filesystem, relative, sorted.
    pub files: Vec<String>,
}

fn blob<'a>(blobs: &'a BTreeMap<String, Vec<u8>>, digest: &str) -> anyhow::Result<&'a [u8]> {
    let path = format!("blobs/{}", digest.replacen(':', "/", 1));
    blobs
        .get(&path)
        .map(Vec::as_slice)
        .with_context(|| format!("no blob {digest} in the archive"))
}

impl Image {
    /// Unpacks `archive` (an OCI image layout, tarred) into `dir`: the linux/amd64 image of its
    /// index, layers applied in order.
    pub fn unpack(archive: &Path, dir: &Path) -> anyhow::Result<Image> {
        let mut blobs = BTreeMap::new();
        let mut outer = tar::Archive::new(
            std::fs::File::open(archive).with_context(|| archive.display().to_string())?,
        );
        for entry in outer.entries()? {
            let mut entry = entry?;
            let path = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            blobs.insert(path, bytes);
        }
        let index: Value =
            serde_json::from_slice(blobs.get("index.json").context("no index.json")?)?;
        let mut manifest: Value = serde_json::from_slice(blob(
            &blobs,
            index["manifests"][0]["digest"]
                .as_str()
                .context("index without manifests")?,
        )?)?;
        // An index of platforms: take linux/amd64.
        if manifest["manifests"].is_array() {
            let digest = manifest["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| {
                    m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64"
                })
                .and_then(|m| m["digest"].as_str())
                .context("no linux/amd64 image in the index")?
                .to_owned();
            manifest = serde_json::from_slice(blob(&blobs, &digest)?)?;
        }
        let config: Value = serde_json::from_slice(blob(
            &blobs,
            manifest["config"]["digest"]
                .as_str()
                .context("manifest without config")?,
        )?)?;
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs)?;
        let mut compressed_size = 0;
        for layer in manifest["layers"]
            .as_array()
            .context("manifest without layers")?
        {
            let bytes = blob(&blobs, layer["digest"].as_str().context("layer digest")?)?;
            compressed_size += bytes.len() as u64;
            let media = layer["mediaType"].as_str().unwrap_or_default();
            let reader: Box<dyn Read> = if media.ends_with("gzip") {
                Box::new(flate2::read::GzDecoder::new(bytes))
            } else {
                Box::new(bytes)
            };
            let mut layer = tar::Archive::new(reader);
            layer.set_preserve_permissions(true);
            layer.unpack(&rootfs)?;
        }
        let mut files = Vec::new();
        let mut stack = vec![rootfs.clone()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d)? {
                let path = entry?.path();
                files.push(path.strip_prefix(&rootfs)?.to_string_lossy().into_owned());
                if path.is_dir() {
                    stack.push(path);
                }
            }
        }
        files.sort();
        Ok(Image {
            rootfs,
            config,
            compressed_size,
            files,
        })
    }

    /// The image's labels.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.config["config"]["Labels"][name].as_str()
    }
}

/// One container of a Deployment, running from an unpacked image.
pub struct Container {
    child: Child,
    /// Its process ID (bwrap's; the container's process dies with it).
    pub pid: u32,
    /// Where each named container port listens now.
    pub ports: BTreeMap<String, SocketAddr>,
    /// The container's output.
    pub log: PathBuf,
    spec: Value,
}

/// The address in a `--flag=HOST:PORT` argument, when it is one.
fn listen_port(arg: &str) -> Option<(&str, u16)> {
    let (flag, addr) = arg.split_once('=')?;
    let addr: SocketAddr = addr.parse().ok()?;
    flag.starts_with("--").then_some((flag, addr.port()))
}

impl Container {
    /// Runs `container` (a Deployment's container spec) from `image` in `namespace`, as
    /// ServiceAccount `service_account`, as pod `pod`: the kubelet's part, done by hand.
    pub async fn start(
        image: &Image,
        container: &Value,
        cluster: &Cluster,
        namespace: &str,
        service_account: &str,
        pod: &str,
    ) -> anyhow::Result<Container> {
        let run_dir = image.rootfs.with_file_name(format!("run-{pod}"));
        std::fs::create_dir_all(&run_dir)?;
        // The projected ServiceAccount volume.
        let secrets = run_dir.join("serviceaccount");
        std::fs::create_dir_all(&secrets)?;
        let token = cluster
            .service_account_token(namespace, service_account)
            .await?;
        std::fs::write(secrets.join("token"), token)?;
        std::fs::copy(cluster.env("CA_CERT")?, secrets.join("ca.crt"))?;
        std::fs::write(secrets.join("namespace"), namespace)?;
        // Mount points, as a runtime makes them in the container's root.
        for dir in [
            "proc",
            "dev",
            "var/run/secrets/kubernetes.io/serviceaccount",
        ] {
            std::fs::create_dir_all(image.rootfs.join(dir))?;
        }

        let entrypoint: Vec<String> = match container["command"].as_array() {
            Some(command) => command
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect(),
            None => serde_json::from_value(image.config["config"]["Entrypoint"].clone())
                .context("the image has no entrypoint")?,
        };
        // Listen addresses move to free loopback ports; the rest of the args stay as written.
        let mut moved: BTreeMap<u16, SocketAddr> = BTreeMap::new();
        let mut args = Vec::new();
        for arg in container["args"].as_array().into_iter().flatten() {
            let arg = arg.as_str().context("a non-string arg")?;
            match listen_port(arg) {
                Some((flag, port)) => {
                    let addr = free_port();
                    moved.insert(port, addr);
                    args.push(format!("{flag}={addr}"));
                }
                None => args.push(arg.to_owned()),
            }
        }
        let mut ports = BTreeMap::new();
        for port in container["ports"].as_array().into_iter().flatten() {
            let name = port["name"].as_str().context("an unnamed port")?;
            let number = port["containerPort"].as_u64().context("containerPort")?;
            let addr = u16::try_from(number)
                .ok()
                .and_then(|n| moved.get(&n))
                .with_context(|| format!("port {name} ({number}) is not listened on by any arg"))?;
            ports.insert(name.to_owned(), *addr);
        }

        let mut env: Vec<(String, String)> = image.config["config"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        env.push(("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()));
        env.push((
            "KUBERNETES_SERVICE_PORT".into(),
            cluster.env("APISERVER_PORT")?.into(),
        ));
        env.push(("HOSTNAME".into(), pod.into()));
        for var in container["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().context("env without name")?;
            let value = match (
                &var["value"],
                var["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
            ) {
                (Value::String(v), _) => v.clone(),
                (_, Some("metadata.namespace")) => namespace.to_owned(),
                (_, Some("metadata.name")) => pod.to_owned(),
                _ => {
                    bail!("env {name}: only values and the pod's name and namespace are supported")
                }
            };
            env.push((name.to_owned(), value));
        }

        let security = &container["securityContext"];
        let (image_user, image_group) = image.config["config"]["User"]
            .as_str()
            .and_then(|u| u.split_once(':'))
            .unwrap_or(("0", "0"));
        let uid = security["runAsUser"]
            .as_u64()
            .map_or(image_user.to_owned(), |u| u.to_string());
        let gid = security["runAsGroup"]
            .as_u64()
            .map_or(image_group.to_owned(), |g| g.to_string());
        let read_only = security["readOnlyRootFilesystem"].as_bool() == Some(true);
        let workdir = image.config["config"]["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/");

        let log = run_dir.join("container.log");
        let file = std::fs::File::create(&log)?;
        let mut bwrap = Command::new("bwrap");
        bwrap
            .args(["--unshare-user", "--uid", &uid, "--gid", &gid])
            .args([
                "--unshare-pid",
                "--unshare-ipc",
                "--unshare-uts",
                "--hostname",
                pod,
            ])
            .args(["--die-with-parent", "--new-session", "--clearenv"])
            .arg(if read_only { "--ro-bind" } else { "--bind" })
            .arg(&image.rootfs)
            .arg("/")
            .args(["--proc", "/proc", "--dev", "/dev"])
            .arg("--ro-bind")
            .arg(&secrets)
            .arg("/var/run/secrets/kubernetes.io/serviceaccount")
            .args(["--chdir", workdir]);
        for (k, v) in &env {
            bwrap.args(["--setenv", k, v]);
        }
        bwrap
            .arg("--")
            .args(&entrypoint)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = bwrap
            .spawn()
            .context("starting bwrap (Debian package bubblewrap)")?;
        Ok(Container {
            pid: child.id(),
            child,
            ports,
            log,
            spec: container.clone(),
        })
    }

    /// What the kubelet's `probe` (`livenessProbe`, `readinessProbe`) of the container gets:
    /// its HTTP status, HTTPS without checking the certificate, as the kubelet does.
    pub async fn probe(&self, probe: &str) -> anyhow::Result<u16> {
        let get = &self.spec[probe]["httpGet"];
        let path = get["path"].as_str().context("probe without path")?;
        let port = get["port"].as_str().context("probe port by name")?;
        let addr = *self
            .ports
            .get(port)
            .with_context(|| format!("no port {port}"))?;
        let mut client = match get["scheme"].as_str() {
            Some("HTTPS") => HttpClient::tls(insecure_client()?),
            _ => HttpClient::default(),
        };
        Ok(client.request(addr, path, &[], false).await?.status)
    }

    /// Waits until `probe` answers 200.
    pub async fn until_probe(&mut self, probe: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.probe(probe).await.ok() == Some(200) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the container exited ({status}): {}", self.output());
            }
            if Instant::now() > deadline {
                bail!("{probe} did not pass in {timeout:?}: {}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The end of the container's output.
    pub fn output(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text.get(start..).unwrap_or(&text).to_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // bwrap dies, and with it the container (--die-with-parent).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
