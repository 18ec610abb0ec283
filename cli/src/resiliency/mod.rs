//! Dapr's `Resiliency` resource, read: per target app a timeout, a retry policy and a circuit
//! breaker (`crate::envoy::resiliency` turns them into Envoy's). Where Envoy cannot say exactly
//! what Dapr says, the closest safe behaviour is chosen and a note explains it (the runner logs
//! the notes at start).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::Value as Yaml;

/// Retries Envoy makes where Dapr would retry forever (`maxRetries: -1`).
pub const FOREVER_RETRIES: u32 = 10;

/// What applies to calls from one app to one target app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub breaker: Option<Breaker>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub name: String,
    pub num_retries: u32,
    pub base_interval: Duration,
    pub max_interval: Duration,
    /// Status codes to retry; empty: every 5xx.
    pub status_codes: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    pub name: String,
    /// Consecutive failures that open the breaker.
    pub consecutive_failures: u32,
    /// How long it stays open.
    pub open_for: Duration,
}

/// The policies of every Resiliency resource that applies to one app (the caller), by target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policies {
    pub targets: BTreeMap<String, TargetPolicy>,
    pub notes: Vec<String>,
}

/// Reads every Resiliency resource in the YAML files of `dirs` that is scoped to `app_id` (or
/// not scoped), and merges their app targets.
pub fn load(dirs: &[PathBuf], app_id: &str) -> Result<Policies, String> {
    let mut out = Policies::default();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for file in files {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            for doc in text.split("\n---") {
                let Ok(yaml) = serde_norway::from_str::<Yaml>(doc) else {
                    continue;
                };
                if yaml.get("kind").and_then(Yaml::as_str) != Some("Resiliency") {
                    continue;
                }
                let scoped = match yaml.get("scopes").and_then(Yaml::as_sequence) {
                    None => true,
                    Some(scopes) => scopes.iter().any(|s| s.as_str() == Some(app_id)),
                };
                if scoped {
                    let p = parse(&yaml, &file).map_err(|e| format!("{}: {e}", file.display()))?;
                    out.targets.extend(p.targets);
                    out.notes.extend(p.notes);
                }
            }
        }
    }
    Ok(out)
}

/// One Resiliency resource.
pub fn parse(doc: &Yaml, file: &Path) -> Result<Policies, String> {
    let spec = doc.get("spec").ok_or("a Resiliency needs a spec")?;
    let policies = spec.get("policies");
    let section = |name: &str| {
        policies
            .and_then(|p| p.get(name))
            .and_then(Yaml::as_mapping)
    };
    let mut notes = Vec::new();
    let shown = file.display();

    let mut targets = BTreeMap::new();
    let Some(apps) = spec
        .get("targets")
        .and_then(|t| t.get("apps"))
        .and_then(Yaml::as_mapping)
    else {
        return Ok(Policies { targets, notes });
    };
    for (app, target) in apps {
        let app = app
            .as_str()
            .ok_or("targets.apps has a key that is not a string")?;
        let mut policy = TargetPolicy::default();
        let refs = |key: &str| target.get(key).and_then(Yaml::as_str);
        if let Some(name) = refs("timeout") {
            let raw = section("timeouts")
                .and_then(|t| t.get(name))
                .and_then(Yaml::as_str)
                .unwrap_or(name);
            policy.timeout = Some(duration(raw).map_err(|e| {
                format!("targets.apps.{app}.timeout: {name:?} is neither a timeout policy nor a duration ({e})")
            })?);
        }
        if let Some(name) = refs("retry") {
            let spec = section("retries")
                .and_then(|r| r.get(name))
                .ok_or_else(|| format!("targets.apps.{app}.retry: no retry policy {name:?} in spec.policies.retries"))?;
            let retry =
                retry(name, spec).map_err(|e| format!("spec.policies.retries.{name}: {e}"))?;
            if spec.get("maxRetries").and_then(Yaml::as_i64).unwrap_or(-1) < 0 {
                notes.push(format!(
                    "{shown}: retry policy {name:?} retries forever in Dapr; Envoy retries are bounded, so calls to {app:?} are retried {FOREVER_RETRIES} times"
                ));
            }
            policy.retry = Some(retry);
        }
        if let Some(name) = refs("circuitBreaker") {
            let spec = section("circuitBreakers")
                .and_then(|r| r.get(name))
                .ok_or_else(|| format!("targets.apps.{app}.circuitBreaker: no circuit breaker {name:?} in spec.policies.circuitBreakers"))?;
            let cb = breaker(name, spec)
                .map_err(|e| format!("spec.policies.circuitBreakers.{name}: {e}"))?;
            notes.push(format!(
                "{shown}: circuit breaker {name:?} on {app:?} is Envoy outlier detection: it opens after {} consecutive failures for {:?}; once the time is up, calls flow again, and {} more consecutive failures open it again (Dapr's half-open maxRequests and interval have no Envoy counterpart)",
                cb.consecutive_failures, cb.open_for, cb.consecutive_failures
            ));
            policy.breaker = Some(cb);
        }
        targets.insert(app.to_string(), policy);
    }
    for ignored in ["actors", "components"] {
        if spec.get("targets").and_then(|t| t.get(ignored)).is_some() {
            notes.push(format!(
                "{shown}: targets.{ignored} has no effect on Envoy sidecars; ignored"
            ));
        }
    }
    Ok(Policies { targets, notes })
}

