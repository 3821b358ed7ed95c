//! What a path finds, turned into a sample value or a label value.
//!
//! Numbers follow kube-state-metrics: booleans and `true`/`yes`/`false`/`no` are 1 and 0,
//! RFC 3339 timestamps are Unix seconds, `50%` is 0.5, Kubernetes quantities are their
//! approximate value, anything else must parse as a float. Label values print as Go's `%v`
//! prints the decoded object, so a list reads `[a b]` and a float `1e+06`, as users of
//! kube-state-metrics already see them.

use std::fmt::Write as _;

use serde_json::Value;

use crate::quantity;

/// Why a value is not a number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// Nothing at the path and `nilIsZero` not set.
    #[error("expected a number but found nothing")]
    Missing,
    /// A string that none of the conversions accept.
    #[error("expected a number but found {0:?}")]
    NotANumber(String),
    /// A list or a map.
    #[error("expected a number but found {0}")]
    NotAScalar(&'static str),
    /// Where an RFC 3339 timestamp belongs, nothing.
    #[error("expected an RFC 3339 timestamp but found nothing")]
    NoTimestamp,
    /// Where an RFC 3339 timestamp belongs, something else.
    #[error("expected an RFC 3339 timestamp but found {0:?}")]
    NotATimestamp(String),
}

/// Longest string quoted back in an error message.
const QUOTE_LIMIT: usize = 64;

/// Converts what a path found into a sample value.
///
/// `None` and JSON `null` are missing: 0 when `nil_is_zero`, an error otherwise.
pub fn to_f64(found: Option<&Value>, nil_is_zero: bool) -> Result<f64, ValueError> {
    match found {
        None | Some(Value::Null) if nil_is_zero => Ok(0.0),
        None | Some(Value::Null) => Err(ValueError::Missing),
        Some(Value::Bool(b)) => Ok(f64::from(u8::from(*b))),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| ValueError::NotANumber(n.to_string())),
        Some(Value::String(s)) => parse_number(s),
        Some(Value::Array(_)) => Err(ValueError::NotAScalar("a list")),
        Some(Value::Object(_)) => Err(ValueError::NotAScalar("a map")),
    }
}

/// Converts a string with kube-state-metrics' rules, in their order.
pub fn parse_number(s: &str) -> Result<f64, ValueError> {
    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("yes") {
        return Ok(1.0);
    }
    if s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("no") {
        return Ok(0.0);
    }
    if let Some(seconds) = rfc3339_seconds(s) {
        return Ok(seconds);
    }
    if let Some(percent) = s.strip_suffix('%') {
        return percent
            .parse::<f64>()
            .map(|p| p / 100.0)
            .map_err(|_| not_a_number(s));
    }
    if let Some(q) = quantity::parse(s) {
        return Ok(q);
    }
    parse_go_float(s).ok_or_else(|| not_a_number(s))
}

fn not_a_number(s: &str) -> ValueError {
    ValueError::NotANumber(quote(s))
}

fn quote(s: &str) -> String {
    let mut quoted: String = s.chars().take(QUOTE_LIMIT).collect();
    if quoted.len() < s.len() {
        quoted.push('…');
    }
    quoted
}

/// Reads an RFC 3339 timestamp as Unix seconds, with its fraction (durations of fast runs are
/// sub-second). Nothing there is [`ValueError::NoTimestamp`]; anything but a timestamp string is
/// [`ValueError::NotATimestamp`].
#[allow(clippy::cast_precision_loss)]
pub fn to_timestamp(found: Option<&Value>) -> Result<f64, ValueError> {
    match found {
        None | Some(Value::Null) => Err(ValueError::NoTimestamp),
        Some(Value::String(s)) => s
            .parse::<jiff::Timestamp>()
            // Nanoseconds since the epoch fit an f64 to well under a microsecond.
            .map(|ts| ts.as_nanosecond() as f64 / 1e9)
            .map_err(|_| ValueError::NotATimestamp(quote(s))),
        Some(other) => {
            let mut shown = String::new();
            write_label_value(&mut shown, Some(other));
            Err(ValueError::NotATimestamp(quote(&shown)))
        }
    }
}

/// Go's `time.Parse(time.RFC3339, s)` as Unix seconds (fractions truncated).
fn rfc3339_seconds(s: &str) -> Option<f64> {
    // Cheap shape test first: most strings reaching here are not timestamps.
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let ts: jiff::Timestamp = s.parse().ok()?;
    // Lossless for any timestamp jiff can represent (|seconds| < 2^53).
    #[allow(clippy::cast_precision_loss)]
    Some(ts.as_second() as f64)
}

/// Go's `strconv.ParseFloat` for decimal input: Rust's parser plus Go's spellings of infinity.
fn parse_go_float(s: &str) -> Option<f64> {
    let unsigned = s.trim_start_matches(['+', '-']);
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    s.parse().ok()
}

/// Appends the label value of what a path found: strings as they are, other values as Go's `%v`.
/// Missing and `null` values are the empty string.
pub fn write_label_value(out: &mut String, found: Option<&Value>) {
    match found {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => out.push_str(s),
        Some(v) => write_go_value(out, v),
    }
}

/// The label value of what a path found, borrowing when it is a string.
pub fn label_value(found: Option<&Value>) -> std::borrow::Cow<'_, str> {
    match found {
        Some(Value::String(s)) => std::borrow::Cow::Borrowed(s),
        other => {
            let mut s = String::new();
            write_label_value(&mut s, other);
            std::borrow::Cow::Owned(s)
        }
    }
}

