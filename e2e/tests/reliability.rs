//! The fault suite against a real control plane, the operator as its own process (the
//! `tapmon` binary): two replicas, clients that never read, descriptors running out,
//! readiness, outages, shutdowns and relists. Figures from the same cases are in
//! docs/reliability.md (`make reliability`).

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tapmon_e2e::faults;
use tapmon_e2e::serial;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_writer_and_a_hand_over_within_the_lease() {
    let _serial = serial().await;
    let r = faults::two_replicas(Duration::from_secs(20)).await.unwrap();
    eprintln!("{r:?}");
    // A second replica with another view adds no writes and flips nothing.
    assert!(r.writes_two <= r.writes_one + 1, "{r:?}");
    assert_eq!(r.flips_two, 0, "{r:?}");
    assert_eq!(
        r.ready_events, 1,
        "one Ready Event, not one per replica: {r:?}"
    );
    // The lease is 15 s, judged from when the follower saw its last renewal (up to a 2 s
    // retry period late): a crashed leader is replaced within that; one that is stopped
    // releases the lease and is replaced at the follower's next try.
    assert!(r.takeover_after_crash < Duration::from_secs(17), "{r:?}");
    assert!(r.takeover_after_sigterm < Duration::from_secs(4), "{r:?}");
    assert_eq!(r.failed_scrapes.0, 0, "served throughout: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_that_never_read_do_not_take_the_memory() {
    let _serial = serial().await;
    let r = faults::stalled_readers(3000, 1000).await.unwrap();
    eprintln!("{r:?}");
    let (idle, peak, _) = r.rss;
    assert!(peak < 2 * idle, "RSS {peak} against {idle} idle: {r:?}");
    // During the flood a normal scrape gets an answer: served, or refused while the stalled
    // clients hold every slot (which of the two depends on timing); once they are dropped, it
    // is served.
    assert!(
        [200, 503].contains(&r.normal.0),
        "a normal scrape gets an answer during the flood: {r:?}"
    );
    assert_eq!(r.normal_after, 200, "and is served after it: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loop_backs_off() {
    let _serial = serial().await;
    let r = faults::fd_exhaustion(128, 300).await.unwrap();
    eprintln!("{r:?}");
    assert!(r.cpu_percent < 5.0, "{r:?}");
    assert!(r.accept_errors > 0.0, "the limit was reached: {r:?}");
    assert!(r.healthy_after, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_says_what_is_served_and_status_follows_the_data_after_an_outage() {
    let _serial = serial().await;
    let r = faults::readiness(Duration::from_secs(20)).await.unwrap();
    eprintln!("{r:?}");
    assert_eq!(r.api_down_at_start, (Some(200), Some(503)), "{r:?}");
    assert_eq!(r.listed, Some(200), "{r:?}");
    assert_eq!(
        r.forbidden_kind,
        Some(200),
        "one monitor's kind, not everyone's: {r:?}"
    );
    assert_eq!(
        r.during_outage,
        (Some(200), Some(200)),
        "serves what it has: {r:?}"
    );
    assert!(
        r.status_recovered < r.data_recovered + Duration::from_secs(10),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdowns_are_bounded_finish_scrapes_and_restarts_say_nothing() {
    let _serial = serial().await;
    let r = faults::shutdown().await.unwrap();
    eprintln!("{r:?}");
    let limit = tapmon_operator::SHUTDOWN_LIMIT + Duration::from_secs(3);
    assert!(r.without_apiserver.is_some_and(|t| t < limit), "{r:?}");
    assert_eq!(r.in_flight.1, 0, "no scrape cut: {r:?}");
    assert!(r.in_flight.0 > 0, "{r:?}");
    assert_eq!(r.restart, (0, 0, 0), "no Event, no flip, no write: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relists_after_compaction_and_a_recreated_crd_are_complete_and_unduplicated() {
    let _serial = serial().await;
    let r = faults::relists().await.unwrap();
    eprintln!("{r:?}");
    let (expected, served, duplicates) = r.after_compaction;
    assert_eq!((served, duplicates), (expected, 0), "{r:?}");
    assert_eq!(r.after_crd.0, r.after_crd.1, "{r:?}");
}
