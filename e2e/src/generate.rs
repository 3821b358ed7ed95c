//! The object generator: the fixture TAP environment copied into as many namespaces as it takes
//! to reach N objects, so a scaled cluster has the fixtures' kinds, proportions, sizes, owners
//! and status. Copy `r` of a namespaced fixture keeps its name in namespace `{namespace}-r{r}`;
//! a cluster-scoped one is renamed `{name}-r{r}`. Objects are written in parallel (server-side
//! apply, then status through the subresource), owners before their dependents.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::Scope;
use kube::{Api, Client};
use serde_json::{Value, json};
use tapmon_crs::Compiled;

use crate::fixtures::{documents, root, tap_namespaces, tap_objects};
use crate::kube::{align_status, resource_of, take_creation};

/// Requests in flight while writing: enough to keep kube-apiserver busy on two cores without
/// reaching its default in-flight limit (400).
const PARALLEL: usize = 32;

/// One fixture object, the pattern for its copies.
struct Template {
    kind: String,
    namespace: Option<String>,
    name: String,
    /// The object without status and creation time.
    object: Value,
    status: Option<Value>,
    /// The fixture's creation time, which its status times are relative to.
    created: Option<jiff::Timestamp>,
    /// Fixture objects this one's ownerReferences name, by index.
    owners: Vec<usize>,
    /// Whether another fixture object names this one as owner.
    owner: bool,
}

/// An object the generator created and has not deleted.
#[derive(Clone, Debug)]
pub struct Instance {
    template: usize,
    replica: usize,
    /// The object's name.
    pub name: String,
    /// Its namespace, empty when cluster-scoped.
    pub namespace: String,
}

/// Creates, churns and re-creates scaled copies of the fixture TAP environment.
pub struct Generator {
    client: Client,
    templates: Vec<Template>,
    /// Template indices, owners before dependents: object `i` is copy `i / len` of
    /// `order[i % len]`.
    order: Vec<usize>,
    namespaces: Vec<Value>,
    apis: HashMap<String, (ApiResource, Scope)>,
    uids: HashMap<String, String>,
    live: Vec<Instance>,
    created: usize,
    replicas_with_namespaces: usize,
}

fn key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

