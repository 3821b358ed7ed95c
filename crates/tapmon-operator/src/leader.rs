//! Leader election over a `coordination.k8s.io/v1` Lease: every replica watches and serves,
//! exactly one (the lease holder) writes status, Events and published objects.
//!
//! Written here rather than taken from `kube-lease-manager` (which supports kube 5): its watch
//! mode never reports losing the lease when renewing fails, so a leader cut off from the API
//! server would go on believing it leads after its lease expired. This loop steps down when no
//! renewal succeeded for [`LeaderConfig::renew_deadline`], shorter than the lease, and releases
//! the lease on shutdown so the next replica takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};

/// How the lease is held.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// The Lease's namespace (the operator's).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub lease_duration: Duration,
    /// How long the holder goes on leading without a successful renewal; less than the lease.
    pub renew_deadline: Duration,
    /// How often the lease is tried or renewed.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// The defaults: a 15 s lease renewed every 2 s, given up after 10 s without renewal.
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: "tapmon-leader".to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What one attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// We hold the lease (acquired or renewed).
    Held,
    /// Someone else holds a live lease, for at most this long by our clock.
    Other(Duration),
}

/// The holder and renew time last seen, and when we first saw them: expiry is judged on our
/// own clock, so skew between replicas does not matter.
#[derive(Debug, Default)]
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    since: Option<Instant>,
}

/// How long after a lease's expiry a waiting replica tries it: past the edge, not on it.
const EXPIRY_MARGIN: Duration = Duration::from_millis(50);

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Keeps trying to hold the lease and says on `leading` whether this replica leads, until
/// `stop` turns true; then releases the lease if it held it.
pub async fn run(
    client: Client,
    config: LeaderConfig,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observed = Observed::default();
    let mut last_renewal: Option<Instant> = None;
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        wait = config.retry_period;
        // Each call bounded: a hung API server must not keep a leader from stepping down.
        let attempt = tokio::time::timeout(
            config.retry_period.max(Duration::from_secs(1)),
            try_hold(&api, &config, &mut observed),
        )
        .await;
        match attempt {
            Ok(Ok(Attempt::Held)) => {
                last_renewal = Some(Instant::now());
                if !*leading.borrow() {
                    info!(identity = %config.identity, "became leader");
                    leading.send_replace(true);
                }
            }
            Ok(Ok(Attempt::Other(left))) => {
                // Try again the moment the holder's lease runs out rather than up to a retry
                // period later: a crashed leader is replaced within the lease duration.
                wait = wait.min(left.saturating_add(EXPIRY_MARGIN));
                last_renewal = None;
                if *leading.borrow() {
                    info!(identity = %config.identity, "lost the lease to another replica");
                    leading.send_replace(false);
                }
            }
            Ok(Err(e)) => warn!(error = %e, "leader election: could not reach the lease"),
            Err(_) => warn!("leader election: the lease call timed out"),
        }
        if *leading.borrow() && last_renewal.is_none_or(|at| at.elapsed() > config.renew_deadline) {
            warn!(identity = %config.identity, "stepping down: the lease was not renewed in time");
            leading.send_replace(false);
        }
    }
    if leading.send_replace(false) {
        match tokio::time::timeout(Duration::from_secs(3), release(&api, &config)).await {
            Ok(Ok(())) => info!(identity = %config.identity, "released the lease"),
            Ok(Err(e)) => warn!(error = %e, "could not release the lease; it expires by itself"),
            Err(_) => warn!("releasing the lease timed out; it expires by itself"),
        }
    }
}

/// One attempt: create the lease, renew ours, or take over one that expired.
async fn try_hold(
    api: &Api<Lease>,
    config: &LeaderConfig,
    observed: &mut Observed,
) -> Result<Attempt, kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(seconds(config.lease_duration)),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return conflict_is_other(api.create(&PostParams::default(), &lease).await);
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let record = (holder.clone(), spec.renew_time.clone());
    if observed.record.as_ref() != Some(&record) {
        observed.record = Some(record);
        observed.since = Some(Instant::now());
    }
    let ours = holder.as_deref() == Some(config.identity.as_str());
    let duration =
        Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15));
    let left = observed
        .since
        .map_or(Duration::ZERO, |s| duration.saturating_sub(s.elapsed()));
    let expired = holder.is_none() || left.is_zero();
    if !ours && !expired {
        return Ok(Attempt::Other(left));
    }
    if !ours {
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(seconds(config.lease_duration));
    // Replace at the resourceVersion read: another replica's change meanwhile wins.
    conflict_is_other(
        api.replace(&config.name, &PostParams::default(), &lease)
            .await,
    )
}

fn conflict_is_other(result: Result<Lease, kube::Error>) -> Result<Attempt, kube::Error> {
    match result {
        Ok(_) => Ok(Attempt::Held),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Other(Duration::MAX)),
        Err(e) => Err(e),
    }
}

/// Gives the lease up, if we still hold it, so the next replica need not wait for it to expire.
async fn release(api: &Api<Lease>, config: &LeaderConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now());
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map(drop)
}
