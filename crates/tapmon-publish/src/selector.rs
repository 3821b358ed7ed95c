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
