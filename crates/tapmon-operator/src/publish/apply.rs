//! Writing what a monitor publishes, only ever to objects it owns: an object is created when
//! absent, updated (server-side apply, one field manager) when its controller owner reference
//! is this monitor, and otherwise left untouched and reported as a conflict. Deleting when
//! disabled follows the same rule.

use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, Preconditions,
};
use kube::{Api, Client};
use serde_json::Value;

use super::objects::{
    dashboard_configmap_name, dashboard_configmaps, placement, prometheus_rule, service_monitor,
};
use super::{
    FIELD_MANAGER, MONITORING_GROUP, MONITORING_VERSION, OperatorService, PublishError,
    PublishKind, Published,
};
use crate::object::MonitorObject;

use tapmon_publish::dashboards::SLUGS as DASHBOARD_SLUGS;

/// Publishes every kind for `m`, in [`PublishKind::ALL`] order; `installed` says whether a
/// kind's CRD is served.
pub async fn publish(
    client: &Client,
    m: &MonitorObject,
    service: &OperatorService,
    installed: impl Fn(PublishKind) -> bool,
) -> Vec<(PublishKind, Published)> {
    let mut out = Vec::with_capacity(PublishKind::ALL.len());
    for kind in PublishKind::ALL {
        let published = if !installed(kind) {
            Published::NotInstalled
        } else {
            match publish_kind(client, m, service, kind).await {
                Ok(published) => published,
                Err(e) => Published::Failed(e),
            }
        };
        out.push((kind, published));
    }
    out
}

fn api(client: &Client, namespace: &str, kind: PublishKind) -> Api<DynamicObject> {
    let (object_kind, plural) = kind.object_kind();
    let gvk = if kind.needs_prometheus_operator() {
        GroupVersionKind::gvk(MONITORING_GROUP, MONITORING_VERSION, object_kind)
    } else {
        GroupVersionKind::gvk("", "v1", object_kind)
    };
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

async fn publish_kind(
    client: &Client,
    m: &MonitorObject,
    service: &OperatorService,
    kind: PublishKind,
) -> Result<Published, PublishError> {
    let target = Target {
        api: api(client, &placement(m, service).0, kind),
        kind,
        namespace: placement(m, service).0,
        owner: m.uid(),
    };
    let desired: Option<Vec<Value>> = match kind {
        PublishKind::ServiceMonitor => m
            .spec
            .service_monitor
            .enabled
            .then(|| vec![service_monitor(m, service)]),
        PublishKind::PrometheusRule => m
            .spec
            .prometheus_rule
            .enabled
            .then(|| vec![prometheus_rule(m, service)]),
        PublishKind::Dashboards => match m.spec.dashboard.enabled {
            true => Some(dashboard_configmaps(m, service)?),
            false => None,
        },
    };
    match desired {
        Some(objects) => {
            for object in objects {
                target.apply(object).await?;
            }
            Ok(Published::Applied)
        }
        None => {
            for name in names(m, service, kind) {
                target.delete(&name).await?;
            }
            Ok(Published::Disabled)
        }
    }
}

/// The names of the objects of `kind` a monitor publishes.
fn names(m: &MonitorObject, service: &OperatorService, kind: PublishKind) -> Vec<String> {
    match kind {
        PublishKind::ServiceMonitor | PublishKind::PrometheusRule => vec![placement(m, service).1],
        PublishKind::Dashboards => DASHBOARD_SLUGS
            .iter()
            .map(|slug| dashboard_configmap_name(m, service, slug))
            .collect(),
    }
}

/// Who controls an object, by its controller owner reference.
enum Owner {
    /// This monitor.
    Us,
    /// Someone else, described for the message.
    Other(String),
}

fn owner_of(object: &DynamicObject, uid: &str) -> Owner {
    let controller = object
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    match controller {
        Some(r) if r.uid == uid && !uid.is_empty() => Owner::Us,
        Some(r) => Owner::Other(format!("controlled by {} {}", r.kind, r.name)),
        None => Owner::Other("no controller owner".into()),
    }
}

/// The objects of one kind in one namespace, written for one owner.
struct Target<'a> {
    api: Api<DynamicObject>,
    kind: PublishKind,
    namespace: String,
    owner: &'a str,
}

impl Target<'_> {
    fn error(
        &self,
        name: &str,
        make: impl FnOnce(&'static str, String, String) -> PublishError,
    ) -> PublishError {
        make(
            self.kind.object_kind().0,
            self.namespace.clone(),
            name.to_owned(),
        )
    }

    /// Reads the object of `name` and says who owns it; `None` when it does not exist.
    async fn owner(&self, name: &str) -> Result<Option<(Owner, DynamicObject)>, PublishError> {
        let existing = self.api.get_opt(name).await.map_err(|e| {
            self.error(name, |kind, namespace, name| PublishError::Read {
                kind,
                namespace,
                name,
                source: Box::new(e),
            })
        })?;
        Ok(existing.map(|o| (owner_of(&o, self.owner), o)))
    }

    /// Makes the cluster hold `object` if it is ours to write.
    async fn apply(&self, mut object: Value) -> Result<(), PublishError> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let params = match self.owner(&name).await? {
            Some((Owner::Other(owner), _)) => {
                return Err(
                    self.error(&name, |kind, namespace, name| PublishError::Conflict {
                        kind,
                        namespace,
                        name,
                        owner,
                    }),
                );
            }
            // Ours: take our fields back from anyone who edited them, but only if it is still
            // the object we read (its resourceVersion), so a replacement made meanwhile is not
            // overwritten.
            Some((Owner::Us, existing)) => {
                object["metadata"]["resourceVersion"] = existing
                    .metadata
                    .resource_version
                    .unwrap_or_default()
                    .into();
                PatchParams::apply(FIELD_MANAGER).force()
            }
            // Absent: created without force, so one created meanwhile by someone else
            // conflicts instead of being taken over.
            None => PatchParams::apply(FIELD_MANAGER),
        };
        self.api
            .patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(|e| {
                self.error(&name, |kind, namespace, name| PublishError::Apply {
                    kind,
                    namespace,
                    name,
                    source: Box::new(e),
                })
            })?;
        Ok(())
    }

    /// Deletes the object of `name` if it is ours; anyone else's is left alone.
    async fn delete(&self, name: &str) -> Result<(), PublishError> {
        let Some((Owner::Us, existing)) = self.owner(name).await? else {
            return Ok(());
        };
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: existing.metadata.uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(
                self.error(name, |kind, namespace, name| PublishError::Delete {
                    kind,
                    namespace,
                    name,
                    source: Box::new(e),
                }),
            ),
        }
    }
}
