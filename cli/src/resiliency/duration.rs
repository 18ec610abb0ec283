//! Durations as Dapr reads them: Go's `time.ParseDuration` (`500ms`, `1m30s`, `1.5h`), with
//! checked arithmetic, so that no input can overflow or panic.

use std::time::Duration;

/// Go's limit: an `int64` of nanoseconds, about 292 years.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Fraction digits kept (Go drops the ones past its precision too); keeps every product below
/// `u128::MAX`.
const MAX_FRACTION_DIGITS: usize = 18;

/// Go's `time.ParseDuration`: an optional sign, then one or more numbers (digits, an optional
/// fraction) each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); `0` alone needs none.
/// A negative duration means nothing in a Resiliency policy, so it is refused.
///
/// ```text
/// "5s" → 5 s; "1m30s" → 90 s; "1.5h" → 90 min; ".5s" → 500 ms; "0" → 0
/// ```
pub fn duration(raw: &str) -> Result<Duration, String> {
    let bad = || format!("{raw:?} is not a duration like 5s, 1m30s or 500ms");
    let too_long =
        || format!("{raw:?} is longer than a duration can be (Go's limit, about 292 years)");
    let (negative, mut rest) = match raw.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return Err(bad());
        }
        let (int, tail) = rest.split_at(digits(rest));
        // Only overflow fails here: `int` is ASCII digits.
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| too_long())?
        };
        let mut fraction = (0u128, 1u128);
        let mut tail = tail;
        if let Some(after_dot) = tail.strip_prefix('.') {
            let (frac, after) = after_dot.split_at(digits(after_dot));
            if int.is_empty() && frac.is_empty() {
                return Err(bad());
            }
            for d in frac.bytes().take(MAX_FRACTION_DIGITS) {
                fraction = (fraction.0 * 10 + u128::from(d - b'0'), fraction.1 * 10);
            }
            tail = after;
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, after) = tail.split_at(unit_len);
        let nanos_per: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "{raw:?} has a number without a unit (ns, us, ms, s, m or h)"
                ))
            }
            _ => return Err(bad()),
        };
        let part = whole
            .checked_mul(nanos_per)
            .and_then(|p| p.checked_add(fraction.0 * nanos_per / fraction.1))
            .ok_or_else(too_long)?;
        total = total
            .checked_add(part)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(too_long)?;
        rest = after;
    }
    if negative && total > 0 {
        return Err(format!("{raw:?} is negative"));
    }
    u64::try_from(total)
        .map(Duration::from_nanos)
        .map_err(|_| too_long())
}

/// A timeout policy's value: a bare whole number is milliseconds (Dapr's `parseDuration` for
/// timeouts), anything else a Go duration.
pub fn timeout(raw: &str) -> Result<Duration, String> {
    let (negative, number) = match raw.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    if number.is_empty() || digits(number) != number.len() {
        return duration(raw);
    }
    let too_long =
        || format!("{raw:?} is longer than a duration can be (Go's limit, about 292 years)");
    let ms: u128 = number.parse().map_err(|_| too_long())?;
    if negative && ms > 0 {
        return Err(format!("{raw:?} is negative"));
    }
    let nanos = ms
        .checked_mul(1_000_000)
        .filter(|n| *n <= MAX_NANOS)
        .ok_or_else(too_long)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| too_long())
}

/// The length of the run of ASCII digits `s` starts with.
fn digits(s: &str) -> usize {
    s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gos_forms() {
        for (raw, nanos) in [
            ("5s", 5_000_000_000u64),
            ("500ms", 500_000_000),
            ("1m30s", 90_000_000_000),
            ("1h", 3_600_000_000_000),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("+5s", 5_000_000_000),
            ("0", 0),
            ("-0", 0),
            ("0s", 0),
            ("500us", 500_000),
            ("500\u{b5}s", 500_000),
            ("500\u{3bc}s", 500_000),
            ("7ns", 7),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("1s1s", 2_000_000_000),
            ("0.000000001s", 1),
            ("1.0000000000000000000001s", 1_000_000_000),
            // Go's largest duration, to the nanosecond.
            ("2562047h47m16.854775807s", i64::MAX as u64),
        ] {
            assert_eq!(duration(raw), Ok(Duration::from_nanos(nanos)), "{raw}");
        }
    }

    #[test]
    fn bad_forms_are_explained_and_never_panic() {
        for (raw, want) in [
            ("", "is not a duration"),
            ("5", "without a unit"),
            ("s", "is not a duration"),
            ("5x", "is not a duration"),
            ("5 s", "is not a duration"),
            (".s", "is not a duration"),
            ("-", "is not a duration"),
            ("1s-1s", "is not a duration"),
            ("-1s", "is negative"),
            ("99999999999999999999h", "about 292 years"),
            ("2562047h47m16.854775808s", "about 292 years"),
            ("2562047h2562047h", "about 292 years"),
            (&"9".repeat(100), "about 292 years"),
            (&format!("{}s", "9".repeat(100)), "about 292 years"),
            ("µ", "is not a duration"),
            ("5µ", "is not a duration"),
        ] {
            let got = duration(raw).unwrap_err();
            assert!(got.contains(want), "{raw:?}: {got}");
        }
    }

    #[test]
    fn timeouts_take_bare_milliseconds() {
        assert_eq!(timeout("1500"), Ok(Duration::from_millis(1500)));
        assert_eq!(timeout("0"), Ok(Duration::ZERO));
        assert_eq!(timeout("2s"), Ok(Duration::from_secs(2)));
        assert!(timeout("-5").unwrap_err().contains("negative"));
        assert!(timeout("99999999999999999999")
            .unwrap_err()
            .contains("292 years"));
    }
}
