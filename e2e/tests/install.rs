//! Installing tapmon as a platform engineer would: `deploy/` is the chart rendered, the chart
//! lints and its schema refuses wrong values, every rendering passes the API server's strict
//! validation, the image runs as the chart and as a kustomize overlay in another namespace deploy
//! it, serving a monitor, and uninstalling finishes with monitors present.
//!
//! No kubelet runs here: the tests do its part by hand (`tapmon_e2e::image`), from the
//! Deployment the API server holds.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kube::Api;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use tapmon_e2e::image::{Container, Image, archive};
use tapmon_e2e::install::{
    NAMESPACE, apply_strictly, chart_dir, deploy_from_chart, helm, kustomize, render_chart,
};
use tapmon_e2e::status::ready;
use tapmon_e2e::tls::insecure_client;
use tapmon_e2e::{
    Cluster, apply, apply_cluster_monitor, apply_tap_monitor, cluster_monitors, eventually,
    install_crds, install_publishing_crds, load_tap_environment, parse_exposition,
    prometheus_operator_crds, root, serial, tapmonitors, yaml_files,
};

const WAIT: Duration = Duration::from_secs(120);

fn values_files(dir: &str) -> Vec<std::path::PathBuf> {
    yaml_files(&root().join("e2e/fixtures/install").join(dir)).unwrap()
}

