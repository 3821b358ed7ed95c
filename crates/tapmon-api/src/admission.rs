//! The admission policy that refuses monitors whose paths the engine cannot decode. A path is
//! a list of segments or a JSONPath string: a structural CRD schema cannot say "one of two
//! types" and CEL rules in a CRD cannot see a node without a type, so the check is a
//! `ValidatingAdmissionPolicy` (CEL over the object as written), shipped beside the CRDs.

use serde_json::{Value, json};

/// Name of the policy and of its binding.
pub const POLICY_NAME: &str = "tapmon.io-paths";

/// CEL: `expr` is a path the engine decodes (absent, null, a string, or a list of strings,
/// integers and booleans).
fn is_path(expr: &str) -> String {
    format!(
        "(type({expr}) == string || type({expr}) == null_type || (type({expr}) == list && {expr}.all(s, type(s) == string || type(s) == int || type(s) == bool)))"
    )
}

/// CEL: every value of the map `expr` (labelsFromPath) is a path.
fn all_paths(expr: &str) -> String {
    format!(
        "(!has({expr}) || {expr}.all(k, {}))",
        is_path(&format!("{expr}[k]"))
    )
}

/// CEL: the path field `field` of `expr` is absent or a path.
fn path_field(expr: &str, field: &str) -> String {
    format!(
        "(!has({expr}.{field}) || {})",
        is_path(&format!("{expr}.{field}"))
    )
}

/// CEL: every path of the metric section `expr` (gauge, stateSet or info).
fn section(expr: &str, value_from: bool) -> String {
    let mut parts = vec![
        path_field(expr, "path"),
        all_paths(&format!("{expr}.labelsFromPath")),
    ];
    if value_from {
        parts.push(path_field(expr, "valueFrom"));
    }
    format!("(!has({expr}) || ({}))", parts.join(" && "))
}

/// The CEL expression admitting exactly the monitors whose paths decode.
pub fn paths_expression() -> String {
    let metric = [
        all_paths("m.labelsFromPath"),
        format!(
            "(!has(m.each) || ({} && {} && {}))",
            section("m.each.gauge", true),
            section("m.each.stateSet", true),
            section("m.each.info", false)
        ),
    ]
    .join(" && ");
    format!(
        "!has(object.spec) || !has(object.spec.resources) || object.spec.resources.all(r, {} && (!has(r.metrics) || r.metrics.all(m, {metric})))",
        all_paths("r.labelsFromPath")
    )
}

/// The policy and its binding, as YAML documents (JSON is YAML).
pub fn admission_policy() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": POLICY_NAME, "labels": {"app.kubernetes.io/name": "tapmon"}},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [crate::GROUP],
                    "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["tapmonitors", "clustertapmonitors"]
                }]},
                "validations": [{
                    "expression": paths_expression(),
                    "message": "every path (path, valueFrom, labelsFromPath) must be a list of segments (strings, integers or booleans) or a kubectl JSONPath string",
                    "reason": "Invalid"
                }]
            }
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": POLICY_NAME, "labels": {"app.kubernetes.io/name": "tapmon"}},
            "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]}
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_field_is_checked() {
        let e = paths_expression();
        for place in [
            "r.labelsFromPath[k]",
            "m.labelsFromPath[k]",
            "m.each.gauge.path",
            "m.each.gauge.valueFrom",
            "m.each.gauge.labelsFromPath[k]",
            "m.each.stateSet.path",
            "m.each.stateSet.valueFrom",
            "m.each.stateSet.labelsFromPath[k]",
            "m.each.info.path",
            "m.each.info.labelsFromPath[k]",
        ] {
            assert!(e.contains(&format!("type({place}) == string")), "{place}");
        }
        assert_eq!(e.matches('(').count(), e.matches(')').count());
    }
}
