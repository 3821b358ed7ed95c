//! Every config feature and conversion, and each deliberate difference from kube-state-metrics.

use serde_json::{Value, json};
use tapmon_exposition::Format;

use crate::model::CustomResourceStateMetrics;
use crate::{Compiled, ConfigError};

struct Output {
    series: Vec<String>,
    text: String,
    errors: Vec<String>,
}

fn compile(config: &str) -> (Compiled, Vec<ConfigError>) {
    let cfg: CustomResourceStateMetrics = crate::yaml::from_str(config).expect("config parses");
    Compiled::compile(&cfg.spec)
}

fn run(config: &str, objects: &[Value]) -> Output {
    let (compiled, config_errors) = compile(config);
    assert!(config_errors.is_empty(), "{config_errors:?}");
    let offline = compiled.render_objects(objects);
    let messages = offline
        .errors()
        .iter()
        .flat_map(|o| o.errors.kept().iter().map(ToString::to_string))
        .collect();
    let out = offline.encode(Format::Text);
    let text = String::from_utf8(out).expect("utf-8");
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            // Drop the three GVK labels to keep expectations short; one test checks them.
            l.replace(
                "customresource_group=\"example.com\",customresource_version=\"v1\",customresource_kind=\"Foo\"",
                "GVK",
            )
        })
        .collect();
    Output {
        series,
        text,
        errors: messages,
    }
}

fn foo(spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "example.com/v1", "kind": "Foo",
        "metadata": {"name": "foo", "namespace": "ns", "labels": {"app.kubernetes.io/name": "x", "team": "a"}},
        "spec": spec, "status": status
    })
}

fn resource(metrics: &str) -> String {
    format!(
        "spec:\n  resources:\n  - groupVersionKind: {{group: example.com, version: v1, kind: Foo}}\n    metricNamePrefix: foo\n    labelsFromPath:\n      name: [metadata, name]\n    metrics:\n{metrics}"
    )
}

#[test]
fn gauge_scalar_with_value_conversions() {
    let cfg = resource(
        "    - name: v\n      each:\n        type: Gauge\n        gauge:\n          path: [status]\n          valueFrom: [x]\n",
    );
    let cases = [
        (json!(7), "7"),
        (json!("2.5"), "2.5"),
        (json!(true), "1"),
        (json!("Yes"), "1"),
        (json!("False"), "0"),
        (json!("Unknown"), "-1"),
        (json!("50%"), "0.5"),
        (json!("100Mi"), "104857600"),
        (json!("2024-01-02T03:04:05Z"), "1704164645"),
    ];
    for (x, want) in cases {
        let out = run(&cfg, &[foo(json!({}), json!({"x": x}))]);
        assert_eq!(
            out.series,
            [format!("foo_v{{GVK,name=\"foo\"}} {want}")],
            "{x}"
        );
    }
}

#[test]
fn gvk_labels_are_added() {
    let cfg = resource("    - name: i\n      each:\n        type: Info\n        info: {}\n");
    let out = run(&cfg, &[foo(json!({}), json!({}))]);
    assert!(out.text.contains(
        "foo_i{customresource_group=\"example.com\",customresource_version=\"v1\",customresource_kind=\"Foo\",name=\"foo\"} 1\n"
    ));
}

#[test]
fn gauge_missing_values_nil_is_zero_and_errors() {
    let cfg = resource(
        "    - name: a\n      each:\n        type: Gauge\n        gauge: {path: [status, missing]}\n    - name: b\n      each:\n        type: Gauge\n        gauge: {path: [status, missing], nilIsZero: true}\n    - name: c\n      each:\n        type: Gauge\n        gauge: {path: [status, word]}\n    - name: d\n      each:\n        type: Gauge\n        gauge: {path: [status, n]}\n",
    );
    let out = run(&cfg, &[foo(json!({}), json!({"word": "maybe", "n": 3}))]);
    assert_eq!(
        out.series,
        ["foo_b{GVK,name=\"foo\"} 0", "foo_d{GVK,name=\"foo\"} 3"]
    );
    assert_eq!(
        out.errors,
        ["metric foo_c at [status, word]: expected a number but found \"maybe\""]
    );
}

