//! YAML as Kubernetes reads it: YAML 1.2 scalars, so `n`, `y`, `on` and `off` stay strings
//! (`[status, n]` is a path, not `[status, false]`).

use serde::de::DeserializeOwned;

/// A YAML document could not be read.
pub type Error = serde_saphyr::Error;

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

/// Reads one YAML (or JSON) document.
pub fn from_str<T: DeserializeOwned>(input: &str) -> Result<T, Error> {
    serde_saphyr::from_str_with_options(input, options())
}

/// Reads one YAML (or JSON) document, skipping the fields `T` does not know; returns them as
/// paths ([`crate::ignored`]). Maps keep the order they are written in.
pub fn from_str_reporting<T: DeserializeOwned>(input: &str) -> Result<(T, Vec<String>), Error> {
    let mut ignored = Vec::new();
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(input, options(), |de| {
        serde_ignored::deserialize(de, |path| ignored.push(crate::ignored::path_text(&path)))
    })?;
    Ok((parsed, ignored))
}

/// Reads every document of a multi-document YAML stream; empty documents are skipped.
pub fn from_multiple<T: DeserializeOwned>(input: &str) -> Result<Vec<T>, Error> {
    serde_saphyr::from_multiple_with_options(input, options())
}

#[cfg(test)]
mod tests {
    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let v: Vec<String> = super::from_str("[n, y, on, off, yes, no]").unwrap();
        assert_eq!(v, ["n", "y", "on", "off", "yes", "no"]);
        let v: serde_json::Value = super::from_str("{a: n, b: true}").unwrap();
        assert_eq!(v, serde_json::json!({"a": "n", "b": true}));
        let docs: Vec<serde_json::Value> = super::from_multiple("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }
}