#[test]
fn deploy_is_the_chart_rendered_with_its_defaults() {
    let generated = deploy_from_chart().unwrap();
    for (file, text) in &generated {
        let committed =
            std::fs::read_to_string(root().join("deploy").join(file)).unwrap_or_default();
        assert_eq!(
            &committed, text,
            "deploy/{file} differs from the chart: run `make generate`"
        );
    }
    // The kustomization lists exactly those, the namespace and the CRDs.
    let kustomization: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join("deploy/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    let mut listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = generated
        .keys()
        .map(String::as_str)
        .filter(|f| !f.starts_with("monitoring/"))
        .collect();
    expected.extend(["../crds", "namespace.yaml"]);
    expected.sort_unstable();
    assert_eq!(listed, expected);
    // deploy/monitoring/ is tapmon's own ServiceMonitor and alerts, nothing else.
    let monitoring: Vec<String> = generated
        .keys()
        .filter_map(|f| f.strip_prefix("monitoring/"))
        .map(str::to_owned)
        .collect();
    assert_eq!(monitoring, ["selfrules.yaml", "servicemonitor.yaml"]);
}

#[test]
fn the_chart_lints_and_its_schema_refuses_wrong_values() {
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    helm(&["lint", "--strict", chart], None).unwrap();
    for file in values_files("values") {
        helm(
            &["lint", "--strict", chart, "-f", file.to_str().unwrap()],
            None,
        )
        .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
    }
    for file in values_files("bad-values") {
        let err = render_chart(&["-f", file.to_str().unwrap()])
            .expect_err(&format!("{} was accepted", file.display()));
        let message = format!("{err:#}");
        assert!(message.contains("schema"), "{}: {message}", file.display());
    }
    // A wrong type on the command line too, with the field named.
    let err = format!(
        "{:#}",
        render_chart(&["--set", "replicas=two"]).unwrap_err()
    );
    assert!(err.contains("replicas"), "{err}");
}

#[test]
fn the_self_alerts_pass_promtool_and_each_has_a_runbook() {
    let rendered = render_chart(&["--set", "selfMonitor.enabled=true"]).unwrap();
    let rule = tapmon_e2e::install::objects(&rendered)
        .unwrap()
        .into_iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("selfMonitor.enabled renders a PrometheusRule");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_json::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let tests = dir.path().join("self-rules-test.yaml");
    std::fs::copy(
        root().join("e2e/fixtures/install/self-rules-test.yaml"),
        &tests,
    )
    .unwrap();
    for args in [
        vec!["check", "rules", "rules.yaml"],
        vec!["test", "rules", "self-rules-test.yaml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert links its runbook page, which exists.
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    assert!(rules.len() >= 7, "{} alerts", rules.len());
    for r in rules {
        let alert = r["alert"].as_str().unwrap();
        let url = r["annotations"]["runbook_url"].as_str().unwrap();
        assert!(
            url.ends_with(&format!("/docs/runbooks/{alert}.md")),
            "{alert}: {url}"
        );
        let page = std::fs::read_to_string(root().join(format!("docs/runbooks/{alert}.md")));
        assert!(
            page.unwrap_or_default()
                .starts_with(&format!("# {alert}\n")),
            "no runbook for {alert}"
        );
    }
    // Without selfMonitor (the default) nothing of it is rendered.
    assert!(!render_chart(&[]).unwrap().contains("TapmonDown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendering_passes_strict_validation_by_the_api_server() {
    let _serial = serial().await;
    let cluster = Cluster::up("install-validate").await.unwrap();
    let admin = &cluster.admin;
    install_crds(
        admin,
        &prometheus_operator_crds(&["servicemonitors", "prometheusrules"]).unwrap(),
    )
    .await
    .unwrap();
    install_crds(admin, &yaml_files(&root().join("crds")).unwrap())
        .await
        .unwrap();
    apply(
        admin,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        None,
    )
    .await
    .unwrap();

    let mut renderings = vec![("defaults".to_owned(), render_chart(&[]).unwrap())];
    for file in values_files("values") {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        renderings.push((name, render_chart(&["-f", file.to_str().unwrap()]).unwrap()));
    }
    renderings.push(("deploy/".into(), kustomize(&root().join("deploy")).unwrap()));
    let overlay = root().join("e2e/fixtures/install/overlay");
    renderings.push(("overlay".into(), kustomize(&overlay).unwrap()));
    for (name, yaml) in &renderings {
        let n = apply_strictly(admin, yaml, true)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(n >= 10, "{name}: only {n} objects");
    }

    // The overlay moved everything, bindings' subjects included.
    let objects = tapmon_e2e::install::objects(&kustomize(&overlay).unwrap()).unwrap();
    for obj in &objects {
        if let Some(ns) = obj["metadata"]["namespace"].as_str() {
            assert_eq!(ns, "tapmon-other", "{}", obj["metadata"]["name"]);
        }
        for subject in obj["subjects"].as_array().into_iter().flatten() {
            assert_eq!(subject["namespace"], "tapmon-other", "{obj}");
        }
    }
}

/// The container spec of Deployment `namespace/name` as the API server holds it.
async fn deployed_container(cluster: &Cluster, namespace: &str, name: &str) -> Value {
    let deployment: k8s_openapi::api::apps::v1::Deployment =
        Api::namespaced(cluster.admin.clone(), namespace)
            .get(name)
            .await
            .unwrap();
    let spec = deployment.spec.unwrap().template.spec.unwrap();
    serde_json::to_value(&spec.containers[0]).unwrap()
}

/// GETs `path` from `container`'s metrics port over HTTPS with a bearer token.
async fn scrape(container: &Container, path: &str, token: &str) -> (u16, String) {
    let mut client = tapmon_e2e::http::Client::tls(insecure_client().unwrap());
    let auth = format!("Bearer {token}");
    let r = client
        .request(
            container.ports["metrics"],
            path,
            &[("Authorization", &auth)],
            false,
        )
        .await
        .unwrap();
    (r.status, r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_as_the_chart_deploys_it_serves_a_monitor_and_uninstalls() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let image = Image::unpack(&archive().unwrap(), dir.path()).unwrap();
    // Nothing but the binary and the user's name: no shell, no libc, no package manager.
    assert_eq!(image.files, ["etc", "etc/group", "etc/passwd", "tapmon"]);
    assert_eq!(image.config["config"]["Entrypoint"], json!(["/tapmon"]));
    assert_eq!(image.config["config"]["User"], "65532:65532");
    assert_eq!(image.config["architecture"], "amd64");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        image.label("org.opencontainers.image.version"),
        Some(version)
    );
    assert_eq!(
        image.label("org.opencontainers.image.licenses"),
        Some("Apache-2.0")
    );
    let revision = image
        .label("org.opencontainers.image.revision")
        .unwrap()
        .to_owned();
    assert!(revision.len() >= 40, "revision {revision}");
    let printed = std::process::Command::new(image.rootfs.join("tapmon"))
        .arg("--version")
        .output()
        .unwrap();
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert_eq!(
        printed.trim(),
        format!("tapmon {version} (revision {revision})")
    );
    assert!(
        image.compressed_size < 20 << 20,
        "{} bytes compressed",
        image.compressed_size
    );

    let cluster = Cluster::up("install-helm").await.unwrap();
    load_tap_environment(&cluster.admin).await.unwrap();
    install_publishing_crds(&cluster.admin).await.unwrap();
    let kubeconfig = cluster.kubeconfig();
    let chart = chart_dir();
    let values = root().join("e2e/fixtures/install/values/monitor.yaml");
    helm(
        &[
            "install",
            "tapmon",
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "-f",
            values.to_str().unwrap(),
        ],
        Some(&kubeconfig),
    )
    .unwrap();

    let spec = deployed_container(&cluster, NAMESPACE, "tapmon").await;
    let mut pod = Container::start(&image, &spec, &cluster, NAMESPACE, "tapmon", "tapmon-0")
        .await
        .unwrap();
    pod.until_probe("livenessProbe", WAIT).await.unwrap();
    pod.until_probe("readinessProbe", WAIT).await.unwrap();
    // The chart's ClusterTapMonitor, written by the image's operator.
    eventually("the chart's ClusterTapMonitor Ready", WAIT, || async {
        let m = cluster_monitors(&cluster.admin).get("tap").await.ok()?;
        ready(m.data.get("status")?).then_some(())
    })
    .await;
    // The Prometheus of `metricsReaders` may read it; another ServiceAccount may not.
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}});
    apply(&cluster.admin, namespace, None).await.unwrap();
    let prometheus = cluster
        .service_account_token("monitoring", "prom-prometheus")
        .await
        .unwrap();
    let (status, body) = scrape(&pod, "/clustermonitors/tap/metrics", &prometheus).await;
    assert_eq!(status, 200, "{body}");
    let series = parse_exposition(&body).unwrap();
    assert!(series.len() > 100, "{} series", series.len());
    assert!(!body.contains("tap_imagescan"), "scanning was turned off");
    let other = cluster
        .service_account_token("monitoring", "someone")
        .await
        .unwrap();
    assert_eq!(
        scrape(&pod, "/clustermonitors/tap/metrics", &other).await.0,
        403
    );
    // What the monitor published, owned by it.
    let published: Api<DynamicObject> = tapmon_e2e::dynamic_api(
        &cluster.admin,
        Some(NAMESPACE),
        ("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    );
    let sm = eventually("the published ServiceMonitor", WAIT, || async {
        published.get_opt("cluster-tap").await.ok().flatten()
    })
    .await;
    // The chart's publishedLabels, as --published-label, under the monitor's own.
    let labels = sm.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("platform"));
    assert_eq!(labels.get("release").map(String::as_str), Some("prom"));

    // Uninstall with the monitor present: everything the chart made goes, what the monitor
    // published goes with it, the CRDs stay (and with them any other monitors).
    helm(
        &["uninstall", "tapmon", "--namespace", NAMESPACE, "--wait"],
        Some(&kubeconfig),
    )
    .unwrap();
    drop(pod); // The kubelet's part: the Deployment is gone, so is its pod.
    eventually("the ClusterTapMonitor deleted", WAIT, || async {
        cluster_monitors(&cluster.admin)
            .get_opt("tap")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    eventually("the published ServiceMonitor collected", WAIT, || async {
        published
            .get_opt("cluster-tap")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let left = cluster
        .kubectl(&[
            "get",
            "all,serviceaccounts,roles,rolebindings",
            "-n",
            NAMESPACE,
            "-o",
            "name",
        ])
        .await
        .unwrap();
    let left: Vec<&str> = left
        .lines()
        .filter(|l| !l.contains("kube-root-ca"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let roles = cluster
        .kubectl(&[
            "get",
            "clusterroles,clusterrolebindings",
            "-l",
            "app.kubernetes.io/name=tapmon",
            "-o",
            "name",
        ])
        .await
        .unwrap();
    assert_eq!(roles.trim(), "", "left behind");
    cluster
        .kubectl(&[
            "get",
            "crd",
            "tapmonitors.tapmon.io",
            "clustertapmonitors.tapmon.io",
        ])
        .await
        .expect("the CRDs are kept");
    cluster
        .kubectl(&[
            "delete",
            "namespace",
            NAMESPACE,
            "--wait=true",
            "--timeout=120s",
        ])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_kustomize_command_installs_in_another_namespace_and_deleting_it_finishes() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let image = Image::unpack(&archive().unwrap(), dir.path()).unwrap();
    let cluster = Cluster::up("install-kustomize").await.unwrap();
    load_tap_environment(&cluster.admin).await.unwrap();
    install_publishing_crds(&cluster.admin).await.unwrap();
    let overlay = root().join("e2e/fixtures/install/overlay");
    let overlay = overlay.to_str().unwrap();
    // One command: CRDs, admission policy, namespace, RBAC, Deployment.
    cluster.kubectl(&["apply", "-k", overlay]).await.unwrap();
    cluster
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/tapmonitors.tapmon.io",
            "crd/clustertapmonitors.tapmon.io",
        ])
        .await
        .unwrap();

    let spec = deployed_container(&cluster, "tapmon-other", "tapmon").await;
    let mut pod = Container::start(
        &image,
        &spec,
        &cluster,
        "tapmon-other",
        "tapmon",
        "tapmon-0",
    )
    .await
    .unwrap();
    pod.until_probe("readinessProbe", WAIT).await.unwrap();

    // A tenant's monitor and the platform's: both Ready, so the operator has its rights.
    let sample = tapmon_e2e::documents(&root().join("config/samples/tapmonitor.yaml")).unwrap();
    let sample = sample
        .into_iter()
        .find(|d| d["kind"] == "TapMonitor")
        .unwrap();
    let (ns, name) = (
        sample["metadata"]["namespace"]
            .as_str()
            .unwrap_or("dev-team-a")
            .to_owned(),
        sample["metadata"]["name"].as_str().unwrap().to_owned(),
    );
    apply_tap_monitor(&cluster.admin, &ns, &name, sample["spec"].clone())
        .await
        .unwrap();
    apply_cluster_monitor(&cluster.admin, "tap", json!({}))
        .await
        .unwrap();
    let monitors = tapmonitors(&cluster.admin, &ns);
    eventually("both monitors Ready", WAIT, || async {
        let t = monitors.get(&name).await.ok()?;
        let c = cluster_monitors(&cluster.admin).get("tap").await.ok()?;
        (ready(t.data.get("status")?) && ready(c.data.get("status")?)).then_some(())
    })
    .await;
    let token = cluster
        .service_account_token("tapmon-other", "reader")
        .await
        .unwrap();
    cluster
        .kubectl(&[
            "create",
            "clusterrolebinding",
            "reader",
            "--clusterrole=tapmon-metrics-reader",
            "--serviceaccount=tapmon-other:reader",
        ])
        .await
        .unwrap();
    let path = format!("/monitors/{ns}/{name}/metrics");
    let (status, body) = eventually("an authorised scrape", WAIT, || async {
        let r = scrape(&pod, &path, &token).await;
        (r.0 == 200).then_some(r)
    })
    .await;
    assert_eq!(status, 200);
    assert!(!parse_exposition(&body).unwrap().is_empty());

    // Uninstall with both monitors present: it finishes, nothing of tapmon is left.
    cluster
        .kubectl(&["delete", "-k", overlay, "--wait=false"])
        .await
        .unwrap();
    drop(pod);
    eventually("the namespace gone", WAIT, || async {
        let out = cluster
            .kubectl(&[
                "get",
                "namespace",
                "tapmon-other",
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .await
            .ok()?;
        out.trim().is_empty().then_some(())
    })
    .await;
    eventually("the CRDs and every monitor gone", WAIT, || async {
        let out = cluster.kubectl(&["get", "crd", "-o", "name"]).await.ok()?;
        (!out.contains("tapmon.io")).then_some(())
    })
    .await;
    let left = cluster
        .kubectl(&[
            "get",
            "clusterroles,validatingadmissionpolicies",
            "-o",
            "name",
        ])
        .await
        .unwrap();
    let left: Vec<&str> = left.lines().filter(|l| l.contains("tapmon")).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
