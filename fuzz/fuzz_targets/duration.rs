//! `dapr-envoy`'s Go-duration parser (cli/src/resiliency/duration.rs), with the bytes as the
//! duration text (not UTF-8: replaced).
//!
//! Properties:
//! - neither `duration` nor `timeout` panics;
//! - `duration` agrees with Go's `time.ParseDuration` as documented (`reference::go_duration`):
//!   it accepts exactly what Go accepts, but refuses a negative duration (meaningless in a
//!   Resiliency policy), and the value is Go's to the nanosecond (Go cuts each fraction through a
//!   `float64`; the two may differ by a nanosecond per fraction);
//! - `timeout` reads a bare whole number as milliseconds, anything else as `duration` does;
//! - a duration it accepts, written back as `<n>ns` or `<s>.<9 digits>s`, reads as itself.
#![no_main]

use dapr_envoy_readers::go_duration::{duration, timeout};
use dapr_invoke_fuzz::reference;
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

/// Whether `got` is what Go's reading (`want`, signed nanoseconds) makes of it here. Each number
/// with a fraction is cut to whole nanoseconds on its own (by Go through a `float64`, here and in
/// the reference exactly, to 18 and 20 digits): the two may differ by a nanosecond per fraction.
fn agrees(raw: &str, got: &Result<Duration, String>, want: Option<i128>) {
    const MAX: i128 = i64::MAX as i128;
    let slack = raw.matches('.').count().max(1) as i128;
    match (got, want) {
        (Ok(d), Some(n)) => {
            let d = d.as_nanos() as i128;
            assert!(
                (d - n).abs() <= slack && n >= -slack,
                "{raw:?}: {d} ns, Go says {n}"
            );
        }
        (Err(e), Some(n)) => assert!(
            !(0..MAX - slack).contains(&n),
            "{raw:?} refused ({e}) but Go reads {n} ns"
        ),
        // Go refuses it: only an overflow by the slack may read here.
        (Ok(d), None) => assert!(
            d.as_nanos() as i128 >= MAX - slack,
            "{raw:?} read as {d:?}, Go refuses it"
        ),
        (Err(e), None) => assert!(!e.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let got = duration(&raw);
    agrees(&raw, &got, reference::go_duration(&raw));

    // A bare number (with an optional sign) is milliseconds for a timeout.
    let bare = raw.strip_prefix(['-', '+']).unwrap_or(&raw);
    let want = if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit()) {
        let ms = bare
            .parse::<i128>()
            .ok()
            .and_then(|ms| ms.checked_mul(1_000_000));
        ms.map(|ns| if raw.starts_with('-') { -ns } else { ns })
            .filter(|ns| ns.abs() <= i64::MAX as i128)
    } else {
        reference::go_duration(&raw)
    };
    agrees(&raw, &timeout(&raw), want);

    if let Ok(d) = got {
        let nanos = format!("{}ns", d.as_nanos());
        let seconds = format!("{}.{:09}s", d.as_secs(), d.subsec_nanos());
        assert_eq!(duration(&nanos), Ok(d), "{raw:?} -> {nanos}");
        assert_eq!(duration(&seconds), Ok(d), "{raw:?} -> {seconds}");
    }
});
