//! `make demo`: a local control plane with the sample TAP environment, the operator running as
//! its ServiceAccount, a TapMonitor for every group, and Prometheus scraping it. Prints where to
//! look and runs until Ctrl-C, then tears everything down.

use std::time::Duration;

use anyhow::Context;
use tapmon_e2e::{
    Cluster, Operator, Prometheus, ScrapeTarget, apply_files, cluster_monitors, eventually,
    load_tap_environment, operator_identity, root,
};
use tapmon_presets::TapGroup;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    println!(
        "Starting a control plane on loopback (the first run builds it from Go modules: minutes)..."
    );
    let cluster = Cluster::up("demo").await?;
    let objects = load_tap_environment(&cluster.admin).await?;
    println!("Loaded the sample TAP environment: {objects} objects of 21 kinds.");
    let operator = Operator::start(operator_identity(&cluster).await?).await;
    apply_files(
        &cluster.admin,
        &[root().join("config/samples/clustertapmonitor.yaml")],
        None,
    )
    .await?;
    let path = "/clustermonitors/tap/metrics";
    // The rules the monitor would publish as a PrometheusRule, evaluated as kube-prometheus-stack's
    // Prometheus would (there is no Prometheus Operator here to load them).
    let groups = tapmon_publish::rules::rule_groups(&TapGroup::ALL, Some("tap"));
    let rules = serde_json::to_string(&serde_json::json!({ "groups": groups }))?;
    let prometheus = Prometheus::start_with_rules(
        "demo",
        &[ScrapeTarget {
            job: "tapmon",
            addr: operator.metrics,
            path,
            tap_monitor: Some("tap"),
        }],
        Some(&rules),
    )
    .await
    .context("starting Prometheus")?;

    let monitors = cluster_monitors(&cluster.admin);
    let status = eventually("TapMonitor tap Ready", Duration::from_secs(120), || async {
        let m = monitors.get("tap").await.ok()?;
        let status = m.data.get("status")?.clone();
        tapmon_e2e::status::ready(&status).then_some(status)
    })
    .await;

    println!();
    println!("tapmon demo is running.");
    println!(
        "  Metrics of ClusterTapMonitor tap:         http://{}{path}",
        operator.metrics
    );
    println!(
        "  Operator self-metrics:                    http://{}/metrics",
        operator.telemetry
    );
    println!(
        "  Prometheus:                               http://{}/graph",
        prometheus.addr
    );
    println!("    try: count by (type) (cartographer_workload_info)");
    println!("         tap:workload_stage:status   (a recording rule; alerts: /alerts)");
    println!(
        "  kubectl:  export KUBECONFIG={}",
        cluster.kubeconfig().display()
    );
    println!(
        "            {} kubectl {} get tapmon -A",
        root().join("e2e/cluster.sh").display(),
        cluster.state_dir().display()
    );
    println!();
    println!(
        "ClusterTapMonitor tap: Ready, {} objects, {} series",
        status["objects"], status["series"]
    );
    for kind in status["kinds"].as_array().into_iter().flatten() {
        println!(
            "  {:<22} {:<44} {:<10} {:>3} objects {:>4} series",
            kind["kind"].as_str().unwrap_or(""),
            format!(
                "{}/{}",
                kind["group"].as_str().unwrap_or(""),
                kind["version"].as_str().unwrap_or("")
            ),
            kind["state"].as_str().unwrap_or(""),
            kind["objects"],
            kind["series"]
        );
    }
    println!();
    println!("Ctrl-C stops everything.");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    println!("Stopping...");
    operator.stop().await;
    drop(prometheus);
    drop(cluster);
    Ok(())
}
