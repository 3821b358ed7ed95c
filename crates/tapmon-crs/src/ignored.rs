//! Fields a config carries that the format does not know. kube-state-metrics decodes its config
//! skipping unknown fields, so configs that run there may carry some (`valueFrom` under `info`,
//! a misspelt `labelFromPath`). tapmon reads them the same way and names each one, so that the
//! CLI can warn or, with `--strict`, refuse; nothing is skipped silently.

use serde::de::DeserializeOwned;

/// Reads `value` as `T`, skipping the fields `T` does not know; returns them as paths
/// (`spec.resources[0].metrics[1].each.info.valueFrom`), in the order they occur. A JSON value's
/// maps are sorted; to keep a config's label order, read its text with
/// [`crate::yaml::from_str_reporting`].
pub fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
) -> Result<(T, Vec<String>), serde_json::Error> {
    let mut ignored = Vec::new();
    let parsed = serde_ignored::deserialize(value, |path| ignored.push(path_text(&path)))?;
    Ok((parsed, ignored))
}

/// A path as a reader of the YAML writes it: dots between keys, indices in brackets.
pub(crate) fn path_text(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_text(parent)),
        Path::Map { parent, key } => match path_text(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => path_text(parent),
    }
}
