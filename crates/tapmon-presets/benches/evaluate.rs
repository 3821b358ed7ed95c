//! Evaluate + render per object, with every preset, over the fixture objects of all 21 kinds:
//! the work done on each watch event.

// A benchmark is a tool: a missing fixture should stop it loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use tapmon_crs::{Compiled, EvalErrors};
use tapmon_exposition::ObjectRenderer;
use tapmon_presets::TapGroup;

fn fixtures() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/fixtures/tap");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("fixture file");
            tapmon_crs::yaml::from_multiple::<Value>(&text).expect("fixture YAML")
        })
        .filter(|o| o.get("kind").and_then(Value::as_str) != Some("Namespace"))
        .collect()
}

fn evaluate(c: &mut Criterion) {
    let spec = tapmon_presets::spec_for(TapGroup::ALL).expect("presets");
    let (compiled, errors) = Compiled::compile(&spec);
    assert!(errors.is_empty());
    let objects = fixtures();
    let mut renderer = ObjectRenderer::new(compiled.families());
    let mut errors = EvalErrors::default();
    let mut group = c.benchmark_group("evaluate_render");
    group.throughput(Throughput::Elements(objects.len() as u64));
    group.bench_function("fixture_objects_all_presets", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for object in &objects {
                errors.clear();
                compiled.render(object, &mut renderer, &mut errors, |_, rendered| {
                    bytes += rendered.len()
                });
            }
            black_box(bytes)
        })
    });
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
