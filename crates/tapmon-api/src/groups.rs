//! `spec.groups`: which TAP groups a monitor watches, keyed by the groups' one name
//! ([`TapGroup::name`]), every group on unless disabled. The schema is built from the group table,
//! so adding a group needs no change here.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use tapmon_presets::TapGroup;

/// Whether one group is watched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupSpec {
    /// Watch this group's kinds.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
}

impl Default for GroupSpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn enabled_default() -> bool {
    true
}

/// The TAP groups, each on unless disabled. Unknown names are errors, not ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Groups(BTreeMap<TapGroup, GroupSpec>);

impl Groups {
    /// Exactly the groups in `on` enabled, every other one disabled.
    pub fn only(on: &[TapGroup]) -> Self {
        Groups(
            TapGroup::ALL
                .into_iter()
                .map(|g| {
                    (
                        g,
                        GroupSpec {
                            enabled: on.contains(&g),
                        },
                    )
                })
                .collect(),
        )
    }

    /// The groups that are on, in catalogue order.
    pub fn enabled(&self) -> Vec<TapGroup> {
        TapGroup::ALL
            .into_iter()
            .filter(|g| self.0.get(g).is_none_or(|s| s.enabled))
            .collect()
    }
}

impl Serialize for Groups {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (group, spec) in &self.0 {
            map.serialize_entry(group.name(), spec)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Groups {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GroupsVisitor;
        impl<'de> Visitor<'de> for GroupsVisitor {
            type Value = Groups;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map from TAP group name to {enabled: bool}")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Groups, E> {
                Ok(Groups::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Groups, A::Error> {
                let mut groups = BTreeMap::new();
                while let Some(name) = access.next_key::<String>()? {
                    let group: TapGroup = name.parse().map_err(A::Error::custom)?;
                    // `kpack: null` (or `{}`) means the default: on.
                    let spec = access
                        .next_value::<Option<GroupSpec>>()?
                        .unwrap_or_default();
                    if groups.insert(group, spec).is_some() {
                        return Err(A::Error::custom(format!("duplicate group {name:?}")));
                    }
                }
                Ok(Groups(groups))
            }
        }
        deserializer.deserialize_map(GroupsVisitor)
    }
}

impl JsonSchema for Groups {
    fn schema_name() -> Cow<'static, str> {
        "Groups".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let properties: serde_json::Map<String, serde_json::Value> = TapGroup::ALL
            .into_iter()
            .map(|group| {
                let mut schema = generator.subschema_for::<GroupSpec>().to_value();
                if let Some(object) = schema.as_object_mut() {
                    object.insert("description".into(), group.description().into());
                    object.insert("nullable".into(), true.into());
                }
                (group.name().to_owned(), schema)
            })
            .collect();
        json_schema!({
            "type": "object",
            "properties": properties,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_group_is_on_unless_disabled() {
        let groups: Groups = serde_json::from_value(json!({})).unwrap();
        assert_eq!(groups.enabled(), TapGroup::ALL);
        let groups: Groups = serde_json::from_value(json!({
            "kpack": {"enabled": false}, "servicesToolkit": {"enabled": false}, "flux": {}, "tekton": null
        }))
        .unwrap();
        let enabled = groups.enabled();
        assert_eq!(enabled.len(), 9);
        assert!(!enabled.contains(&TapGroup::Kpack));
        assert!(!enabled.contains(&TapGroup::ServicesToolkit));
        assert!(enabled.contains(&TapGroup::Flux) && enabled.contains(&TapGroup::Tekton));
        let typo = serde_json::from_value::<Groups>(json!({"kpak": {}}));
        assert!(typo.unwrap_err().to_string().contains("kpak"));
    }

    #[test]
    fn only_round_trips_through_the_group_names() {
        let only = Groups::only(&[TapGroup::Kpack, TapGroup::ServiceBindings]);
        let value = serde_json::to_value(&only).unwrap();
        assert_eq!(value["serviceBindings"], json!({"enabled": true}));
        assert_eq!(value["cartographer"], json!({"enabled": false}));
        let back: Groups = serde_json::from_value(value).unwrap();
        assert_eq!(back.enabled(), [TapGroup::ServiceBindings, TapGroup::Kpack]);
    }
}
