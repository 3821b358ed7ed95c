//! Scrape concatenation over 50k stored objects: the cost a Prometheus scrape pays; and the
//! gzip block size and level: what compressing every block costs (a first scrape, or a scrape
//! after everything changed) and how large the compressed scrape is, next to one gzip stream.

// A benchmark is a tool: a missing fixture should stop it loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tapmon_exposition::{
    FamilyDesc, FamilySet, Format, GzipPart, MetricType, ObjectKey, ObjectRenderer, Store, gzip,
};

const OBJECTS: usize = 50_000;

fn store(block_bytes: usize, level: u32) -> Store {
    let descs: Vec<FamilyDesc> = (0..42)
        .map(|i| FamilyDesc {
            name: format!(
                "tap_kind{}_{}",
                i / 2,
                if i % 2 == 0 { "info" } else { "status" }
            ),
            help: "bench".into(),
            kind: if i % 2 == 0 {
                MetricType::Info
            } else {
                MetricType::Gauge
            },
            state_label: None,
        })
        .collect();
    let (set, ids) = FamilySet::new(&descs).expect("valid families");
    let set = Arc::new(set);
    let mut store = Store::with_blocks(Arc::clone(&set), block_bytes, level);
    let mut renderer = ObjectRenderer::new(&set);
    for i in 0..OBJECTS {
        let kind = i % 21;
        let name = format!("workload-{i}");
        let ns = format!("team-{}", i % 40);
        let mut info = renderer
            .series(ids[kind * 2])
            .label("name", &name)
            .label("namespace", &ns);
        for l in [
            "source_git_url",
            "source_git_branch",
            "supply_chain",
            "created_at",
            "type",
        ] {
            info = info.label(l, "https://github.com/example/some-repository-name.git");
        }
        info.finish(1.0);
        for t in [
            "Ready",
            "SupplyChainReady",
            "ResourcesSubmitted",
            "ResourcesHealthy",
        ] {
            renderer
                .series(ids[kind * 2 + 1])
                .label("name", &name)
                .label("namespace", &ns)
                .label("type", t)
                .label("status", "True")
                .label("reason", "Ready")
                .label("last_transition_time", "2024-05-06T07:08:09Z")
                .finish(1.0);
        }
        store.upsert(ObjectKey::new(kind as u32, &ns, &name), renderer.finish());
    }
    store
}

fn scrape(c: &mut Criterion) {
    let store = store(gzip::BLOCK_BYTES, gzip::LEVEL);
    let bytes = store.encoded_len(Format::Text);
    let mut group = c.benchmark_group("scrape_50k_objects");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    group.bench_function("encode_text", |b| {
        let mut out = Vec::with_capacity(bytes);
        b.iter(|| {
            out.clear();
            store.encode(Format::Text, &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("chunks_text", |b| {
        b.iter(|| black_box(store.chunks(Format::Text).len()))
    });
    group.finish();
}

/// Compresses every stale block without keeping it; returns the compressed scrape's size.
fn compress_all(store: &Store) -> (usize, usize) {
    let mut members = 0;
    let bytes = store
        .gzip_parts(Format::Text)
        .iter()
        .map(|part| {
            members += 1;
            match part {
                GzipPart::Member(m) => m.len(),
                GzipPart::Stale(stale) => stale.compress().len(),
            }
        })
        .sum();
    (bytes, members)
}

fn gzip_blocks(c: &mut Criterion) {
    let mut group = c.benchmark_group("gzip_50k_objects");
    group.sample_size(10);
    for level in [1, 6, 9] {
        let one_stream = {
            let s = store(gzip::BLOCK_BYTES, level);
            gzip::member(&s.chunks(Format::Text), level).len()
        };
        for block_bytes in [16 << 10, 64 << 10, 256 << 10] {
            let store = store(block_bytes, level);
            let plain = store.encoded_len(Format::Text);
            let (bytes, members) = compress_all(&store);
            eprintln!(
                "level {level}, blocks of {} KiB: {members} members, {bytes} bytes \
                 ({:.2}% of {plain} plain, {:.3}x one stream)",
                block_bytes >> 10,
                100.0 * bytes as f64 / plain as f64,
                bytes as f64 / one_stream as f64
            );
            group.throughput(Throughput::Bytes(plain as u64));
            group.bench_function(
                format!("compress_all/level{level}/{}KiB", block_bytes >> 10),
                |b| b.iter(|| black_box(compress_all(&store))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, scrape, gzip_blocks);
criterion_main!(benches);