#[test]
fn gauge_over_a_list_one_series_per_element_with_element_labels() {
    let cfg = resource(
        "    - name: condition\n      each:\n        type: Gauge\n        gauge:\n          path: [status, conditions]\n          valueFrom: [status]\n          labelsFromPath:\n            type: [type]\n            reason: .reason\n",
    );
    let status = json!({"conditions": [
        {"type": "Ready", "status": "True", "reason": "Ok"},
        {"type": "Healthy", "status": "Unknown"},
        {"type": "Broken", "status": "nonsense"},
        {"type": "NoStatus"}
    ]});
    let out = run(&cfg, &[foo(json!({}), status)]);
    assert_eq!(
        out.series,
        [
            "foo_condition{GVK,name=\"foo\",type=\"Ready\",reason=\"Ok\"} 1",
            "foo_condition{GVK,name=\"foo\",type=\"Healthy\"} -1",
        ]
    );
    assert_eq!(
        out.errors,
        [
            "metric foo_condition at [status, conditions][2] + [status]: expected a number but found \"nonsense\""
        ]
    );
}

#[test]
fn gauge_over_a_map_needs_label_from_key_and_reports_bad_entries() {
    let cfg = resource(
        "    - name: byKey\n      each:\n        type: Gauge\n        gauge: {path: [status, counts], labelFromKey: kind}\n    - name: whole\n      each:\n        type: Gauge\n        gauge: {path: [status], valueFrom: [counts, high]}\n    - name: bare\n      each:\n        type: Gauge\n        gauge: {path: [status, counts]}\n",
    );
    let out = run(
        &cfg,
        &[foo(json!({}), json!({"counts": {"high": 2, "low": "x"}}))],
    );
    assert_eq!(
        out.series,
        [
            "foo_byKey{GVK,name=\"foo\",kind=\"high\"} 2",
            "foo_whole{GVK,name=\"foo\"} 2",
        ]
    );
    assert_eq!(
        out.errors,
        [
            "metric foo_byKey at [status, counts][low]: expected a number but found \"x\"",
            "metric foo_bare at [status, counts]: expected a number but found a map",
        ]
    );
}

#[test]
fn gauge_value_from_a_key_of_the_map_itself() {
    // kube-state-metrics: over a map with labelFromKey, `valueFrom: [k]` reads entry k.
    let cfg = resource(
        "    - name: up\n      each:\n        type: Gauge\n        gauge: {path: [status], valueFrom: [uptime], labelFromKey: k}\n",
    );
    let out = run(
        &cfg,
        &[foo(json!({}), json!({"uptime": 43.21, "other": {"x": 1}}))],
    );
    assert_eq!(out.series, ["foo_up{GVK,name=\"foo\",k=\"uptime\"} 43.21"]);
}

#[test]
fn duplicate_series_are_dropped_and_reported() {
    let cfg = resource(
        "    - name: list\n      each:\n        type: Gauge\n        gauge: {path: [spec, values]}\n",
    );
    let out = run(&cfg, &[foo(json!({"values": [1, 2]}), json!({}))]);
    assert_eq!(out.series, ["foo_list{GVK,name=\"foo\"} 1"]);
    assert_eq!(out.errors.len(), 1);
    assert!(out.errors[0].contains("same labels"), "{:?}", out.errors);
}

