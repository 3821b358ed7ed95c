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
    let api = api_for(client, &obj, default_namespace).await?;
    let name = obj["metadata"]["name"].as_str().context("name")?.to_owned();
    let params = PatchParams::apply("tapmon-e2e").force();
    let applied = api
        .patch(&name, &params, &Patch::Apply(&obj))
        .await
        .with_context(|| format!("applying {} {name}", obj["kind"]))?;
    if let Some(status) = status {
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
