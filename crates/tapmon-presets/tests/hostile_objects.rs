//! Objects we do not own are untrusted: every fixture object, with each of its nodes in turn
//! replaced by a value of every other JSON type, must evaluate without panicking and still give
//! the series that do not depend on the damaged node.

// Test helpers fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::{Value, json};
use tapmon_crs::{Compiled, EvalErrors};
use tapmon_exposition::ObjectRenderer;
use tapmon_presets::TapGroup;

fn fixtures() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/fixtures/tap");
    let mut objects = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        objects.extend(tapmon_crs::yaml::from_multiple::<Value>(&text).unwrap());
    }
    objects.retain(|o| o["kind"] != "Namespace");
    objects
}

/// JSON pointers of every node below the root, except apiVersion and kind (which route the
/// object) and metadata.name/namespace (its identity).
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        let pointer = format!("{at}/{key}");
        if !matches!(
            pointer.as_str(),
            "/apiVersion" | "/kind" | "/metadata/name" | "/metadata/namespace"
        ) {
            out.push(pointer.clone());
        }
        pointers(child, pointer, out);
    }
}

#[test]
fn every_node_of_every_fixture_may_have_any_type() {
    let (compiled, errors) = Compiled::compile(&tapmon_presets::spec_for(TapGroup::ALL).unwrap());
    assert!(errors.is_empty());
    let mut renderer = ObjectRenderer::new(compiled.families());
    let mut eval_errors = EvalErrors::default();
    let replacements = [
        Value::Null,
        json!(true),
        json!(-1.5e300),
        json!("Unknown\n\"\\"),
        json!([]),
        json!([null, 1, "x"]),
        json!({}),
        json!({"a": {"b": []}}),
    ];
    let mut evaluated = 0usize;
    for object in fixtures() {
        let mut paths = Vec::new();
        pointers(&object, String::new(), &mut paths);
        for pointer in &paths {
            for replacement in &replacements {
                let mut damaged = object.clone();
                *damaged.pointer_mut(pointer).unwrap() = replacement.clone();
                eval_errors.clear();
                let mut series = 0;
                compiled.render(&damaged, &mut renderer, &mut eval_errors, |_, r| {
                    series += r.series()
                });
                // Every kind has an info-like family read from the whole object: damage
                // elsewhere never costs the object all its series.
                assert!(
                    series > 0,
                    "{} {pointer} = {replacement}: no series",
                    object["kind"]
                );
                evaluated += 1;
            }
        }
    }
    assert!(evaluated > 10_000, "{evaluated}");
}
