//! Dapr's `Configuration` resource (the file a run file's `configFilePath` names): the parts the
//! sidecars use are `spec.accessControl`, handed to the callee's filter, its trust domain, the
//! app's identity, and `spec.tracing` ([`crate::tracing`]), Envoy's tracing. The filter's own
//! parser validates the access-control policy (unknown fields, actions, verbs, ...), so its rules
//! live in one place; the other `spec` sections Dapr knows are accepted with a warning, and a key
//! Dapr does not know is an error.

use std::path::Path;

use dapr_invoke::acl::{AccessControl, RawAccessControl};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::yaml::{self, line_of, FileError, Plain, Tree};

/// What the sidecars take from a Configuration.
#[derive(Debug, Default)]
pub struct Config {
    /// `spec.accessControl`, checked by the filter's own rules.
    pub access_control: Option<RawAccessControl>,
    /// `spec.accessControl.trustDomain`, as the filter reads it (lowercased), when given.
    pub trust_domain: Option<String>,
    /// `spec.tracing`, when it traces anything.
    pub tracing: Option<crate::tracing::Tracing>,
    /// `spec.metric(s)`: Dapr's metrics, on unless `enabled: false`, and its latency buckets.
    pub metrics: Metrics,
    /// A line per `spec` section that has no effect here, or works differently.
    pub warnings: Vec<String>,
}

/// What the sidecars take from `spec.metric` / `spec.metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// Dapr's metrics (default: on). Off: the sidecar keeps no per-call stats and its metrics
    /// port shows Envoy's own metrics only.
    pub enabled: bool,
    /// `latencyDistributionBuckets`: the round-trip latency histogram's bounds, in ms (default:
    /// Dapr's own).
    pub latency_buckets_ms: Option<Vec<u32>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enabled: true,
            latency_buckets_ms: None,
        }
    }
}

/// `spec.metric` (or `spec.metrics`) as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMetric {
    enabled: Option<bool>,
    latency_distribution_buckets: Option<Spanned<Vec<u32>>>,
    http: Ignored,
    rules: Ignored,
    record_error_codes: Ignored,
}

/// A `Configuration` as written, in Dapr's shape (`pkg/apis/configuration/v1alpha1`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Configuration {
    #[allow(dead_code)]
    api_version: Option<IgnoredAny>,
    #[allow(dead_code)]
    kind: Plain,
    #[allow(dead_code)]
    metadata: Option<IgnoredAny>,
    spec: Option<Spec>,
}

type Ignored = Option<Spanned<IgnoredAny>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    access_control: Option<Spanned<RawAccessControl>>,
    http_pipeline: Ignored,
    app_http_pipeline: Ignored,
    tracing: Option<Spanned<crate::tracing::RawTracing>>,
    metric: Option<Spanned<RawMetric>>,
    metrics: Option<Spanned<RawMetric>>,
    mtls: Ignored,
    secrets: Ignored,
    name_resolution: Ignored,
    features: Ignored,
    api: Ignored,
    components: Ignored,
    logging: Ignored,
    wasm: Ignored,
    workflow: Ignored,
}

/// Reads a Dapr Configuration file.
pub fn load(path: &Path) -> Result<Config, FileError> {
    let file = yaml::shown(path);
    let text = yaml::read(path, "the Configuration")?;
    let docs = yaml::documents::<Configuration>(&text, &file, "Configuration")?;
    let doc = match docs.as_slice() {
        [doc] => doc,
        [] => {
            return Err(FileError::new(
                &file,
                None,
                "",
                "is empty: expected a Dapr Configuration",
            ))
        }
        [_, second, ..] => {
            return Err(FileError::new(
                &file,
                second.line,
                "",
                "a second document: a Configuration file holds one",
            ))
        }
    };
    let Some(config) = &doc.value else {
        return Err(FileError::new(
            &file,
            doc.line,
            "kind",
            format!(
                "expected a Dapr resource of kind Configuration, found {}",
                doc.kind
                    .as_ref()
                    .map_or("no kind".to_string(), |k| format!("kind {k}"))
            ),
        ));
    };
    let mut out = Config::default();
    let Some(spec) = &config.spec else {
        return Ok(out);
    };
    for (name, section) in [
        ("httpPipeline", &spec.http_pipeline),
        ("appHttpPipeline", &spec.app_http_pipeline),
        ("mtls", &spec.mtls),
        ("secrets", &spec.secrets),
        ("nameResolution", &spec.name_resolution),
        ("features", &spec.features),
        ("api", &spec.api),
        ("components", &spec.components),
        ("logging", &spec.logging),
        ("wasm", &spec.wasm),
        ("workflow", &spec.workflow),
    ] {
        if let Some(section) = section {
            let at = line_of(section).map_or(file.clone(), |l| format!("{file}:{l}"));
            out.warnings.push(format!(
                "{at}: spec.{name} has no effect on Envoy sidecars; ignored"
            ));
        }
    }
    // Dapr reads both spellings; `metrics` wins where both set a key (`sortMetricsSpec`).
    for (name, raw) in [("metric", &spec.metric), ("metrics", &spec.metrics)] {
        let Some(raw) = raw else { continue };
        let m = &raw.value;
        if let Some(enabled) = m.enabled {
            out.metrics.enabled = enabled;
        }
        if let Some(buckets) = &m.latency_distribution_buckets {
            let mut sorted = buckets.value.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.is_empty() || sorted.first() == Some(&0) {
                return Err(FileError::new(
                    &file,
                    line_of(buckets),
                    &format!("spec.{name}.latencyDistributionBuckets"),
                    "give bucket bounds in milliseconds, each above 0",
                ));
            }
            out.metrics.latency_buckets_ms = Some(sorted);
        }
        for (key, section) in [
            ("http", &m.http),
            ("rules", &m.rules),
            ("recordErrorCodes", &m.record_error_codes),
        ] {
            if let Some(section) = section {
                let at = line_of(section).map_or(file.clone(), |l| format!("{file}:{l}"));
                out.warnings.push(format!(
                    "{at}: spec.{name}.{key} has no effect on Envoy sidecars; ignored"
                ));
            }
        }
    }
    if let Some(raw) = &spec.tracing {
        let read = crate::tracing::read(&raw.value, &file)?;
        out.warnings.extend(read.warnings);
        out.tracing = read.tracing;
    }
    if let Some(raw) = &spec.access_control {
        AccessControl::try_from(raw.value.clone()).map_err(|e| {
            let key = if e.field.is_empty() {
                "spec.accessControl".to_string()
            } else {
                format!("spec.accessControl.{}", e.field)
            };
            FileError::new(&file, line_at(&text, &key).or(line_of(raw)), &key, e.reason)
        })?;
        // Valid (checked just above), and as the filter reads it: lower-case.
        if let Some(td) = &raw.value.trust_domain {
            out.trust_domain = Some(td.to_ascii_lowercase());
        }
        out.access_control = Some(raw.value.clone());
    }
    Ok(out)
}

