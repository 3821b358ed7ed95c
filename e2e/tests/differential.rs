//! Side by side with kube-state-metrics on the same objects: tapmon's presets as a TapMonitor
//! and, exported by `tapmon presets`, as kube-state-metrics' config. Every difference must be
//! one of the intended ones listed in `e2e/ksm-differences.yaml`.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use tapmon_crs::model::{CustomResourceStateMetrics, Spec};
use tapmon_e2e::{
    KubeStateMetrics, SeriesKey, apply, apply_cluster_monitor, cluster_with_operator, documents,
    get, groups_only, install_crds, ksm_config, parse_exposition, root, serial,
};
use tapmon_presets::TapGroup;

/// Polls `scrape` until it gives the same series, with `families` families, for `hold`.
async fn settled<F, Fut>(
    what: &str,
    hold: Duration,
    families: usize,
    mut scrape: F,
) -> BTreeMap<SeriesKey, f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut stable: Option<(BTreeMap<SeriesKey, f64>, std::time::Instant)> = None;
    loop {
        if let Some(m) = scrape().await.and_then(|t| parse_exposition(&t).ok()) {
            let seen: BTreeSet<&str> = m.keys().map(|k| k.0.as_str()).collect();
            match &stable {
                Some((previous, since)) if *previous == m => {
                    if seen.len() == families && since.elapsed() >= hold {
                        return m;
                    }
                }
                _ => stable = Some((m, std::time::Instant::now())),
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not settle with every family"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A way kube-state-metrics' output differs from tapmon's, recognisable on any family the
/// config defines, so a new preset or a user's own kind hitting it needs no new entry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mechanism {
    /// An Info series none of whose own `labelsFromPath` found a value: kube-state-metrics
    /// drops it, tapmon keeps it with the outer labels.
    InfoWithoutOwnLabels,
    /// A family made by a tapmon extension: `tapmon presets` leaves it out of what it exports.
    TapmonExtension,
}

impl Mechanism {
    fn parse(name: &str) -> Mechanism {
        match name {
            "info-without-own-labels" => Mechanism::InfoWithoutOwnLabels,
            "tapmon-extension" => Mechanism::TapmonExtension,
            other => panic!("unknown mechanism {other}"),
        }
    }
}

/// What the config says about each family: the labels an Info metric takes from its own
/// `labelsFromPath` (empty for other metric types, which are not listed).
fn info_own_labels(spec: &Spec) -> BTreeMap<String, Vec<String>> {
    let mut families = BTreeMap::new();
    for resource in &spec.resources {
        let prefix = resource
            .metric_name_prefix
            .as_deref()
            .unwrap_or("kube_customresource");
        for generator in &resource.metrics {
            let Some(info) = &generator.each.info else {
                continue;
            };
            let family = if prefix.is_empty() {
                generator.name.clone()
            } else {
                format!("{prefix}_{}", generator.name)
            };
            let own = info
                .labels_from_path
                .0
                .iter()
                .map(|(k, _)| k.clone())
                .chain(info.label_from_key.clone())
                .collect();
            families.insert(family, own);
        }
    }
    families
}

/// An intended difference, from e2e/ksm-differences.yaml.
struct Intended {
    id: String,
    kind: String,
    mechanism: Option<Mechanism>,
    families: Vec<String>,
    labels: BTreeMap<String, String>,
    tapmon: Option<f64>,
    ksm: Option<f64>,
}

fn intended(path: &std::path::Path) -> Vec<Intended> {
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = tapmon_crs::yaml::from_str(&text).unwrap();
    docs.into_iter()
        .map(|d| {
            assert!(
                d["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "every difference says why: {d}"
            );
            Intended {
                id: d["id"].as_str().unwrap().to_owned(),
                kind: d["kind"].as_str().unwrap().to_owned(),
                mechanism: d["mechanism"].as_str().map(Mechanism::parse),
                families: d["families"]
                    .as_array()
                    .map(|a| a.iter().map(|f| f.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default(),
                labels: d["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default(),
                tapmon: d["tapmon"].as_f64(),
                ksm: d["ksm"].as_f64(),
            }
        })
        .collect()
}

impl Intended {
    fn covers(
        &self,
        info_labels: &BTreeMap<String, Vec<String>>,
        extensions: &BTreeSet<String>,
        kind: &str,
        key: &SeriesKey,
        ours: Option<f64>,
        theirs: Option<f64>,
    ) -> bool {
        let by_mechanism = match self.mechanism {
            None => true,
            Some(Mechanism::InfoWithoutOwnLabels) => info_labels.get(&key.0).is_some_and(|own| {
                own.iter()
                    .all(|l| key.1.get(l).is_none_or(String::is_empty))
            }),
            Some(Mechanism::TapmonExtension) => extensions.contains(&key.0),
        };
        self.kind == kind
            && by_mechanism
            && (self.families.is_empty() || self.families.contains(&key.0))
            && self.labels.iter().all(|(k, v)| key.1.get(k) == Some(v))
            && (self.tapmon.is_none() || self.tapmon == ours)
            && (self.ksm.is_none() || self.ksm == theirs)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tapmon_and_kube_state_metrics_agree_except_where_intended() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("differential", true).await.unwrap();
    apply_cluster_monitor(&cluster.admin, "tap", json!({}))
        .await
        .unwrap();
    let config = root()
        .join("target/e2e")
        .join(format!("ksm-config-{}.yaml", std::process::id()));
    let text = ksm_config();
    let spec = tapmon_crs::yaml::from_str::<CustomResourceStateMetrics>(&text)
        .unwrap()
        .spec;
    std::fs::write(&config, text).unwrap();
    let ksm = KubeStateMetrics::start(&cluster, &config).await.unwrap();

    // Both complete: tapmon once ready (every watch has finished its initial list);
    // kube-state-metrics, which has no readiness for custom resources and looks for CRDs every
    // 3 s, once its output has held still. Both must show every family.
    // The 42 catalogue families and 4 timestamps; tapmon also the 6 its extensions add.
    let ours = settled("tapmon", Duration::from_secs(3), 52, || async {
        let ready = get(operator.metrics, "/readyz").await.ok()?.0 == 200;
        if !ready {
            return None;
        }
        operator.scrape_cluster("tap").await
    })
    .await;
    let theirs = settled("kube-state-metrics", Duration::from_secs(5), 46, || {
        ksm.scrape()
    })
    .await;
    std::fs::remove_file(&config).ok();

    compare(
        &ours,
        &theirs,
        &spec,
        &root().join("e2e/ksm-differences.yaml"),
    );
    operator.stop().await;
}

/// Compares two expositions: every difference must be an intended one of `differences`, and
/// every intended one must occur.
fn compare(
    ours: &BTreeMap<SeriesKey, f64>,
    theirs: &BTreeMap<SeriesKey, f64>,
    config: &Spec,
    differences: &std::path::Path,
) {
    let rules = intended(differences);
    let info_labels = info_own_labels(config);
    let extensions: BTreeSet<String> = tapmon_presets::export_spec(TapGroup::ALL, &BTreeMap::new())
        .unwrap()
        .left_out
        .into_iter()
        .map(|(family, _)| family)
        .collect();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut unexplained = Vec::new();
    let mut check = |kind: &str, key: &SeriesKey, a: Option<f64>, b: Option<f64>| match rules
        .iter()
        .find(|r| r.covers(&info_labels, &extensions, kind, key, a, b))
    {
        Some(r) => {
            used.insert(r.id.clone());
        }
        None => unexplained.push(format!(
            "{kind}: {}{:?} tapmon={a:?} ksm={b:?}",
            key.0, key.1
        )),
    };
    for (key, a) in ours {
        match theirs.get(key) {
            Some(b) if a == b || (a.is_nan() && b.is_nan()) => {}
            Some(b) => check("value", key, Some(*a), Some(*b)),
            None => check("only-tapmon", key, Some(*a), None),
        }
    }
    for (key, b) in theirs {
        if !ours.contains_key(key) {
            check("only-ksm", key, None, Some(*b));
        }
    }
    assert!(
        unexplained.is_empty(),
        "{} unexplained differences:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    let unused: Vec<&str> = rules
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| !used.contains(*id))
        .collect();
    assert!(
        unused.is_empty(),
        "intended differences that no longer occur (remove them): {unused:?}"
    );
    let same = ours
        .iter()
        .filter(|(k, v)| theirs.get(*k) == Some(v))
        .count();
    eprintln!(
        "{same} of {} tapmon series identical to kube-state-metrics'; {} differences, all intended",
        ours.len(),
        ours.len() - same
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_config_feature_matches_kube_state_metrics_except_where_intended() {
    let _serial = serial().await;
    let (cluster, operator) = cluster_with_operator("features", false).await.unwrap();
    let dir = root().join("e2e/fixtures/features");
    install_crds(&cluster.admin, &[dir.join("crd.yaml")])
        .await
        .unwrap();
    apply(
        &cluster.admin,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "features"}}),
        None,
    )
    .await
    .unwrap();
    for widget in documents(&dir.join("widgets.yaml")).unwrap() {
        apply(&cluster.admin, widget, None).await.unwrap();
    }
    // Extra kinds need their own grant, as deploy/README.md describes.
    apply(&cluster.admin, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "tapmon-widgets"},
        "rules": [{"apiGroups": ["example.tapmon.io"], "resources": ["widgets"], "verbs": ["list", "watch"]}]}), None).await.unwrap();
    apply(&cluster.admin, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "tapmon-widgets"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "tapmon-widgets"},
        "subjects": [{"kind": "ServiceAccount", "name": "tapmon", "namespace": "tapmon-system"}]}), None).await.unwrap();

    let config: Value =
        tapmon_crs::yaml::from_str(&std::fs::read_to_string(dir.join("config.yaml")).unwrap())
            .unwrap();
    apply_cluster_monitor(
        &cluster.admin,
        "features",
        json!({"groups": groups_only(&[]), "resources": config["spec"]["resources"]}),
    )
    .await
    .unwrap();
    let ksm = KubeStateMetrics::start(&cluster, &dir.join("config.yaml"))
        .await
        .unwrap();

    let metrics = config["spec"]["resources"][0]["metrics"]
        .as_array()
        .unwrap()
        .len();
    let ours = settled("tapmon", Duration::from_secs(3), metrics, || async {
        (get(operator.metrics, "/readyz").await.ok()?.0 == 200).then_some(())?;
        operator.scrape_cluster("features").await
    })
    .await;
    let theirs = settled(
        "kube-state-metrics",
        Duration::from_secs(5),
        metrics,
        || ksm.scrape(),
    )
    .await;
    let spec: CustomResourceStateMetrics = serde_json::from_value(config).unwrap();
    compare(&ours, &theirs, &spec.spec, &dir.join("differences.yaml"));
    operator.stop().await;
}
