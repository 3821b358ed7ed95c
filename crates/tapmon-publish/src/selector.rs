//! The marker the rule and dashboard templates put where matchers go: `{S ...}` (or `{S}` for
//! a selector without matchers of its own).

/// The matcher that limits a selector to one TapMonitor's series, `, `-terminated; empty
/// without a scope.
pub(crate) fn scope_matcher(scope: Option<&str>) -> String {
    scope
        .map(|s| {
            format!(
                "tap_monitor=\"{}\", ",
                s.replace('\\', "\\\\").replace('"', "\\\"")
            )
        })
        .unwrap_or_default()
}

/// What tells the replicas of tapmon apart: Prometheus scrapes every pod, so each series comes
/// once per replica with these labels different.
pub const REPLICA_LABELS: &str = "instance, pod";

/// Wraps each selector marked `{S ...}` or `{C ...}` (with its metric name) in
/// `max without (instance, pod) (...)`, so that the series every replica serves count once.
pub(crate) fn deduplicate(template: &str) -> String {
    let bytes = template.as_bytes();
    let mut out = String::with_capacity(template.len() + 64);
    let mut copied = 0;
    let mut i = 0;
    while i + 2 < bytes.len() {
        let marked = bytes[i] == b'{'
            && matches!(bytes[i + 1], b'S' | b'C')
            && matches!(bytes[i + 2], b' ' | b'}');
        if !marked {
            i += 1;
            continue;
        }
        // The metric name before the brace, if any.
        let mut start = i;
        while start > copied
            && (bytes[start - 1].is_ascii_alphanumeric() || matches!(bytes[start - 1], b'_' | b':'))
        {
            start -= 1;
        }
        // The closing brace, skipping quoted label values.
        let mut end = i + 1;
        let mut quoted = false;
        while end < bytes.len() {
            match bytes[end] {
                b'\\' if quoted => end += 1,
                b'"' => quoted = !quoted,
                b'}' if !quoted => break,
                _ => {}
            }
            end += 1;
        }
        let end = (end + 1).min(bytes.len());
        out.push_str(&template[copied..start]);
        out.push_str(&format!(
            "max without ({REPLICA_LABELS}) ({})",
            &template[start..end]
        ));
        copied = end;
        i = end;
    }
    out.push_str(&template[copied..]);
    out
}

/// Fills each `{<marker> ` and `{<marker>}` of `template` with `matchers` (a `, `-terminated
/// list, possibly empty).
pub(crate) fn fill(template: &str, marker: &str, matchers: &str) -> String {
    template
        .replace(&format!("{{{marker} "), &format!("{{{matchers}"))
        .replace(
            &format!("{{{marker}}}"),
            &format!("{{{}}}", matchers.trim_end_matches(", ")),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_selectors_count_once_across_replicas() {
        assert_eq!(
            deduplicate(
                r#"count(a_b{S x="}"}) or max by (w) (label_replace(c{C}, "w", "$1", "n", "(.*)"))"#
            ),
            r#"count(max without (instance, pod) (a_b{S x="}"})) or max by (w) (label_replace(max without (instance, pod) (c{C}), "w", "$1", "n", "(.*)"))"#
        );
        assert_eq!(
            deduplicate(r#"{S __name__=~"x_.*"} and y"#),
            r#"max without (instance, pod) ({S __name__=~"x_.*"}) and y"#
        );
        assert_eq!(deduplicate("vector(1)"), "vector(1)");
    }

    #[test]
    fn fills_markers_with_or_without_matchers() {
        let m = scope_matcher(Some("ns/t\"x"));
        assert_eq!(m, "tap_monitor=\"ns/t\\\"x\", ");
        assert_eq!(
            fill(r#"a{S b="c"} or d{S}"#, "S", &m),
            r#"a{tap_monitor="ns/t\"x", b="c"} or d{tap_monitor="ns/t\"x"}"#
        );
        assert_eq!(fill(r#"a{S b="c"} or d{S}"#, "S", ""), r#"a{b="c"} or d{}"#);
        assert_eq!(fill("a{C x} b{S x}", "C", "k, "), "a{k, x} b{S x}");
    }
}
