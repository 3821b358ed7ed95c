//! The subset of kubectl's JSONPath that names a single value.
//!
//! Accepted: an optional `{…}` wrapper and `$`, `.field` (with `\.` escaping a dot inside a key),
//! `['field']` / `["field"]`, `[N]` with negative `N` counting from the end, and equality filters
//! `[?(@.key=="value")]` on string, number or boolean literals. Wildcards, recursive descent,
//! slices and unions select several values; a metric iterates a list with its `path` instead, so
//! those are rejected with a message that says so.

use crate::path::{FilterValue, PathError, Segment};

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

/// Parses `expr` into path segments.
pub(crate) fn parse(expr: &str) -> Result<Vec<Segment>, PathError> {
    let trimmed = expr.trim();
    let body = match trimmed.strip_prefix('{') {
        Some(rest) => rest
            .strip_suffix('}')
            .ok_or_else(|| PathError::InvalidJsonPath {
                path: expr.to_owned(),
                offset: expr.len(),
                reason: "missing closing '}'".to_owned(),
            })?,
        None => trimmed,
    };
    let offset = expr.find(body).unwrap_or(0);
    let mut parser = Parser { src: body, pos: 0 };
    parser
        .parse()
        .map_err(|(at, reason)| PathError::InvalidJsonPath {
            path: expr.to_owned(),
            offset: offset + at,
            reason,
        })
}