#[test]
fn stateset_one_series_per_state() {
    let cfg = resource(
        "    - name: phase\n      each:\n        type: StateSet\n        stateSet:\n          path: [status, phase]\n          labelName: phase\n          list: [Pending, Running, Failed]\n    - name: cond\n      each:\n        type: StateSet\n        stateSet:\n          path: [status, conditions]\n          valueFrom: [status]\n          labelName: status\n          list: [\"True\", \"False\", \"Unknown\"]\n          labelsFromPath: {type: [type]}\n",
    );
    let status = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "Unknown"}, {"type": "X", "status": 5}]});
    let out = run(&cfg, &[foo(json!({}), status)]);
    assert_eq!(
        out.series,
        [
            "foo_cond{GVK,name=\"foo\",status=\"True\",type=\"Ready\"} 0",
            "foo_cond{GVK,name=\"foo\",status=\"False\",type=\"Ready\"} 0",
            "foo_cond{GVK,name=\"foo\",status=\"Unknown\",type=\"Ready\"} 1",
            "foo_phase{GVK,name=\"foo\",phase=\"Pending\"} 0",
            "foo_phase{GVK,name=\"foo\",phase=\"Running\"} 1",
            "foo_phase{GVK,name=\"foo\",phase=\"Failed\"} 0",
        ]
    );
    assert_eq!(
        out.errors,
        [
            "metric foo_cond at [status, conditions][1] + [status]: expected a string state but found a number"
        ]
    );
}

#[test]
fn info_with_only_outer_labels_still_emits() {
    // kube-state-metrics emits nothing here (its issue #2246).
    let cfg = resource("    - name: info\n      each:\n        type: Info\n        info: {}\n");
    let out = run(&cfg, &[foo(json!({}), json!({}))]);
    assert_eq!(out.series, ["foo_info{GVK,name=\"foo\"} 1"]);
}

#[test]
fn info_over_lists_maps_and_star_expansion() {
    let cfg = resource(
        "    - name: refs\n      each:\n        type: Info\n        info:\n          path: [spec, refs]\n          labelsFromPath: {ref: []}\n    - name: labels\n      each:\n        type: Info\n        info:\n          labelsFromPath:\n            \"*\": [metadata, labels]\n            \"label_*\": [metadata, labels]\n    - name: keys\n      each:\n        type: Info\n        info: {path: [metadata, labels], labelFromKey: key}\n    - name: meta\n      each:\n        type: Info\n        info:\n          path: [metadata]\n          labelsFromPath: {team: [labels, team]}\n",
    );
    let out = run(&cfg, &[foo(json!({"refs": ["a", "b"]}), json!({}))]);
    assert_eq!(
        out.series,
        [
            "foo_keys{GVK,name=\"foo\",key=\"app.kubernetes.io/name\"} 1",
            "foo_keys{GVK,name=\"foo\",key=\"team\"} 1",
            "foo_labels{GVK,name=\"foo\",app_kubernetes_io_name=\"x\",team=\"a\",label_app_kubernetes_io_name=\"x\",label_team=\"a\"} 1",
            // One series for the map itself, none for its children (kube-state-metrics adds those).
            "foo_meta{GVK,name=\"foo\",team=\"a\"} 1",
            "foo_refs{GVK,name=\"foo\",ref=\"a\"} 1",
            "foo_refs{GVK,name=\"foo\",ref=\"b\"} 1",
        ]
    );
}

#[test]
fn label_precedence_follows_kube_state_metrics() {
    let cfg = "spec:\n  resources:\n  - groupVersionKind: {group: example.com, version: v1, kind: Foo}\n    metricNamePrefix: \"\"\n    commonLabels: {a: resource-common, b: resource-common, c: resource-common, customresource_kind: mine}\n    labelsFromPath: {c: [metadata, name], d: [metadata, name]}\n    metrics:\n    - name: m\n      commonLabels: {a: metric-common}\n      labelsFromPath: {d: [metadata, namespace]}\n      each:\n        type: Gauge\n        gauge:\n          path: [status, items]\n          labelFromKey: d\n          labelsFromPath: {b: [tag]}\n          valueFrom: [v]\n";
    let out = run(
        cfg,
        &[foo(
            json!({}),
            json!({"items": {"k": {"v": 1, "tag": "each"}}}),
        )],
    );
    assert_eq!(
        out.text.lines().last(),
        Some(
            "m{a=\"metric-common\",b=\"each\",c=\"foo\",customresource_kind=\"Foo\",customresource_group=\"example.com\",customresource_version=\"v1\",d=\"k\"} 1"
        )
    );
}

