//! Dapr's `Resiliency` resource, read: per target app a timeout, a retry policy and a circuit
//! breaker (`crate::envoy::resiliency` turns them into Envoy's). Policies are merged across every
//! Resiliency resource that applies to an app, as Dapr does, then resolved per target: a target
//! app named under `targets.apps` gets exactly the policies it names, any other target app
//! Dapr's default policies (`DefaultAppRetryPolicy`, else `DefaultRetryPolicy`; the same for
//! timeouts and circuit breakers). Where Envoy cannot say exactly what Dapr says, the closest
//! safe behaviour is chosen and a note explains it (the runner prints the notes at start).

mod duration;
mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_saphyr::Spanned;

pub use duration::duration;

use crate::yaml::{self, line_of, FileError, Plain};

/// Retries Envoy makes where Dapr would retry forever (`maxRetries: -1`, or no `maxRetries`).
pub const FOREVER_RETRIES: u32 = 10;

/// Consecutive failures that open a circuit breaker without a `trip`: Dapr's breaker library
/// (gobreaker) trips on `consecutiveFailures > 5`.
pub const DEFAULT_TRIP_FAILURES: u32 = 6;

/// How long a breaker stays open without a `timeout` (or with `0s`), as gobreaker does.
const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(60);

/// Dapr's default policies for service invocation, the app-specific name first.
const DEFAULT_TIMEOUTS: [&str; 2] = ["DefaultAppTimeoutPolicy", "DefaultTimeoutPolicy"];
const DEFAULT_RETRIES: [&str; 2] = ["DefaultAppRetryPolicy", "DefaultRetryPolicy"];
const DEFAULT_BREAKERS: [&str; 2] = [
    "DefaultAppCircuitBreakerPolicy",
    "DefaultCircuitBreakerPolicy",
];

/// Dapr's own retries for service invocation, which a user-defined retry policy of this name
/// changes in Dapr.
const BUILT_IN_SERVICE_RETRIES: &str = "DaprBuiltInServiceRetries";

/// What applies to calls from one app to one target app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub breaker: Option<Breaker>,
    /// The target is named under `targets.apps`: as in Dapr, that turns the built-in
    /// service-invocation retries off for it, whatever the entry sets.
    pub named: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub name: String,
    pub num_retries: u32,
    pub base_interval: Duration,
    pub max_interval: Duration,
    /// Status codes to retry; empty: every 5xx.
    pub status_codes: Vec<u16>,
    /// gRPC status codes to retry (`matching.gRPCStatusCodes`); empty: every failure.
    pub grpc_codes: Vec<u8>,
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
    /// By target app id: the apps `targets.apps` names, and, once [`Policies::apply_defaults`]
    /// ran, every other app of the run that a default policy applies to.
    pub targets: BTreeMap<String, TargetPolicy>,
    /// What applies to a target app that `targets.apps` does not name (Dapr's default
    /// policies); `None` when no default policy is defined.
    pub defaults: Option<TargetPolicy>,
    /// Where Envoy does something other than Dapr would, or a file was skipped.
    pub notes: Vec<String>,
    /// Settings that have no effect here.
    pub warnings: Vec<String>,
}

impl Policies {
    /// Gives every app of `apps` that has no policy of its own the default one, so that
    /// `targets` alone says what applies to each app of the run.
    pub fn apply_defaults(&mut self, apps: &[String]) {
        if let Some(d) = &self.defaults {
            for app in apps {
                self.targets.entry(app.clone()).or_insert_with(|| d.clone());
            }
        }
    }
}

