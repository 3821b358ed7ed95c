//! The last discovery answer, reused until a CustomResourceDefinition changes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::Client;
use parking_lot::Mutex;

use super::DiscoverySnapshot;

/// Discovery results, refreshed when CustomResourceDefinitions change.
#[derive(Debug, Default)]
pub struct DiscoveryCache {
    epoch: AtomicU64,
    cached: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    epoch: u64,
    groups: BTreeSet<String>,
    snapshot: DiscoverySnapshot,
}

impl DiscoveryCache {
    /// Marks the cache stale (a CRD changed).
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The snapshot for `groups`, fetched again when stale or when it covers other groups.
    pub async fn get(
        &self,
        client: &Client,
        groups: &BTreeSet<String>,
    ) -> Result<DiscoverySnapshot, kube::Error> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut wanted = groups.clone();
        if let Some(cached) = self.cached.lock().as_ref() {
            if cached.epoch == epoch && groups.is_subset(&cached.groups) {
                return Ok(cached.snapshot.clone());
            }
            // Keep asking for what other monitors read, so they find it here too.
            wanted.extend(cached.groups.iter().cloned());
        }
        let snapshot = DiscoverySnapshot::fetch(client.clone(), &wanted).await?;
        *self.cached.lock() = Some(Cached {
            epoch,
            groups: wanted,
            snapshot: snapshot.clone(),
        });
        Ok(snapshot)
    }
}
