//! Live counters and histograms over a replayed sequence of watch events (a YAML fixture):
//! exact buckets, sums and counts, what is not counted, and OpenMetrics' `_created`.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use tapmon_crs::live::{Live, Seen};
use tapmon_crs::model::CustomResourceStateMetrics;
use tapmon_crs::{Compiled, EvalErrors};
use tapmon_exposition::Format;

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    tapmon_crs::yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn build(event: &Value) -> Value {
    json!({
        "apiVersion": "kpack.io/v1alpha2", "kind": "Build",
        "metadata": {
            "name": event["name"], "namespace": "dev",
            "creationTimestamp": event["created"],
            "labels": {"carto.run/workload-name": "app"}
        },
        "status": {"conditions": [{
            "type": "Succeeded", "status": event["succeeded"],
            "lastTransitionTime": event["ended"]
        }]}
    })
}

/// Replays the fixture's events; returns the live metrics and the errors.
fn replay(fixture: &Value) -> (Live, EvalErrors) {
    replay_within(fixture, usize::MAX)
}

/// Replays the fixture's events holding at most `limit` series.
fn replay_within(fixture: &Value, limit: usize) -> (Live, EvalErrors) {
    let config: CustomResourceStateMetrics =
        tapmon_crs::yaml::from_str(fixture["config"].as_str().unwrap()).unwrap();
    let (compiled, errors) = Compiled::compile(&config.spec);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(compiled.has_live());
    // Live metrics make no per-object family.
    assert!(compiled.families().is_empty());
    let mut live = Live::new(fixture["started"].as_f64().unwrap());
    let mut errors = EvalErrors::default();
    for event in fixture["events"].as_array().unwrap() {
        let name = event["name"].as_str().unwrap();
        let at = event["at"].as_f64().unwrap();
        let seen = match event["seen"].as_str().unwrap() {
            "listed" => Seen::Listed,
            "changed" => Seen::Changed,
            "deleted" => {
                live.forget(0, "dev", name);
                continue;
            }
            other => panic!("unknown event {other}"),
        };
        live.observe(
            &compiled,
            0,
            &build(event),
            ("dev", name),
            seen,
            (at, limit),
            &mut errors,
        );
    }
    (live, errors)
}

#[test]
fn a_replayed_sequence_gives_exact_counters_and_buckets() {
    let fixture = fixture("live-builds.yaml");
    let (live, errors) = replay(&fixture);
    let mut text = Vec::new();
    live.encode(Format::Text, &mut text);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        fixture["expected"].as_str().unwrap()
    );
    assert_eq!(errors.total() as u64, fixture["errors"].as_u64().unwrap());
    assert_eq!(
        errors.kept()[0].to_string(),
        "metric kpack_build_completed_duration_seconds at [status, conditions, [type=Succeeded], lastTransitionTime]: the end is 600.000s before the start"
    );
}

#[test]
fn openmetrics_names_counters_without_total_and_says_when_each_series_began() {
    let (live, _) = replay(&fixture("live-builds.yaml"));
    let mut om = Vec::new();
    live.encode(Format::OpenMetrics, &mut om);
    let om = String::from_utf8(om).unwrap();
    assert!(
        om.contains("# TYPE kpack_build_completed counter\n"),
        "{om}"
    );
    assert!(om.contains("# TYPE kpack_build_completed_duration_seconds histogram\n"));
    // The True series began when b finished, the False one when c did.
    assert!(om.contains(
        "kpack_build_completed_created{namespace=\"dev\",workload=\"app\",status=\"True\"} 1767225660\n"
    ));
    assert!(om.contains(
        "kpack_build_completed_duration_seconds_created{namespace=\"dev\",workload=\"app\",status=\"False\"} 1767226700\n"
    ));
}

#[test]
fn a_relist_after_a_restart_counts_nothing() {
    let fixture = fixture("live-builds.yaml");
    let config: CustomResourceStateMetrics =
        tapmon_crs::yaml::from_str(fixture["config"].as_str().unwrap()).unwrap();
    let (compiled, _) = Compiled::compile(&config.spec);
    // A new Live (tapmon restarted) lists every build as it is last, finished ones included.
    let mut last = std::collections::BTreeMap::new();
    for event in fixture["events"].as_array().unwrap() {
        if event["seen"] != "deleted" {
            last.insert(event["name"].as_str().unwrap(), build(event));
        }
    }
    let mut live = Live::new(1_767_300_000.0);
    let mut errors = EvalErrors::default();
    for (name, object) in &last {
        live.observe(
            &compiled,
            0,
            object,
            ("dev", name),
            Seen::Listed,
            (0.0, usize::MAX),
            &mut errors,
        );
    }
    assert!(live.is_empty());
    // And the same objects again, as unchanged events, count nothing either.
    for (name, object) in &last {
        live.observe(
            &compiled,
            0,
            object,
            ("dev", name),
            Seen::Changed,
            (0.0, usize::MAX),
            &mut errors,
        );
    }
    assert!(live.is_empty());
}

#[test]
fn no_new_series_beyond_the_limit() {
    // Labels from a config could make one series per object: the monitor's limit holds.
    let (live, errors) = replay_within(&fixture("live-builds.yaml"), 2);
    assert_eq!(live.series(), 2);
    let mut text = Vec::new();
    live.encode(Format::Text, &mut text);
    let text = String::from_utf8(text).unwrap();
    // b's completion made the True series of both families; c's False ones found no room.
    assert!(!text.contains("status=\"False\""), "{text}");
    assert!(
        errors
            .kept()
            .iter()
            .any(|e| e.kind == tapmon_crs::EvalErrorKind::SeriesLimit),
        "{:?}",
        errors.kept()
    );
}