/// Reads every Resiliency resource in the YAML files of `dirs` that is scoped to `app_id` (or
/// not scoped), merges them and resolves the policy of each target app. Every Resiliency is
/// checked, whoever it is scoped to; documents of other kinds (Component, Subscription, ...)
/// are skipped with a note.
pub fn load(dirs: &[PathBuf], app_id: &str) -> Result<Policies, FileError> {
    let mut merged = Merged::default();
    let mut out = Policies::default();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            FileError::new(&yaml::shown(dir), None, "", format!("cannot read: {e}"))
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for path in files {
            let file = yaml::shown(&path);
            let text = yaml::read(&path, "the resource file")?;
            for doc in yaml::documents::<spec::Resiliency>(&text, &file, "Resiliency")? {
                let here = at(&file, doc.line);
                match (doc.kind, doc.value) {
                    (Some(_), Some(r)) => {
                        let scoped = r.scopes.as_ref().is_none_or(|scopes| {
                            scopes.is_empty() || scopes.iter().any(|s| s.0 == app_id)
                        });
                        let mut warnings = Vec::new();
                        let mut one = Merged::default();
                        one.add(r, &file, &mut warnings)?;
                        if scoped {
                            merged.extend(one);
                            out.warnings.extend(warnings);
                        }
                    }
                    (Some(kind), None) => out.notes.push(format!(
                        "{here}: a {kind} has no effect on Envoy sidecars; skipped"
                    )),
                    (None, _) => out
                        .notes
                        .push(format!("{here}: not a Dapr resource (no kind); skipped")),
                }
            }
        }
    }
    merged.resolve(&mut out)?;
    Ok(out)
}

/// A policy as read, with where it was defined.
#[derive(Debug, Clone)]
struct Located<T> {
    file: String,
    line: Option<usize>,
    value: T,
}

/// The policies and app targets of the Resiliency resources that apply, by name; a later
/// definition of a name replaces an earlier one, as in Dapr.
#[derive(Debug, Default)]
struct Merged {
    timeouts: BTreeMap<String, Located<Duration>>,
    /// The retry, and whether Dapr would retry forever.
    retries: BTreeMap<String, Located<(Retry, bool)>>,
    /// The breaker, and whether it has no `trip` (Dapr's default applies).
    breakers: BTreeMap<String, Located<(Breaker, bool)>>,
    apps: BTreeMap<String, Located<spec::AppTarget>>,
}

impl Merged {
    fn extend(&mut self, other: Merged) {
        self.timeouts.extend(other.timeouts);
        self.retries.extend(other.retries);
        self.breakers.extend(other.breakers);
        self.apps.extend(other.apps);
    }

    /// Reads one Resiliency resource's policies (each checked) and app targets.
    fn add(
        &mut self,
        r: spec::Resiliency,
        file: &str,
        warnings: &mut Vec<String>,
    ) -> Result<(), FileError> {
        let spec = r.spec.unwrap_or_default();
        let policies = spec.policies.unwrap_or_default();
        for (name, raw) in policies.timeouts.unwrap_or_default() {
            let line = line_of(&raw);
            let value = duration::timeout(&raw.value.0).map_err(|e| {
                FileError::new(file, line, &format!("spec.policies.timeouts.{name}"), e)
            })?;
            self.timeouts.insert(name, located(file, line, value));
        }
        for (name, raw) in policies.retries.unwrap_or_default() {
            let line = line_of(&raw);
            let value = retry(&name, &raw.value, file, warnings)?;
            if name == BUILT_IN_SERVICE_RETRIES {
                warnings.push(format!(
                    "{}: spec.policies.retries.{name} changes Dapr's built-in retries there; here calls without a retry policy keep the built-in ones (3 retries, 1 s apart, connection failures only)",
                    at(file, line)
                ));
            }
            self.retries.insert(name, located(file, line, value));
        }
        for (name, raw) in policies.circuit_breakers.unwrap_or_default() {
            let line = line_of(&raw);
            let value = breaker(&name, &raw.value, file)?;
            self.breakers.insert(name, located(file, line, value));
        }
        let targets = spec.targets.unwrap_or_default();
        for (app, target) in targets.apps.unwrap_or_default() {
            if let Some(size) = &target.value.circuit_breaker_cache_size {
                warnings.push(format!(
                    "{}: spec.targets.apps.{app}.circuitBreakerCacheSize has no effect on Envoy sidecars (one breaker per target app, not per method); ignored",
                    at(file, line_of(size))
                ));
            }
            let line = line_of(&target);
            self.apps.insert(app, located(file, line, target.value));
        }
        for (name, section) in [
            ("actors", targets.actors),
            ("components", targets.components),
        ] {
            if let Some(section) = section {
                warnings.push(format!(
                    "{}: spec.targets.{name} has no effect on Envoy sidecars; ignored",
                    at(file, line_of(&section))
                ));
            }
        }
        Ok(())
    }

