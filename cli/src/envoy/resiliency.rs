//! Dapr's resiliency policy for one target app, as Envoy does it natively: the route's `timeout`
//! and `retry_policy`, and the target cluster's `outlier_detection` (the circuit breaker). The
//! mapping, and where it is not exact, is in `docs/resiliency.md`.

use std::time::Duration;

use super::api::{
    BackOff, CircuitBreakers, CommonLbConfig, Dur, MaxStreamDuration, OutlierDetection, Percent,
    RetryPolicy, Thresholds, TypedConfig, TypedExtension,
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

/// The gRPC listener's call limit and retry policy. The policy's timeout bounds the whole call,
/// streams included, as the client's `grpc-timeout` does (the shorter wins); it ends with
/// DEADLINE_EXCEEDED, as in Dapr. (Envoy applies it to the stream, not to each attempt: with
/// retries, all attempts share it.) A Dapr retry policy retries the codes it matches
/// (`matching.gRPCStatusCodes`), or every failure without `matching`, as far as Envoy can: it
/// retries gRPC calls on CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL and
/// UNAVAILABLE answered before any response message, and on connection failures. Without a
/// policy: one more connection attempt, to another instance if there is one, as daprd re-dials
/// once when it cannot open the stream (it has no built-in retries for gRPC).
pub fn grpc_route(policy: Option<&TargetPolicy>) -> (MaxStreamDuration, Option<RetryPolicy>) {
    let timeout = policy.and_then(|p| p.timeout).map(Dur);
    let timeout = MaxStreamDuration {
        max_stream_duration: timeout,
        grpc_timeout_header_max: timeout.unwrap_or(Dur(Duration::ZERO)),
    };
    let named = policy.is_some_and(|p| p.named);
    let retry = match policy.and_then(|p| p.retry.as_ref()) {
        None if named => return (timeout, None),
        None => RetryPolicy {
            retry_on: "connect-failure,refused-stream".into(),
            num_retries: 1,
            retry_back_off: BackOff {
                base_interval: Dur::millis(25),
                max_interval: Dur::millis(25),
            },
            retriable_status_codes: vec![],
            retry_host_predicate: another_instance(),
            host_selection_retry_max_attempts: Some(3),
        },
        Some(r) => {
            let mut on: Vec<&str> = GRPC_CONDITIONS
                .iter()
                .filter(|(code, _)| r.grpc_codes.is_empty() || r.grpc_codes.contains(code))
                .map(|(_, name)| *name)
                .collect();
            // A failure before the call reached the app has no gRPC code in Dapr either: it is
            // UNAVAILABLE, retried when the policy retries UNAVAILABLE.
            if r.grpc_codes.is_empty() || r.grpc_codes.contains(&14) {
                on.extend(["connect-failure", "refused-stream", "reset"]);
            }
            if on.is_empty() {
                return (timeout, None);
            }
            RetryPolicy {
                retry_on: on.join(","),
                num_retries: r.num_retries,
                retry_back_off: BackOff {
                    base_interval: Dur(r.base_interval),
                    max_interval: Dur(r.max_interval),
                },
                retriable_status_codes: vec![],
                retry_host_predicate: another_instance(),
                host_selection_retry_max_attempts: Some(3),
            }
        }
    };
    (timeout, Some(retry))
}

/// gRPC status codes and Envoy's `retry_on` condition for each.
const GRPC_CONDITIONS: [(u8, &str); 5] = [
    (1, "cancelled"),
    (4, "deadline-exceeded"),
    (8, "resource-exhausted"),
    (13, "internal"),
    (14, "unavailable"),
];

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
                grpc_codes: vec![],
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

    fn grpc_policy(codes: &[u8]) -> TargetPolicy {
        TargetPolicy {
            timeout: Some(Duration::from_secs(3)),
            retry: Some(Retry {
                name: "r".into(),
                num_retries: 2,
                base_interval: Duration::from_millis(100),
                max_interval: Duration::from_millis(100),
                status_codes: vec![],
                grpc_codes: codes.to_vec(),
            }),
            breaker: None,
            named: true,
        }
    }

    #[test]
    fn grpc_retries_follow_the_matching_codes() {
        let on = |codes: &[u8]| grpc_route(Some(&grpc_policy(codes))).1.map(|r| r.retry_on);
        assert_eq!(
            on(&[]).as_deref(),
            Some("cancelled,deadline-exceeded,resource-exhausted,internal,unavailable,connect-failure,refused-stream,reset")
        );
        assert_eq!(
            on(&[14]).as_deref(),
            Some("unavailable,connect-failure,refused-stream,reset")
        );
        assert_eq!(on(&[2, 13]).as_deref(), Some("internal"));
        // Only codes Envoy cannot retry: nothing is retried (the runner warned).
        assert_eq!(on(&[2, 5]), None);
        // The timeout bounds the call, and caps what a client's grpc-timeout asks for.
        assert_eq!(
            json(&grpc_route(Some(&grpc_policy(&[]))).0),
            serde_json::json!({"max_stream_duration": "3s", "grpc_timeout_header_max": "3s"})
        );
        assert_eq!(
            json(&grpc_route(None).0),
            serde_json::json!({"grpc_timeout_header_max": "0s"})
        );
    }

    #[test]
    fn grpc_without_a_policy_redials_once() {
        let retry = json(&grpc_route(None).1.unwrap());
        assert_eq!(retry["retry_on"], "connect-failure,refused-stream");
        assert_eq!(retry["num_retries"], 1);
        let own = TargetPolicy {
            named: true,
            ..TargetPolicy::default()
        };
        assert!(grpc_route(Some(&own)).1.is_none());
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
                grpc_codes: vec![],
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
