//! Reading PEM files: certificate chains, private keys, CA bundles and CRLs.
//!
//! The parsers take bytes already read: files that are followed for changes are read by
//! [`agentgw_core::reload`], which hands every version to them whole.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::Error;

/// Reads a whole file; the error names `field` and the path.
pub(crate) fn read(field: &str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::config(field, format!("cannot read {}: {e}", path.display())))
}

/// Every certificate in a PEM file, in file order.
pub(crate) fn certificates(
    field: &str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::config(field, format!("invalid PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::config(
            field,
            format!("no CERTIFICATE block in {}", path.display()),
        ));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub(crate) fn private_key(
    field: &str,
    path: &Path,
    pem: &[u8],
) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        let reason = match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block".to_owned(),
            other => format!("invalid PEM ({other})"),
        };
        Error::config(field, format!("{reason} in {}", path.display()))
    })
}

/// A certificate chain and its key as one `CertifiedKey`, checking that they belong together.
pub(crate) fn certified_key(
    fields: (&str, &str),
    paths: (&Path, &Path),
    pems: (&[u8], &[u8]),
    provider: &CryptoProvider,
) -> Result<CertifiedKey, Error> {
    let chain = certificates(fields.0, paths.0, pems.0)?;
    let key = private_key(fields.1, paths.1, pems.1)?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        let message = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the key in {} does not belong to the certificate in {}",
                paths.1.display(),
                paths.0.display()
            ),
            other => format!("unusable private key in {}: {other}", paths.1.display()),
        };
        Error::config(fields.1, message)
    })
}

/// A root store from a PEM bundle; every certificate in it must be a usable trust anchor.
pub(crate) fn root_store(
    field: &str,
    path: &Path,
    pem: &[u8],
) -> Result<Arc<RootCertStore>, Error> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in certificates(field, path, pem)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            Error::config(
                field,
                format!(
                    "certificate #{} in {} is not a usable CA certificate: {e}",
                    index + 1,
                    path.display()
                ),
            )
        })?;
    }
    Ok(Arc::new(roots))
}

/// The CRLs in a file: PEM `X509 CRL` blocks, or one DER CRL.
pub(crate) fn crls(
    field: &str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateRevocationListDer<'static>>, Error> {
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes.to_vec())]);
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::config(field, format!("invalid PEM in {}: {e}", path.display())))?;
    if crls.is_empty() {
        return Err(Error::config(
            field,
            format!("no X509 CRL block in {}", path.display()),
        ));
    }
    Ok(crls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ConfigError;
    use std::path::PathBuf;

    fn provider() -> CryptoProvider {
        rustls::crypto::aws_lc_rs::default_provider()
    }

    #[test]
    fn files_without_the_expected_blocks_are_named_errors() {
        let path = PathBuf::from("/x/tls.crt");
        let err = certificates("certFile", &path, b"hello").unwrap_err();
        assert_eq!(err.path(), "certFile");
        assert!(
            err.to_string()
                .contains("no CERTIFICATE block in /x/tls.crt"),
            "{err}"
        );
        let err = private_key("keyFile", &path, b"").unwrap_err();
        assert!(err.to_string().contains("no PRIVATE KEY block"), "{err}");
        let err = crls("clientAuth.crlFiles[0]", &path, b"nothing").unwrap_err();
        assert!(err.to_string().contains("no X509 CRL block"), "{err}");
    }

    #[test]
    fn missing_file_names_field_and_path() {
        let err = read("keyFile", Path::new("/definitely/not/here.key")).unwrap_err();
        assert_eq!(err.path(), "keyFile");
        assert!(
            err.to_string()
                .starts_with("keyFile: cannot read /definitely/not/here.key"),
            "{err}"
        );
    }

    #[test]
    fn mismatched_key_is_refused() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let cert_pem = a.cert.pem();
        let key_pem = b.signing_key.serialize_pem();
        let err = certified_key(
            ("certFile", "keyFile"),
            (Path::new("a.crt"), Path::new("b.key")),
            (cert_pem.as_bytes(), key_pem.as_bytes()),
            &provider(),
        )
        .unwrap_err();
        assert_eq!(err.path(), "keyFile");
        assert!(
            err.to_string()
                .contains("does not belong to the certificate"),
            "{err}"
        );

        let key_pem = a.signing_key.serialize_pem();
        let key = certified_key(
            ("certFile", "keyFile"),
            (Path::new("a.crt"), Path::new("a.key")),
            (cert_pem.as_bytes(), key_pem.as_bytes()),
            &provider(),
        )
        .unwrap();
        assert_eq!(key.cert.len(), 1);
    }
}
