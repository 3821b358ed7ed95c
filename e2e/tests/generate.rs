//! The benchmark's object generator against a real API server: the objects it says it made
//! exist, owners resolve, churn and CRD re-creation keep the population, and tapmon serves
//! exactly the series the generator expects (the benchmark's definition of complete), and
//! Prometheus (Debian's) reads every one of them from the compressed scrape, a concatenation of
//! gzip members kept per block.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::ListParams;
use serde_json::json;
use tapmon_crs::Compiled;
use tapmon_e2e::generate::Generator;
use tapmon_e2e::http::Client;
use tapmon_e2e::{
    Operator, Prometheus, ScrapeTarget, apply_cluster_monitor, cluster_with_operator, eventually,
    install_crds, is_object_series, serial, tap_crds,
};

const PATH: &str = "/clustermonitors/tap/metrics";

/// Objects in the API server, per kind, as the generator's API handles list them.
async fn listed(generator: &Generator) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for kind in generator.counts().keys() {
        let all = generator.all(kind).unwrap();
        let n = all.list(&ListParams::default()).await.unwrap().items.len();
        out.insert(kind.clone(), n);
    }
    out
}

async fn series_reach(operator: &Operator, expected: usize) {
    eventually(
        &format!("{expected} series"),
        Duration::from_secs(60),
        || async {
            let text = operator.scrape_cluster("tap").await?;
            // Objects the generator creates and then finishes count in the live metrics.
            let n = text.lines().filter(|l| is_object_series(l)).count();
            (n == expected).then_some(())
        },
    )
    .await;
}

/// The compressed scrape is several gzip members and holds what the plain one does, twice (the
/// second from the members the first kept); Prometheus, asking for gzip as it always does,
/// ingests every sample of the scrape.
async fn compressed_scrapes_are_whole(operator: &Operator, prometheus: &Prometheus) {
    let mut client = Client::default();
    let plain = client
        .scrape(operator.metrics, PATH, false)
        .await
        .unwrap()
        .text();
    for round in ["first", "second"] {
        let gzip = client.scrape(operator.metrics, PATH, true).await.unwrap();
        // A header per family and at least a block per family.
        assert!(
            gzip.gzip_members > 2 * 21,
            "{round}: {} members",
            gzip.gzip_members
        );
        assert!(
            gzip.wire_bytes * 4 < plain.len(),
            "{round}: {} bytes",
            gzip.wire_bytes
        );
        assert!(
            gzip.text() == plain,
            "{round} compressed scrape differs from the plain one"
        );
    }
    let samples = |text: &str| {
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count() as f64
    };
    eventually(
        "Prometheus ingests every sample of the compressed scrape",
        Duration::from_secs(60),
        || async {
            // Prometheus negotiates OpenMetrics; count what that scrape holds.
            let expected = samples(&operator.scrape_cluster_openmetrics("tap").await?);
            let scraped = prometheus
                .scalar("scrape_samples_scraped{job=\"gzip\"}")
                .await
                .ok()??;
            let up = prometheus.scalar("up{job=\"gzip\"}").await.ok()??;
            (up == 1.0 && scraped == expected).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_objects_exist_and_tapmon_serves_what_the_generator_expects() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("generate", false).await.unwrap();
    install_crds(&cluster.admin, &tap_crds().unwrap())
        .await
        .unwrap();
    let mut generator = Generator::new(cluster.admin.clone()).await.unwrap();
    let per = generator.per_replica();
    // Two whole copies and part of a third: the part must still hold its owners.
    let n = 2 * per + per / 3;
    generator.grow(n).await.unwrap();
    assert_eq!(generator.live().len(), n);
    assert_eq!(listed(&generator).await, generator.counts());
    assert_eq!(
        generator.counts().len(),
        21,
        "every kind: {:?}",
        generator.counts()
    );

    // Owner references carry the owners' real UIDs (or the garbage collector would take the
    // dependents away).
    let taskruns = generator.all("TaskRun").unwrap();
    let pipelineruns = generator.all("PipelineRun").unwrap();
    let pipelineruns = pipelineruns.list(&ListParams::default()).await.unwrap();
    let mut checked = 0;
    for taskrun in taskruns.list(&ListParams::default()).await.unwrap() {
        for owner in taskrun.metadata.owner_references.iter().flatten() {
            if owner.kind != "PipelineRun" {
                continue;
            }
            let pipelinerun = pipelineruns
                .items
                .iter()
                .find(|p| {
                    p.metadata.namespace == taskrun.metadata.namespace
                        && p.metadata.name.as_deref() == Some(owner.name.as_str())
                })
                .unwrap();
            assert_eq!(
                pipelinerun.metadata.uid.as_deref(),
                Some(owner.uid.as_str())
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no TaskRun owned by a PipelineRun");

    let (compiled, errors) =
        Compiled::compile(&tapmon_presets::spec_for(tapmon_presets::TapGroup::ALL).unwrap());
    assert!(errors.is_empty());
    let expected = generator.expected_series(&compiled);
    assert!(expected > n, "{expected} series for {n} objects");
    apply_cluster_monitor(&cluster.admin, "tap", json!({}))
        .await
        .unwrap();
    series_reach(&operator, expected).await;
    let prometheus = Prometheus::start(
        "generate",
        &[ScrapeTarget {
            job: "gzip",
            addr: operator.metrics,
            path: PATH,
            tap_monitor: None,
        }],
    )
    .await
    .unwrap();
    compressed_scrapes_are_whole(&operator, &prometheus).await;

    // Churn replaces objects one for one with new names: same counts, same series count,
    // different objects.
    // Objects by kind, namespace and name: a Workload and its Deliverable share a name.
    let identities = |g: &Generator| -> Vec<(String, String, String)> {
        g.live()
            .iter()
            .map(|i| (g.kind_of(i).to_owned(), i.namespace.clone(), i.name.clone()))
            .collect()
    };
    let before = identities(&generator);
    generator.churn(0.1, 1).await.unwrap();
    let after: Vec<String> = generator.live().iter().map(|i| i.name.clone()).collect();
    assert_eq!(after.len(), n);
    let renamed = after.iter().filter(|a| a.ends_with("-c1")).count();
    assert_eq!(renamed, (n as f64 * 0.1).round() as usize, "{after:?}");
    let after_identities = identities(&generator);
    assert!(before.iter().any(|b| !after_identities.contains(b)));
    assert_eq!(listed(&generator).await, generator.counts());
    assert_eq!(generator.expected_series(&compiled), expected);
    series_reach(&operator, expected).await;
    // Changed blocks were compressed afresh, the rest sent as kept.
    compressed_scrapes_are_whole(&operator, &prometheus).await;

    // Deleting the TaskRun CRD takes its objects; the generator brings both back.
    generator.recreate_kind("TaskRun").await.unwrap();
    assert_eq!(listed(&generator).await, generator.counts());
    series_reach(&operator, expected).await;
    assert!(
        generator.recreate_kind("PipelineRun").await.is_err(),
        "owners are refused"
    );

    operator.stop().await;
}