impl Generator {
    /// Reads the fixtures and resolves each kind's API (its CRDs must be installed).
    pub async fn new(client: Client) -> anyhow::Result<Generator> {
        let namespaces = documents(&tap_namespaces())?;
        let mut templates = Vec::new();
        for mut object in tap_objects()? {
            let status = object.as_object_mut().and_then(|o| o.remove("status"));
            let created = take_creation(&mut object);
            let meta = &object["metadata"];
            templates.push(Template {
                kind: object["kind"].as_str().context("kind")?.to_owned(),
                namespace: meta["namespace"].as_str().map(str::to_owned),
                name: meta["name"].as_str().context("name")?.to_owned(),
                owners: Vec::new(),
                owner: false,
                status,
                created,
                object,
            });
        }
        let index: HashMap<String, usize> = templates
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    key(&t.kind, t.namespace.as_deref().unwrap_or(""), &t.name),
                    i,
                )
            })
            .collect();
        for i in 0..templates.len() {
            let ns = templates[i].namespace.clone().unwrap_or_default();
            let refs = templates[i].object["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for r in refs {
                let (kind, name) = (r["kind"].as_str(), r["name"].as_str());
                let (Some(kind), Some(name)) = (kind, name) else {
                    continue;
                };
                let owner = index
                    .get(&key(kind, &ns, name))
                    .or_else(|| index.get(&key(kind, "", name)));
                if let Some(&o) = owner {
                    templates[i].owners.push(o);
                    templates[o].owner = true;
                }
            }
        }
        let order = owners_first(&templates)?;
        let mut apis = HashMap::new();
        for t in &templates {
            if !apis.contains_key(&t.kind) {
                let (ar, caps) = resource_of(&client, &t.object).await?;
                apis.insert(t.kind.clone(), (ar, caps.scope));
            }
        }
        Ok(Generator {
            client,
            templates,
            order,
            namespaces,
            apis,
            uids: HashMap::new(),
            live: Vec::new(),
            created: 0,
            replicas_with_namespaces: 0,
        })
    }

    /// Objects in one copy of the fixtures.
    pub fn per_replica(&self) -> usize {
        self.templates.len()
    }

    /// The objects that exist now.
    pub fn live(&self) -> &[Instance] {
        &self.live
    }

    /// Live objects per kind.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for i in &self.live {
            *out.entry(self.templates[i.template].kind.clone())
                .or_default() += 1;
        }
        out
    }

    /// Creates objects until `n` have been created (churn replaces objects one for one).
    pub async fn grow(&mut self, n: usize) -> anyhow::Result<()> {
        let per = self.templates.len();
        let batch: Vec<(usize, usize)> = (self.created..n)
            .map(|i| (self.order[i % per], i / per))
            .collect();
        if let Some(&(_, last)) = batch.last() {
            self.ensure_namespaces(last + 1).await?;
        }
        self.create(batch, None).await?;
        self.created = self.created.max(n);
        Ok(())
    }

    /// One round of churn: deletes `fraction` of the live objects (chosen among those nothing
    /// else owns, spread over the population) and creates as many new ones with new names.
    pub async fn churn(&mut self, fraction: f64, round: usize) -> anyhow::Result<()> {
        let leaves: Vec<usize> = (0..self.live.len())
            .filter(|&i| !self.templates[self.live[i].template].owner)
            .collect();
        let count = ((self.live.len() as f64 * fraction).round() as usize).min(leaves.len());
        if count == 0 {
            return Ok(());
        }
        // A different stride each round so every part of the population gets churned.
        let offset = round * 7919 % leaves.len();
        let mut picked: Vec<usize> = (0..count)
            .map(|k| leaves[(offset + k * leaves.len() / count) % leaves.len()])
            .collect();
        picked.sort_unstable();
        picked.dedup();
        let gone: Vec<Instance> = picked
            .iter()
            .rev()
            .map(|&i| self.live.swap_remove(i))
            .collect();
        self.delete(&gone).await?;
        let batch = gone.iter().map(|i| (i.template, i.replica)).collect();
        self.create(batch, Some(round)).await
    }

    /// Deletes the CRD of `kind` (which deletes its objects), waits until it is gone, installs
    /// it again and re-creates the objects it had. `kind` must not own other fixture objects.
    pub async fn recreate_kind(&mut self, kind: &str) -> anyhow::Result<()> {
        if self.templates.iter().any(|t| t.kind == kind && t.owner) {
            bail!("{kind} owns other objects; deleting its CRD would take them along");
        }
        let (ar, _) = self.apis.get(kind).context("unknown kind")?.clone();
        let crd_name = format!("{}.{}", ar.plural, ar.group);
        let file = root()
            .join("e2e/fixtures/crds")
            .join(format!("{crd_name}.yaml"));
        let crds: Api<DynamicObject> = crate::dynamic_api(
            &self.client,
            None,
            ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        );
        crds.delete(&crd_name, &DeleteParams::default()).await?;
        wait(&format!("CRD {crd_name} deleted"), || {
            let crds = crds.clone();
            let name = crd_name.clone();
            async move { matches!(crds.get_opt(&name).await, Ok(None)) }
        })
        .await?;
        crate::install_crds(&self.client, &[file]).await?;
        let (gone, keep): (Vec<Instance>, Vec<Instance>) = self
            .live
            .drain(..)
            .partition(|i| self.templates[i.template].kind == kind);
        self.live = keep;
        // Discovery of the re-created kind trails its Established condition briefly.
        let mut attempts = 0;
        loop {
            let batch = gone.iter().map(|i| (i.template, i.replica)).collect();
            match self.create_named(batch, gone.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if attempts < 20 => {
                    attempts += 1;
                    eprintln!("generator: re-creating {kind}: {e:#}; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn ensure_namespaces(&mut self, replicas: usize) -> anyhow::Result<()> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let mut docs = Vec::new();
        for r in self.replicas_with_namespaces..replicas {
            for ns in &self.namespaces {
                let mut ns = ns.clone();
                let name = format!("{}-r{r}", ns["metadata"]["name"].as_str().unwrap_or("ns"));
                ns["metadata"]["name"] = json!(name);
                if let Some(labels) = ns["metadata"]["labels"].as_object_mut()
                    && labels.contains_key("kubernetes.io/metadata.name")
                {
                    labels.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
                docs.push((name, ns));
            }
        }
        let params = PatchParams::apply("tapmon-bench").force();
        stream::iter(docs)
            .map(|(name, ns)| {
                let (api, params) = (api.clone(), params.clone());
                async move {
                    let patch = Patch::Apply(&ns);
                    retry(|| api.patch(&name, &params, &patch))
                        .await
                        .with_context(|| format!("creating namespace {name}"))
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<Vec<_>>()
            .await?;
        self.replicas_with_namespaces = self.replicas_with_namespaces.max(replicas);
        Ok(())
    }

    fn instance(&self, template: usize, replica: usize, round: Option<usize>) -> Instance {
        let t = &self.templates[template];
        let mut name = match &t.namespace {
            Some(_) => t.name.clone(),
            None => format!("{}-r{replica}", t.name),
        };
        if let Some(round) = round {
            name = format!("{name}-c{round}");
        }
        Instance {
            template,
            replica,
            name,
            namespace: t
                .namespace
                .as_ref()
                .map(|ns| format!("{ns}-r{replica}"))
                .unwrap_or_default(),
        }
    }

    /// The object to write for `instance`, with its owners' real UIDs.
    fn object(&self, instance: &Instance) -> Value {
        let t = &self.templates[instance.template];
        let mut obj = t.object.clone();
        obj["metadata"]["name"] = json!(instance.name);
        if !instance.namespace.is_empty() {
            obj["metadata"]["namespace"] = json!(instance.namespace);
        }
        if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
            for (r, &o) in refs.iter_mut().zip(&t.owners) {
                let owner = self.instance(o, instance.replica, None);
                r["name"] = json!(owner.name);
                let k = key(&self.templates[o].kind, &owner.namespace, &owner.name);
                if let Some(uid) = self.uids.get(&k) {
                    r["uid"] = json!(uid);
                }
            }
        }
        obj
    }

    async fn create(
        &mut self,
        batch: Vec<(usize, usize)>,
        round: Option<usize>,
    ) -> anyhow::Result<()> {
        let instances = batch
            .iter()
            .map(|&(t, r)| self.instance(t, r, round))
            .collect();
        self.create_named(batch, instances).await
    }

    /// Writes `instances` wave by wave: an object is written after every object it names as
    /// owner, whose UID it needs.
    async fn create_named(
        &mut self,
        batch: Vec<(usize, usize)>,
        instances: Vec<Instance>,
    ) -> anyhow::Result<()> {
        let depth = depths(&self.templates);
        let mut waves: BTreeMap<usize, Vec<Instance>> = BTreeMap::new();
        for ((t, _), instance) in batch.into_iter().zip(instances) {
            waves.entry(depth[t]).or_default().push(instance);
        }
        for (_, wave) in waves {
            let writes: Vec<(Instance, Value)> = wave
                .into_iter()
                .map(|i| {
                    let obj = self.object(&i);
                    (i, obj)
                })
                .collect();
            let created: Vec<(Instance, String)> = stream::iter(writes)
                .map(|(instance, obj)| {
                    let t = &self.templates[instance.template];
                    let api = self.api(&t.kind, &instance.namespace);
                    let (status, created) = (t.status.clone(), t.created);
                    async move {
                        let uid = write(&api, &instance.name, &obj, status, created).await?;
                        Ok::<_, anyhow::Error>((instance, uid))
                    }
                })
                .buffer_unordered(PARALLEL)
                .try_collect()
                .await?;
            for (instance, uid) in created {
                let t = &self.templates[instance.template];
                if t.owner {
                    self.uids
                        .insert(key(&t.kind, &instance.namespace, &instance.name), uid);
                }
                self.live.push(instance);
            }
        }
        Ok(())
    }

    async fn delete(&mut self, gone: &[Instance]) -> anyhow::Result<()> {
        let deletes: Vec<_> = gone
            .iter()
            .map(|i| {
                (
                    self.api(&self.templates[i.template].kind, &i.namespace),
                    i.name.clone(),
                )
            })
            .collect();
        stream::iter(deletes)
            .map(|(api, name)| async move {
                let params = DeleteParams::default();
                retry(|| api.delete(&name, &params))
                    .await
                    .with_context(|| format!("deleting {name}"))
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// The objects of `kind` in every namespace.
    pub fn all(&self, kind: &str) -> Option<Api<DynamicObject>> {
        let (ar, _) = self.apis.get(kind)?;
        Some(Api::all_with(self.client.clone(), ar))
    }

    fn api(&self, kind: &str, namespace: &str) -> Api<DynamicObject> {
        let (ar, scope) = &self.apis[kind];
        match scope {
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), namespace, ar),
            Scope::Cluster => Api::all_with(self.client.clone(), ar),
        }
    }

    /// Series the live objects imply under `compiled` (tapmon's count; the engine run
    /// offline over one copy of each fixture, times its live copies).
    pub fn expected_series(&self, compiled: &Compiled) -> usize {
        let per_template: Vec<usize> = self
            .templates
            .iter()
            .map(|t| {
                let mut obj = t.object.clone();
                if let Some(status) = &t.status {
                    obj["status"] = status.clone();
                }
                if let Some(created) = t.created {
                    obj["metadata"]["creationTimestamp"] = Value::String(created.to_string());
                }
                compiled.render_objects([&obj]).stats().series
            })
            .collect();
        self.live.iter().map(|i| per_template[i.template]).sum()
    }

    /// The kind of a live object.
    pub fn kind_of(&self, instance: &Instance) -> &str {
        &self.templates[instance.template].kind
    }

    /// A live object of `kind` (the first created), with its fixture status.
    pub fn sample(&self, kind: &str) -> Option<(Api<DynamicObject>, Instance, Value)> {
        let i = self.live.iter().find(|i| {
            self.templates[i.template].kind == kind && self.templates[i.template].status.is_some()
        })?;
        let t = &self.templates[i.template];
        Some((
            self.api(kind, &i.namespace),
            i.clone(),
            t.status.clone().unwrap_or(Value::Null),
        ))
    }
}

/// Writes one object: server-side apply, then its status, its times moved with the creation
/// time the server gave it (`created` is the fixture's). Returns its UID.
async fn write(
    api: &Api<DynamicObject>,
    name: &str,
    obj: &Value,
    status: Option<Value>,
    created: Option<jiff::Timestamp>,
) -> anyhow::Result<String> {
    let params = PatchParams::apply("tapmon-bench").force();
    let apply = Patch::Apply(obj);
    let applied = retry(|| api.patch(name, &params, &apply))
        .await
        .with_context(|| format!("applying {} {name}", obj["kind"]))?;
    if let Some(mut status) = status {
        align_status(&mut status, created, &applied)?;
        let patch = json!({ "status": status });
        let (merge, params) = (Patch::Merge(&patch), PatchParams::default());
        retry(|| api.patch_status(name, &params, &merge))
            .await
            .with_context(|| format!("writing the status of {} {name}", obj["kind"]))?;
    }
    Ok(applied.metadata.uid.unwrap_or_default())
}

/// Retries what a busy API server refuses for now (429, 5xx, connection errors).
async fn retry<T, F, Fut>(mut call: F) -> kube::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..6 {
        match call().await {
            Err(kube::Error::Api(s)) if s.code == 429 || s.code >= 500 => {}
            Err(kube::Error::HyperError(_) | kube::Error::Service(_)) => {}
            other => return other,
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    call().await
}

async fn wait<F, Fut>(what: &str, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !done().await {
        if std::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Each template's owner depth: 0 without owners among the fixtures; `len` or more only when
/// owners form a cycle (the recursion stops there).
fn depths(templates: &[Template]) -> Vec<usize> {
    fn depth(templates: &[Template], i: usize, hops: usize) -> usize {
        if hops >= templates.len() {
            return hops;
        }
        templates[i]
            .owners
            .iter()
            .map(|&o| depth(templates, o, hops + 1))
            .max()
            .unwrap_or(hops)
    }
    (0..templates.len())
        .map(|i| depth(templates, i, 0))
        .collect()
}

/// Template indices sorted by owner depth, so any prefix of a copy holds every owner its
/// dependents need.
fn owners_first(templates: &[Template]) -> anyhow::Result<Vec<usize>> {
    let depth = depths(templates);
    if depth.iter().any(|&d| d >= templates.len()) {
        bail!("ownerReferences among the fixtures form a cycle");
    }
    let mut order: Vec<usize> = (0..templates.len()).collect();
    order.sort_by_key(|&i| (depth[i], i));
    Ok(order)
}