    /// The policy of each target app, the defaults, and a note per policy Envoy cannot follow
    /// exactly.
    fn resolve(self, out: &mut Policies) -> Result<(), FileError> {
        // Who each retry and breaker is used for, for the notes.
        let mut retry_users: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut breaker_users: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (app, target) in &self.apps {
            let key = |k: &str| format!("spec.targets.apps.{app}.{k}");
            let err = |v: &Spanned<Plain>, k: &str, m: String| {
                FileError::new(&target.file, line_of(v), &key(k), m)
            };
            let t = &target.value;
            let mut policy = TargetPolicy {
                named: true,
                ..TargetPolicy::default()
            };
            if let Some(name) = &t.timeout {
                let n = &name.value.0;
                policy.timeout = Some(match self.timeouts.get(n) {
                    Some(d) => d.value,
                    None => duration::timeout(n).map_err(|e| {
                        err(
                            name,
                            "timeout",
                            format!("{n:?} is neither a timeout policy nor a duration ({e})"),
                        )
                    })?,
                });
            }
            if let Some(name) = &t.retry {
                let n = &name.value.0;
                let (r, _) = &self
                    .retries
                    .get(n)
                    .ok_or_else(|| {
                        err(
                            name,
                            "retry",
                            format!("no retry policy {n:?} in spec.policies.retries"),
                        )
                    })?
                    .value;
                retry_users.entry(n).or_default().push(format!("{app:?}"));
                policy.retry = Some(r.clone());
            }
            if let Some(name) = &t.circuit_breaker {
                let n = &name.value.0;
                let (b, _) = &self
                    .breakers
                    .get(n)
                    .ok_or_else(|| {
                        err(
                            name,
                            "circuitBreaker",
                            format!("no circuit breaker {n:?} in spec.policies.circuitBreakers"),
                        )
                    })?
                    .value;
                breaker_users.entry(n).or_default().push(format!("{app:?}"));
                policy.breaker = Some(b.clone());
            }
            out.targets.insert(app.clone(), policy);
        }

        let first = |names: [&'static str; 2], has: &dyn Fn(&str) -> bool| {
            names.into_iter().find(|n| has(n))
        };
        let others = "every app without a target of its own".to_string();
        let default_timeout = first(DEFAULT_TIMEOUTS, &|n| self.timeouts.contains_key(n));
        let default_retry = first(DEFAULT_RETRIES, &|n| self.retries.contains_key(n));
        let default_breaker = first(DEFAULT_BREAKERS, &|n| self.breakers.contains_key(n));
        let defaults = TargetPolicy {
            timeout: default_timeout.and_then(|n| self.timeouts.get(n).map(|d| d.value)),
            retry: default_retry.and_then(|n| {
                retry_users.entry(n).or_default().push(others.clone());
                self.retries.get(n).map(|r| r.value.0.clone())
            }),
            breaker: default_breaker.and_then(|n| {
                breaker_users.entry(n).or_default().push(others.clone());
                self.breakers.get(n).map(|b| b.value.0.clone())
            }),
            named: false,
        };
        if defaults != TargetPolicy::default() {
            out.defaults = Some(defaults);
        }

        for (name, users) in retry_users {
            if let Some(r) = self.retries.get(name).filter(|r| r.value.1) {
                out.notes.push(format!(
                    "{}: retry policy {name:?} retries forever in Dapr; Envoy retries are bounded, so calls to {} are retried {FOREVER_RETRIES} times",
                    at(&r.file, r.line),
                    users.join(", ")
                ));
            }
        }
        for (name, users) in breaker_users {
            if let Some(b) = self.breakers.get(name) {
                let (cb, default_trip) = &b.value;
                let trip = if *default_trip {
                    " (no trip: Dapr's default, consecutiveFailures > 5)"
                } else {
                    ""
                };
                out.notes.push(format!(
                    "{}: circuit breaker {name:?} on {} is Envoy outlier detection: it opens after {n} consecutive failures{trip} for {open:?}; once the time is up, calls flow again, and {n} more consecutive failures open it again (Dapr's half-open maxRequests and interval have no Envoy counterpart)",
                    at(&b.file, b.line),
                    users.join(", "),
                    n = cb.consecutive_failures,
                    open = cb.open_for,
                ));
            }
        }
        Ok(())
    }
}

