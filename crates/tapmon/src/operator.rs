//! `tapmon run`: logging, the API client and signals around the operator.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tapmon_operator::{InitialList, MetricsAuth, RunConfig, Shard};
use tracing_subscriber::EnvFilter;

/// Flags of `tapmon run`.
#[derive(Args)]
pub struct RunArgs {
    /// Kubeconfig to use; in-cluster config or $KUBECONFIG when absent.
    #[arg(long, env = "TAPMON_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Where to serve /monitors/{namespace}/{name}/metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:8080")]
    metrics_addr: SocketAddr,
    /// Where to serve the operator's own metrics (/metrics).
    #[arg(long, default_value = "127.0.0.1:8081")]
    telemetry_addr: SocketAddr,
    /// Namespace of the operator's Service, which published ServiceMonitors select.
    #[arg(long, env = "POD_NAMESPACE", default_value = "tapmon-system")]
    namespace: String,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// How watches fetch their initial state: one streaming watch (Kubernetes 1.32+), paged
    /// lists, or auto (streaming when the server is 1.32 or later).
    #[arg(long, value_enum, default_value_t = ListMode::Auto)]
    initial_list: ListMode,
    /// Who may read a monitor's series: `kubernetes` (a bearer token whose user may get the
    /// monitor's `metrics` subresource; HTTPS) or `none` (anyone who reaches the port).
    #[arg(long, value_enum, default_value_t = AuthMode::Kubernetes)]
    metrics_auth: AuthMode,
    /// Serving certificate (PEM) of the metrics port, read again when it changes; with
    /// `--metrics-auth kubernetes` and none given, a self-signed one is made at start.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `--tls-cert-file`.
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// Most series one monitor serves: the default of `spec.seriesLimit` and its ceiling.
    #[arg(long, default_value_t = tapmon_operator::validate::Limits::default().series)]
    series_limit: usize,
    /// Elect one replica (by a Lease in `--namespace`) to write status, Events and published
    /// objects; every replica serves. `false` only when one replica runs.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// This replica's name in the Lease; the pod's name in a cluster.
    #[arg(long, env = "POD_NAME")]
    leader_election_id: Option<String>,
    /// Open connections the metrics port holds at most; more are closed at once.
    #[arg(long, default_value_t = tapmon_operator::http::Limits::default().max_connections)]
    max_connections: usize,
    /// Scrapes sent at once at most; more wait briefly, then get 503 with Retry-After.
    #[arg(long, default_value_t = tapmon_operator::http::Limits::default().max_concurrent_scrapes)]
    max_concurrent_scrapes: usize,
    /// Seconds the ports keep accepting after SIGTERM while `/readyz` says 503, so that clients
    /// routed by readiness move away first; then in-flight requests finish and the process exits.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = tapmon_operator::http::Limits::default().stop_delay.as_secs(),
        // Leaves the drain its time within the 20 s shutdown bound.
        value_parser = clap::value_parser!(u64).range(0..=10)
    )]
    shutdown_delay: u64,
    /// Split the objects into this many shards, one per replica, each scraped as its own target
    /// (see `--shard`). 1: every replica serves every object.
    #[arg(long, default_value_t = 1)]
    total_shards: u32,
    /// Which shard this replica serves, 0 to `--total-shards` - 1, or `auto`: the ordinal of a
    /// StatefulSet pod, read from its name (`$POD_NAME`, `tapmon-2` serves shard 2).
    #[arg(long, default_value = "0", value_parser = parse_shard)]
    shard: ShardArg,
    /// A label for every published ServiceMonitor, PrometheusRule and dashboard ConfigMap, as
    /// KEY=VALUE; repeatable. kube-prometheus-stack selects by `release=<its release name>`.
    /// A monitor's own labels for an object win over these.
    #[arg(long = "published-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    published_labels: Vec<(String, String)>,
}

