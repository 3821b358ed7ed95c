//! The byte-level pieces of the text formats.

/// Longest label value written, in bytes; a longer one is cut at a character boundary and ends
/// with [`TRUNCATED_MARKER`].
pub const MAX_LABEL_VALUE_BYTES: usize = 2048;

/// What ends a label value cut to [`MAX_LABEL_VALUE_BYTES`].
pub const TRUNCATED_MARKER: &str = "…(truncated)";

/// What a control character in a label value becomes: the formats have no escape for them, and
/// parsers differ on raw ones (a raw carriage return splits lines for some).
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// True for the bytes a label value cannot hold as they are: `\`, `"`, newline (escaped) and
/// the other control characters but tab (replaced).
fn special(b: u8) -> bool {
    b == b'\\' || b == b'"' || (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Appends a label value escaped for the text formats: `\` → `\\`, `"` → `\"`, newline →
/// `\n`; other control characters (NUL, CR, ESC, …) become U+FFFD. Values without such bytes
/// (nearly all) are copied in one go. Returns false when the value was longer than
/// [`MAX_LABEL_VALUE_BYTES`] and was cut.
pub fn write_escaped_label_value(out: &mut Vec<u8>, value: &str) -> bool {
    let (value, cut) = if value.len() > MAX_LABEL_VALUE_BYTES {
        let mut end = MAX_LABEL_VALUE_BYTES - TRUNCATED_MARKER.len();
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        (&value[..end], true)
    } else {
        (value, false)
    };
    let bytes = value.as_bytes();
    let mut start = 0;
    for (at, &b) in bytes.iter().enumerate() {
        if !special(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..at]);
        out.extend_from_slice(match b {
            b'\\' => b"\\\\",
            b'"' => b"\\\"",
            b'\n' => b"\\n",
            _ => REPLACEMENT,
        });
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    if cut {
        out.extend_from_slice(TRUNCATED_MARKER.as_bytes());
    }
    !cut
}

/// Appends HELP text escaped as both formats require (`\` and newline; OpenMetrics also `"`).
pub fn write_escaped_help(out: &mut Vec<u8>, help: &str, escape_quotes: bool) {
    for c in help.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '"' if escape_quotes => out.extend_from_slice(b"\\\""),
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
}

/// Largest integer below which every integer is exactly representable as an f64.
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Appends a sample value: integers without a fraction, `NaN`, `+Inf`, `-Inf`, otherwise the
/// shortest representation that parses back to the same float.
pub fn write_sample_value(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v.fract() == 0.0 && v.abs() < EXACT_INT {
        // Exact: |v| < 2^53 and integral, so the cast neither truncates nor saturates.
        #[allow(clippy::cast_possible_truncation)]
        let i = v as i64;
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        write_escaped_label_value(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn label_values() {
        assert_eq!(escaped("plain ünïcode ✓"), "plain ünïcode ✓");
        assert_eq!(escaped(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escaped("line\nbreak\n"), "line\\nbreak\\n");
        assert_eq!(escaped(""), "");
    }

    #[test]
    fn control_characters_are_replaced_and_long_values_cut() {
        // Tab stays; NUL, CR, ESC and DEL have no escape and become U+FFFD.
        assert_eq!(
            escaped("a\0b\rc\x1bd\x7fe\tf"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e\tf"
        );
        let long = "é".repeat(MAX_LABEL_VALUE_BYTES);
        let mut out = Vec::new();
        assert!(!write_escaped_label_value(&mut out, &long));
        let text = String::from_utf8(out).unwrap();
        assert!(text.len() <= MAX_LABEL_VALUE_BYTES, "{}", text.len());
        assert!(text.ends_with(TRUNCATED_MARKER));
        let mut out = Vec::new();
        assert!(write_escaped_label_value(
            &mut out,
            &"x".repeat(MAX_LABEL_VALUE_BYTES)
        ));
    }

    #[test]
    fn help() {
        let mut out = Vec::new();
        write_escaped_help(&mut out, "a \"b\" \\ c\nd", false);
        assert_eq!(out, b"a \"b\" \\\\ c\\nd");
        out.clear();
        write_escaped_help(&mut out, "\"q\"", true);
        assert_eq!(out, b"\\\"q\\\"");
    }

    #[test]
    fn values() {
        let cases: [(f64, &str); 10] = [
            (0.0, "0"),
            (1.0, "1"),
            (-3.0, "-3"),
            (1_704_164_645.0, "1704164645"),
            (0.5, "0.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (1e300, "1e300"),
            (-2.5e-7, "-2.5e-7"),
        ];
        for (v, want) in cases {
            let mut out = Vec::new();
            write_sample_value(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