#[test]
fn jsonpath_and_path_lists_are_interchangeable() {
    let list = resource(
        "    - name: ready\n      each:\n        type: Gauge\n        gauge:\n          path: [status, conditions, \"[type=Ready]\"]\n          valueFrom: [status]\n          labelsFromPath: {app: [metadata, labels, app.kubernetes.io/name]}\n",
    );
    let jsonpath = resource(
        "    - name: ready\n      each:\n        type: Gauge\n        gauge:\n          path: '.status.conditions[?(@.type==\"Ready\")]'\n          valueFrom: .status\n          labelsFromPath: {app: \".metadata.labels['app.kubernetes.io/name']\"}\n",
    );
    let object = foo(
        json!({}),
        json!({"conditions": [{"type": "Ready", "status": "False"}]}),
    );
    assert_eq!(
        run(&list, std::slice::from_ref(&object)).text,
        run(&jsonpath, &[object]).text
    );
}

#[test]
fn filters_match_strings_exactly() {
    // kube-state-metrics' [status=False] also matches "Unknown" and "no" (both convert to 0).
    let cfg = resource(
        "    - name: false_type\n      each:\n        type: Info\n        info:\n          path: [status, conditions, \"[status=False]\"]\n          labelsFromPath: {type: [type]}\n",
    );
    let status = json!({"conditions": [{"type": "A", "status": "Unknown"}, {"type": "B", "status": "False"}]});
    let out = run(&cfg, &[foo(json!({}), status)]);
    assert_eq!(
        out.series,
        ["foo_false_type{GVK,name=\"foo\",type=\"B\"} 1"]
    );
}

#[test]
fn one_bad_metric_leaves_the_others_working() {
    let cfg = resource(
        "    - name: bad\n      each:\n        type: Gauge\n        gauge: {path: [status, \"[phase]\"]}\n    - name: worse\n      each:\n        type: Gauge\n    - name: good\n      each:\n        type: Gauge\n        gauge: {path: [status, n]}\n",
    );
    let (compiled, errors) = compile(&cfg);
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "resources[0] (example.com/v1/Foo) metric foo_bad metrics[0].each.gauge.path: invalid list filter \"[phase]\": expected [key=value]",
            "resources[0] (example.com/v1/Foo) metric foo_worse metrics[1].each.gauge: type Gauge needs its settings section",
        ]
    );
    assert_eq!(
        compiled.resources()[0].metric_names().collect::<Vec<_>>(),
        ["foo_good"]
    );
}

#[test]
fn label_names_are_sanitised_and_collisions_are_config_errors() {
    let cfg = resource(
        "    - name: m\n      labelsFromPath:\n        app.kubernetes.io/name: [metadata, name]\n        app_kubernetes_io_name: [metadata, namespace]\n      each:\n        type: Info\n        info: {}\n    - name: ok\n      commonLabels: {\"1st.label\": x}\n      each:\n        type: Info\n        info: {}\n",
    );
    let (compiled, errors) = compile(&cfg);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "resources[0] (example.com/v1/Foo) metric foo_m metrics[0].labelsFromPath.app_kubernetes_io_name: labels \"app.kubernetes.io/name\" and \"app_kubernetes_io_name\" both become \"app_kubernetes_io_name\""
    );
    let out = run(
        &resource(
            "    - name: ok\n      commonLabels: {\"1st.label\": x}\n      each:\n        type: Info\n        info: {}\n",
        ),
        &[foo(json!({}), json!({}))],
    );
    assert_eq!(out.series, ["foo_ok{GVK,_1st_label=\"x\",name=\"foo\"} 1"]);
    assert_eq!(
        compiled.resources()[0].metric_names().collect::<Vec<_>>(),
        ["foo_ok"]
    );
}

