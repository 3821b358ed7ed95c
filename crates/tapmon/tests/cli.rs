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

/// The timestamps the presets add to the catalogue's 42, in kube-state-metrics' format.
const TIMESTAMPS: [&str; 4] = [
    "cartographer_workload_resource_output_timestamp_seconds",
    "flux_git_repository_artifact_timestamp_seconds",
    "knative_revision_ready_timestamp_seconds",
    "kpack_build_created_timestamp_seconds",
];

/// The families the presets' tapmon extensions add to the catalogue's 42.
const EXTENSION_FAMILIES: [&str; 6] = [
    "knative_revision_time_to_ready_seconds",
    "kpack_build_duration_seconds",
    "scst_image_scan_cves",
    "scst_source_scan_cves",
    "tekton_pipeline_run_duration_seconds",
    "tekton_task_run_duration_seconds",
];

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
fn all_presets_over_all_kinds_give_the_42_families_and_the_10_added() {
    let text = render_all("text");
    let families = families_with_series(&text);
    assert_eq!(families.len(), 52, "{families:?}");
    // The catalogue's families; the added ones are listed in docs/metrics.md.
    let catalogue = std::fs::read_to_string(root().join("docs/tap-metrics.md")).unwrap();
    for family in families
        .iter()
        .filter(|f| !EXTENSION_FAMILIES.contains(&f.as_str()) && !TIMESTAMPS.contains(&f.as_str()))
    {
        assert!(
            catalogue.contains(&format!("`{family}`")),
            "{family} is not in the catalogue"
        );
    }
    let headers = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(headers, 52, "one HELP per family");
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
            format!("52 {series}"),
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
    // The export leaves out the metrics that use tapmon extensions, and says so.
    assert!(text.contains("#   kpack_build_duration_seconds (type: Duration)\n"));
    assert!(text.contains("#   scst_image_scan_cves (gauge.ignoreKeys)\n"));
    fn family(line: &str) -> &str {
        match line.strip_prefix("# ") {
            Some(comment) => comment.split(' ').nth(1).unwrap_or_default(),
            None => line.split(['{', ' ']).next().unwrap_or_default(),
        }
    }
    let all = render_all("text");
    let without_extensions: Vec<&str> = all
        .lines()
        .filter(|l| !EXTENSION_FAMILIES.contains(&family(l)))
        .collect();
    assert_eq!(via_export.lines().collect::<Vec<_>>(), without_extensions);
    let out = tapmon(&["check", exported.to_str().unwrap()]);
    assert!(stdout(&out).contains("ok: 21 resources, 46 metrics, 46 families"));
}

