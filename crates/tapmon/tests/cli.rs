//! The offline commands as a user runs them, over the fixture TAP environment.
//!
//! Needs `promtool` (Debian package `prometheus`) and the Python `prometheus_client` package,
//! the reference parsers the output is checked with; `.ci/run` installs both.

// Test helpers fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    root().join("e2e/fixtures/tap")
}

fn tapmon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tapmon"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("tapmon runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tapmon failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn render_all(format: &str) -> String {
    let dir = fixtures();
    let out = tapmon(&[
        "render",
        "--objects",
        dir.to_str().unwrap(),
        "--format",
        format,
    ]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// Runs `program` with `input` on stdin.
fn pipe(program: &str, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn families_with_series(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn every_kind_renders_as_its_reviewed_snapshot() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| p.file_stem().is_some_and(|s| s != "namespaces"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 21, "one fixture file per TAP kind");
    for file in files {
        let out = stdout(&tapmon(&["render", "--objects", file.to_str().unwrap()]));
        let name = file.file_stem().unwrap().to_str().unwrap().to_owned();
        insta::assert_snapshot!(name, out);
    }
}

#[test]
fn all_presets_over_all_kinds_give_the_42_families() {
    let text = render_all("text");
    let families = families_with_series(&text);
    assert_eq!(families.len(), 42, "{families:?}");
    let catalogue = std::fs::read_to_string(root().join("docs/tap-metrics.md")).unwrap();
    for family in &families {
        assert!(
            catalogue.contains(&format!("`{family}`")),
            "{family} is not in the catalogue"
        );
    }
    let headers = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(headers, 42, "one HELP per family");
}

#[test]
fn promtool_accepts_the_exposition() {
    let text = render_all("text");
    // promtool comes with the Debian package prometheus.
    let out = pipe("promtool", &["check", "metrics"], &text);
    // Exit 3 means lint findings only. The only ones allowed are the two camelCase label
    // names the catalogue makes a contract (displayName, base_url_ref_jsonPath).
    let findings =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "promtool failed ({code:?}): {findings}"
    );
    for line in findings.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line == "accelerator_info label names should be written in 'snake_case' not 'camelCase'"
                || line
                    == "api_descriptor_info label names should be written in 'snake_case' not 'camelCase'",
            "unexpected promtool finding: {line}"
        );
    }
}

#[test]
fn reference_parser_reads_text_and_openmetrics() {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families as text
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
parse = om if sys.argv[1] == "openmetrics" else text
families = list(parse(sys.stdin.read()))
print(len(families), sum(len(f.samples) for f in families))
"#;
    for format in ["text", "openmetrics"] {
        let exposition = render_all(format);
        let series = exposition.lines().filter(|l| !l.starts_with('#')).count();
        let out = pipe("python3", &["-c", script, format], &exposition);
        assert!(
            out.status.success(),
            "{format}: {} (needs pip package prometheus-client)",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("42 {series}"),
            "{format}"
        );
    }
}

#[test]
fn render_takes_a_tapmonitor_and_kubectl_lists() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = dir.path().join("monitor.yaml");
    std::fs::write(
        &monitor,
        "apiVersion: tapmon.io/v1alpha1\nkind: TapMonitor\nmetadata: {name: kp, namespace: tapmon}\nspec:\n  groups:\n    kpack: {enabled: false}\n  resources:\n  - groupVersionKind: {group: kpack.io, version: v1alpha2, kind: Build}\n    metricNamePrefix: my\n    metrics:\n    - name: build_count\n      each: {type: Gauge, gauge: {path: [metadata, labels, image.kpack.io/buildNumber]}}\n",
    )
    .unwrap();
    let list = dir.path().join("list.yaml");
    let builds = std::fs::read_to_string(fixtures().join("builds.yaml")).unwrap();
    let items: Vec<serde_json::Value> = tapmon_crs::yaml::from_multiple(&builds).unwrap();
    let doc = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    std::fs::write(&list, serde_json::to_string(&doc).unwrap()).unwrap();

    let out = stdout(&tapmon(&[
        "render",
        "--config",
        monitor.to_str().unwrap(),
        "--objects",
        list.to_str().unwrap(),
    ]));
    let families = families_with_series(&out);
    assert_eq!(families, BTreeSet::from(["my_build_count".to_owned()]));
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("my_build_count"))
            .count(),
        items.len()
    );
}

#[test]
fn check_names_resource_metric_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "kind: CustomResourceStateMetrics\nspec:\n  resources:\n  - groupVersionKind: {group: example.com, version: v1, kind: Foo}\n    metricNamePrefix: foo\n    metrics:\n    - name: phase\n      each: {type: Gauge, gauge: {path: [status, \"[phase]\"]}}\n    - name: ok\n      each: {type: Info, info: {}}\n",
    )
    .unwrap();
    let out = tapmon(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.resources[0] (example.com/v1/Foo) metric foo_phase metrics[0].each.gauge.path: invalid list filter \"[phase]\""),
        "{stderr}"
    );

    let monitor = dir.path().join("monitor.yaml");
    std::fs::write(
        &monitor,
        "apiVersion: tapmon.io/v1alpha1\nkind: TapMonitor\nmetadata: {name: m, namespace: tapmon}\nspec:\n  resources:\n  - groupVersionKind: {group: example.com, version: v1, kind: Foo}\n    metrics:\n    - {name: x, each: {type: StateSet, stateSet: {path: [status, phase], list: [A]}}}\n",
    )
    .unwrap();
    let out = tapmon(&["check", monitor.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TapMonitor tapmon/m spec.resources[0] (example.com/v1/Foo) metric kube_customresource_x metrics[0].each.stateSet.labelName: labelName is required"),
        "{stderr}"
    );

    for sample in ["tapmonitor.yaml", "clustertapmonitor.yaml"] {
        let sample = root().join("config/samples").join(sample);
        let out = tapmon(&["check", sample.to_str().unwrap()]);
        assert!(stdout(&out).contains("ok: 21 resources"));
    }
}

#[test]
fn presets_are_a_config_that_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("presets.yaml");
    let text = stdout(&tapmon(&["presets", "--version-of", "tekton.dev=v1"]));
    assert!(
        text.contains("group: tekton.dev\n      version: v1\n"),
        "pinned version"
    );
    std::fs::write(&exported, &text).unwrap();
    let fixtures = fixtures();
    let via_export = stdout(&tapmon(&[
        "render",
        "--config",
        exported.to_str().unwrap(),
        "--objects",
        fixtures.to_str().unwrap(),
    ]));
    assert_eq!(via_export, render_all("text"));
    let out = tapmon(&["check", exported.to_str().unwrap()]);
    assert!(stdout(&out).contains("ok: 21 resources, 42 metrics, 42 families"));
}

#[test]
fn published_rules_and_dashboards_as_reviewed_snapshots() {
    let rules = stdout(&tapmon(&["rules", "--monitor", "tapmon-system/tap"]));
    insta::assert_snapshot!("rules", rules);
    for board in ["overview", "supply-chain"] {
        let json = stdout(&tapmon(&[
            "dashboards",
            "--dashboard",
            board,
            "--monitor",
            "tapmon-system/tap",
        ]));
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(parsed["uid"].as_str().unwrap().len() <= 40);
        insta::assert_snapshot!(format!("dashboard-{board}"), json);
    }
}