#[test]
fn invalid_names_states_and_groups_are_config_errors() {
    let cfg = "spec:\n  resources:\n  - groupVersionKind: {group: \"\", version: v1, kind: Pod}\n    metrics: []\n  - groupVersionKind: {group: example.com, version: v1, kind: Foo}\n    metricNamePrefix: my-team\n    metrics:\n    - name: x\n      each: {type: Info, info: {}}\n  - groupVersionKind: {group: example.com, version: v1, kind: Foo}\n    metrics:\n    - name: s\n      each:\n        type: StateSet\n        stateSet: {path: [status, phase], list: [A]}\n    - name: t\n      each:\n        type: StateSet\n        stateSet: {path: [status, phase], list: [A, A], labelName: p}\n";
    let (_, errors) = compile(cfg);
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "resources[0] (v1/Pod) groupVersionKind.group: group is required",
            "resources[1] (example.com/v1/Foo) metric my-team_x metrics[0].name: \"my-team_x\" is not a valid metric name",
            "resources[2] (example.com/v1/Foo) metric kube_customresource_s metrics[0].each.stateSet.labelName: labelName is required",
            "resources[2] (example.com/v1/Foo) metric kube_customresource_t metrics[1].each.stateSet.list: state \"A\" is listed twice",
        ]
    );
}

#[test]
fn families_shared_by_resources_get_one_header_and_stay_contiguous() {
    let cfg = "spec:\n  resources:\n  - groupVersionKind: {group: example.com, version: v1, kind: Foo}\n    metricNamePrefix: shared\n    labelsFromPath: {name: [metadata, name]}\n    metrics:\n    - {name: thing, help: from foo, each: {type: Info, info: {}}}\n    - {name: foo_only, help: h, each: {type: Info, info: {}}}\n  - groupVersionKind: {group: example.com, version: v1, kind: Bar}\n    metricNamePrefix: shared\n    labelsFromPath: {name: [metadata, name]}\n    metrics:\n    - {name: thing, help: from bar, each: {type: Info, info: {}}}\n";
    let bar = json!({"apiVersion": "example.com/v1", "kind": "Bar", "metadata": {"name": "bar", "namespace": "ns"}});
    let out = run(cfg, &[bar, foo(json!({}), json!({}))]);
    let headers: Vec<&str> = out
        .text
        .lines()
        .filter(|l| l.starts_with("# HELP"))
        .collect();
    assert_eq!(
        headers,
        ["# HELP shared_foo_only h", "# HELP shared_thing from foo"]
    );
    let thing: Vec<&str> = out
        .text
        .lines()
        .skip_while(|l| !l.starts_with("# HELP shared_thing"))
        .collect();
    assert_eq!(
        thing.len(),
        4,
        "header, type and both series together: {thing:?}"
    );
}

#[test]
fn conflicting_family_types_drop_the_later_metric_only() {
    let cfg = "spec:\n  resources:\n  - groupVersionKind: {group: example.com, version: v1, kind: Foo}\n    metricNamePrefix: x\n    metrics:\n    - {name: a, each: {type: Info, info: {}}}\n    - {name: b, each: {type: Info, info: {}}}\n  - groupVersionKind: {group: example.com, version: v1, kind: Bar}\n    metricNamePrefix: x\n    metrics:\n    - {name: a, each: {type: Gauge, gauge: {path: [status, n]}}}\n";
    let (compiled, errors) = compile(cfg);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("declared as Gauge here and as Info elsewhere"),
        "{}",
        errors[0]
    );
    assert_eq!(compiled.families().len(), 2);
    assert_eq!(compiled.resources()[1].metric_names().count(), 0);
}