fn write_go_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(itoa::Buffer::new().format(i));
            } else if let Some(u) = n.as_u64() {
                out.push_str(itoa::Buffer::new().format(u));
            } else if let Some(f) = n.as_f64() {
                write_go_float(out, f);
            }
        }
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go prints maps with sorted keys; serde_json's map is sorted.
            out.push_str("map[");
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go_value(out, item);
            }
            out.push(']');
        }
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form when the exponent is < -4 or >= 6.
pub fn write_go_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    let (digits, point) = shortest_digits(f.abs());
    if f < 0.0 {
        out.push('-');
    }
    let exp = point - 1;
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.unsigned_abs());
    } else if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point - digits.len()));
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
}

/// The shortest round-tripping decimal digits of a positive finite `f`, and the position of the
/// decimal point: `f == 0.d1d2d3… × 10^point`.
fn shortest_digits(f: f64) -> (String, i32) {
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(f);
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{int_part}{frac_part}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0').to_owned();
    let point = int_part.len() as i32 - leading as i32 + exp;
    (digits, point)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn timestamps_keep_their_fraction_and_refuse_anything_else() {
        let at = |v: Value| to_timestamp(Some(&v));
        assert_eq!(at(json!("1970-01-01T00:01:00Z")), Ok(60.0));
        assert_eq!(at(json!("1970-01-01T00:00:01.5+00:00")), Ok(1.5));
        assert_eq!(to_timestamp(None), Err(ValueError::NoTimestamp));
        assert_eq!(at(Value::Null), Err(ValueError::NoTimestamp));
        assert_eq!(
            at(json!("yesterday")),
            Err(ValueError::NotATimestamp("yesterday".into()))
        );
        assert_eq!(at(json!(12)), Err(ValueError::NotATimestamp("12".into())));
    }

    #[test]
    fn conversions() {
        let cases = [
            (json!(true), 1.0),
            (json!(false), 0.0),
            (json!("True"), 1.0),
            (json!("FALSE"), 0.0),
            (json!("yes"), 1.0),
            (json!("No"), 0.0),
            (json!(3), 3.0),
            (json!(-2.5), -2.5),
            (json!("42"), 42.0),
            (json!("1.5"), 1.5),
            (json!("50%"), 0.5),
            (json!("250m"), 0.25),
            (json!("1Ki"), 1024.0),
            (json!("2024-01-02T03:04:05Z"), 1_704_164_645.0),
            (json!("2024-01-02T04:04:05.9+01:00"), 1_704_164_645.0),
            (json!("-Inf"), f64::NEG_INFINITY),
        ];
        for (v, want) in cases {
            assert_eq!(to_f64(Some(&v), false), Ok(want), "{v}");
        }
        assert!(to_f64(Some(&json!("NaN")), false).unwrap().is_nan());
    }

    #[test]
    fn failures_say_what_was_found() {
        assert_eq!(to_f64(None, false), Err(ValueError::Missing));
        assert_eq!(to_f64(Some(&Value::Null), false), Err(ValueError::Missing));
        assert_eq!(to_f64(None, true), Ok(0.0));
        assert_eq!(to_f64(Some(&Value::Null), true), Ok(0.0));
        assert_eq!(
            to_f64(Some(&json!("Unknown")), false),
            Err(ValueError::NotANumber("Unknown".into()))
        );
        assert_eq!(
            to_f64(Some(&json!("x%")), false),
            Err(ValueError::NotANumber("x%".into()))
        );
        assert_eq!(
            to_f64(Some(&json!([1])), false),
            Err(ValueError::NotAScalar("a list"))
        );
        assert_eq!(
            to_f64(Some(&json!({"a": 1})), true),
            Err(ValueError::NotAScalar("a map"))
        );
        let long = "y".repeat(1000);
        match to_f64(Some(&json!(long)), false) {
            Err(ValueError::NotANumber(q)) => assert!(q.chars().count() <= QUOTE_LIMIT + 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn label_values_print_as_go_does() {
        let cases = [
            (json!("plain"), "plain"),
            (json!(8080), "8080"),
            (json!(-1), "-1"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(1.5), "1.5"),
            (json!(300.0), "300"),
            (json!(123456.0), "123456"),
            (json!(1234567.0), "1.234567e+06"),
            (json!(1e21), "1e+21"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(-0.5), "-0.5"),
            (json!(true), "true"),
            (json!(["a", "b"]), "[a b]"),
            (
                json!({"b": 1, "a": [true, null]}),
                "map[a:[true <nil>] b:1]",
            ),
            (Value::Null, ""),
        ];
        for (v, want) in cases {
            assert_eq!(label_value(Some(&v)), want, "{v}");
        }
        assert_eq!(label_value(None), "");
    }

    #[test]
    fn go_float_edges() {
        let mut s = String::new();
        for f in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            1e100,
            5e-324,
        ] {
            s.clear();
            write_go_float(&mut s, f);
            let back: f64 = match s.as_str() {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                t => t.parse().unwrap(),
            };
            assert!(back == f || (back.is_nan() && f.is_nan()), "{f} -> {s}");
        }
        s.clear();
        write_go_float(&mut s, 1e100);
        assert_eq!(s, "1e+100");
    }
}
