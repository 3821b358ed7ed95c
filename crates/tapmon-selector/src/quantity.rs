//! Kubernetes resource quantities (`250m`, `1.5Gi`, `2e3`) as approximate floats.

/// Parses a Kubernetes quantity and returns its approximate value, or `None` when `s` is not a
/// quantity. Accepts an optional sign, a decimal number, and one suffix: binary (`Ki` … `Ei`),
/// decimal (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent (`e3`, `E-2`).
pub fn parse(s: &str) -> Option<f64> {
    let number_end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(number_end);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty()
        || digits == "."
        || digits.matches('.').count() > 1
        || !digits.bytes().any(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mantissa: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let unsigned = digits.trim_start_matches(['+', '-']);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse().ok()?)
        }
    };
    Some(mantissa * scale)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn suffixes() {
        assert_eq!(parse("250m"), Some(0.25));
        assert_eq!(parse("1.5Gi"), Some(1.5 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("2k"), Some(2000.0));
        assert_eq!(parse("2E"), Some(2e18));
        assert_eq!(parse("2e3"), Some(2000.0));
        assert_eq!(parse("2E-2"), Some(0.02));
        assert_eq!(parse("-3"), Some(-3.0));
        assert_eq!(parse("+.5"), Some(0.5));
        assert_eq!(parse("100"), Some(100.0));
    }

    #[test]
    fn not_quantities() {
        for s in [
            "", "Unknown", "1.2.3", "Gi", "1Zi", "1e", "1e+", "1 Gi", "-", ".", "1ki", "True",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }
}