#[test]
fn wildcard_versions_and_kinds_match() {
    let cfg = "spec:\n  resources:\n  - groupVersionKind: {group: example.com, version: \"*\", kind: Foo}\n    metrics: []\n  - groupVersionKind: {group: example.com, version: v2, kind: \"*\"}\n    metrics: []\n";
    let (compiled, _) = compile(cfg);
    let hits = |v: &str, k: &str| {
        compiled
            .resources_for("example.com", v, k)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    assert_eq!(hits("v1", "Foo"), [0]);
    assert_eq!(hits("v2", "Foo"), [0, 1]);
    assert_eq!(hits("v2", "Bar"), [1]);
    assert!(
        compiled
            .resources_for("other.com", "v1", "Foo")
            .next()
            .is_none()
    );
}

#[test]
fn hostile_objects_yield_what_can_be_computed() {
    let cfg = resource(
        "    - name: info\n      each:\n        type: Info\n        info:\n          labelsFromPath: {msg: [status, message], n: [status, n], list: [status, list]}\n    - name: cond\n      each:\n        type: Gauge\n        gauge: {path: [status, conditions], valueFrom: [status], labelsFromPath: {type: [type]}}\n",
    );
    let huge = "x".repeat(100_000);
    let weird = "quote\" backslash\\ newline\n ünïcode ✓";
    let objects = [
        foo(
            json!({}),
            json!({"message": weird, "n": 1.5e300, "list": [1, "a", null], "conditions": "not a list"}),
        ),
        foo(
            json!({}),
            json!({"message": huge, "conditions": [null, 3, {"type": {"nested": true}, "status": "True"}]}),
        ),
        json!({"apiVersion": "example.com/v1", "kind": "Foo", "metadata": {"name": "bare"}}),
    ];
    for object in &objects {
        let out = run(&cfg, std::slice::from_ref(object));
        assert!(
            out.series.iter().any(|s| s.starts_with("foo_info{")),
            "{:?}",
            out.series
        );
    }
    let out = run(&cfg, &objects[..1]);
    assert_eq!(
        out.series,
        [
            "foo_info{GVK,name=\"foo\",msg=\"quote\\\" backslash\\\\ newline\\n ünïcode ✓\",n=\"1.5e+300\",list=\"[1 a <nil>]\"} 1"
        ]
    );
    // A string where a list of conditions belongs has no `status` inside: missing, not an error.
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let out = run(&cfg, &objects[1..2]);
    assert!(
        out.series
            .contains(&"foo_cond{GVK,name=\"foo\",type=\"map[nested:true]\"} 1".to_owned()),
        "{:?}",
        out.series
    );
    // `null` and `3` have no `status` inside: skipped, like a condition without a status.
    assert!(out.errors.is_empty(), "{:?}", out.errors);
}

#[test]
fn ignore_keys_leaves_a_total_out_of_per_key_counts() {
    let cfg = resource(
        "    - name: cves\n      each:\n        type: Gauge\n        gauge: {path: [status, cveCount], labelFromKey: severity, ignoreKeys: [total]}\n",
    );
    let out = run(
        &cfg,
        &[foo(
            json!({}),
            json!({"cveCount": {"critical": 1, "high": 2, "total": 3}}),
        )],
    );
    assert_eq!(
        out.series,
        [
            "foo_cves{GVK,name=\"foo\",severity=\"critical\"} 1",
            "foo_cves{GVK,name=\"foo\",severity=\"high\"} 2",
        ]
    );
}

/// A kpack-like Build: the duration from creation to the Succeeded condition's last transition,
/// only once it is finished.
const BUILD_DURATION: &str = "    - name: duration_seconds\n      labelsFromPath:\n        status: [status, conditions, \"[type=Succeeded]\", status]\n      each:\n        type: Duration\n        duration:\n          start: [metadata, creationTimestamp]\n          end: [status, conditions, \"[type=Succeeded]\", lastTransitionTime]\n          when: {path: [status, conditions, \"[type=Succeeded]\", status], in: [\"True\", \"False\"]}\n";

fn build(created: Value, succeeded: &str, at: Value) -> Value {
    let mut object = foo(
        json!({}),
        json!({"conditions": [{"type": "Succeeded", "status": succeeded, "lastTransitionTime": at}]}),
    );
    object["metadata"]["creationTimestamp"] = created;
    object
}

#[test]
fn duration_between_two_timestamps_of_a_finished_object() {
    let cfg = resource(BUILD_DURATION);
    let out = run(
        &cfg,
        &[build(
            json!("2026-01-01T10:00:00Z"),
            "True",
            json!("2026-01-01T10:01:30.5Z"),
        )],
    );
    assert_eq!(
        out.series,
        ["foo_duration_seconds{GVK,name=\"foo\",status=\"True\"} 90.5"]
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    // Still running (Unknown) or no end yet: no series and no error.
    let running = build(
        json!("2026-01-01T10:00:00Z"),
        "Unknown",
        json!("2026-01-01T10:00:01Z"),
    );
    let mut no_end = build(json!("2026-01-01T10:00:00Z"), "False", Value::Null);
    no_end["metadata"]["name"] = json!("no-end");
    let out = run(&cfg, &[running, no_end]);
    assert!(out.series.is_empty(), "{:?}", out.series);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
}

#[test]
fn durations_over_a_list_one_series_per_element() {
    let cfg = resource(
        "    - name: step_seconds\n      each:\n        type: Duration\n        duration:\n          path: [status, steps]\n          start: [startedAt]\n          end: [finishedAt]\n          labelsFromPath: {step: [name]}\n",
    );
    let steps = json!({"steps": [
        {"name": "a", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:02Z"},
        {"name": "b", "startedAt": "2026-01-01T00:00:02Z"},
        {"name": "c", "startedAt": "2026-01-01T00:00:02Z", "finishedAt": "2026-01-01T00:01:02Z"}
    ]});
    let out = run(&cfg, &[foo(json!({}), steps)]);
    assert_eq!(
        out.series,
        [
            "foo_step_seconds{GVK,name=\"foo\",step=\"a\"} 2",
            "foo_step_seconds{GVK,name=\"foo\",step=\"c\"} 60",
        ]
    );
}

#[test]
fn bad_timestamps_and_clock_skew_make_no_series_and_are_reported() {
    let cfg = resource(BUILD_DURATION);
    let skewed = build(
        json!("2026-01-01T10:00:05Z"),
        "True",
        json!("2026-01-01T10:00:00Z"),
    );
    let mut garbled = build(json!("2026-01-01T10:00:00Z"), "False", json!("soon"));
    garbled["metadata"]["name"] = json!("garbled");
    let mut no_start = build(Value::Null, "True", json!("2026-01-01T10:00:00Z"));
    no_start["metadata"]["name"] = json!("no-start");
    let out = run(&cfg, &[skewed, garbled, no_start]);
    assert!(out.series.is_empty(), "{:?}", out.series);
    assert_eq!(
        out.errors,
        [
            "metric foo_duration_seconds at [status, conditions, [type=Succeeded], lastTransitionTime]: the end is 5.000s before the start",
            "metric foo_duration_seconds at [status, conditions, [type=Succeeded], lastTransitionTime]: expected an RFC 3339 timestamp but found \"soon\"",
            "metric foo_duration_seconds at [metadata, creationTimestamp]: expected an RFC 3339 timestamp but found nothing",
        ]
    );
}

#[test]
fn a_duration_without_its_section_or_states_is_a_config_error() {
    let (_, errors) = compile(&resource(
        "    - name: a\n      each: {type: Duration}\n    - name: b\n      each:\n        type: Duration\n        duration: {start: [x], end: [y], when: {path: [s], in: []}}\n",
    ));
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "resources[0] (example.com/v1/Foo) metric foo_a metrics[0].each.duration: type Duration needs its settings section",
            "resources[0] (example.com/v1/Foo) metric foo_b metrics[1].each.duration.when.in: when.in needs at least one state",
        ]
    );
}

#[test]
fn live_metrics_are_checked_and_make_no_per_object_family() {
    let (compiled, errors) = compile(&resource(
        "    - name: done_total\n      each: {type: Counter, counter: {state: [status, phase], to: [Done]}}\n    - name: done\n      each: {type: Counter, counter: {state: [status, phase]}}\n    - name: took\n      each: {type: Histogram, histogram: {state: [s], start: [a], end: [b], buckets: [10, 5]}}\n    - name: took_count\n      each: {type: Histogram, histogram: {state: [s], start: [a], end: [b], buckets: [1]}}\n    - name: info\n      each: {type: Info, info: {}}\n    - name: info_total\n      each: {type: Counter, counter: {state: [s]}}\n",
    ));
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "resources[0] (example.com/v1/Foo) metric foo_done metrics[1].name: a counter's name ends in _total: \"foo_done\"",
            "resources[0] (example.com/v1/Foo) metric foo_took metrics[2].each.histogram.buckets: buckets are 1 to 64 finite upper bounds, increasing",
            "resources[0] (example.com/v1/Foo) metric foo_took_count metrics[3].name: a histogram's name cannot end in _count: \"foo_took_count\"",
            "resources[0] (example.com/v1/Foo) metric foo_info_total each.type: the name foo_info is another family's",
        ]
    );
    let names: Vec<&str> = compiled.resources()[0]
        .live()
        .iter()
        .map(|l| l.name())
        .collect();
    assert_eq!(names, ["foo_done_total"]);
    let families: Vec<&str> = compiled
        .families()
        .iter()
        .map(|(_, d)| d.name.as_str())
        .collect();
    assert_eq!(families, ["foo_info"]);
}

