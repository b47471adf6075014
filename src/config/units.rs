//! Durations (`500ms`, `10s`, `5m`, `1h`, `1d`, `1y`) and sizes (`512KiB`, `64MiB`,
//! `10GiB`, plain bytes) as written in site files and on the command line.

use std::time::Duration;

/// Parses a duration such as `500ms`, `10s`, `5m`, `1h`, `1d`, `1y` (a year is 365 days).
/// A bare `0` is accepted as zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit; write e.g. `10s`, `5m`, `1h`, `1d`"))?;
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. `500ms`, `10s`, `1h`"))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "y" => 365 * 86_400_000,
        _ => {
            return Err(format!(
                "`{text}` has unknown unit `{unit}`; use ms, s, m, h, d or y"
            ))
        }
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses a size such as `512KiB`, `64MiB`, `10GiB`, `1TiB`, `1000` (bytes), `100B`,
/// or decimal `KB`/`MB`/`GB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write e.g. `512KiB`, `64MiB`, `1GiB`"))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "`{text}` has unknown unit `{other}`; use B, KiB, MiB, GiB or TiB"
            ))
        }
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Formats a duration the way it would be written in a site file (for logs).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= per && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_documented_unit_parse() {
        let cases = [
            ("milliseconds", "500ms", Duration::from_millis(500)),
            ("seconds", "10s", Duration::from_secs(10)),
            ("minutes", "5m", Duration::from_secs(300)),
            ("hours", "1h", Duration::from_secs(3600)),
            ("days", "1d", Duration::from_secs(86_400)),
            ("years of 365 days", "1y", Duration::from_secs(365 * 86_400)),
            ("a bare zero", "0", Duration::ZERO),
            ("zero seconds", "0s", Duration::ZERO),
        ];
        for (name, text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{name}");
        }
    }

    #[test]
    fn malformed_durations_are_rejected_with_a_hint() {
        for text in [
            "10",
            "ten seconds",
            "10 parsecs",
            "s",
            "",
            "-1s",
            "99999999999999999999y",
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains('`'), "{text}: {err}");
        }
    }

    #[test]
    fn sizes_in_binary_and_decimal_units_parse() {
        let cases = [
            ("plain bytes", "1000", 1000),
            ("bytes with B", "100B", 100),
            ("kibibytes", "512KiB", 512 * 1024),
            ("mebibytes", "64MiB", 64 << 20),
            ("gibibytes", "10GiB", 10 << 30),
            ("zero turns a tier off", "0", 0),
            ("decimal megabytes", "5MB", 5_000_000),
        ];
        for (name, text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{name}");
        }
    }

    #[test]
    fn malformed_sizes_are_rejected() {
        for text in ["", "MiB", "1.5GiB", "12 apples", "99999999999TiB"] {
            assert!(parse_size(text).is_err(), "{text}");
        }
    }

    #[test]
    fn durations_format_in_their_largest_whole_unit() {
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }
}