fn located<T>(file: &str, line: Option<usize>, value: T) -> Located<T> {
    Located {
        file: file.to_string(),
        line,
        value,
    }
}

/// `file:line`, or `file` when the line is unknown.
fn at(file: &str, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{file}:{l}"),
        None => file.to_string(),
    }
}

/// One retry policy, and whether Dapr would retry forever with it.
fn retry(
    name: &str,
    spec: &spec::RetrySpec,
    file: &str,
    warnings: &mut Vec<String>,
) -> Result<(Retry, bool), FileError> {
    let key = |k: &str| format!("spec.policies.retries.{name}.{k}");
    let err = |v: &Spanned<Plain>, k: &str, m: String| FileError::new(file, line_of(v), &key(k), m);
    let get_duration = |v: &Option<Spanned<Plain>>, k: &str, default: Duration| match v {
        None => Ok(default),
        Some(v) => duration(&v.value.0).map_err(|e| err(v, k, e)),
    };
    let (num_retries, forever) = match &spec.max_retries {
        None => (FOREVER_RETRIES, true),
        Some(v) => {
            let n: i64 = v.value.0.parse().map_err(|_| {
                err(
                    v,
                    "maxRetries",
                    format!("{:?} is not a whole number", v.value.0),
                )
            })?;
            match u32::try_from(n) {
                Ok(n) => (n, false),
                Err(_) if n < 0 => (FOREVER_RETRIES, true),
                Err(_) => return Err(err(v, "maxRetries", format!("{n} is too large"))),
            }
        }
    };
    // Both are checked whichever policy uses them.
    let constant = get_duration(&spec.duration, "duration", Duration::from_secs(5))?;
    let max_interval = get_duration(&spec.max_interval, "maxInterval", Duration::from_secs(60))?;
    let (base_interval, max_interval) = match &spec.policy {
        None => (constant, constant),
        Some(p) => match p.value.0.as_str() {
            "constant" => (constant, constant),
            // Dapr's exponential back-off starts at 500ms and grows to maxInterval.
            "exponential" => (Duration::from_millis(500), max_interval),
            other => {
                return Err(err(
                    p,
                    "policy",
                    format!("{other:?} is neither constant nor exponential"),
                ))
            }
        },
    };
    let mut codes = Vec::new();
    let mut grpc_codes = Vec::new();
    if let Some(m) = &spec.matching {
        if let Some(v) = &m.http_status_codes {
            codes = status_codes(&v.value.0).map_err(|e| err(v, "matching.httpStatusCodes", e))?;
        }
        if let Some(v) = &m.grpc_status_codes {
            grpc_codes =
                grpc_status_codes(&v.value.0).map_err(|e| err(v, "matching.gRPCStatusCodes", e))?;
            let unsupported: Vec<String> = grpc_codes
                .iter()
                .filter(|c| !GRPC_RETRIABLE.contains(c))
                .map(u8::to_string)
                .collect();
            if !unsupported.is_empty() {
                warnings.push(format!(
                    "{}: {}: Envoy retries gRPC calls on the codes {} only; {} are not retried",
                    at(file, line_of(v)),
                    key("matching.gRPCStatusCodes"),
                    GRPC_RETRIABLE.map(|c| c.to_string()).join(", "),
                    unsupported.join(", ")
                ));
            }
        }
    }
    Ok((
        Retry {
            name: name.to_string(),
            num_retries,
            base_interval,
            max_interval: max_interval.max(base_interval),
            status_codes: codes,
            grpc_codes,
        },
        forever,
    ))
}

