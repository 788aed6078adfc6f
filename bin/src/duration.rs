//! Humane durations on the command line: `30s`, `2m`, `500ms`, `1h`, `1m30s` (a bare number
//! is seconds), and the same form back for messages.

use std::time::Duration;

/// Parses a duration: one or more `<number><unit>` parts, the unit `ms`, `s`, `m` or `h`; a
/// bare number means seconds. For clap's `value_parser`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {s:?} (e.g. 500ms, 30s, 2m, 1m30s)");
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// `d` as [`parse_duration`] reads it: `30s`, `1m30s`, `1500ms`.
pub fn humane(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.is_zero() {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let mut out = String::new();
    for (n, unit) in [(secs / 3600, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")] {
        if n > 0 {
            out += &format!("{n}{unit}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_humanely() {
        let ok = [
            ("30", 30_000),
            ("30s", 30_000),
            ("2m", 120_000),
            ("500ms", 500),
            ("1h", 3_600_000),
            ("1m30s", 90_000),
            ("1s500ms", 1_500),
        ];
        for (text, ms) in ok {
            let d = parse_duration(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(d, Duration::from_millis(ms), "{text}");
            assert_eq!(parse_duration(&humane(d)), Ok(d), "{text}");
        }
        for bad in [
            "",
            "s",
            "10x",
            "1.5s",
            "-1s",
            "m30",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(humane(Duration::from_secs(90)), "1m30s");
        assert_eq!(humane(Duration::from_secs(3600)), "1h");
        assert_eq!(humane(Duration::from_millis(1500)), "1500ms");
    }
}
