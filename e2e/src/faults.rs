//! The fault suite: each case runs the operator as its own process against a real control
//! plane, causes one fault and returns what it measured. `tests/reliability.rs` asserts on the
//! figures; `tapmon-reliability` (`make reliability`) writes them to `docs/reliability.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tapmon_api::{ConditionType, EventReason, Reason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::Cluster;
use crate::exposition::parse_exposition;
use crate::fixtures::load_tap_environment;
use crate::generate::Generator;
use crate::http::{Client as HttpClient, get};
use crate::kube::{apply_cluster_monitor, cluster_monitors, dynamic_api};
use crate::operator::operator_identity;
use crate::process::OperatorProcess;
use crate::status::{condition, ready};
use crate::wait::until;

/// The monitor every case uses: a ClusterTapMonitor over every group.
pub const MONITOR: &str = "tap";
const PATH: &str = "/clustermonitors/tap/metrics";

/// A cluster with the sample TAP environment, the operator's RBAC and the monitor.
pub async fn prepared(name: &str) -> anyhow::Result<Cluster> {
    let cluster = Cluster::up(name).await?;
    load_tap_environment(&cluster.admin).await?;
    operator_identity(&cluster).await?;
    apply_cluster_monitor(&cluster.admin, MONITOR, json!({})).await?;
    Ok(cluster)
}

/// The monitor's status as the API server has it.
async fn status(cluster: &Cluster) -> Option<Value> {
    let m = cluster_monitors(&cluster.admin).get(MONITOR).await.ok()?;
    m.data.get("status").cloned()
}

/// Waits until the monitor is Ready and `op` serves every fixture series.
async fn settled(cluster: &Cluster, op: &OperatorProcess) -> anyhow::Result<usize> {
    until("the monitor Ready", Duration::from_secs(120), || async {
        status(cluster).await.filter(ready).map(drop)
    })
    .await?;
    until("the series served", Duration::from_secs(60), || async {
        let (code, body) = get(op.metrics, PATH).await.ok()?;
        let n = parse_exposition(&body).ok()?.len();
        (code == 200 && n > 400).then_some(n)
    })
    .await
}