fn retry(name: &str, spec: &Yaml) -> Result<Retry, String> {
    let get_duration = |key: &str, default: &str| -> Result<Duration, String> {
        let raw = spec.get(key).and_then(Yaml::as_str).unwrap_or(default);
        duration(raw).map_err(|e| format!("{key}: {e}"))
    };
    let max_retries = match spec.get("maxRetries") {
        None => -1,
        Some(v) => v.as_i64().ok_or("maxRetries must be a whole number")?,
    };
    let num_retries = match max_retries {
        n if n < 0 => FOREVER_RETRIES,
        n => u32::try_from(n).map_err(|_| "maxRetries is too large")?,
    };
    let (base_interval, max_interval) = match spec
        .get("policy")
        .and_then(Yaml::as_str)
        .unwrap_or("constant")
    {
        "constant" => {
            let d = get_duration("duration", "5s")?;
            (d, d)
        }
        // Dapr's exponential back-off starts at 500ms and grows to maxInterval.
        "exponential" => (
            Duration::from_millis(500),
            get_duration("maxInterval", "60s")?,
        ),
        other => {
            return Err(format!(
                "policy {other:?} is neither constant nor exponential"
            ))
        }
    };
    let status_codes = match spec.get("matching").and_then(|m| m.get("httpStatusCodes")) {
        None => Vec::new(),
        Some(v) => status_codes(
            v.as_str()
                .ok_or("matching.httpStatusCodes must be a string")?,
        )?,
    };
    Ok(Retry {
        name: name.to_string(),
        num_retries,
        base_interval,
        max_interval: max_interval.max(base_interval),
        status_codes,
    })
}

fn breaker(name: &str, spec: &Yaml) -> Result<Breaker, String> {
    let trip = spec
        .get("trip")
        .and_then(Yaml::as_str)
        .ok_or("trip is missing")?;
    let consecutive_failures = trip_threshold(trip)?;
    let open_for = duration(spec.get("timeout").and_then(Yaml::as_str).unwrap_or("60s"))
        .map_err(|e| format!("timeout: {e}"))?;
    Ok(Breaker {
        name: name.to_string(),
        consecutive_failures,
        open_for,
    })
}

/// `consecutiveFailures >= N` or `consecutiveFailures > N`: the number of failures that trips.
fn trip_threshold(trip: &str) -> Result<u32, String> {
    let t: String = trip.chars().filter(|c| !c.is_whitespace()).collect();
    let parse = |n: &str| {
        n.parse::<u32>()
            .map_err(|_| format!("{n:?} is not a whole number"))
    };
    let n = if let Some(n) = t.strip_prefix("consecutiveFailures>=") {
        parse(n)?
    } else if let Some(n) = t.strip_prefix("consecutiveFailures>") {
        parse(n)?.saturating_add(1)
    } else {
        return Err(format!(
            "trip {trip:?}: only `consecutiveFailures >= N` or `> N` map to Envoy's outlier detection"
        ));
    };
    if n == 0 {
        return Err(format!("trip {trip:?} would keep the breaker open"));
    }
    Ok(n)
}

