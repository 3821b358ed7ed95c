//! `tapmon`: Prometheus metrics for Tanzu Application Platform.

mod commands;
mod load;
mod operator;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tapmon_exposition::Format;
use tapmon_presets::TapGroup;

// The static (musl) build: musl's own allocator serialises the runtime's threads.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `--version` prints after the name: the crate's version, and the source revision when the
/// build was given one (`TAPMON_REVISION`, as `make image` and releases do).
pub(crate) static VERSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| match option_env!("TAPMON_REVISION") {
        Some(revision) if !revision.is_empty() => {
            format!("{} (revision {revision})", env!("CARGO_PKG_VERSION"))
        }
        _ => env!("CARGO_PKG_VERSION").to_owned(),
    });

#[derive(Parser)]
#[command(
    name = "tapmon",
    version = VERSION.as_str(),
    about = "Prometheus metrics for Tanzu Application Platform resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: reconcile TapMonitors and serve their metrics.
    Run(operator::RunArgs),
    /// Print the metrics saved objects would produce (e.g. `kubectl get -o yaml` output).
    Render {
        /// A TapMonitor manifest or a kube-state-metrics config; all presets when absent.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A YAML or JSON file, or a directory of them.
        #[arg(long)]
        objects: PathBuf,
        /// Exposition format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Print the built-in presets as a config kube-state-metrics itself accepts.
    Presets {
        /// Only these groups (repeatable); all when absent.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<TapGroup>,
        /// Read API_GROUP at VERSION instead of its TAP 1.x storage version, e.g.
        /// `tekton.dev=v1beta1` (repeatable).
        #[arg(long = "version-of", value_name = "API_GROUP=VERSION")]
        versions: Vec<String>,
    },
    /// Print the recording and alerting rules, as a Prometheus rule file.
    Rules {
        /// Only these groups (repeatable); all when absent.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<TapGroup>,
        /// Limit every selector to one TapMonitor's series (`tap_monitor="NAMESPACE/NAME"`).
        #[arg(long, value_name = "NAMESPACE/NAME")]
        monitor: Option<String>,
    },
    /// Print a generated Grafana dashboard (JSON), for importing by hand.
    Dashboards {
        /// Which dashboard.
        #[arg(long, value_enum, default_value_t = DashboardKind::Overview)]
        dashboard: DashboardKind,
        /// Only these groups (repeatable); all when absent.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<TapGroup>,
        /// Limit every query to one TapMonitor's series (`tap_monitor="NAMESPACE/NAME"`).
        #[arg(long, value_name = "NAMESPACE/NAME")]
        monitor: Option<String>,
    },
    /// Print the reference of every built-in metric family (Markdown).
    Docs,
    /// Print the TapMonitor and ClusterTapMonitor CustomResourceDefinitions.
    Crd {
        /// Write each into its own file in this directory (as `crds/` holds them) instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Validate a TapMonitor manifest, a kube-state-metrics config, or the values file of the
    /// kube-state-metrics or kube-prometheus-stack chart holding one.
    Check {
        /// The file to check.
        file: PathBuf,
        /// Fields the format does not read (kube-state-metrics skips them) are errors, not
        /// warnings.
        #[arg(long)]
        strict: bool,
    },
    /// Print a TapMonitor that reads what a kube-state-metrics config (or a chart values file
    /// holding one) reads.
    Migrate {
        /// The config or values file.
        file: PathBuf,
        /// Name of the monitor.
        #[arg(long, default_value = "migrated")]
        name: String,
        /// A TapMonitor in this namespace (it reads only there); a ClusterTapMonitor when absent.
        #[arg(long)]
        namespace: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DashboardKind {
    /// The TAP overview: one section per group.
    Overview,
    /// One workload's supply chain, stage by stage.
    SupplyChain,
    /// DORA metrics: the four keys, per workload, and the durations behind them.
    Dora,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.
    Openmetrics,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Run(args) => {
            drop(out);
            operator::run(args)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Render {
            config,
            objects,
            format,
        } => {
            let format = match format {
                OutputFormat::Text => Format::Text,
                OutputFormat::Openmetrics => Format::OpenMetrics,
            };
            let mut warnings = Vec::new();
            commands::render(config.as_deref(), &objects, format, &mut out, &mut warnings)?;
            for w in &warnings {
                eprintln!("warning: {w}");
            }
        }
        Command::Presets { groups, versions } => {
            let mut pinned = BTreeMap::new();
            for v in versions {
                let Some((group, version)) = v.split_once('=') else {
                    bail!("--version-of takes API_GROUP=VERSION, got {v:?}");
                };
                pinned.insert(group.to_owned(), version.to_owned());
            }
            commands::presets(&groups, &pinned, &mut out)?;
        }
        Command::Rules { groups, monitor } => {
            commands::rules(&groups, monitor.as_deref(), &mut out)?
        }
        Command::Dashboards {
            dashboard,
            groups,
            monitor,
        } => {
            let groups = if groups.is_empty() {
                TapGroup::ALL.to_vec()
            } else {
                groups
            };
            let board = match dashboard {
                DashboardKind::Overview => {
                    tapmon_publish::dashboards::overview(&groups, monitor.as_deref())
                }
                DashboardKind::SupplyChain => {
                    tapmon_publish::dashboards::supply_chain(&groups, monitor.as_deref())
                }
                DashboardKind::Dora => {
                    tapmon_publish::dashboards::dora(&groups, monitor.as_deref())
                }
            };
            serde_json::to_writer_pretty(&mut out, &board.json)?;
            writeln!(out)?;
        }
        Command::Docs => commands::docs(&mut out)?,
        Command::Crd { dir } => {
            for (i, (file, text)) in tapmon_api::crd_yaml()?.into_iter().enumerate() {
                match &dir {
                    Some(dir) => std::fs::write(dir.join(&file), text)
                        .with_context(|| format!("writing {}", dir.join(&file).display()))?,
                    None => {
                        if i > 0 {
                            writeln!(out, "---")?;
                        }
                        out.write_all(text.as_bytes())?;
                    }
                }
            }
        }
        Command::Check { file, strict } => {
            let findings = commands::check(&file, strict, &mut out)?;
            for w in &findings.warnings {
                eprintln!("warning: {w}");
            }
            for p in &findings.problems {
                eprintln!("{p}");
            }
            if !findings.problems.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Migrate {
            file,
            name,
            namespace,
        } => {
            for dropped in commands::migrate(&file, &name, namespace.as_deref(), &mut out)? {
                eprintln!("warning: dropped {dropped}: not a field of the format");
            }
        }
    }
    out.flush().context("writing output")?;
    Ok(ExitCode::SUCCESS)
}
