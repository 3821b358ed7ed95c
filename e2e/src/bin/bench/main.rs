//! `make bench`: tapmon and kube-state-metrics, one after the other, on the same generated TAP
//! objects in a real control plane. Each runs alone on one core (the control plane and this
//! harness share the other) and is measured from /proc and over HTTP; the results go to
//! `docs/benchmarks.md` as ratios with the absolute numbers beside them.

// A benchmark harness: a failed step ends the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chart;
mod measure;
mod report;
mod scrape;
mod sides;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use tapmon_crs::Compiled;
use tapmon_e2e::generate::Generator;
use tapmon_e2e::{
    Cluster, apply, apply_cluster_monitor, install_crds, ksm_binary, ksm_config, root, tap_crds,
    yaml_files,
};

use crate::sides::{Programs, Side};

/// Benchmarks tapmon against kube-state-metrics on generated TAP objects.
#[derive(Parser)]
struct Args {
    /// Object counts to measure at, ascending (the cluster grows from one to the next).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000,200000")]
    objects: Vec<usize>,
    /// Timed scrapes per program, count and encoding.
    #[arg(long, default_value_t = 50)]
    scrapes: usize,
    /// Status updates timed until served, per program and count.
    #[arg(long, default_value_t = 200)]
    updates: usize,
    /// Rounds of 10% churn and of CRD delete/re-create for the memory test (0: skip it).
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// Objects during the churn and CRD rounds.
    #[arg(long, default_value_t = 1000)]
    churn_objects: usize,
    /// The tapmon binary (a release build).
    #[arg(long, default_value = "target/release/tapmon")]
    tapmon: PathBuf,
    /// Where to write the report (Markdown).
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
}

/// Writes the report to `out` and, with two object counts or more, the growth chart beside it
/// (`<name>-growth.svg`), which the report shows.
fn write(out: &std::path::Path, report: &mut report::Report) -> anyhow::Result<()> {
    if let Some(svg) = chart::growth(&report.scales) {
        let stem = out
            .file_stem()
            .map_or_else(|| "benchmarks".into(), |s| s.to_string_lossy().into_owned());
        let name = format!("{stem}-growth.svg");
        std::fs::write(out.with_file_name(&name), svg)?;
        report.chart = Some(name);
    }
    std::fs::write(out, report.markdown())?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.objects.windows(2).all(|w| w[0] < w[1]),
        "--objects must ascend"
    );
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(args, command))
}

/// The control plane's processes.
fn control_plane(cluster: &Cluster) -> anyhow::Result<Vec<u32>> {
    ["etcd", "kube-apiserver", "kube-controller-manager"]
        .iter()
        .map(|component| {
            let file = cluster.state_dir().join(format!("{component}.pid"));
            Ok(std::fs::read_to_string(&file)
                .with_context(|| file.display().to_string())?
                .trim()
                .parse()?)
        })
        .collect()
}

/// Pins the control plane and this harness to `cpus`: both cores while writing objects, core 0
/// while a program is measured on core 1.
fn pin_harness(cluster: &Cluster, cpus: &str) -> anyhow::Result<()> {
    for pid in control_plane(cluster)? {
        tapmon_e2e::probe::pin(pid, cpus)?;
    }
    tapmon_e2e::probe::pin(std::process::id(), cpus)
}

/// Control-plane CPU use (share of one core, over a second) below which it counts as idle.
const IDLE_SHARE: f64 = 0.1;

/// Waits (up to five minutes) until the control plane is idle for two seconds in a row: after
/// objects are written, the garbage collector and etcd keep its core busy for a while, and the
/// harness that scrapes shares that core. Returns how long it took.
async fn control_plane_idle(cluster: &Cluster) -> anyhow::Result<std::time::Duration> {
    let probes = control_plane(cluster)?
        .into_iter()
        .map(tapmon_e2e::probe::Probe::new)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cpu = || -> anyhow::Result<std::time::Duration> {
        probes.iter().map(|p| Ok(p.read()?.cpu)).sum()
    };
    let started = std::time::Instant::now();
    let mut idle_seconds = 0;
    while idle_seconds < 2 && started.elapsed() < std::time::Duration::from_secs(300) {
        let before = cpu()?;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let share = (cpu()? - before).as_secs_f64();
        idle_seconds = if share < IDLE_SHARE {
            idle_seconds + 1
        } else {
            0
        };
    }
    Ok(started.elapsed())
}

