//! Sharding across replicas: three `tapmon run --total-shards 3 --shard auto` processes, named
//! as a StatefulSet names its pods, serve together exactly the series one unsharded process
//! serves, each object in one shard; a killed shard's share comes back when it restarts.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::json;
use tapmon_e2e::process::OperatorProcess;
use tapmon_e2e::{
    Cluster, apply_cluster_monitor, eventually, get, is_object_series, load_tap_environment,
    operator_identity, serial,
};

const PATH: &str = "/clustermonitors/tap/metrics";

/// The object series of a process's scrape, sorted; None while it serves none.
async fn series(p: &OperatorProcess) -> Option<Vec<String>> {
    let (status, body) = get(p.metrics, PATH).await.ok()?;
    let mut lines: Vec<String> = body
        .lines()
        .filter(|l| is_object_series(l))
        .map(str::to_owned)
        .collect();
    lines.sort();
    (status == 200 && !lines.is_empty()).then_some(lines)
}

/// Shard `ordinal` of three, as pod `tapmon-{ordinal}` of a StatefulSet runs it.
async fn shard(cluster: &Cluster, ordinal: usize) -> OperatorProcess {
    OperatorProcess::start(
        cluster,
        &format!("tapmon-{ordinal}"),
        &["--total-shards=3", "--shard=auto"],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_serve_together_what_one_process_serves_and_a_killed_one_comes_back() {
    let _serial = serial().await;
    let cluster = Cluster::up("sharding").await.unwrap();
    load_tap_environment(&cluster.admin).await.unwrap();
    operator_identity(&cluster).await.unwrap();
    // Started first, the unsharded process holds the Lease and writes; the shards only serve.
    let whole = OperatorProcess::start(&cluster, "whole", &[])
        .await
        .unwrap();
    apply_cluster_monitor(&cluster.admin, "tap", json!({}))
        .await
        .unwrap();
    let mut shards = Vec::new();
    for ordinal in 0..3 {
        shards.push(shard(&cluster, ordinal).await);
    }

    // Sorted, the shards' series side by side are the whole's: nothing missing, nothing twice.
    let parts = eventually(
        "three shards serve what one process serves",
        Duration::from_secs(60),
        || async {
            let all = series(&whole).await?;
            let mut parts = Vec::new();
            for s in &shards {
                parts.push(series(s).await?);
            }
            let mut joined: Vec<String> = parts.concat();
            joined.sort();
            (joined == all).then_some(parts)
        },
    )
    .await;
    let all = series(&whole).await.unwrap();
    for (ordinal, part) in parts.iter().enumerate() {
        // About a third each: the fixture environment has objects of 21 kinds in 3 namespaces.
        assert!(
            part.len() * 6 > all.len() && part.len() * 2 < all.len(),
            "shard {ordinal}: {} of {} series",
            part.len(),
            all.len()
        );
    }
    let telemetry = shards[2].self_metrics().await;
    assert!(telemetry.contains("\ntapmon_shard 2\n"), "{telemetry}");
    assert!(telemetry.contains("\ntapmon_shards 3\n"), "{telemetry}");

    // A crash takes exactly that shard's series away; the others keep theirs.
    shards[1].kill();
    let mut rest = [
        series(&shards[0]).await.unwrap(),
        series(&shards[2]).await.unwrap(),
    ]
    .concat();
    rest.sort();
    let mut expected: Vec<String> = all
        .iter()
        .filter(|l| !parts[1].contains(l))
        .cloned()
        .collect();
    expected.sort();
    assert_eq!(rest, expected);
    // Restarted (a StatefulSet brings back the same ordinal), it serves its share again.
    shards[1] = shard(&cluster, 1).await;
    eventually(
        "the restarted shard serves its share again",
        Duration::from_secs(60),
        || async { (series(&shards[1]).await? == parts[1]).then_some(()) },
    )
    .await;
    drop(shards);
    drop(whole);
}
