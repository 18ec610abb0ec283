//! Dapr's `Configuration` resource (the file a run file's `configFilePath` names): the part the
//! sidecars use is `spec.accessControl`, handed to the callee's filter as JSON. The filter's own
//! parser validates it (unknown fields, actions, verbs, ...), so its rules live in one place.

use std::path::Path;

use dapr_invoke::acl::{AccessControl, RawAccessControl};
use serde_norway::Value;

/// The `spec.accessControl` of a Dapr Configuration file, if it has one, checked by the filter's
/// own rules; and a warning per `spec` section that has no effect here.
pub fn access_control(path: &Path) -> Result<(Option<RawAccessControl>, Vec<String>), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let doc: Value =
        serde_norway::from_str(&text).map_err(|e| format!("{shown}: not valid YAML: {e}"))?;
    let kind = doc.get("kind").and_then(Value::as_str);
    if kind != Some("Configuration") {
        return Err(format!(
            "{shown}: expected a Dapr resource of kind Configuration, found {}",
            kind.map_or("no kind".to_string(), |k| format!("kind {k}"))
        ));
    }
    let Some(spec) = doc.get("spec") else {
        return Ok((None, Vec::new()));
    };
    let Value::Mapping(spec) = spec else {
        return Err(format!("{shown}: spec must be a mapping"));
    };
    let mut warnings = Vec::new();
    let mut acl = None;
    for (key, value) in spec {
        match key.as_str() {
            Some("accessControl") => {
                let json = serde_json::to_value(value)
                    .map_err(|e| format!("{shown}: spec.accessControl: {e}"))?;
                let raw: RawAccessControl = serde_json::from_value(json)
                    .map_err(|e| format!("{shown}: spec.accessControl: {e}"))?;
                AccessControl::try_from(raw.clone()).map_err(|e| {
                    format!("{shown}: spec.accessControl.{}: {}", e.field, e.reason)
                })?;
                acl = Some(raw);
            }
            Some(other) => warnings.push(format!(
                "{shown}: spec.{other} has no effect on Envoy sidecars; ignored"
            )),
            None => return Err(format!("{shown}: spec has a key that is not a string")),
        }
    }
    Ok((acl, warnings))
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
        let (acl, warnings) = access_control(&p).unwrap();
        let acl = acl.unwrap();
        assert_eq!(acl.default_action.as_deref(), Some("deny"));
        assert_eq!(
            acl.policies[0].operations[0].http_verb,
            Some(vec!["POST".to_string()])
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].ends_with("spec.tracing has no effect on Envoy sidecars; ignored"));
    }

    #[test]
    fn refuses_other_kinds_and_tolerates_no_spec() {
        let (_d, p) = write("kind: Resiliency\nspec: {}\n");
        assert!(access_control(&p)
            .unwrap_err()
            .contains("found kind Resiliency"));
        let (_d, p) = write("kind: Configuration\n");
        assert_eq!(access_control(&p).unwrap().0, None);
    }
}
