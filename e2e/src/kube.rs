//! Talking to the test cluster: APIs of kinds known by name, server-side apply as a
//! controller writes (status through its subresource), CRDs installed and established.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, Scope, pinned_kind};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::fixtures::documents;

/// The API of a kind given as (group, version, kind) and plural, in `namespace` or cluster-wide.
pub fn dynamic_api(
    client: &Client,
    namespace: Option<&str>,
    gvk: (&str, &str, &str),
    plural: &str,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(gvk.0, gvk.1, gvk.2), plural);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// TapMonitors in `namespace`.
pub fn tapmonitors(client: &Client, namespace: &str) -> Api<DynamicObject> {
    dynamic_api(
        client,
        Some(namespace),
        ("tapmon.io", "v1alpha1", "TapMonitor"),
        "tapmonitors",
    )
}

/// ClusterTapMonitors: the monitors that read every namespace, which most tests use.
pub fn cluster_monitors(client: &Client) -> Api<DynamicObject> {
    dynamic_api(
        client,
        None,
        ("tapmon.io", "v1alpha1", "ClusterTapMonitor"),
        "clustertapmonitors",
    )
}

pub(crate) async fn resource_of(
    client: &Client,
    obj: &Value,
) -> anyhow::Result<(ApiResource, ApiCapabilities)> {
    let api_version = obj["apiVersion"].as_str().context("apiVersion")?;
    let kind = obj["kind"].as_str().context("kind")?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Ok(pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await?)
}

/// The API of an object's kind, in its namespace when namespaced.
pub async fn api_for(
    client: &Client,
    obj: &Value,
    default_namespace: Option<&str>,
) -> anyhow::Result<Api<DynamicObject>> {
    let (ar, caps) = resource_of(client, obj).await?;
    Ok(match caps.scope {
        Scope::Cluster => Api::all_with(client.clone(), &ar),
        Scope::Namespaced => {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .or(default_namespace)
                .context("namespaced object without namespace")?;
            Api::namespaced_with(client.clone(), ns, &ar)
        }
    })
}

/// Creates or updates an object by server-side apply, then writes its `status` through the
/// status subresource, as a controller would. Returns the object's UID.
pub async fn apply(
    client: &Client,
    mut obj: Value,
    default_namespace: Option<&str>,
) -> anyhow::Result<String> {
    let status = obj.as_object_mut().and_then(|o| o.remove("status"));
    let written_creation = take_creation(&mut obj);
    let api = api_for(client, &obj, default_namespace).await?;
    let name = obj["metadata"]["name"].as_str().context("name")?.to_owned();
    let params = PatchParams::apply("tapmon-e2e").force();
    let applied = api
        .patch(&name, &params, &Patch::Apply(&obj))
        .await
        .with_context(|| format!("applying {} {name}", obj["kind"]))?;
    if let Some(mut status) = status {
        align_status(&mut status, written_creation, &applied)?;
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .with_context(|| format!("writing the status of {} {name}", obj["kind"]))?;
    }
    Ok(applied.metadata.uid.unwrap_or_default())
}

/// Takes `metadata.creationTimestamp` out of a fixture object: the API server sets its own.
pub fn take_creation(obj: &mut Value) -> Option<jiff::Timestamp> {
    obj["metadata"]
        .as_object_mut()
        .and_then(|m| m.remove("creationTimestamp"))
        .and_then(|v| v.as_str()?.parse().ok())
}

/// Moves the times in a fixture's `status` by as much as the API server moved its creation
/// (from `written`, the fixture's, to the one `applied` got), so a duration from creation to a
/// condition is the one the fixture says. Without a written creation, nothing moves.
pub fn align_status(
    status: &mut Value,
    written: Option<jiff::Timestamp>,
    applied: &DynamicObject,
) -> anyhow::Result<()> {
    let actual = serde_json::to_value(&applied.metadata.creation_timestamp)?
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok());
    if let (Some(written), Some(actual)) = (written, actual) {
        shift_timestamps(status, actual.duration_since(written));
    }
    Ok(())
}

/// Moves every RFC 3339 timestamp string in `value` by `by`, keeping whole seconds.
fn shift_timestamps(value: &mut Value, by: jiff::SignedDuration) {
    match value {
        Value::String(s) if s.len() >= 20 && s.as_bytes()[10] == b'T' => {
            if let Ok(ts) = s.parse::<jiff::Timestamp>().and_then(|t| t.checked_add(by)) {
                *s = ts.to_string();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| shift_timestamps(v, by)),
        Value::Object(map) => map.values_mut().for_each(|v| shift_timestamps(v, by)),
        _ => {}
    }
}

/// Applies every document of the files, in order.
pub async fn apply_files(
    client: &Client,
    files: &[PathBuf],
    default_namespace: Option<&str>,
) -> anyhow::Result<()> {
    for file in files {
        for doc in documents(file)? {
            apply(client, doc, default_namespace).await?;
        }
    }
    Ok(())
}

/// Installs CRDs (and what else the files hold) and waits until each CRD is established.
pub async fn install_crds(client: &Client, files: &[PathBuf]) -> anyhow::Result<()> {
    apply_files(client, files, None).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for file in files {
        for doc in documents(file)? {
            if doc["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let name = doc["metadata"]["name"].as_str().context("CRD name")?;
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(crds.clone(), name, conditions::is_crd_established()),
            )
            .await
            .with_context(|| format!("timed out waiting for CRD {name} to be established"))??;
        }
    }
    Ok(())
}

/// Creates or updates ClusterTapMonitor `name` with `spec`.
pub async fn apply_cluster_monitor(client: &Client, name: &str, spec: Value) -> anyhow::Result<()> {
    let obj = json!({
        "apiVersion": "tapmon.io/v1alpha1", "kind": "ClusterTapMonitor",
        "metadata": {"name": name}, "spec": spec
    });
    apply(client, obj, None).await.map(drop)
}

/// Creates or updates TapMonitor `namespace/name` with `spec`.
pub async fn apply_tap_monitor(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: Value,
) -> anyhow::Result<()> {
    let obj = json!({
        "apiVersion": "tapmon.io/v1alpha1", "kind": "TapMonitor",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec
    });
    apply(client, obj, None).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_times_move_with_the_creation_time_and_nothing_else_does() {
        let mut status = json!({
            "startTime": "2025-03-10T04:00:00Z",
            "conditions": [{"lastTransitionTime": "2025-03-10T04:06:00Z", "reason": "2025-03-10"}],
            "phase": "Succeeded"
        });
        shift_timestamps(&mut status, jiff::SignedDuration::from_secs(90));
        assert_eq!(
            status,
            json!({
                "startTime": "2025-03-10T04:01:30Z",
                "conditions": [{"lastTransitionTime": "2025-03-10T04:07:30Z", "reason": "2025-03-10"}],
                "phase": "Succeeded"
            })
        );
    }
}