/// A value of a self-metric line, 0 when absent.
pub fn self_metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Counts the writes to the monitor the API server makes visible (watch MODIFIED events) and
/// how often its Ready condition flips, until `for_` has passed.
async fn count_writes(cluster: &Cluster, for_: Duration) -> anyhow::Result<(usize, usize)> {
    let api: Api<DynamicObject> = cluster_monitors(&cluster.admin);
    let config = watcher::Config::default().fields(&format!("metadata.name={MONITOR}"));
    let mut stream = std::pin::pin!(watcher::watcher(api, config));
    let (mut writes, mut flips) = (0, 0);
    let mut last_ready: Option<bool> = None;
    let deadline = tokio::time::sleep(for_);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            event = stream.next() => match event {
                Some(Ok(Event::Apply(m))) => {
                    writes += 1;
                    let now = m.data.get("status").is_some_and(ready);
                    if last_ready.is_some_and(|r| r != now) {
                        flips += 1;
                    }
                    last_ready = Some(now);
                }
                Some(Ok(Event::InitApply(m))) => {
                    last_ready = Some(m.data.get("status").is_some_and(ready));
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    Ok((writes, flips))
}

/// Events the operator published about the monitor (cluster-scoped: namespace `default`), by
/// reason.
async fn events(cluster: &Cluster) -> anyhow::Result<BTreeMap<String, usize>> {
    Ok(event_list(cluster).await?.into_iter().fold(
        BTreeMap::new(),
        |mut out, (reason, _, count)| {
            *out.entry(reason).or_default() += count;
            out
        },
    ))
}

/// The monitor's Events: reason, who reported it when (`instance@time`), and how many times.
async fn event_list(cluster: &Cluster) -> anyhow::Result<Vec<(String, String, usize)>> {
    let api = dynamic_api(
        &cluster.admin,
        Some("default"),
        ("events.k8s.io", "v1", "Event"),
        "events",
    );
    let mut out = Vec::new();
    for e in api.list(&Default::default()).await?.items {
        if e.data["regarding"]["name"] == MONITOR
            && e.data["regarding"]["kind"] == "ClusterTapMonitor"
        {
            // A repeated Event is one object whose series count goes up.
            let count = e.data["series"]["count"].as_u64().unwrap_or(1) as usize;
            let reported = format!(
                "{}@{} {}",
                e.data["reportingInstance"].as_str().unwrap_or(""),
                e.data["eventTime"].as_str().unwrap_or(""),
                e.data["note"].as_str().unwrap_or("")
            );
            out.push((
                e.data["reason"].as_str().unwrap_or("").to_owned(),
                reported,
                count,
            ));
        }
    }
    Ok(out)
}

/// Two replicas against one cluster.
#[derive(Debug, Clone)]
pub struct Replicas {
    /// Writes to the monitor in the window with one operator.
    pub writes_one: usize,
    /// Writes in the same window with two operators that see the world differently.
    pub writes_two: usize,
    /// Ready flips in that window.
    pub flips_two: usize,
    /// Ready Events, by who reported them when, and how many times.
    pub ready_reports: Vec<(String, usize)>,
    /// Ready Events published, all told.
    pub ready_events: usize,
    /// From killing the leader (SIGKILL) to the other replica leading.
    pub takeover_after_crash: Duration,
    /// From SIGTERM of the leader to the other replica leading.
    pub takeover_after_sigterm: Duration,
    /// Scrapes of the surviving replica that failed during the crash takeover, and in all.
    pub failed_scrapes: (usize, usize),
}

/// One writer among two replicas; hand-over on a crash and on SIGTERM.
pub async fn two_replicas(window: Duration) -> anyhow::Result<Replicas> {
    let cluster = prepared("replicas").await?;
    let a = OperatorProcess::start(&cluster, "a", &[]).await?;
    settled(&cluster, &a).await?;
    let (writes_one, _) = count_writes(&cluster, window).await?;
    // A second replica with another view of the world: a series limit that would make its
    // status differ. Only the leader writes, so nothing flaps.
    let b = OperatorProcess::start(&cluster, "b", &["--series-limit=3"]).await?;
    let (writes_two, flips_two) = count_writes(&cluster, window).await?;
    let leads = |op: &OperatorProcess| {
        let op_metrics = op.telemetry;
        async move {
            let text = get(op_metrics, "/metrics").await.ok()?.1;
            Some(self_metric(&text, "tapmon_leader") == 1.0)
        }
    };
    anyhow::ensure!(leads(&a).await == Some(true), "the first replica leads");

    // Crash the leader: the other takes over once the lease expires, serving throughout.
    let mut a = a;
    let watching = b.metrics;
    let poller = tokio::spawn(async move {
        let (mut failed, mut all) = (0, 0);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(25) {
            all += 1;
            if get(watching, PATH).await.ok().map(|r| r.0) != Some(200) {
                failed += 1;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (failed, all)
    });
    let crashed = Instant::now();
    a.kill();
    until(
        "b leads after the crash",
        Duration::from_secs(40),
        || async { (leads(&b).await == Some(true)).then_some(()) },
    )
    .await?;
    let takeover_after_crash = crashed.elapsed();
    let failed_scrapes = poller.await?;

    // A new replica joins; SIGTERM the leader: it releases the lease on the way out.
    let c = OperatorProcess::start(&cluster, "c", &[]).await?;
    settled(&cluster, &c).await?;
    let terminated = Instant::now();
    b.terminate()?;
    until("c leads after SIGTERM", Duration::from_secs(40), || async {
        (leads(&c).await == Some(true)).then_some(())
    })
    .await?;
    let takeover_after_sigterm = terminated.elapsed();
    let ready = EventReason::Ready.to_string();
    let ready_reports: Vec<(String, usize)> = event_list(&cluster)
        .await?
        .into_iter()
        .filter(|(reason, _, _)| *reason == ready)
        .map(|(_, reported, count)| (reported, count))
        .collect();
    let ready_events = ready_reports.iter().map(|(_, count)| count).sum();
    Ok(Replicas {
        writes_one,
        writes_two,
        flips_two,
        ready_reports,
        ready_events,
        takeover_after_crash,
        takeover_after_sigterm,
        failed_scrapes,
    })
}

/// Clients that ask and never read.
#[derive(Debug, Clone)]
pub struct StalledReaders {
    /// Objects and exposition size.
    pub objects: usize,
    /// Bytes of one scrape.
    pub exposition: usize,
    /// Stalled clients.
    pub clients: usize,
    /// RSS before, at the peak of the flood, and once it is over.
    pub rss: (u64, u64, u64),
    /// A normal scrape during the flood: its status and how long it took. 503 when the
    /// stalled clients still hold every scrape slot: refused, not queued without end.
    pub normal: (u16, Duration),
    /// A normal scrape once the server has dropped the stalled clients.
    pub normal_after: u16,
    /// Scrapes refused with 503 and connections dropped for not reading, from self-metrics.
    pub refused: f64,
}

/// `clients` connections each send a scrape request and never read the answer.
pub async fn stalled_readers(objects: usize, clients: usize) -> anyhow::Result<StalledReaders> {
    let cluster = Cluster::up("stalled").await?;
    operator_identity(&cluster).await?;
    crate::kube::install_crds(&cluster.admin, &crate::fixtures::tap_crds()?).await?;
    let mut generator = Generator::new(cluster.admin.clone()).await?;
    generator.grow(objects).await?;
    apply_cluster_monitor(&cluster.admin, MONITOR, json!({})).await?;
    let op = OperatorProcess::start(&cluster, "stalled", &["--leader-election=false"]).await?;
    let exposition = until("everything served", Duration::from_secs(300), || async {
        let (code, body) = get(op.metrics, PATH).await.ok()?;
        let ready = status(&cluster).await.is_some_and(|s| ready(&s));
        (code == 200 && ready).then_some(body.len())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = op.usage()?.rss;
    let mut held = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut stream = tokio::net::TcpStream::connect(op.metrics).await?;
        stream
            .write_all(format!("GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await?;
        held.push(stream);
    }
    let started = Instant::now();
    let mut client = HttpClient::default();
    let normal = client.request(op.metrics, PATH, &[], false).await?.status;
    let normal = (normal, started.elapsed());
    let mut peak = op.usage()?.rss;
    // The flood ends: stalled clients are dropped by the server within its write stall limit.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(op.usage()?.rss);
    }
    let mut buf = [0u8; 1];
    for mut stream in held {
        // Whatever the server did, it is over: the test's side closes.
        let _ = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = op.usage()?.rss;
    let normal_after = client.request(op.metrics, PATH, &[], false).await?.status;
    let text = op.self_metrics().await;
    Ok(StalledReaders {
        objects,
        exposition,
        clients,
        rss: (before, peak, after),
        normal,
        normal_after,
        refused: self_metric(&text, "tapmon_http_scrapes_refused_total"),
    })
}

/// The operator with few file descriptors, then more connections than it may hold.
#[derive(Debug, Clone)]
pub struct FdExhaustion {
    /// Its descriptor limit.
    pub limit: u64,
    /// Connections opened against it.
    pub connections: usize,
    /// CPU it used (percent of one core) while out of descriptors.
    pub cpu_percent: f64,
    /// Failed accepts it counted (each followed by a backoff).
    pub accept_errors: f64,
    /// Whether `/healthz` answered once the held connections timed out.
    pub healthy_after: bool,
}

/// Holds more connections than the operator has descriptors for.
pub async fn fd_exhaustion(limit: u64, connections: usize) -> anyhow::Result<FdExhaustion> {
    let cluster = prepared("fds").await?;
    let op = OperatorProcess::start(
        &cluster,
        "fds",
        &[
            "--leader-election=false",
            // Under its descriptor limit the connection cap would turn them away first; here
            // the descriptors run out before.
            "--max-connections=100000",
        ],
    )
    .await?;
    settled(&cluster, &op).await?;
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &op.pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .context("prlimit (util-linux)")?;
    anyhow::ensure!(status.success(), "prlimit failed");
    let mut held = Vec::new();
    for _ in 0..connections {
        if let Ok(s) = tokio::net::TcpStream::connect(op.metrics).await {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = op.usage()?.cpu;
    let window = Duration::from_secs(4);
    tokio::time::sleep(window).await;
    let cpu = op.usage()?.cpu.saturating_sub(before);
    let accept_errors = self_metric(&op.self_metrics().await, "tapmon_http_accept_errors_total");
    drop(held);
    let healthy_after = until("healthz after", Duration::from_secs(30), || async {
        (get(op.metrics, "/healthz").await.ok().map(|r| r.0) == Some(200)).then_some(())
    })
    .await
    .is_ok();
    Ok(FdExhaustion {
        limit,
        connections,
        cpu_percent: cpu.as_secs_f64() / window.as_secs_f64() * 100.0,
        accept_errors,
        healthy_after,
    })
}

/// What `/readyz` says in each situation.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Started while the API server is down (`/healthz`, `/readyz`).
    pub api_down_at_start: (Option<u16>, Option<u16>),
    /// Once it is up and everything listed.
    pub listed: Option<u16>,
    /// With a kind the operator may not watch (Forbidden in the monitor's status).
    pub forbidden_kind: Option<u16>,
    /// During an API server outage, after having listed; and whether scrapes still answer.
    pub during_outage: (Option<u16>, Option<u16>),
    /// How long the outage lasted.
    pub outage: Duration,
    /// From the API server back to the monitor's status saying Ready again.
    pub status_recovered: Duration,
    /// From the API server back to a change made then being served.
    pub data_recovered: Duration,
}

/// Readiness across an API server that is down at start, a forbidden kind, and an outage.
pub async fn readiness(outage: Duration) -> anyhow::Result<Readiness> {
    let cluster = prepared("readiness").await?;
    let kubeconfig = cluster
        .service_account_kubeconfig("tapmon-system", "tapmon")
        .await?;
    cluster.stop_apiserver(false).await?;
    let op = OperatorProcess::start_as(&cluster, &kubeconfig, "ready", &[]).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api_down_at_start = (op.status("/healthz").await, op.status("/readyz").await);
    cluster.start_apiserver().await?;
    settled(&cluster, &op).await?;
    let listed = until("ready", Duration::from_secs(60), || async {
        op.status("/readyz").await.filter(|s| *s == 200)
    })
    .await
    .ok();

    // An extra kind tapmon may not list: the monitor reports it, the pod stays ready.
    let features = crate::fixtures::root().join("e2e/fixtures/features");
    crate::kube::install_crds(&cluster.admin, &[features.join("crd.yaml")]).await?;
    apply_cluster_monitor(
        &cluster.admin,
        "forbidden",
        json!({"groups": crate::fixtures::groups_only(&[]), "resources": [
            {"groupVersionKind": {"group": "example.tapmon.io", "version": "v1", "kind": "Widget"},
             "metrics": [{"name": "w", "each": {"type": "Info", "info": {}}}]}]}),
    )
    .await?;
    until("the kind Forbidden", Duration::from_secs(60), || async {
        let m = cluster_monitors(&cluster.admin)
            .get("forbidden")
            .await
            .ok()?;
        let s = m.data.get("status")?;
        (crate::status::kind_state(s, "Widget") == Some(tapmon_api::KindState::Forbidden))
            .then_some(())
    })
    .await?;
    let forbidden_kind = op.status("/readyz").await;

    cluster.stop_apiserver(false).await?;
    tokio::time::sleep(outage / 2).await;
    let during_outage = (op.status("/readyz").await, op.status(PATH).await);
    tokio::time::sleep(outage / 2).await;
    cluster.start_apiserver().await?;
    let back = Instant::now();
    // A change made as soon as it is back: how long until it is served.
    let workloads = dynamic_api(
        &cluster.admin,
        Some("dev-team-a"),
        ("carto.run", "v1alpha1", "Workload"),
        "workloads",
    );
    let name = workloads
        .list(&Default::default())
        .await?
        .items
        .first()
        .and_then(|w| w.metadata.name.clone())
        .context("a Workload")?;
    workloads
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"apps.tanzu.vmware.com/workload-type": "after-outage"}}})),
        )
        .await?;
    let (mut data, mut status_at) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while (data.is_none() || status_at.is_none()) && Instant::now() < deadline {
        if data.is_none()
            && get(op.metrics, PATH)
                .await
                .is_ok_and(|(_, b)| b.contains("after-outage"))
        {
            data = Some(back.elapsed());
        }
        if status_at.is_none()
            && status(&cluster).await.is_some_and(|s| {
                ready(&s) && condition(&s, ConditionType::Ready).reason == Reason::Watching.as_str()
            })
        {
            status_at = Some(back.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (Some(data), Some(status_at)) = (data, status_at) else {
        bail!("data ({data:?}) or status ({status_at:?}) did not recover within 120 s");
    };
    Ok(Readiness {
        api_down_at_start,
        listed,
        forbidden_kind,
        during_outage,
        outage,
        status_recovered: status_at,
        data_recovered: data,
    })
}

/// Shutdowns.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// SIGTERM with the API server unreachable: how long until it exited.
    pub without_apiserver: Option<Duration>,
    /// Scrapes running when SIGTERM came: completed whole, and cut (reset or short).
    pub in_flight: (usize, usize),
    /// A restart that finds the world unchanged: new Ready Events, Ready flips, status writes.
    pub restart: (usize, usize, usize),
}

/// Scrapes as fast as it can until the connection is refused; (whole, cut).
async fn scrape_while_ready(addr: SocketAddr, expected: usize) -> (usize, usize) {
    let (mut whole, mut cut) = (0, 0);
    let mut client = HttpClient::default();
    loop {
        // As a Service routes: a new scrape only to a ready pod.
        match client.request(addr, "/readyz", &[], false).await {
            Ok(r) if r.status == 200 => {}
            _ => return (whole, cut),
        }
        match client.request(addr, PATH, &[], true).await {
            Ok(r) if r.status == 200 => {
                match std::str::from_utf8(&r.body)
                    .ok()
                    .and_then(|b| parse_exposition(b).ok())
                {
                    Some(s) if s.len() == expected => whole += 1,
                    _ => cut += 1,
                }
            }
            Ok(_) | Err(_) => cut += 1,
        }
    }
}

/// SIGTERM with the API server gone, SIGTERM during scrapes, and a restart.
pub async fn shutdown() -> anyhow::Result<Shutdown> {
    let cluster = prepared("shutdown").await?;
    // A restart that changes nothing says nothing.
    let op = OperatorProcess::start(&cluster, "first", &[]).await?;
    settled(&cluster, &op).await?;
    let events_before = events(&cluster).await?;
    drop(op);
    let counting = count_writes(&cluster, Duration::from_secs(15));
    let second = async {
        let op = OperatorProcess::start(&cluster, "second", &[]).await?;
        settled(&cluster, &op).await?;
        anyhow::Ok(op)
    };
    let ((writes, flips), op) = tokio::try_join!(counting, second)?;
    let events_after = events(&cluster).await?;
    let ready = EventReason::Ready.to_string();
    let new_ready = events_after.get(&ready).copied().unwrap_or(0)
        - events_before.get(&ready).copied().unwrap_or(0);
    let restart = (new_ready, flips, writes);

    // SIGTERM while scrapes are running: /readyz turns 503 at once and the port keeps
    // accepting a little longer, so clients that go by readiness move away; those in flight
    // finish.
    let expected = parse_exposition(&get(op.metrics, PATH).await?.1)?.len();
    let scrapers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(scrape_while_ready(op.metrics, expected)))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut op = op;
    op.terminate()?;
    op.exited_within(Duration::from_secs(30)).await;
    let mut in_flight = (0, 0);
    for s in scrapers {
        let (whole, cut) = s.await?;
        in_flight.0 += whole;
        in_flight.1 += cut;
    }

    // SIGTERM with the API server gone: it still exits, in bounded time.
    let mut op = OperatorProcess::start(&cluster, "third", &[]).await?;
    settled(&cluster, &op).await?;
    cluster.stop_apiserver(true).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    op.terminate()?;
    let without_apiserver = op.exited_within(Duration::from_secs(60)).await;
    cluster.start_apiserver().await?;
    Ok(Shutdown {
        without_apiserver,
        in_flight,
        restart,
    })
}

/// Watches that must relist (etcd compacted under them) and a CRD deleted and re-created.
#[derive(Debug, Clone)]
pub struct Relists {
    /// Series expected and served after the compacted relist, and duplicates seen.
    pub after_compaction: (usize, usize, usize),
    /// Series expected and served after the CRD came back with its objects.
    pub after_crd: (usize, usize),
    /// Watch errors the operator counted (410 Gone among them).
    pub watch_errors: f64,
}

/// Relists after etcd compaction, and a CRD re-created.
pub async fn relists() -> anyhow::Result<Relists> {
    let cluster =
        Cluster::up_with_apiserver_flags("relists", "--etcd-compaction-interval=5s").await?;
    operator_identity(&cluster).await?;
    crate::kube::install_crds(&cluster.admin, &crate::fixtures::tap_crds()?).await?;
    let mut generator = Generator::new(cluster.admin.clone()).await?;
    generator.grow(600).await?;
    apply_cluster_monitor(&cluster.admin, MONITOR, json!({})).await?;
    let op = OperatorProcess::start(&cluster, "relists", &["--leader-election=false"]).await?;
    let (compiled, _) =
        tapmon_crs::Compiled::compile(&tapmon_presets::spec_for(tapmon_presets::TapGroup::ALL)?);
    let expected = generator.expected_series(&compiled);
    let served = || async {
        let body = get(op.metrics, PATH).await.ok()?.1;
        let text: Vec<&str> = body
            .lines()
            .filter(|l| crate::exposition::is_object_series(l))
            .collect();
        let distinct: std::collections::BTreeSet<&&str> = text.iter().collect();
        Some((text.len(), text.len() - distinct.len()))
    };
    until("every series", Duration::from_secs(180), || async {
        served().await.filter(|(n, _)| *n == expected)
    })
    .await?;
    // Churn while the API server is down long enough for etcd to compact past the watches.
    cluster.stop_apiserver(false).await?;
    cluster.start_apiserver().await?;
    generator.churn(0.2, 1).await?;
    cluster.stop_apiserver(false).await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    cluster.start_apiserver().await?;
    generator.churn(0.2, 2).await?;
    let expected_now = generator.expected_series(&compiled);
    let (n, duplicates) = until(
        "every series after the relist",
        Duration::from_secs(180),
        || async {
            served()
                .await
                .filter(|(n, d)| *n == expected_now && *d == 0)
        },
    )
    .await
    .unwrap_or((0, usize::MAX));
    let after_compaction = (expected_now, n, duplicates);
    generator.recreate_kind("TaskRun").await?;
    let back = until(
        "every series after the CRD",
        Duration::from_secs(180),
        || async {
            served()
                .await
                .filter(|(n, _)| *n == expected_now)
                .map(|(n, _)| n)
        },
    )
    .await
    .unwrap_or(0);
    let text = op.self_metrics().await;
    let watch_errors: f64 = text
        .lines()
        .filter(|l| l.starts_with("tapmon_watch_errors_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Ok(Relists {
        after_compaction,
        after_crd: (expected_now, back),
        watch_errors,
    })
}
