//! What every reconcile gets: one [`Context`], built the same way by the operator and by the
//! tests.

use std::collections::HashMap;
use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::discovery::DiscoveryCache;
use crate::monitor::MonitorKey;
use crate::publish::OperatorService;
use crate::reconcile::{MonitorHealth, Written};
use crate::shard::Shard;
use crate::state::State;
use crate::telemetry::{Telemetry, TelemetryError};
use crate::validate::Limits;
use crate::watches::{InitialList, NamespaceLabels, Registry};

/// The name Events are reported under.
pub const REPORTER: &str = "tapmon";

/// What every reconcile gets.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// State shared with the HTTP servers.
    pub state: Arc<State>,
    /// Served kinds, refreshed when CRDs change.
    pub discovery: Arc<DiscoveryCache>,
    /// Publishes Events on TapMonitors.
    pub recorder: Recorder,
    /// Consecutive failures per monitor, for backoff.
    pub failures: Mutex<HashMap<MonitorKey, u32>>,
    /// The operator's Service, which published ServiceMonitors select.
    pub service: OperatorService,
    /// What every monitor is allowed.
    pub limits: Limits,
    /// Whether this replica leads (holds the lease) and so writes.
    pub leader: watch::Receiver<bool>,
    /// The health of each monitor's status as last written, for `tapmon_monitors_by_health`.
    pub health: Mutex<HashMap<MonitorKey, MonitorHealth>>,
    /// The status this replica last wrote per monitor, until the watch delivers it.
    pub written: Mutex<HashMap<MonitorKey, Written>>,
}

impl Context {
    /// True while this replica leads: it writes status, Events and published objects.
    pub fn leads(&self) -> bool {
        *self.leader.borrow()
    }
}

impl Context {
    /// The context of an operator using `client`: empty state, no watches yet.
    pub fn new(
        client: Client,
        initial_list: InitialList,
        service: OperatorService,
        limits: Limits,
        leader: watch::Receiver<bool>,
        shard: Shard,
    ) -> Result<Arc<Context>, TelemetryError> {
        let telemetry = Arc::new(Telemetry::new()?);
        let namespaces = Arc::new(NamespaceLabels::default());
        let registry = Arc::new(Registry::new(
            client.clone(),
            Arc::clone(&telemetry),
            initial_list,
            Arc::clone(&namespaces),
            shard,
        ));
        Ok(Arc::new(Context {
            recorder: Recorder::new(client.clone(), Reporter::from(REPORTER.to_owned())),
            client,
            state: Arc::new(State::new(registry, telemetry, namespaces)),
            discovery: Arc::new(DiscoveryCache::default()),
            failures: Mutex::new(HashMap::new()),
            service,
            limits,
            leader,
            health: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        }))
    }
}

/// The fake API server a test context talks to: each request is read and answered by the test.
#[cfg(test)]
pub(crate) type ApiServer =
    tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>;

#[cfg(test)]
impl Context {
    /// A context whose client talks to a scripted fake API server.
    pub(crate) fn test() -> (Arc<Context>, ApiServer) {
        let (service, handle) = tower_test::mock::pair();
        let client = Client::new(service, "default");
        let ctx = Context::new(
            client,
            InitialList::Streaming,
            OperatorService::default(),
            Limits::default(),
            // The only replica: it leads.
            watch::channel(true).1,
            Shard::WHOLE,
        )
        .expect("self-metrics register");
        (ctx, handle)
    }
}
