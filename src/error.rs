//! The errors a caller sees, in Dapr's shape: an HTTP status and a JSON body
//! `{"errorCode": "...", "message": "..."}` served as `application/json`.
//!
//! Codes and statuses follow Dapr's runtime (`pkg/messages/predefined.go`); where we chose a
//! different status the README's error table says so and why.

use serde::Serialize;

/// Dapr's error code for every failure of direct service invocation.
pub const ERR_DIRECT_INVOKE: &str = "ERR_DIRECT_INVOKE";

/// Dapr's code when `/v1.0/healthz?appid=<id>` names another app than the sidecar's.
pub const ERR_HEALTH_APPID_NOT_MATCH: &str = "ERR_HEALTH_APPID_NOT_MATCH";

/// Dapr's message when neither the invoke URL nor the `dapr-app-id` header names an app.
pub const MSG_NO_APP_ID: &str =
    "failed getting app id either from the URL path or the header dapr-app-id";

/// Dapr's message for a failed invocation: `failed to invoke, id: <id>, err: <reason>`. The
/// runner writes it into Envoy's local replies too, with Envoy's own substitutions as the parts.
///
/// ```
/// assert_eq!(
///     dapr_invoke::error::invoke_failed("op", "timeout"),
///     "failed to invoke, id: op, err: timeout"
/// );
/// ```
pub fn invoke_failed(id: &str, reason: &str) -> String {
    format!("failed to invoke, id: {id}, err: {reason}")
}

/// Dapr's message when the callee has no app channel (`appPort` unset).
pub fn no_app_channel(callee: &str) -> String {
    invoke_failed(
        callee,
        "app channel is not initialized (the app has no appPort)",
    )
}

/// A request the filter answers itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaprError {
    pub status: u32,
    pub code: &'static str,
    pub message: String,
}

/// Longest piece of caller input echoed back in a message, in characters.
const MAX_ECHO: usize = 128;

/// Caller input as it appears in a message: cut to [`MAX_ECHO`] characters.
fn shorten(raw: &str) -> std::borrow::Cow<'_, str> {
    match raw.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}...", raw.get(..cut).unwrap_or_default()).into(),
        None => raw.into(),
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "errorCode")]
    error_code: &'a str,
    message: &'a str,
}

impl DaprError {
    /// No app id in the URL or the header: 404, as in Dapr.
    pub fn no_app_id() -> Self {
        DaprError {
            status: 404,
            code: ERR_DIRECT_INVOKE,
            message: MSG_NO_APP_ID.to_string(),
        }
    }

    /// An invoke URL that is not `/v1.0/invoke/<app-id>/method/<method>`: 404, as Dapr answers a
    /// path none of its routes match.
    pub fn bad_invoke_url(reason: &str) -> Self {
        DaprError {
            status: 404,
            code: ERR_DIRECT_INVOKE,
            message: format!(
                "invalid invoke URL: {reason}; expected /v1.0/invoke/<app-id>/method/<method>"
            ),
        }
    }

    /// The app id is not well formed. Dapr answers 500 here; a malformed id is the caller's
    /// mistake and no retry can fix it, so we answer 400.
    pub fn invalid_app_id(raw: &str, reason: &dyn std::fmt::Display) -> Self {
        DaprError {
            status: 400,
            code: ERR_DIRECT_INVOKE,
            message: invoke_failed(&shorten(raw), &format!("invalid app id: {reason}")),
        }
    }

    /// The app id is well formed but this sidecar knows no cluster for it: 500, as Dapr answers
    /// when name resolution fails.
    pub fn unknown_app(raw: &str, app_id: &str, namespace: &str) -> Self {
        DaprError {
            status: 500,
            code: ERR_DIRECT_INVOKE,
            message: invoke_failed(
                raw,
                &format!(
                    "no app {app_id:?} in namespace {namespace:?} is configured for this sidecar"
                ),
            ),
        }
    }

    /// The callee's sidecar cannot tell who is calling: no verified client certificate, or one
    /// without an app's SPIFFE id. 401, as Dapr's `Unauthenticated`.
    pub fn unauthenticated(callee: &str, why: &str) -> Self {
        DaprError {
            status: 401,
            code: ERR_DIRECT_INVOKE,
            message: invoke_failed(callee, &format!("unauthenticated caller: {why}")),
        }
    }

    /// The callee's access-control policy denies the call: 403, with Dapr's wording.
    pub fn permission_denied(callee: &str, caller: &str, operation: &str, verb: &str) -> Self {
        DaprError {
            status: 403,
            code: ERR_DIRECT_INVOKE,
            message: invoke_failed(
                callee,
                &format!(
                    "access control policy has denied access to id: {} operation: {} verb: {}",
                    shorten(caller),
                    shorten(operation),
                    shorten(verb)
                ),
            ),
        }
    }