type Failure = (usize, String);

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, Failure> {
        Err((self.pos, reason.into()))
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn parse(&mut self) -> Result<Vec<Segment>, Failure> {
        let mut segments = Vec::new();
        self.eat("$");
        while !self.rest().is_empty() {
            if self.eat("..") {
                return self.fail("recursive descent '..' is not supported: name the full path");
            } else if self.eat(".") {
                segments.push(self.field(&[])?);
            } else if self.eat("[") {
                segments.push(self.bracket()?);
            } else if segments.is_empty() {
                // kubectl accepts a leading field without the dot.
                segments.push(self.field(&[])?);
            } else {
                return self.fail("expected '.' or '['");
            }
        }
        Ok(segments)
    }

    /// A field name, ending before `.`, `[` or any of `stop`.
    fn field(&mut self, stop: &[char]) -> Result<Segment, Failure> {
        let mut name = String::new();
        let mut chars = self.rest().char_indices().peekable();
        let mut consumed = 0;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((j, escaped)) => {
                        name.push(escaped);
                        consumed = j + escaped.len_utf8();
                        continue;
                    }
                    None => {
                        self.pos += i;
                        return self.fail("dangling '\\'");
                    }
                },
                '.' | '[' => break,
                c if stop.contains(&c) => break,
                '*' => {
                    self.pos += i;
                    return self.fail(
                        "wildcard '*' is not supported: use the metric's path to iterate a list",
                    );
                }
                _ => name.push(c),
            }
            consumed = i + c.len_utf8();
        }
        if name.is_empty() {
            return self.fail("expected a field name");
        }
        self.pos += consumed;
        Ok(Segment::key(&name))
    }

    fn bracket(&mut self) -> Result<Segment, Failure> {
        self.skip_spaces();
        let segment = if self.rest().starts_with('\'') || self.rest().starts_with('"') {
            let name = self.quoted()?;
            Segment::Key {
                name: name.into(),
                index: None,
            }
        } else if self.eat("?") {
            self.filter()?
        } else if self.rest().starts_with('*') {
            return self
                .fail("wildcard '[*]' is not supported: use the metric's path to iterate a list");
        } else {
            let end = self.rest().find(']').unwrap_or(self.rest().len());
            let inner = self.rest()[..end].trim().to_owned();
            if inner.contains(':') || inner.contains(',') {
                return self.fail("slices and unions are not supported: name one element");
            }
            let index: i64 = match inner.parse() {
                Ok(i) => i,
                Err(_) => {
                    return self.fail(format!(
                        "expected an index, a quoted key or a filter, found {inner:?}"
                    ));
                }
            };
            self.pos += end;
            Segment::Key {
                name: inner.into(),
                index: Some(index),
            }
        };
        self.skip_spaces();
        if !self.eat("]") {
            return self.fail("expected ']'");
        }
        Ok(segment)
    }

    fn quoted(&mut self) -> Result<String, Failure> {
        let quote = match self.rest().chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return self.fail("expected a quoted string"),
        };
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                    continue;
                }
            } else if c == quote {
                self.pos += i + 1;
                return Ok(out);
            }
            out.push(c);
        }
        self.fail("unterminated string")
    }

    fn filter(&mut self) -> Result<Segment, Failure> {
        self.skip_spaces();
        if !self.eat("(") {
            return self.fail("expected '(' after '?'");
        }
        self.skip_spaces();
        if !self.eat("@.") {
            return self.fail("expected '@.' at the start of a filter");
        }
        let key = match self.field(&['=', '!', '<', '>', ' ', ')'])? {
            Segment::Key { name, .. } => name,
            Segment::Filter { .. } => return self.fail("expected a field name"),
        };
        self.skip_spaces();
        if self.rest().starts_with('.') || self.rest().starts_with('[') {
            return self.fail("filters compare one field of each element: '@.field'");
        }
        if !self.eat("==") {
            return self.fail("only '==' filters are supported");
        }
        self.skip_spaces();
        let literal = if self.rest().starts_with('\'') || self.rest().starts_with('"') {
            self.quoted()?
        } else {
            let end = self.rest().find(')').unwrap_or(self.rest().len());
            let text = self.rest()[..end].trim().to_owned();
            if text.is_empty() {
                return self.fail("expected a value to compare with");
            }
            self.pos += end;
            text
        };
        self.skip_spaces();
        if !self.eat(")") {
            return self.fail("expected ')'");
        }
        Ok(Segment::Filter {
            key,
            value: FilterValue::new(&literal),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::Path;

    fn get(expr: &str) -> Option<serde_json::Value> {
        let o = json!({
            "metadata": {"labels": {"carto.run/workload-name": "app", "a.b": "dots"}},
            "spec": {"containers": [{"image": "first"}, {"image": "last"}], "n": 3},
            "status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "Healthy", "status": "True", "observed": 2}
            ]}
        });
        Path::from_jsonpath(expr).unwrap().get(&o).cloned()
    }

    #[test]
    fn kubectl_forms_find_the_same_value_as_path_lists() {
        let list =
            Path::from_segments(&["status", "conditions", "[type=Ready]", "status"]).unwrap();
        let json = Path::from_jsonpath(r#".status.conditions[?(@.type=="Ready")].status"#).unwrap();
        assert_eq!(list.segments(), json.segments());
        assert_eq!(
            get(r#"{.status.conditions[?(@.type=="Ready")].status}"#),
            Some(json!("False"))
        );
        assert_eq!(
            get(r#"$.status.conditions[?(@.type == 'Healthy')].status"#),
            Some(json!("True"))
        );
        assert_eq!(
            get(".status.conditions[?(@.observed==2)].type"),
            Some(json!("Healthy"))
        );
    }

    #[test]
    fn keys_with_dots_by_quoting_or_escaping() {
        assert_eq!(
            get(".metadata.labels['carto.run/workload-name']"),
            Some(json!("app"))
        );
        assert_eq!(get(r#".metadata.labels["a.b"]"#), Some(json!("dots")));
        assert_eq!(
            get(r".metadata.labels.carto\.run/workload-name"),
            Some(json!("app"))
        );
    }

    #[test]
    fn indexes_and_leading_field() {
        assert_eq!(get(".spec.containers[0].image"), Some(json!("first")));
        assert_eq!(get(".spec.containers[-1].image"), Some(json!("last")));
        assert_eq!(get("spec.n"), Some(json!(3)));
        assert_eq!(get(".spec.containers[5].image"), None);
    }

    #[test]
    fn multi_value_forms_are_rejected_with_a_reason() {
        for (expr, needle) in [
            (".spec.containers[*].image", "wildcard"),
            ("..image", "recursive"),
            (".spec.containers[0:1]", "slices"),
            (".spec.containers[0,1]", "unions"),
            (".status.conditions[?(@.type!=\"x\")]", "'=='"),
            (".status.conditions[?(@.a.b==\"x\")]", "one field"),
            (".status[", "index"),
            ("{.status", "'}'"),
            (".status.conditions[?(@.type==\"x)]", "unterminated"),
        ] {
            let err = Path::from_jsonpath(expr).unwrap_err().to_string();
            assert!(err.contains(needle), "{expr}: {err}");
            assert!(err.contains(expr), "{expr}: {err}");
        }
    }
}
