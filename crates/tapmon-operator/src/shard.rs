//! Sharding: which objects a replica serves when one cluster's objects are split across
//! replicas, each scraped as its own target.
//!
//! Every object belongs to exactly one shard, by a hash of its namespace and name: a pure
//! function of the object's identity, so every replica agrees without talking to the others,
//! and an object never moves while it exists (both are immutable). A Workload and its
//! Deliverable share namespace and name, so they land in the same shard.
//!
//! Each replica still lists and watches every object of the kinds its monitors read (the API
//! server has no hash filter), and drops the others' objects before evaluating them: sharding
//! divides the series held, the memory and the scrape, not the API server's traffic. A monitor's
//! label selector narrows what every shard lists, on the server.

use std::fmt;

/// Why a shard could not be set up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    /// No shards at all.
    #[error("--total-shards must be at least 1")]
    NoShards,
    /// An index beyond the last shard.
    #[error("shard {index} does not exist: there are {total} (0 to {})", total - 1)]
    OutOfRange {
        /// The index asked for.
        index: u32,
        /// Shards in all.
        total: u32,
    },
    /// `auto` without a pod name ending in a StatefulSet ordinal.
    #[error("cannot read a StatefulSet ordinal from the pod name {pod:?} (expected NAME-N)")]
    NoOrdinal {
        /// The pod name read.
        pod: String,
    },
}

/// One shard of `total`: the objects this replica serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    total: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl Shard {
    /// Everything: no sharding.
    pub const WHOLE: Shard = Shard { index: 0, total: 1 };

    /// Shard `index` of `total`.
    pub fn new(index: u32, total: u32) -> Result<Shard, ShardError> {
        if total == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= total {
            return Err(ShardError::OutOfRange { index, total });
        }
        Ok(Shard { index, total })
    }

    /// The shard a StatefulSet pod serves: its ordinal, the number after the last `-` of its
    /// name (`tapmon-2` serves shard 2).
    pub fn from_pod_name(pod: &str, total: u32) -> Result<Shard, ShardError> {
        let ordinal = pod
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse::<u32>().ok())
            .ok_or_else(|| ShardError::NoOrdinal { pod: pod.into() })?;
        Shard::new(ordinal, total)
    }

    /// This shard's index.
    pub fn index(self) -> u32 {
        self.index
    }

    /// Shards in all.
    pub fn total(self) -> u32 {
        self.total
    }

    /// True when this replica serves the object.
    pub fn owns(self, namespace: &str, name: &str) -> bool {
        self.total == 1 || shard_of(namespace, name, self.total) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// The shard of an object: FNV-1a (64-bit) of `namespace/name`, modulo the shards. Stable
/// across processes, versions and platforms, unlike the standard library's seeded hasher.
fn shard_of(namespace: &str, name: &str, total: u32) -> u32 {
    let hash = fnv1a(
        [namespace.as_bytes(), b"/", name.as_bytes()]
            .concat()
            .as_slice(),
    );
    // `total` is at least 1, and the remainder is below it.
    (hash % u64::from(total)) as u32
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_in_exactly_one_shard_and_about_evenly() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut counts = [0usize; 3];
        for i in 0..30_000 {
            let (ns, name) = (format!("team-{}", i % 40), format!("build-{i}"));
            let owners: Vec<u32> = shards
                .iter()
                .filter(|s| s.owns(&ns, &name))
                .map(|s| s.index())
                .collect();
            assert_eq!(owners.len(), 1, "{ns}/{name}: {owners:?}");
            counts[owners[0] as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert!(Shard::WHOLE.owns("any", "thing"));
    }

    #[test]
    fn the_hash_is_fixed() {
        // Replicas of different builds must agree: FNV-1a's published test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(
            shard_of("foo", "bar", 1 << 31),
            (fnv1a(b"foo/bar") % (1 << 31)) as u32
        );
    }

    #[test]
    fn ordinals_and_bad_settings() {
        assert_eq!(Shard::from_pod_name("tapmon-2", 3), Shard::new(2, 3));
        assert_eq!(Shard::from_pod_name("my-tap-mon-0", 1), Ok(Shard::WHOLE));
        assert_eq!(
            Shard::from_pod_name("tapmon-3", 3),
            Err(ShardError::OutOfRange { index: 3, total: 3 })
        );
        assert!(matches!(
            Shard::from_pod_name("tapmon-7d9f8-xk2lp", 3),
            Err(ShardError::NoOrdinal { .. })
        ));
        assert_eq!(Shard::new(0, 0), Err(ShardError::NoShards));
        assert_eq!(Shard::new(1, 2).unwrap().to_string(), "1/2");
    }
}
