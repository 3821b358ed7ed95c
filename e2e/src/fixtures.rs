//! The fixture files: the repository's YAML read as documents, the sample TAP environment
//! loaded as its controllers would have written it, and the catalogue's queries.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kube::Client;
use serde_json::Value;
use tapmon_api::Groups;
use tapmon_presets::TapGroup;

use crate::kube::{api_for, apply, apply_files, install_crds};

/// The repository root.
pub fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// Reads every document of a YAML file.
pub fn documents(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok(tapmon_crs::yaml::from_multiple(&text)?)
}

/// Every YAML file of a directory, sorted.
pub fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    // A kustomization lists objects; it is not one.
    files.retain(|p| {
        p.extension().is_some_and(|e| e == "yaml")
            && p.file_name().is_some_and(|n| n != "kustomization.yaml")
    });
    files.sort();
    Ok(files)
}

/// The CRDs of the 21 TAP kinds (`e2e/fixtures/crds`).
pub fn tap_crds() -> anyhow::Result<Vec<PathBuf>> {
    yaml_files(&root().join("e2e/fixtures/crds"))
}

/// The namespaces of the sample TAP environment.
pub fn tap_namespaces() -> PathBuf {
    root().join("e2e/fixtures/tap/namespaces.yaml")
}

/// Every object of the sample TAP environment (`e2e/fixtures/tap`) but its namespaces, in file
/// order, with their status.
pub fn tap_objects() -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for file in yaml_files(&root().join("e2e/fixtures/tap"))? {
        if file.file_stem().is_some_and(|s| s != "namespaces") {
            objects.extend(documents(&file)?);
        }
    }
    Ok(objects)
}

/// The fixture TAP objects as the API server holds them once loaded (its creation times, the
/// status times moved with them), read back one by one.
pub async fn tap_objects_as_loaded(client: &Client) -> anyhow::Result<Vec<Value>> {
    let mut loaded = Vec::new();
    for obj in tap_objects()? {
        let api = api_for(client, &obj, None).await?;
        let name = obj["metadata"]["name"].as_str().context("name")?;
        loaded.push(serde_json::to_value(api.get(name).await?)?);
    }
    Ok(loaded)
}

/// Loads the fixture TAP environment: CRDs, namespaces, then objects with owners before their
/// dependents, owner UIDs replaced by the real ones, status through the subresource.
pub async fn load_tap_environment(client: &Client) -> anyhow::Result<usize> {
    install_crds(client, &tap_crds()?).await?;
    apply_files(client, &[tap_namespaces()], None).await?;
    let mut pending = tap_objects()?;
    let loadable: HashSet<String> = pending
        .iter()
        .filter_map(|o| o["kind"].as_str().map(str::to_owned))
        .collect();
    let key = |o: &Value| {
        format!(
            "{}/{}/{}",
            o["kind"].as_str().unwrap_or(""),
            o["metadata"]["namespace"].as_str().unwrap_or(""),
            o["metadata"]["name"].as_str().unwrap_or("")
        )
    };
    let mut uids: HashMap<String, String> = HashMap::new();
    let mut loaded = 0;
    while !pending.is_empty() {
        let before = pending.len();
        let mut next = Vec::new();
        for mut obj in pending {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let refs = obj["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let owners: Vec<String> = refs
                .iter()
                .filter(|r| r["kind"].as_str().is_some_and(|k| loadable.contains(k)))
                .map(|r| {
                    format!(
                        "{}/{ns}/{}",
                        r["kind"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or("")
                    )
                })
                .collect();
            if owners.iter().any(|o| !uids.contains_key(o)) {
                next.push(obj);
                continue;
            }
            if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
                for r in refs {
                    let owner = format!(
                        "{}/{ns}/{}",
                        r["kind"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or("")
                    );
                    if let Some(uid) = uids.get(&owner) {
                        r["uid"] = Value::String(uid.clone());
                    }
                }
            }
            let k = key(&obj);
            let uid = apply(client, obj, None).await?;
            uids.insert(k, uid);
            loaded += 1;
        }
        if next.len() == before {
            bail!(
                "fixtures with owners that never load: {:?}",
                next.iter().map(key).collect::<Vec<_>>()
            );
        }
        pending = next;
    }
    Ok(loaded)
}

/// A TapMonitor `spec.groups` with only the groups in `on` enabled.
pub fn groups_only(on: &[TapGroup]) -> Value {
    serde_json::to_value(Groups::only(on)).expect("groups serialise")
}

/// The PromQL of every query in the catalogue's "Queries users run".
pub fn catalogue_queries() -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(root().join("docs/tap-metrics.md"))?;
    let section = text
        .split("## Queries users run")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .context("no queries section")?;
    Ok(section
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .filter_map(|l| {
            let (what, rest) = l.split_once(": `")?;
            Some((what.to_owned(), rest.strip_suffix('`')?.to_owned()))
        })
        .collect())
}