/// One circuit breaker, and whether it has no `trip`.
fn breaker(name: &str, spec: &spec::BreakerSpec, file: &str) -> Result<(Breaker, bool), FileError> {
    let key = |k: &str| format!("spec.policies.circuitBreakers.{name}.{k}");
    let err = |v: &Spanned<Plain>, k: &str, m: String| FileError::new(file, line_of(v), &key(k), m);
    let consecutive_failures = match &spec.trip {
        None => DEFAULT_TRIP_FAILURES,
        Some(t) => trip_threshold(&t.value.0).map_err(|e| err(t, "trip", e))?,
    };
    let open_for = match &spec.timeout {
        None => DEFAULT_OPEN_FOR,
        Some(v) => match duration(&v.value.0).map_err(|e| err(v, "timeout", e))? {
            Duration::ZERO => DEFAULT_OPEN_FOR,
            d => d,
        },
    };
    if let Some(v) = &spec.interval {
        duration(&v.value.0).map_err(|e| err(v, "interval", e))?;
    }
    if let Some(v) = &spec.max_requests {
        v.value.0.parse::<u32>().map_err(|_| {
            err(
                v,
                "maxRequests",
                format!("{:?} is not a whole number", v.value.0),
            )
        })?;
    }
    Ok((
        Breaker {
            name: name.to_string(),
            consecutive_failures,
            open_for,
        },
        spec.trip.is_none(),
    ))
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
            "{trip:?}: only `consecutiveFailures >= N` or `> N` map to Envoy's outlier detection"
        ));
    };
    if n == 0 {
        return Err(format!("{trip:?} would keep the breaker open"));
    }
    Ok(n)
}

/// The gRPC status codes Envoy can retry on (its `retry_on` gRPC conditions): CANCELLED,
/// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE.
pub const GRPC_RETRIABLE: [u8; 5] = [1, 4, 8, 13, 14];

/// Dapr's `matching.gRPCStatusCodes`: "1,2,5-7", codes 0 to 16.
fn grpc_status_codes(spec: &str) -> Result<Vec<u8>, String> {
    let codes = code_list(spec, 0..=16, "a gRPC status code")?;
    Ok(codes
        .into_iter()
        .filter_map(|c| u8::try_from(c).ok())
        .collect())
}

/// Dapr's `matching.httpStatusCodes`: "429,500-599".
fn status_codes(spec: &str) -> Result<Vec<u16>, String> {
    code_list(spec, 100..=599, "a status code")
}