    /// The callee's access-control policy denies a gRPC call: daprd's gRPC proxy answers
    /// PERMISSION_DENIED with the policy's words alone, and the verb `NONE`.
    pub fn grpc_permission_denied(caller: &str, operation: &str) -> Self {
        DaprError {
            status: 403,
            code: ERR_DIRECT_INVOKE,
            message: format!(
                "access control policy has denied access to id: {} operation: {} verb: NONE",
                shorten(caller),
                shorten(operation),
            ),
        }
    }

    /// `/v1.0/healthz?appid=<id>` asked whether this sidecar is another app's: 500, as Dapr.
    pub fn health_appid_mismatch() -> Self {
        DaprError {
            status: 500,
            code: ERR_HEALTH_APPID_NOT_MATCH,
            message: "dapr app-id does not match".to_string(),
        }
    }

    /// A gRPC call without the sidecar's API token: Dapr's `Unauthorized` (gRPC
    /// `UNAUTHENTICATED`).
    pub fn grpc_unauthorized() -> Self {
        DaprError {
            status: 401,
            code: ERR_DIRECT_INVOKE,
            message: "Unauthorized".to_string(),
        }
    }

    /// A gRPC call that names no app: daprd's gRPC proxy message (gRPC `UNKNOWN`).
    pub fn grpc_no_app_id() -> Self {
        DaprError {
            status: 500,
            code: ERR_DIRECT_INVOKE,
            message: "failed to proxy request: required metadata dapr-callee-app-id or dapr-app-id not found".to_string(),
        }
    }

    /// `PUT /v1.0/metadata/<key>`: daprd keeps the value in memory for `GET /v1.0/metadata`; this
    /// sidecar keeps none (a proxy-wasm filter cannot read a request's body without passing it
    /// on), and says so rather than pretending to.
    pub fn metadata_not_kept() -> Self {
        DaprError {
            status: 501,
            code: "ERR_METADATA_SET",
            message: "this sidecar keeps no metadata attributes (PUT /v1.0/metadata/<key>)"
                .to_string(),
        }
    }

    /// The request body is larger than the sidecar's `maxBodySize`. Dapr fails the call with
    /// "stream too large" (as a 500); it is the caller's request that is too big, so we answer
    /// 413.
    pub fn body_too_large(id: &str) -> Self {
        DaprError {
            status: 413,
            code: ERR_DIRECT_INVOKE,
            message: invoke_failed(&shorten(id), "stream too large"),
        }
    }

    /// The filter could not apply its decision (a host call failed) or has no configuration.
    pub fn not_ready(detail: &str) -> Self {
        DaprError {
            status: 500,
            code: ERR_DIRECT_INVOKE,
            message: format!("invoke API is not ready: {detail}"),
        }
    }

    /// The JSON body, as Dapr writes it.
    ///
    /// ```
    /// let e = dapr_invoke::error::DaprError::no_app_id();
    /// assert!(e.body().starts_with(r#"{"errorCode":"ERR_DIRECT_INVOKE","message":"#));
    /// ```
    pub fn body(&self) -> String {
        let body = Body {
            error_code: self.code,
            message: &self.message,
        };
        // Serializing two strings cannot fail; keep a valid body even if it ever did.
        serde_json::to_string(&body).unwrap_or_else(|_| {
            format!(
                r#"{{"errorCode":"{}","message":"internal error"}}"#,
                self.code
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_dapr_json() {
        let e = DaprError::unknown_app("nope", "nope", "default");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["errorCode"], "ERR_DIRECT_INVOKE");
        assert_eq!(
            v["message"],
            r#"failed to invoke, id: nope, err: no app "nope" in namespace "default" is configured for this sidecar"#
        );
        assert_eq!(v.as_object().unwrap().len(), 2);
    }

    #[test]
    fn message_text_is_escaped() {
        let e = DaprError::invalid_app_id("a\"b\n", &"bad");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert!(v["message"].as_str().unwrap().contains("a\"b\n"));
    }

    #[test]
    fn long_input_is_cut() {
        let raw = "x".repeat(10_000);
        let e = DaprError::invalid_app_id(&raw, &"too long");
        assert!(e.message.len() < 300, "{}", e.message.len());
        assert!(e.message.contains(&format!("{}...", "x".repeat(MAX_ECHO))));
        let raw = "é".repeat(200);
        assert!(DaprError::invalid_app_id(&raw, &"x")
            .message
            .contains("é..."));
    }

    #[test]
    fn statuses() {
        assert_eq!(DaprError::no_app_id().status, 404);
        assert_eq!(DaprError::bad_invoke_url("x").status, 404);
        assert_eq!(DaprError::invalid_app_id("x", &"y").status, 400);
        assert_eq!(DaprError::unknown_app("x", "x", "d").status, 500);
        assert_eq!(DaprError::not_ready("x").status, 500);
    }
}
