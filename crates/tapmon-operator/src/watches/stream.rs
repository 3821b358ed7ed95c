//! The task of one watch: list, then follow changes, and for each event evaluate the object
//! for every subscribing monitor (or drop its series) before dropping the object.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tapmon_crs::EvalErrors;
use tapmon_crs::live::Seen;
use tracing::{debug, info, warn};

use super::object::WatchedObject;
use super::{InitialList, Registry, Watch, WatchState};
use crate::monitor::ObjectId;

impl Registry {
    /// Runs `watch` until its task is aborted; the watcher retries errors with backoff.
    pub(super) async fn run(self: Arc<Self>, watch: Arc<Watch>) {
        let key = &watch.key;
        let kind = &key.kind;
        let resource = kind.api_resource();
        let api: Api<WatchedObject> = Api::all_with(self.client.clone(), &resource);
        let mut config = watcher::Config::default();
        if let Some(selector) = &key.label_selector {
            config = config.labels(selector);
        }
        config = match self.initial_list {
            InitialList::Streaming => config.streaming_lists(),
            InitialList::Paged => config.page_size(500),
        };
        info!(watch = %key, "starting watch");
        let labels = [kind.group.as_str(), kind.kind.as_str()];
        let events = |t: &str| {
            self.telemetry
                .watch_events
                .with_label_values(&[labels[0], labels[1], t])
        };
        let mut listed: HashSet<(String, String)> = HashSet::new();
        let mut stream = std::pin::pin!(
            watcher::watcher(api, config).backoff(crate::watches::WatchBackoff::default())
        );
        while let Some(item) = stream.next().await {
            if item.is_ok() && watch.synced.load(Ordering::Acquire) {
                // Events flow again after an error: the kind is being watched.
                let recovered = {
                    let mut state = watch.state.lock();
                    let was = std::mem::replace(&mut *state, WatchState::Watching);
                    was != WatchState::Watching
                };
                if recovered {
                    info!(watch = %key, "watch recovered");
                    self.state_changed();
                }
            }
            match item {
                Ok(Event::Init) => {
                    events("init").inc();
                    listed.clear();
                }
                Ok(Event::InitApply(obj)) => {
                    events("init_apply").inc();
                    let (namespace, name) = identity(&obj);
                    if !self.shard.owns(&namespace, &name) {
                        // Another replica's: not listed here, so a relist drops it too.
                        continue;
                    }
                    let id = ObjectId {
                        namespace: &namespace,
                        name: &name,
                    };
                    self.fan_out(&watch, &resource.api_version, obj, id, Seen::Listed);
                    listed.insert((namespace, name));
                }
                Ok(Event::InitDone) => {
                    events("init_done").inc();
                    for monitor in watch.subscribers() {
                        monitor.retain_listed(key, &listed);
                    }
                    listed = HashSet::new();
                    watch.set_state(WatchState::Watching);
                    if !watch.synced.swap(true, Ordering::AcqRel) {
                        info!(watch = %key, "initial list done");
                    }
                    self.state_changed();
                }
                Ok(Event::Apply(obj)) => {
                    events("apply").inc();
                    let (namespace, name) = identity(&obj);
                    if !self.shard.owns(&namespace, &name) {
                        continue;
                    }
                    let id = ObjectId {
                        namespace: &namespace,
                        name: &name,
                    };
                    self.fan_out(&watch, &resource.api_version, obj, id, Seen::Changed);
                }
                Ok(Event::Delete(obj)) => {
                    events("delete").inc();
                    let (namespace, name) = identity(&obj);
                    if !self.shard.owns(&namespace, &name) {
                        continue;
                    }
                    let id = ObjectId {
                        namespace: &namespace,
                        name: &name,
                    };
                    for monitor in watch.subscribers() {
                        monitor.delete(key, id);
                    }
                }
                Err(e) => {
                    let (reason, state) = classify(&e);
                    self.telemetry
                        .watch_errors
                        .with_label_values(&[labels[0], labels[1], reason])
                        .inc();
                    warn!(watch = %key, error = %e, "watch failed; retrying with backoff");
                    let changed = *watch.state.lock() != state;
                    watch.set_state(state);
                    if changed {
                        self.state_changed();
                    }
                }
            }
        }
    }

    /// Hands an object to every subscriber: evaluated by those whose namespaces admit it,
    /// deleted from the others (it may have been admitted before its namespace changed).
    fn fan_out(
        &self,
        watch: &Watch,
        api_version: &str,
        obj: WatchedObject,
        id: ObjectId<'_>,
        seen: Seen,
    ) {
        let namespace = id.namespace;
        let kind = watch.key.kind.object_kind();
        let object = obj.into_value(api_version, kind.kind);
        let mut namespace_labels = None;
        let mut errors = EvalErrors::default();
        for monitor in watch.subscribers() {
            let filter = &monitor.validated.namespaces;
            let admitted = if filter.uses_labels() {
                let labels = namespace_labels.get_or_insert_with(|| self.namespaces.get(namespace));
                filter.admits(namespace, labels.as_ref())
            } else {
                filter.admits(namespace, None)
            };
            if !admitted {
                monitor.delete(&watch.key, id);
                continue;
            }
            errors.clear();
            let evaluated = monitor.evaluate(&watch.key, kind, &object, id, seen, &mut errors);
            let labels = [kind.group, kind.kind];
            if evaluated.truncated > 0 {
                self.telemetry
                    .truncated_label_values
                    .with_label_values(&labels)
                    .inc_by(evaluated.truncated as u64);
            }
            if evaluated.left_out {
                self.telemetry.left_out.with_label_values(&labels).inc();
            }
            if !errors.is_empty() {
                self.telemetry
                    .evaluation_errors
                    .with_label_values(&[kind.group, kind.kind])
                    .inc_by(errors.total() as u64);
                for e in errors.kept() {
                    debug!(monitor = %monitor.key, object = %id, kind = kind.kind, error = %e, "value not evaluated");
                }
            }
        }
    }
}

fn identity(obj: &WatchedObject) -> (String, String) {
    (obj.namespace().to_owned(), obj.name().to_owned())
}

fn classify(e: &watcher::Error) -> (&'static str, WatchState) {
    let api_status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.code),
        watcher::Error::WatchError(s) => Some(s.code),
        _ => None,
    };
    match api_status {
        Some(403) => ("forbidden", WatchState::Forbidden(e.to_string())),
        Some(404) => ("not_found", WatchState::Failed(e.to_string())),
        _ => ("other", WatchState::Failed(e.to_string())),
    }
}
