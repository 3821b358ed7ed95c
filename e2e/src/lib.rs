//! Test support for the end-to-end suite: a real control plane (`cluster.sh`), fixtures loaded
//! as controllers write them, the operator running as its ServiceAccount, Prometheus and
//! kube-state-metrics beside it, and waiting on conditions with deadlines.
//!
//! | module | what |
//! |---|---|
//! | [`cluster`] | a control plane on loopback, ServiceAccount clients |
//! | [`kube`] | APIs by kind, apply as a controller writes, CRDs established |
//! | [`fixtures`] | the repository's YAML, the sample TAP environment, the catalogue's queries |
//! | [`operator`] | the operator as its ServiceAccount |
//! | [`http`] | the one HTTP client |
//! | [`prometheus`] | Prometheus, the Prometheus Operator's CRDs |
//! | [`prometheus_operator`] | the Prometheus Operator, and Prometheus running what it generates |
//! | [`ksm`] | kube-state-metrics |
//! | [`exposition`] | series of an exposition |
//! | [`status`] | a TapMonitor's status, in the API's words |
//! | [`tls`] | a test CA, TLS clients |
//! | [`generate`] | many TAP objects for the benchmark |
//! | [`faults`] | the fault suite: each case, what it measured |
//! | [`probe`], [`process`] | a process's memory and CPU from /proc; the operator as its own process |
//! | [`install`] | the Helm chart and `deploy/` rendered as users render them; `deploy/` from the chart |
//! | [`health`] | kstatus' and Argo CD's verdicts on a monitor |
//! | [`image`] | the container image unpacked and run as the kubelet would run it |

// Test support: a failed setup should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cluster;
pub mod exposition;
pub mod faults;
pub mod fixtures;
pub mod generate;
pub mod health;
pub mod http;
pub mod image;
pub mod install;
pub mod ksm;
pub mod kube;
pub mod operator;
pub mod probe;
pub mod process;
pub mod prometheus;
pub mod prometheus_operator;
pub mod status;
pub mod tls;
mod wait;

pub use cluster::Cluster;
pub use exposition::{
    SeriesKey, is_object_series, parse_exposition, promtool_findings, python_samples, series,
};
pub use fixtures::{
    catalogue_queries, documents, groups_only, load_tap_environment, root, tap_crds, tap_objects,
    tap_objects_as_loaded, yaml_files,
};
pub use http::{free_port, get, percent_encode};
pub use ksm::{KubeStateMetrics, ksm_binary, ksm_config};
pub use kube::{
    api_for, apply, apply_cluster_monitor, apply_files, apply_tap_monitor, cluster_monitors,
    dynamic_api, install_crds, tapmonitors,
};
pub use operator::{Operator, cluster_with_operator, operator_identity};
pub use prometheus::{
    PROMETHEUS_OPERATOR, Prometheus, ScrapeTarget, install_publishing_crds,
    prometheus_operator_crds,
};
pub use wait::eventually;

/// Serialises the tests of one binary: each starts its own control plane, and two on two
/// cores at once only make both slow.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
