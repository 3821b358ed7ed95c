//! Writing what a TapMonitor publishes: server-side apply with one field manager, deletion when
//! disabled, and what became of each kind for its status condition.

use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use tapmon_api::TapMonitor;

use super::objects::{
    dashboard_configmap_name, dashboard_configmaps, prometheus_rule, service_monitor,
};
use super::{
    FIELD_MANAGER, MONITORING_GROUP, MONITORING_VERSION, OperatorService, PublishError,
    PublishKind, Published,
};

/// The dashboards every monitor publishes, by slug.
const DASHBOARD_SLUGS: [&str; 2] = ["overview", "supply-chain"];

/// Publishes every kind for `m`, in [`PublishKind::ALL`] order; `installed` says whether a
/// kind's CRD is served.
pub async fn publish(
    client: &Client,
    m: &TapMonitor,
    service: &OperatorService,
    installed: impl Fn(PublishKind) -> bool,
) -> Vec<(PublishKind, Published)> {
    let mut out = Vec::with_capacity(PublishKind::ALL.len());
    for kind in PublishKind::ALL {
        let published = if !installed(kind) {
            Published::NotInstalled
        } else {
            publish_kind(client, m, service, kind).await
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
    m: &TapMonitor,
    service: &OperatorService,
    kind: PublishKind,
) -> Published {
    let namespace = m.namespace().unwrap_or_default();
    let api = api(client, &namespace, kind);
    let desired: Result<Option<Vec<Value>>, PublishError> = match kind {
        PublishKind::ServiceMonitor => Ok(m
            .spec
            .service_monitor
            .enabled
            .then(|| vec![service_monitor(m, service)])),
        PublishKind::PrometheusRule => Ok(m
            .spec
            .prometheus_rule
            .enabled
            .then(|| vec![prometheus_rule(m)])),
        PublishKind::Dashboards => {
            if m.spec.dashboard.enabled {
                dashboard_configmaps(m).map(Some)
            } else {
                Ok(None)
            }
        }
    };
    let result = match desired {
        Ok(Some(objects)) => apply_all(&api, kind, &namespace, objects).await,
        Ok(None) => delete_all(&api, kind, &namespace, &names(m, kind)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(published) => published,
        Err(e) => Published::Failed(e),
    }
}

/// The names of the objects of `kind` a monitor publishes.
fn names(m: &TapMonitor, kind: PublishKind) -> Vec<String> {
    match kind {
        PublishKind::ServiceMonitor | PublishKind::PrometheusRule => vec![m.name_any()],
        PublishKind::Dashboards => DASHBOARD_SLUGS
            .iter()
            .map(|slug| dashboard_configmap_name(m, slug))
            .collect(),
    }
}

async fn apply_all(
    api: &Api<DynamicObject>,
    kind: PublishKind,
    namespace: &str,
    objects: Vec<Value>,
) -> Result<Published, PublishError> {
    for object in objects {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|source| PublishError::Apply {
            kind: kind.object_kind().0,
            namespace: namespace.to_owned(),
            name,
            source: Box::new(source),
        })?;
    }
    Ok(Published::Applied)
}

async fn delete_all(
    api: &Api<DynamicObject>,
    kind: PublishKind,
    namespace: &str,
    names: &[String],
) -> Result<Published, PublishError> {
    for name in names {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(PublishError::Delete {
                    kind: kind.object_kind().0,
                    namespace: namespace.to_owned(),
                    name: name.clone(),
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(Published::Disabled)
}