/// The line of `path`, or of the nearest enclosing key that is written.
fn line_at(text: &str, path: &str) -> Option<usize> {
    let tree = Tree::of(text)?;
    let mut p = path;
    loop {
        if let Some(line) = tree.line_at(p) {
            return Some(line);
        }
        let cut = p.rfind(['.', '['])?;
        p = p.get(..cut)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.yaml");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn reads_the_access_control_section() {
        let (_d, p) = write(
            "apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: appconfig
spec:
  tracing:
    samplingRate: \"1\"
  accessControl:
    defaultAction: deny
    trustDomain: \"public\"
    policies:
    - appId: checkout
      defaultAction: deny
      trustDomain: \"public\"
      namespace: \"default\"
      operations:
      - name: /orders
        httpVerb: ['POST']
        action: allow
",
        );
        let config = load(&p).unwrap();
        let (acl, warnings) = (
            config.access_control.clone().unwrap(),
            config.warnings.clone(),
        );
        assert_eq!(acl.default_action.as_deref(), Some("deny"));
        assert_eq!(
            acl.policies[0].operations[0].http_verb,
            Some(vec!["POST".to_string()])
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        // A rate without an exporter traces nothing, as daprd's null exporter.
        assert_eq!(config.tracing, None);
    }

    #[test]
    fn refuses_other_kinds_and_tolerates_no_spec() {
        let (_d, p) = write("kind: Resiliency\nspec: {}\n");
        assert!(load(&p)
            .unwrap_err()
            .to_string()
            .contains("found kind Resiliency"));
        let (_d, p) = write("kind: Configuration\n");
        assert_eq!(load(&p).unwrap().access_control, None);
    }

    #[test]
    fn reads_daprs_metric_switch_and_buckets() {
        let (_d, p) = write("kind: Configuration\nspec:\n  metric:\n    enabled: false\n    http:\n      increasedCardinality: false\n");
        let c = load(&p).unwrap();
        assert!(!c.metrics.enabled);
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].contains(":6: spec.metric.http has no effect"),
            "{:?}",
            c.warnings
        );
        // `metrics` wins over `metric`, as in Dapr.
        let (_d, p) = write("kind: Configuration\nspec:\n  metric:\n    enabled: false\n  metrics:\n    enabled: true\n    latencyDistributionBuckets: [50, 5, 500]\n");
        let c = load(&p).unwrap();
        assert!(c.metrics.enabled);
        assert_eq!(c.metrics.latency_buckets_ms, Some(vec![5, 50, 500]));
        assert_eq!(
            load(&write("kind: Configuration\n").1).unwrap().metrics,
            Metrics::default()
        );
        let (_d, p) = write("kind: Configuration\nspec:\n  metric:\n    enabeld: false\n");
        assert!(load(&p).unwrap_err().to_string().contains("enabeld"));
        let (_d, p) = write(
            "kind: Configuration\nspec:\n  metric:\n    latencyDistributionBuckets: [0, 5]\n",
        );
        let e = load(&p).unwrap_err();
        assert_eq!(e.key, "spec.metric.latencyDistributionBuckets");
    }
}