async fn run(args: Args, command: String) -> anyhow::Result<()> {
    let tapmon = args.tapmon.canonicalize().with_context(|| {
        format!(
            "{} (run `cargo build --release -p tapmon`)",
            args.tapmon.display()
        )
    })?;
    let ksm = ksm_binary().await?;
    let cluster = Cluster::up("bench").await?;
    install_crds(&cluster.admin, &tap_crds()?).await?;
    // tapmon's CRDs, TapMonitor and ClusterTapMonitor, as the chart installs them.
    install_crds(&cluster.admin, &yaml_files(&root().join("crds"))?).await?;
    apply(
        &cluster.admin,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tapmon-system"}}),
        None,
    )
    .await?;
    apply_cluster_monitor(&cluster.admin, "tap", json!({})).await?;
    let ksm_config_path = cluster.state_dir().join("ksm-config.yaml");
    std::fs::write(&ksm_config_path, ksm_config())?;
    let (compiled, errors) =
        Compiled::compile(&tapmon_presets::spec_for(tapmon_presets::TapGroup::ALL)?);
    anyhow::ensure!(errors.is_empty(), "presets do not compile: {errors:?}");
    let exported =
        tapmon_presets::export_spec(tapmon_presets::TapGroup::ALL, &Default::default())?.spec;
    let (compiled_ksm, errors) = Compiled::compile(&exported);
    anyhow::ensure!(
        errors.is_empty(),
        "exported presets do not compile: {errors:?}"
    );
    let counts = |generator: &Generator| measure::Counts {
        tapmon: generator.expected_series(&compiled),
        ksm_config: generator.expected_series(&compiled_ksm),
    };

    let programs = Programs {
        cluster: &cluster,
        tapmon: &tapmon,
        ksm: &ksm,
        ksm_config: &ksm_config_path,
    };
    let mut generator = Generator::new(cluster.admin.clone()).await?;
    let mut report = report::Report::new(command, &cluster).await?;

    if args.rounds > 0 {
        eprintln!(
            "bench: {} objects, {} rounds of churn and CRD re-creation",
            args.churn_objects, args.rounds
        );
        let started = std::time::Instant::now();
        generator.grow(args.churn_objects).await?;
        eprintln!(
            "bench: generated {} objects in {:?}",
            args.churn_objects,
            started.elapsed()
        );
        let expected = counts(&generator);
        // Churn and CRD rounds write all the time: the control plane keeps both cores.
        report.leak = measure::leak(&programs, &mut generator, expected, args.rounds).await?;
    }
    for &n in &args.objects {
        let started = std::time::Instant::now();
        pin_harness(&cluster, "0-1")?;
        generator.grow(n).await?;
        eprintln!(
            "bench: {} objects ({} live) in {:?}",
            n,
            generator.live().len(),
            started.elapsed()
        );
        let expected = counts(&generator);
        pin_harness(&cluster, "0")?;
        let mut pair = Vec::new();
        for side in [Side::Tapmon, Side::Ksm] {
            let waited = control_plane_idle(&cluster).await?;
            eprintln!("bench: control plane idle after {waited:?}");
            let result = measure::side(
                &programs,
                &generator,
                side,
                expected,
                args.scrapes,
                args.updates,
            )
            .await
            .with_context(|| format!("{} at {n} objects", side.name()))?;
            eprintln!("bench: {result:?}");
            pair.push(result);
        }
        report.scales.push((generator.live().len(), pair));
        // Written after every scale, so a long run leaves what it has measured.
        write(&args.out, &mut report)?;
    }
    write(&args.out, &mut report)?;
    println!("{}", report.markdown());
    Ok(())
}