/// A comma-separated list of codes and `lo-hi` ranges within `valid`, sorted, without repeats.
fn code_list(
    spec: &str,
    valid: std::ops::RangeInclusive<u16>,
    what: &str,
) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let code = |s: &str| -> Result<u16, String> {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| valid.contains(c))
                .ok_or_else(|| {
                    format!(
                        "{part:?} is not {what} or range within {}-{}",
                        valid.start(),
                        valid.end()
                    )
                })
        };
        let (lo, hi) = (code(lo)?, code(hi)?);
        if lo > hi {
            return Err(format!("{part:?} is an empty range"));
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
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
        let file = d.path().join("resiliency.yaml").display().to_string();
        let component = d.path().join("statestore.yaml").display().to_string();
        assert_eq!(p.notes, [
            format!("{component}:1: a Component has no effect on Envoy sidecars; skipped"),
            format!("{file}:12: retry policy \"retryForever\" retries forever in Dapr; Envoy retries are bounded, so calls to \"order-processor\" are retried {FOREVER_RETRIES} times"),
            format!("{file}:18: circuit breaker \"simpleCB\" on \"order-processor\" is Envoy outlier detection: it opens after 5 consecutive failures for 5s; once the time is up, calls flow again, and 5 more consecutive failures open it again (Dapr's half-open maxRequests and interval have no Envoy counterpart)"),
        ]);
        assert_eq!(p.warnings, Vec::<String>::new());
        // Scoped to checkout: order-processor's own sidecar gets nothing.
        let op = load(&[d.path().to_path_buf()], "order-processor").unwrap();
        assert_eq!((op.targets.len(), op.defaults), (0, None));
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
            let got = load(&[d.path().to_path_buf()], "x")
                .unwrap_err()
                .to_string();
            assert!(got.contains(want), "{spec}\n{got}");
        }
    }

    fn load_one(text: &str, app: &str) -> Result<Policies, String> {
        let d = dir_with(text);
        load(&[d.path().to_path_buf()], app).map_err(|e| {
            // Messages name the file; tests compare what follows its directory.
            e.to_string()
                .replace(&format!("{}/", d.path().display()), "")
        })
    }

    #[test]
    fn huge_durations_are_errors_with_file_and_line_not_panics() {
        for (policy, want) in [
            ("timeouts:\n      t: 99999999999999999999h", "resiliency.yaml:5: spec.policies.timeouts.t: \"99999999999999999999h\" is longer than a duration can be (Go's limit, about 292 years)"),
            ("timeouts:\n      t: 2562047h2562047h", "resiliency.yaml:5: spec.policies.timeouts.t: \"2562047h2562047h\" is longer"),
            ("retries:\n      r: {duration: 9999999999999999999s}", "resiliency.yaml:5: spec.policies.retries.r.duration: \"9999999999999999999s\" is longer"),
            ("circuitBreakers:\n      c: {timeout: 1e400s}", "resiliency.yaml:5: spec.policies.circuitBreakers.c.timeout: \"1e400s\" is not a duration"),
            ("timeouts:\n      t: -1s", "resiliency.yaml:5: spec.policies.timeouts.t: \"-1s\" is negative"),
        ] {
            let text = format!("kind: Resiliency\nspec:\n  policies:\n    {policy}\n");
            let got = load_one(&text, "x").unwrap_err();
            assert!(got.starts_with(want), "{policy}\ngot:  {got}\nwant: {want}");
        }
    }

    #[test]
    fn unknown_keys_and_unreadable_documents_are_errors_naming_file_and_line() {
        for (text, want) in [
            ("kind: Resiliency\nspec:\n  policies:\n    retries:\n      r:\n        maxRetry: 3\n",
             "resiliency.yaml:6: spec.policies.retries.r.maxRetry: unknown key `maxRetry`; did you mean `maxRetries`?"),
            ("kind: Resiliency\nspec:\n  target:\n    apps: {}\n",
             "resiliency.yaml:3: spec.target: unknown key `target`; did you mean `targets`?"),
            ("kind: Resiliency\nspec:\n  targets:\n    apps:\n      a: {retries: r}\n",
             "resiliency.yaml:5: spec.targets.apps.a.retries: unknown key `retries`; did you mean `retry`?"),
            ("kind: Resiliency\nspec:\n  policies:\n    timeouts: [5s]\n",
             "resiliency.yaml:4: spec.policies.timeouts: must be a mapping"),
            ("kind: Resiliency\nspec: {policies: {timeouts: {t: 5s}}\n",
             "resiliency.yaml:2: not valid YAML: "),
            ("apiVersion: dapr.io/v1alpha1\nkind: Component\n---\nkind: Resiliency\nspek: {}\n",
             "resiliency.yaml:5: spek: unknown key `spek`; did you mean `spec`?"),
            ("- kind: Resiliency\n", "resiliency.yaml:1: expected a Dapr resource: a mapping with `kind`"),
        ] {
            let got = load_one(text, "x").unwrap_err();
            assert!(got.starts_with(want), "{text}\ngot:  {got}\nwant: {want}");
        }
    }

    #[test]
    fn other_kinds_and_documents_are_skipped_with_a_note() {
        let text = "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nspec: {topic: t}\n---\nkind: Resiliency\nspec:\n  policies: {timeouts: {t: 2s}}\n  targets: {apps: {a: {timeout: t}}}\n---\nname: not-dapr\n";
        let p = load_one(text, "x").unwrap();
        assert_eq!(p.targets["a"].timeout, Some(Duration::from_secs(2)));
        let notes: Vec<String> = p
            .notes
            .iter()
            .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
            .collect();
        assert_eq!(
            notes,
            [
                "resiliency.yaml:1: a Subscription has no effect on Envoy sidecars; skipped",
                "resiliency.yaml:10: not a Dapr resource (no kind); skipped",
                "statestore.yaml:1: a Component has no effect on Envoy sidecars; skipped",
            ]
        );
    }

    #[test]
    fn policies_merge_across_files_and_documents() {
        // A target in one document may name a policy defined in another, as in Dapr.
        let text = "kind: Resiliency\nspec:\n  policies: {retries: {r: {maxRetries: 2}}}\n---\nkind: Resiliency\nspec:\n  targets: {apps: {a: {retry: r}}}\n";
        let p = load_one(text, "x").unwrap();
        assert_eq!(p.targets["a"].retry.as_ref().unwrap().num_retries, 2);
    }

    #[test]
    fn default_policies_apply_to_apps_without_a_target() {
        let text = "kind: Resiliency
spec:
  policies:
    timeouts:
      DefaultTimeoutPolicy: 7s
      DefaultAppTimeoutPolicy: 3s
      short: 1s
    retries:
      DefaultRetryPolicy: {maxRetries: 1}
    circuitBreakers:
      DefaultCircuitBreakerPolicy: {trip: consecutiveFailures >= 2}
  targets:
    apps:
      named: {timeout: short}
";
        let mut p = load_one(text, "x").unwrap();
        // The app-specific default wins over the general one; each kind on its own.
        let d = p.defaults.clone().unwrap();
        assert_eq!(d.timeout, Some(Duration::from_secs(3)));
        assert_eq!(d.retry.as_ref().unwrap().num_retries, 1);
        assert_eq!(d.breaker.as_ref().unwrap().consecutive_failures, 2);
        // A named target gets exactly what it names: no default fills its gaps.
        let named = TargetPolicy {
            timeout: Some(Duration::from_secs(1)),
            retry: None,
            breaker: None,
            named: true,
        };
        assert_eq!(p.targets["named"], named);
        p.apply_defaults(&["named".to_string(), "other".to_string()]);
        assert_eq!(p.targets["named"], named);
        assert_eq!(p.targets["other"], d);
        // No default policy: no defaults, and apply_defaults adds nothing.
        let mut none = load_one(
            "kind: Resiliency\nspec: {policies: {timeouts: {t: 1s}}}\n",
            "x",
        )
        .unwrap();
        none.apply_defaults(&["a".to_string()]);
        assert_eq!((none.defaults, none.targets.len()), (None, 0));
    }

    #[test]
    fn daprs_defaults_for_missing_fields() {
        let text = "kind: Resiliency
spec:
  policies:
    retries:
      noMax: {policy: constant, duration: 1s}
    circuitBreakers:
      noTrip: {timeout: 0s}
  targets:
    apps:
      a: {retry: noMax, circuitBreaker: noTrip}
";
        let p = load_one(text, "x").unwrap();
        let a = &p.targets["a"];
        // No maxRetries: Dapr retries forever; Envoy gets the bound, and a note says so.
        assert_eq!(a.retry.as_ref().unwrap().num_retries, FOREVER_RETRIES);
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("retry policy \"noMax\" retries forever in Dapr")));
        // No trip: gobreaker's default, more than 5 consecutive failures; timeout 0: 60 s.
        let cb = a.breaker.as_ref().unwrap();
        assert_eq!(
            (cb.consecutive_failures, cb.open_for),
            (6, Duration::from_secs(60))
        );
        assert!(p.notes.iter().any(|n| n.contains(
            "opens after 6 consecutive failures (no trip: Dapr's default, consecutiveFailures > 5)"
        )));
    }

    #[test]
    fn ignored_sections_are_warnings() {
        let text = "kind: Resiliency
spec:
  policies:
    retries:
      r: {matching: {gRPCStatusCodes: \"2,14\"}, maxRetries: 1}
  targets:
    apps:
      a: {retry: r, circuitBreakerCacheSize: 10}
    actors:
      myActor: {timeout: t}
";
        let p = load_one(text, "x").unwrap();
        let w: Vec<&str> = p
            .warnings
            .iter()
            .map(|w| w.rsplit('/').next().unwrap_or(w))
            .collect();
        assert_eq!(w, [
            "resiliency.yaml:5: spec.policies.retries.r.matching.gRPCStatusCodes: Envoy retries gRPC calls on the codes 1, 4, 8, 13, 14 only; 2 are not retried",
            "resiliency.yaml:8: spec.targets.apps.a.circuitBreakerCacheSize has no effect on Envoy sidecars (one breaker per target app, not per method); ignored",
            "resiliency.yaml:10: spec.targets.actors has no effect on Envoy sidecars; ignored",
        ]);
    }

    #[test]
    fn unscoped_resources_are_checked_too() {
        let text =
            "kind: Resiliency\nscopes: [someone-else]\nspec:\n  policies: {timeouts: {t: soon}}\n";
        assert!(load_one(text, "x")
            .unwrap_err()
            .contains("spec.policies.timeouts.t: \"soon\""));
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