/// A Kubernetes label as KEY=VALUE, checked as the API server would check it, so that a typo
/// stops the operator at start rather than failing every monitor's publishing.
fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let segment = |s: &str, max: usize| {
        s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    let prefix_ok = prefix.is_none_or(|p| {
        p.len() <= 253
            && p.split('.')
                .all(|part| segment(part, 63) && !part.contains('_'))
    });
    if !segment(name, 63) || !prefix_ok {
        return Err(format!("{key:?} is not a valid label key"));
    }
    if !value.is_empty() && !segment(value, 63) {
        return Err(format!("{value:?} is not a valid label value"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// `--shard`: a number or `auto`.
#[derive(Clone, Copy)]
enum ShardArg {
    Index(u32),
    Auto,
}

fn parse_shard(text: &str) -> Result<ShardArg, String> {
    match text {
        "auto" => Ok(ShardArg::Auto),
        n => n
            .parse()
            .map(ShardArg::Index)
            .map_err(|_| format!("{text:?} is neither a shard number nor `auto`")),
    }
}

impl RunArgs {
    /// The shard this replica serves; an error names the setting that is wrong.
    fn shard(&self) -> anyhow::Result<Shard> {
        let shard = match self.shard {
            ShardArg::Index(i) => Shard::new(i, self.total_shards)?,
            ShardArg::Auto => {
                let pod = self
                    .leader_election_id
                    .as_deref()
                    .context("--shard auto needs the pod's name in $POD_NAME")?;
                Shard::from_pod_name(pod, self.total_shards)?
            }
        };
        Ok(shard)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthMode {
    Kubernetes,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListMode {
    Auto,
    Streaming,
    Paged,
}

/// Runs the operator until SIGINT or SIGTERM.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    // Settings first: a wrong one stops the operator before it connects anywhere.
    let shard = args.shard()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        tracing::info!(version = %*crate::VERSION, "tapmon operator starting");
        let client = client(args.kubeconfig.as_deref()).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop.send(());
        });
        let namespace = args.namespace.clone();
        let config = RunConfig {
            metrics_addr: args.metrics_addr,
            telemetry_addr: args.telemetry_addr,
            initial_list: match args.initial_list {
                ListMode::Auto => None,
                ListMode::Streaming => Some(InitialList::Streaming),
                ListMode::Paged => Some(InitialList::Paged),
            },
            service: tapmon_operator::publish::OperatorService {
                namespace: namespace.clone(),
                published_labels: args.published_labels.into_iter().collect(),
                ..Default::default()
            },
            metrics_auth: match args.metrics_auth {
                AuthMode::Kubernetes => MetricsAuth::Kubernetes,
                AuthMode::None => MetricsAuth::None,
            },
            tls_files: args.tls_cert_file.zip(args.tls_key_file),
            limits: tapmon_operator::validate::Limits {
                series: args.series_limit,
            },
            http: tapmon_operator::http::Limits {
                max_connections: args.max_connections,
                max_concurrent_scrapes: args.max_concurrent_scrapes,
                stop_delay: std::time::Duration::from_secs(args.shutdown_delay),
                ..Default::default()
            },
            leader: args.leader_election.then(|| {
                let identity = args.leader_election_id.clone().unwrap_or_else(|| {
                    // Out of a cluster: the host and process make a name no other replica has.
                    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
                    format!("{}-{}", host.trim(), std::process::id())
                });
                tapmon_operator::leader::LeaderConfig::new(&namespace, &identity)
            }),
            shard,
        };
        tapmon_operator::run(client, config, async move {
            let _ = stopped.await;
        })
        .await?;
        Ok(())
    })
}

async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("using {}", path.display()))?
        }
        None => Config::infer()
            .await
            .context("no in-cluster config and no usable $KUBECONFIG")?,
    };
    Client::try_from(config).context("building the API client")
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::parse_label;

    #[test]
    fn published_labels_are_checked_as_the_api_server_checks_them() {
        assert_eq!(
            parse_label("release=kube-prometheus-stack"),
            Ok(("release".into(), "kube-prometheus-stack".into()))
        );
        assert_eq!(
            parse_label("example.com/team="),
            Ok(("example.com/team".into(), String::new()))
        );
        for bad in [
            "release",
            "=x",
            "release=not valid!",
            "-release=x",
            "a_b.c/name=x",
            &format!("k={}", "v".repeat(64)),
        ] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
    }
}