#[test]
fn aggregates_count_and_sum_over_objects_and_follow_updates() {
    let cfg = resource(
        "    - name: by_phase\n      labelsFromPath: {phase: [status, phase]}\n      each: {type: Aggregate, aggregate: {function: count}}\n    - name: replicas\n      labelsFromPath: {namespace: [metadata, namespace]}\n      each: {type: Aggregate, aggregate: {function: sum, value: [status, replicas]}}\n",
    );
    let object = |ns: &str, name: &str, status: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Foo",
               "metadata": {"name": name, "namespace": ns}, "status": status})
    };
    let out = run(
        &cfg,
        &[
            object("a", "x", json!({"phase": "Ready", "replicas": 2})),
            object("a", "y", json!({"phase": "Failed", "replicas": "many"})),
            object("b", "z", json!({"phase": "Ready"})),
            // x again, changed: its contribution moves.
            object("a", "x", json!({"phase": "Failed", "replicas": 3})),
        ],
    );
    assert_eq!(
        out.series,
        [
            "foo_by_phase{phase=\"Failed\"} 2",
            "foo_by_phase{phase=\"Ready\"} 1",
            "foo_replicas{namespace=\"a\"} 3",
        ]
    );
    assert!(
        out.text.contains("# TYPE foo_by_phase gauge\n"),
        "{}",
        out.text
    );
    assert_eq!(
        out.errors,
        ["metric foo_replicas at [status, replicas]: expected a number but found \"many\""]
    );
}

#[test]
fn an_aggregate_needs_a_value_exactly_for_sum() {
    let (_, errors) = compile(&resource(
        "    - name: a\n      each: {type: Aggregate, aggregate: {function: sum}}\n    - name: b\n      each: {type: Aggregate, aggregate: {function: count, value: [x]}}\n",
    ));
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "resources[0] (example.com/v1/Foo) metric foo_a metrics[0].each.aggregate.value: sum needs the value to add up",
            "resources[0] (example.com/v1/Foo) metric foo_b metrics[1].each.aggregate.value: count counts objects: it takes no value",
        ]
    );
}
