//! Certificates, keys and tokens for one control plane, made with the `openssl` command.
//!
//! The command keeps the dependency tree lean and is on every machine that can build
//! Kubernetes. Keys are ECDSA P-256 for TLS (fast to generate) and RSA for service accounts.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Paths of the generated files.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
    pub tokens_csv: PathBuf,
    pub admin_token: String,
    pub restricted_token: String,
}

/// The user name of the admin identity (member of `system:masters`).
pub(crate) const ADMIN_USER: &str = "storefactory-admin";
/// The user name of the restricted identity (no bindings at all).
pub(crate) const RESTRICTED_USER: &str = "storefactory-restricted";

impl Pki {
    pub(crate) fn generate(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let p = |name: &str| dir.join(name);
        let pki = Pki {
            ca_cert: p("ca.crt"),
            ca_key: p("ca.key"),
            serving_cert: p("apiserver.crt"),
            serving_key: p("apiserver.key"),
            sa_key: p("sa.key"),
            sa_pub: p("sa.pub"),
            tokens_csv: p("tokens.csv"),
            admin_token: random_token()?,
            restricted_token: random_token()?,
        };

        // A config of our own: the system's openssl.cnf may add extensions that clash.
        let cnf = p("openssl.cnf");
        write(
            &cnf,
            "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n[dn]\nCN = storefactory-testkit-ca\n\
             [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign,digitalSignature\n\
             subjectKeyIdentifier = hash\n",
        )?;
        openssl(
            "the certificate authority",
            &[
                "req",
                "-x509",
                "-config",
                s(&cnf),
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                s(&pki.ca_key),
                "-out",
                s(&pki.ca_cert),
                "-days",
                "3650",
            ],
        )?;

        let csr = p("apiserver.csr");
        openssl(
            "the apiserver key",
            &[
                "req",
                "-new",
                "-config",
                s(&cnf),
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                s(&pki.serving_key),
                "-out",
                s(&csr),
                "-subj",
                "/CN=kube-apiserver",
            ],
        )?;
        let serving_ext = p("apiserver.ext");
        write(
            &serving_ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1\n",
        )?;
        openssl(
            "the apiserver serving certificate",
            &[
                "x509",
                "-req",
                "-in",
                s(&csr),
                "-CA",
                s(&pki.ca_cert),
                "-CAkey",
                s(&pki.ca_key),
                "-CAcreateserial",
                "-out",
                s(&pki.serving_cert),
                "-days",
                "3650",
                "-sha256",
                "-extfile",
                s(&serving_ext),
            ],
        )?;

        openssl(
            "the service account key",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                s(&pki.sa_key),
            ],
        )?;
        openssl(
            "the service account public key",
            &[
                "pkey",
                "-in",
                s(&pki.sa_key),
                "-pubout",
                "-out",
                s(&pki.sa_pub),
            ],
        )?;

        write(
            &pki.tokens_csv,
            &format!(
                "{},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n{},{RESTRICTED_USER},{RESTRICTED_USER}\n",
                pki.admin_token, pki.restricted_token
            ),
        )?;
        Ok(pki)
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("testkit paths are UTF-8")
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io("writing", path, e))
}

fn openssl(what: &str, args: &[&str]) -> Result<()> {
    let fail = |reason: String| Error::GenerateCertificate {
        what: what.to_owned(),
        reason,
    };
    let output = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| fail(format!("cannot run openssl: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "openssl {} exited with {}: {}",
            args.first().copied().unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// 32 hex characters from the kernel's random source.
pub(crate) fn random_token() -> Result<String> {
    random_hex(16)
}

/// `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let path = "/dev/urandom";
    let mut buf = vec![0u8; bytes];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_serving_certificate_signed_by_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path()).unwrap();
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile", s(&pki.ca_cert), s(&pki.serving_cert)])
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let tokens = std::fs::read_to_string(&pki.tokens_csv).unwrap();
        assert!(tokens.contains("system:masters"));
        assert_ne!(pki.admin_token, pki.restricted_token);
    }
}
