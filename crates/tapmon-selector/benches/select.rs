//! The selector engine alone: compiling paths, walking them over an object, converting what
//! they find. The presets do these a few dozen times per object on every watch event.

// A benchmark is a tool: a bad path should stop it loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tapmon_selector::{Path, value};

/// A Cartographer Workload as a cluster holds it (trimmed of managed fields).
fn workload() -> Value {
    json!({
        "apiVersion": "carto.run/v1alpha1",
        "kind": "Workload",
        "metadata": {
            "name": "petclinic", "namespace": "dev-team-a", "generation": 4,
            "creationTimestamp": "2025-03-08T23:30:00Z",
            "labels": {
                "app.kubernetes.io/part-of": "petclinic",
                "apps.tanzu.vmware.com/workload-type": "web",
                "apps.tanzu.vmware.com/has-tests": "true"
            }
        },
        "spec": {
            "source": {"git": {"url": "https://github.com/example/petclinic", "ref": {"branch": "main"}}},
            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}
        },
        "status": {
            "observedGeneration": 4,
            "supplyChainRef": {"kind": "ClusterSupplyChain", "name": "source-test-scan-to-url"},
            "conditions": [
                {"type": "SupplyChainReady", "status": "True", "reason": "Ready",
                 "lastTransitionTime": "2025-03-08T23:40:00Z"},
                {"type": "ResourcesSubmitted", "status": "True", "reason": "ResourceSubmissionComplete",
                 "lastTransitionTime": "2025-03-10T08:00:00Z"},
                {"type": "ResourcesHealthy", "status": "True", "reason": "HealthyConditionRule",
                 "lastTransitionTime": "2025-03-10T08:05:00Z"},
                {"type": "Ready", "status": "True", "reason": "Ready",
                 "lastTransitionTime": "2025-03-10T08:05:00Z"}
            ]
        }
    })
}

fn select(c: &mut Criterion) {
    let object = workload();
    let mut group = c.benchmark_group("select");

    group.bench_function("compile_jsonpath", |b| {
        b.iter(|| Path::from_jsonpath(black_box(".status.conditions[?(@.type==\"Ready\")].status")))
    });

    let paths: Vec<Path> = [
        &["metadata", "name"][..],
        &["metadata", "labels", "apps.tanzu.vmware.com/workload-type"],
        &["spec", "source", "git", "ref", "branch"],
        &["status", "supplyChainRef", "name"],
        &["status", "conditions", "[type=Ready]", "status"],
        &["status", "conditions", "-1", "lastTransitionTime"],
    ]
    .iter()
    .map(|segments| Path::from_segments(segments).expect("path"))
    .collect();
    group.bench_function("walk_6_paths", |b| {
        b.iter(|| {
            for p in &paths {
                black_box(p.get(black_box(&object)));
            }
        })
    });

    let ready =
        Path::from_segments(&["status", "conditions", "[type=Ready]", "status"]).expect("path");
    let time =
        Path::from_segments(&["status", "conditions", "0", "lastTransitionTime"]).expect("path");
    let cpu = Path::from_segments(&["spec", "resources", "limits", "cpu"]).expect("path");
    group.bench_function("convert_condition_timestamp_quantity", |b| {
        b.iter(|| {
            let o = black_box(&object);
            black_box(value::to_f64(ready.get(o), false).ok());
            black_box(value::to_f64(time.get(o), false).ok());
            black_box(value::to_f64(cpu.get(o), false).ok());
        })
    });
    group.finish();
}

criterion_group!(benches, select);
criterion_main!(benches);
