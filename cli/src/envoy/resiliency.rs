//! Dapr's resiliency policy for one target app, as Envoy does it natively: the route's `timeout`
//! and `retry_policy`, and the target cluster's `outlier_detection` (the circuit breaker). The
//! mapping, and where it is not exact, is in `docs/resiliency.md`.

use std::time::Duration;

use super::api::{
    BackOff, CircuitBreakers, CommonLbConfig, Dur, OutlierDetection, Percent, RetryPolicy,
    Thresholds, TypedConfig, TypedExtension,
};
use crate::resiliency::TargetPolicy;

/// The route's timeout (none: `0s`, as Dapr has no timeout without a policy) and retry policy.
/// Without a Dapr retry policy, the built-in one: retry only what never reached the callee
/// (connection failures), 3 times, 1 s apart, as Dapr's `DaprBuiltInServiceRetries`; unless the
/// target has an entry of its own under `targets.apps`, which turns the built-in retries off in
/// Dapr: then nothing is retried. Either way a retry goes to another instance of the app when
/// it has several: an instance that refused a connection is the one most likely to refuse the
/// next.
pub fn route(policy: Option<&TargetPolicy>) -> (Dur, Option<RetryPolicy>) {
    let timeout = Dur(policy.and_then(|p| p.timeout).unwrap_or(Duration::ZERO));
    let named = policy.is_some_and(|p| p.named);
    let retry = match policy.and_then(|p| p.retry.as_ref()) {
        None if named => return (timeout, None),
        None => RetryPolicy {
            retry_on: "connect-failure,refused-stream".into(),
            num_retries: 3,
            retry_back_off: BackOff {
                base_interval: Dur::secs(1),
                max_interval: Dur::secs(1),
            },
            retriable_status_codes: vec![],
            retry_host_predicate: another_instance(),
            host_selection_retry_max_attempts: Some(3),
        },
        Some(r) => RetryPolicy {
            retry_on: if r.status_codes.is_empty() {
                "5xx,connect-failure,refused-stream,reset"
            } else {
                "retriable-status-codes,connect-failure,refused-stream,reset"
            }
            .into(),
            num_retries: r.num_retries,
            retry_back_off: BackOff {
                base_interval: Dur(r.base_interval),
                max_interval: Dur(r.max_interval),
            },
            retriable_status_codes: r.status_codes.clone(),
            retry_host_predicate: another_instance(),
            host_selection_retry_max_attempts: Some(3),
        },
    };
    (timeout, Some(retry))
}

/// A retry avoids the instances already tried, where there is another.
fn another_instance() -> Vec<TypedExtension> {
    vec![TypedExtension {
        name: "envoy.retry_host_predicates.previous_hosts",
        typed_config: TypedConfig::PreviousHostsPredicate {},
    }]
}

/// Envoy's default allows 3 concurrent retries per cluster; Dapr has no such cap.
pub fn circuit_breakers() -> CircuitBreakers {
    CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: None,
            max_retries: 1024,
            max_pending_requests: 65536,
            max_requests: 65536,
        }],
    }
}

/// A Dapr circuit breaker as outlier detection, and the load-balancer setting that makes an
/// open breaker fail fast instead of falling back to routing to ejected endpoints.
pub fn breaker(policy: Option<&TargetPolicy>) -> Option<(OutlierDetection, CommonLbConfig)> {
    let cb = policy.and_then(|p| p.breaker.as_ref())?;
    let open = Dur(cb.open_for);
    Some((
        OutlierDetection {
            consecutive_5xx: cb.consecutive_failures,
            consecutive_gateway_failure: cb.consecutive_failures,
            enforcing_consecutive_5xx: 100,
            enforcing_consecutive_gateway_failure: 100,
            interval: Dur::millis(100),
            base_ejection_time: open,
            max_ejection_time: open,
            max_ejection_percent: 100,
        },
        CommonLbConfig {
            healthy_panic_threshold: Percent { value: 0.0 },
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resiliency::{Breaker, Retry, FOREVER_RETRIES};

    fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap()
    }

    #[test]
    fn the_quickstart_policy() {
        // Dapr's quickstart: retryForever (constant 5s, -1) and simpleCB (>= 5, 5s).
        let op = TargetPolicy {
            timeout: None,
            retry: Some(Retry {
                name: "retryForever".into(),
                num_retries: FOREVER_RETRIES,
                base_interval: Duration::from_secs(5),
                max_interval: Duration::from_secs(5),
                status_codes: vec![],
            }),
            breaker: Some(Breaker {
                name: "simpleCB".into(),
                consecutive_failures: 5,
                open_for: Duration::from_secs(5),
            }),
            named: true,
        };
        let (timeout, retry) = route(Some(&op));
        let retry = json(&retry.unwrap());
        assert_eq!(json(&timeout), "0s");
        assert_eq!(retry["num_retries"], FOREVER_RETRIES);
        assert_eq!(
            retry["retry_on"],
            "5xx,connect-failure,refused-stream,reset"
        );
        assert_eq!(retry["retry_back_off"]["base_interval"], "5s");
        let (outlier, lb) = breaker(Some(&op)).unwrap();
        let outlier = json(&outlier);
        assert_eq!(outlier["consecutive_5xx"], 5);
        assert_eq!(outlier["base_ejection_time"], "5s");
        assert_eq!(json(&lb)["healthy_panic_threshold"]["value"], 0.0);
    }

    #[test]
    fn without_a_policy_only_connection_failures_are_retried() {
        let (timeout, retry) = route(None);
        assert_eq!(json(&timeout), "0s");
        let retry = json(&retry.unwrap());
        assert_eq!(retry["retry_on"], "connect-failure,refused-stream");
        assert_eq!(retry["num_retries"], 3);
        assert_eq!(
            retry["retry_host_predicate"][0]["name"],
            "envoy.retry_host_predicates.previous_hosts"
        );
        assert!(breaker(None).is_none());
    }

    #[test]
    fn a_target_of_its_own_without_a_retry_is_not_retried() {
        let own = TargetPolicy {
            timeout: Some(Duration::from_secs(2)),
            named: true,
            ..TargetPolicy::default()
        };
        assert!(route(Some(&own)).1.is_none());
        // Dapr's default policies leave the built-in retries on.
        let by_default = TargetPolicy {
            timeout: Some(Duration::from_secs(2)),
            ..TargetPolicy::default()
        };
        assert!(route(Some(&by_default)).1.is_some());
    }

    #[test]
    fn status_matching_and_timeouts() {
        let p = TargetPolicy {
            timeout: Some(Duration::from_secs(90)),
            retry: Some(Retry {
                name: "expo".into(),
                num_retries: 4,
                base_interval: Duration::from_millis(500),
                max_interval: Duration::from_secs(15),
                status_codes: vec![429, 502, 503, 504],
            }),
            breaker: None,
            named: true,
        };
        let (timeout, retry) = route(Some(&p));
        let retry = json(&retry.unwrap());
        assert_eq!(json(&timeout), "90s");
        assert_eq!(
            retry["retry_on"],
            "retriable-status-codes,connect-failure,refused-stream,reset"
        );
        assert_eq!(
            retry["retriable_status_codes"],
            serde_json::json!([429, 502, 503, 504])
        );
        assert_eq!(retry["retry_back_off"]["base_interval"], "0.500s");
    }
}
