//! The mesh's certificates: a CA made at start, and one certificate per app whose URI SAN is its
//! SPIFFE id, `spiffe://<trust-domain>/ns/<namespace>/<app-id>`, as Dapr's Sentry issues them.
//!
//! Keys are ECDSA P-256, written with mode 0600 in a directory of mode 0700.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

pub use dapr_invoke::names::{spiffe_id, DEFAULT_TRUST_DOMAIN};

use crate::envoy::layout::{self, Layout};
use crate::runfile::Plan;

/// A certificate authority that lives as long as the run.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    /// The CA's private key, PEM, for a CA made here (not one loaded from disk).
    key_pem: Option<String>,
}

/// One app's certificate and key, PEM.
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where one app's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn err(what: &str) -> impl Fn(rcgen::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl Ca {
    /// A CA kept on disk (`ca.pem`, `ca.key`), to issue more identities later.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, String> {
        let key = KeyPair::from_pem(key_pem).map_err(err("CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(err("CA certificate"))?;
        Ok(Ca {
            issuer,
            cert_pem: cert_pem.to_string(),
            key_pem: None,
        })
    }

    pub fn new(name: &str) -> Result<Ca, String> {
        let key = KeyPair::generate().map_err(err("CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(err("CA certificate"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: Some(key.serialize_pem()),
            issuer: Issuer::new(params, key),
        })
    }

    /// A certificate for one workload, usable as TLS server and client.
    pub fn issue(
        &self,
        trust_domain: &str,
        namespace: &str,
        app_id: &str,
    ) -> Result<Identity, String> {
        let id = spiffe_id(trust_domain, namespace, app_id);
        let key = KeyPair::generate().map_err(err("key"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(err("certificate"))?;
        params.distinguished_name.push(DnType::CommonName, app_id);
        let uri = id.try_into().map_err(err("SPIFFE id"))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(err("certificate"))?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Makes a CA and a certificate for each `(trust domain, namespace, app id)` and writes them to
/// `dir` as `ca.pem`, `<app-id>.pem` and `<app-id>.key`. With `keep_ca`, the CA's key is written
/// too (`ca.key`), and a CA already in `dir` is reused, so more identities can join the mesh.
pub fn write_mesh(
    dir: &Path,
    apps: &[(&str, &str, &str)],
    keep_ca: bool,
) -> Result<Vec<TlsFiles>, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
    let ca_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let existing = match (
        fs::read_to_string(&ca_path),
        fs::read_to_string(&ca_key_path),
    ) {
        (Ok(cert), Ok(key)) if keep_ca => Some(Ca::load(&cert, &key)?),
        _ => None,
    };
    let ca = match existing {
        Some(ca) => ca,
        None => {
            let ca = Ca::new("dapr-envoy mesh CA")?;
            write(&ca_path, &ca.cert_pem, 0o644)?;
            if let (true, Some(key)) = (keep_ca, &ca.key_pem) {
                write(&ca_key_path, key, 0o600)?;
            }
            ca
        }
    };
    apps.iter()
        .map(|(td, ns, id)| {
            let identity = ca.issue(td, ns, id)?;
            let files = TlsFiles {
                ca: ca_path.clone(),
                cert: dir.join(format!("{id}.pem")),
                key: dir.join(format!("{id}.key")),
            };
            write(&files.cert, &identity.cert_pem, 0o644)?;
            write(&files.key, &identity.key_pem, 0o600)?;
            Ok(files)
        })
        .collect()
}

/// Makes the mesh CA and one certificate per app of `plan` in the local layout's certificates
/// directory (nothing without one), with each app's identity as the layout gives it.
pub fn write_for(
    plan: &Plan,
    layout: &layout::Local,
    keep_ca: bool,
) -> Result<Vec<TlsFiles>, String> {
    let Some(dir) = &layout.certs else {
        return Ok(Vec::new());
    };
    let ids: Vec<(&str, &str, &str)> = plan
        .apps
        .iter()
        .map(|a| {
            let (td, ns) = layout.identity(a);
            (td, ns, a.app_id.as_str())
        })
        .collect();
    write_mesh(dir, &ids, keep_ca)
}

/// The SPIFFE ids (URI SANs) of the certificate in `path`.
pub fn spiffe_ids(path: &Path) -> Result<Vec<String>, String> {
    let bad = |why: String| format!("{}: not a certificate: {why}", path.display());
    let pem = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| bad(e.to_string()))?;
    Ok(sans
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(uri) => Some(uri.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Writes a file created with `mode` (a key is never readable by others, not even briefly).
fn write(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_and_one_identity_per_app_with_tight_permissions() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("certs");
        let files = write_mesh(
            &dir,
            &[
                ("public", "default", "checkout"),
                ("public", "prod", "payments"),
            ],
            false,
        )
        .unwrap();
        assert!(
            !dir.join("ca.key").exists(),
            "a run's CA key stays in memory"
        );
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].cert, dir.join("payments.pem"));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&files[0].key), 0o600);
        assert_eq!(mode(&files[0].cert), 0o644);
        let pem = fs::read_to_string(&files[0].cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(fs::read_to_string(&files[0].key)
            .unwrap()
            .contains("PRIVATE KEY"));
    }

    #[test]
    fn a_kept_ca_issues_more_identities_later() {
        let d = tempfile::tempdir().unwrap();
        write_mesh(d.path(), &[("public", "default", "a")], true).unwrap();
        let ca_before = fs::read_to_string(d.path().join("ca.pem")).unwrap();
        assert_eq!(
            fs::metadata(d.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        write_mesh(d.path(), &[("evil", "default", "b")], true).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("ca.pem")).unwrap(),
            ca_before
        );
        assert!(d.path().join("b.pem").exists());
    }

    #[test]
    fn the_spiffe_id_is_in_the_certificate() {
        let ca = Ca::new("test").unwrap();
        let id = ca.issue("example.org", "prod", "payments").unwrap();
        let der = pem_body(&id.cert_pem);
        let needle = b"spiffe://example.org/ns/prod/payments";
        assert!(der.windows(needle.len()).any(|w| w == needle));
    }

    fn pem_body(pem: &str) -> Vec<u8> {
        // Enough base64 decoding for a test, without another dependency.
        let text: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = vec![];
        let mut buf = 0u32;
        let mut bits = 0;
        for c in text.bytes().filter(|c| *c != b'=') {
            let v = table.iter().position(|t| *t == c).unwrap() as u32;
            buf = (buf << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buf >> bits) as u8);
            }
        }
        out
    }
}
