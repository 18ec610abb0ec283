//! A `Resiliency` resource as written, in Dapr's shape (`pkg/apis/resiliency/v1alpha1`): every
//! key Dapr knows, and no other.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::yaml::Plain;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resiliency {
    #[allow(dead_code)]
    pub api_version: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub kind: Plain,
    #[allow(dead_code)]
    pub metadata: Option<IgnoredAny>,
    /// Dapr's resource reference writes `version: v1alpha1` here; Dapr ignores it.
    #[allow(dead_code)]
    pub version: Option<IgnoredAny>,
    pub scopes: Option<Vec<Plain>>,
    pub spec: Option<Spec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub policies: Option<PolicySpecs>,
    pub targets: Option<Targets>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpecs {
    pub timeouts: Option<BTreeMap<String, Spanned<Plain>>>,
    pub retries: Option<BTreeMap<String, Spanned<RetrySpec>>>,
    pub circuit_breakers: Option<BTreeMap<String, Spanned<BreakerSpec>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetrySpec {
    pub policy: Option<Spanned<Plain>>,
    pub duration: Option<Spanned<Plain>>,
    pub max_interval: Option<Spanned<Plain>>,
    pub max_retries: Option<Spanned<Plain>>,
    pub matching: Option<Matching>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Matching {
    pub http_status_codes: Option<Spanned<Plain>>,
    #[serde(rename = "gRPCStatusCodes")]
    pub grpc_status_codes: Option<Spanned<Plain>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BreakerSpec {
    pub max_requests: Option<Spanned<Plain>>,
    pub interval: Option<Spanned<Plain>>,
    pub timeout: Option<Spanned<Plain>>,
    pub trip: Option<Spanned<Plain>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub apps: Option<BTreeMap<String, Spanned<AppTarget>>>,
    pub actors: Option<Spanned<IgnoredAny>>,
    pub components: Option<Spanned<IgnoredAny>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppTarget {
    pub timeout: Option<Spanned<Plain>>,
    pub retry: Option<Spanned<Plain>>,
    pub circuit_breaker: Option<Spanned<Plain>>,
    pub circuit_breaker_cache_size: Option<Spanned<IgnoredAny>>,
}