#[test]
fn published_rules_and_dashboards_as_reviewed_snapshots() {
    let rules = stdout(&tapmon(&["rules", "--monitor", "tapmon-system/tap"]));
    insta::assert_snapshot!("rules", rules);
    for board in tapmon_publish::dashboards::SLUGS {
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

/// The kube-state-metrics config users bring, as a file, in the kube-state-metrics chart's
/// values (a map) and in kube-prometheus-stack's values (YAML text), each beside values of
/// the chart's own.
fn kube_state_metrics_inputs(dir: &Path) -> [(PathBuf, &'static str); 3] {
    let config = root().join("e2e/fixtures/migrate/ksm-config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let indented = |n: usize| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect::<String>()
    };
    let chart = dir.join("ksm-values.yaml");
    std::fs::write(
        &chart,
        format!(
            "image: {{tag: v2.13.0}}\nrbac:\n  extraRules:\n  - apiGroups: [carto.run, kpack.io]\n    resources: [workloads, builds]\n    verbs: [list, watch]\ncustomResourceState:\n  enabled: true\n  config:\n{}",
            indented(4)
        ),
    )
    .unwrap();
    let stack = dir.join("kps-values.yaml");
    std::fs::write(
        &stack,
        format!(
            "grafana: {{enabled: true}}\nkube-state-metrics:\n  customResourceState:\n    enabled: true\n    config: |\n{}",
            indented(6)
        ),
    )
    .unwrap();
    [
        (config, ""),
        (chart, "customResourceState.config."),
        (stack, "kube-state-metrics.customResourceState.config."),
    ]
}

#[test]
fn kube_state_metrics_configs_are_read_as_users_keep_them_and_migrate_to_a_tapmonitor() {
    let dir = tempfile::tempdir().unwrap();
    let objects = fixtures();
    let objects = objects.to_str().unwrap();
    let mut rendered = Vec::new();
    for (file, prefix) in kube_state_metrics_inputs(dir.path()) {
        let file = file.to_str().unwrap();
        // Accepted with a warning naming the field kube-state-metrics skips...
        let out = tapmon(&["check", file]);
        assert!(
            stdout(&out).contains("ok: 2 resources, 3 metrics"),
            "{file}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim(),
            format!(
                "warning: {file}: {prefix}spec.resources[0].metrics[0].each.info.valueFrom: not a field of the format; kube-state-metrics and tapmon skip it"
            ),
            "only the config's own unread fields, not the chart's other values"
        );
        // ...refused with --strict.
        let strict = tapmon(&["check", "--strict", file]);
        assert_eq!(strict.status.code(), Some(1), "{file}");
        let out = tapmon(&["render", "--config", file, "--objects", objects]);
        rendered.push(stdout(&out));
    }
    assert!(
        rendered[0].contains("tap_workload_info{"),
        "{}",
        rendered[0]
    );
    assert!(rendered[0].contains("tap_build_succeeded{"));
    assert_eq!(
        rendered[1], rendered[0],
        "chart values render as the config"
    );
    assert_eq!(rendered[2], rendered[0], "kube-prometheus-stack values too");

    // migrate: a TapMonitor that reads the same, without the unread field.
    let config = root().join("e2e/fixtures/migrate/ksm-config.yaml");
    let out = tapmon(&[
        "migrate",
        config.to_str().unwrap(),
        "--name",
        "from-ksm",
        "--namespace",
        "dev-team-a",
    ]);
    let monitor = stdout(&out);
    assert!(!monitor.contains("valueFrom: ["), "{monitor}");
    assert!(
        monitor.contains("# Dropped spec.resources[0].metrics[0].each.info.valueFrom"),
        "{monitor}"
    );
    assert!(
        monitor.contains("turning on cartographer, kpack"),
        "{monitor}"
    );
    let migrated = dir.path().join("monitor.yaml");
    std::fs::write(&migrated, &monitor).unwrap();
    let out = tapmon(&["check", "--strict", migrated.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("ok: 2 resources, 3 metrics"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let via_monitor = stdout(&tapmon(&[
        "render",
        "--config",
        migrated.to_str().unwrap(),
        "--objects",
        objects,
    ]));
    // A TapMonitor's series carry the same families and values; label order follows the API
    // (sorted), so compare series as sets of label pairs.
    let normalise = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (name, rest) = l.split_once('{').unwrap();
                let (labels, value) = rest.rsplit_once("} ").unwrap();
                let mut pairs: Vec<&str> = labels.split("\",").collect();
                pairs.sort_unstable();
                format!("{name}{pairs:?}{value}")
            })
            .collect()
    };
    assert_eq!(normalise(&via_monitor), normalise(&rendered[0]));
}

#[test]
fn exported_presets_pin_one_version_per_kind_and_say_why() {
    let text = stdout(&tapmon(&["presets"]));
    assert!(!text.contains("version: '*'") && !text.contains("version: \"*\""));
    assert!(
        text.contains("group: tekton.dev\n      version: v1\n"),
        "{text}"
    );
    assert!(
        text.contains("--version-of"),
        "the comment says how to change it"
    );
    let text = stdout(&tapmon(&["presets", "--version-of", "tekton.dev=v1beta1"]));
    assert!(text.contains("group: tekton.dev\n      version: v1beta1\n"));
}