/// Dapr's `matching.httpStatusCodes`: "429,500-599".
fn status_codes(spec: &str) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let code = |s: &str| -> Result<u16, String> {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| format!("matching.httpStatusCodes: {part:?} is not a status code or range within 100-599"))
        };
        let (lo, hi) = (code(lo)?, code(hi)?);
        if lo > hi {
            return Err(format!(
                "matching.httpStatusCodes: {part:?} is an empty range"
            ));
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Go's `time.ParseDuration` forms used in Dapr files: "500ms", "5s", "1m30s", "1h".
pub fn duration(raw: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = raw.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    if rest == "0" {
        return Ok(total);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(digits);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("{raw:?} is not a duration like 5s or 1m30s"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => value / 1e9,
            "us" | "µs" => value / 1e6,
            "ms" => value / 1e3,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(format!("{raw:?} is not a duration like 5s or 1m30s")),
        };
        total += Duration::from_secs_f64(secs);
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dapr's service invocation resiliency quickstart, unchanged.
    const QUICKSTART: &str = "apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: myresiliency
scopes:
  - checkout

spec:
  policies:
    retries:
      retryForever:
        policy: constant
        duration: 5s
        maxRetries: -1

    circuitBreakers:
      simpleCB:
        maxRequests: 1
        timeout: 5s
        trip: consecutiveFailures >= 5

  targets:
    apps:
      order-processor:
        retry: retryForever
        circuitBreaker: simpleCB
";

    fn dir_with(text: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("resiliency.yaml"), text).unwrap();
        std::fs::write(
            d.path().join("statestore.yaml"),
            "kind: Component\nspec: {}\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn daprs_quickstart_file() {
        let d = dir_with(QUICKSTART);
        let p = load(&[d.path().to_path_buf()], "checkout").unwrap();
        let op = &p.targets["order-processor"];
        let r = op.retry.as_ref().unwrap();
        assert_eq!(
            (r.num_retries, r.base_interval, r.max_interval),
            (
                FOREVER_RETRIES,
                Duration::from_secs(5),
                Duration::from_secs(5)
            )
        );
        let cb = op.breaker.as_ref().unwrap();
        assert_eq!(
            (cb.consecutive_failures, cb.open_for),
            (5, Duration::from_secs(5))
        );
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
        assert!(p.notes[0].contains("retries forever in Dapr"));
        // Scoped to checkout: order-processor's own sidecar gets nothing.
        assert_eq!(
            load(&[d.path().to_path_buf()], "order-processor").unwrap(),
            Policies::default()
        );
    }

    #[test]
    fn timeouts_exponential_backoff_and_status_matching() {
        let text = "kind: Resiliency
spec:
  policies:
    timeouts:
      general: 1m30s
    retries:
      expo:
        policy: exponential
        maxInterval: 15s
        maxRetries: 4
        matching:
          httpStatusCodes: \"429,502-504\"
  targets:
    apps:
      a: { timeout: general, retry: expo }
      b: { timeout: 250ms }
";
        let d = dir_with(text);
        let p = load(&[d.path().to_path_buf()], "anyone").unwrap();
        let a = &p.targets["a"];
        assert_eq!(a.timeout, Some(Duration::from_secs(90)));
        let r = a.retry.as_ref().unwrap();
        assert_eq!(
            (r.num_retries, r.base_interval, r.max_interval),
            (4, Duration::from_millis(500), Duration::from_secs(15))
        );
        assert_eq!(r.status_codes, [429, 502, 503, 504]);
        assert_eq!(p.targets["b"].timeout, Some(Duration::from_millis(250)));
    }

    #[test]
    fn bad_policies_are_explained() {
        let cases = [
            ("targets: {apps: {a: {retry: nope}}}", "no retry policy \"nope\""),
            ("targets: {apps: {a: {circuitBreaker: cb}}}", "no circuit breaker \"cb\""),
            ("targets: {apps: {a: {timeout: soon}}}", "\"soon\" is neither a timeout policy nor a duration"),
            ("policies: {retries: {r: {policy: linear}}}\n  targets: {apps: {a: {retry: r}}}", "\"linear\" is neither constant nor exponential"),
            ("policies: {retries: {r: {matching: {httpStatusCodes: \"700\"}}}}\n  targets: {apps: {a: {retry: r}}}", "\"700\" is not a status code"),
            ("policies: {circuitBreakers: {c: {trip: \"requests > 3\"}}}\n  targets: {apps: {a: {circuitBreaker: c}}}", "only `consecutiveFailures >= N`"),
        ];
        for (spec, want) in cases {
            let text = format!("kind: Resiliency\nspec:\n  {spec}\n");
            let d = dir_with(&text);
            let got = load(&[d.path().to_path_buf()], "x").unwrap_err();
            assert!(got.contains(want), "{spec}\n{got}");
        }
    }

    #[test]
    fn durations() {
        for (raw, ms) in [
            ("5s", 5000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1h", 3_600_000),
            ("1.5s", 1500),
            ("0", 0),
        ] {
            assert_eq!(duration(raw).unwrap(), Duration::from_millis(ms), "{raw}");
        }
        for bad in ["", "5", "s", "5x", "-1s"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert_eq!(trip_threshold("consecutiveFailures > 5").unwrap(), 6);
    }
}
