//! Metric and label names.

use std::borrow::Cow;

/// True for a valid Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// True for a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not reserved (`__` prefix).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    !name.starts_with("__")
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Turns any string into a label name: every byte outside `[a-zA-Z0-9_]` becomes `_`, a leading
/// digit gets a `_` in front. Borrows when the name is already valid.
pub fn sanitize_label_name(name: &str) -> Cow<'_, str> {
    let valid_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let leading_digit = name.bytes().next().is_some_and(|b| b.is_ascii_digit());
    if valid_chars && !leading_digit && !name.is_empty() {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 1);
    if leading_digit || name.is_empty() {
        out.push('_');
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing() {
        assert_eq!(sanitize_label_name("app"), "app");
        assert_eq!(
            sanitize_label_name("carto.run/workload-name"),
            "carto_run_workload_name"
        );
        assert_eq!(sanitize_label_name("1st"), "_1st");
        assert_eq!(sanitize_label_name("ünï"), "_n_");
        assert_eq!(sanitize_label_name(""), "_");
        assert!(matches!(sanitize_label_name("ok_1"), Cow::Borrowed(_)));
    }

    #[test]
    fn validity() {
        assert!(is_valid_metric_name("a:b_c1"));
        assert!(!is_valid_metric_name("1a"));
        assert!(!is_valid_metric_name("a-b"));
        assert!(!is_valid_metric_name(""));
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name("__name__"));
    }
}
