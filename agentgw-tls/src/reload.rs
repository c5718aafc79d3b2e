//! A certificate resolver that follows its files: renewed certificates are picked up without a
//! restart and without touching established connections.
//!
//! [`ReloadingCertResolver`] is the certificate and key of an [`agentgw_core::reload`] value:
//! every handshake loads it without locking, and a reload swaps in a new one that only later
//! handshakes see. Connections already established keep the session keys they negotiated and
//! are not affected at all.
//!
//! Changes are found the way every agentgw file is followed: every interval the stamps of both
//! files are compared (length, modification time, inode), a changed pair is read together once
//! it held still and its content compared, so a rename, an in-place rewrite and a Kubernetes
//! secret mount swapping its `..data` symlink are all seen, and a half-written renewal is not. A
//! new pair that cannot be used (unparsable PEM, a key that does not match the certificate, a
//! certificate not valid now) is logged and counted, and the previous certificate stays in
//! service; the same broken content is reported once, not at every poll.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentgw_core::ConfigError;
use agentgw_core::metrics::{
    TLS_CERTIFICATE_NOT_AFTER_SECONDS, TLS_CERTIFICATE_RELOADS_TOTAL, labels,
};
use agentgw_core::reload::{Contents, ReloadError, Reloading, WatchedFile};
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Error, load};

/// What a reload found: the files hold the version in service (or one already refused), or a
/// new version is now in service. The same type as [`agentgw_core::reload::ReloadOutcome`].
pub use agentgw_core::reload::ReloadOutcome;

/// A [`ResolvesServerCert`] (and [`ResolvesClientCert`]) that serves the certificate chain and
/// key read from two PEM files and reloads them when they change. See the module docs.
///
/// ```no_run
/// # async fn run() -> Result<(), agentgw_tls::Error> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use agentgw_tls::ReloadingCertResolver;
///
/// let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
/// let resolver = Arc::new(ReloadingCertResolver::from_files(
///     "/etc/tls/tls.crt",
///     "/etc/tls/tls.key",
///     provider.clone(),
/// )?);
/// resolver.watch(Duration::from_secs(10)); // stops when the resolver is dropped
/// let config = rustls::ServerConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()
///     .expect("the aws-lc-rs provider supports the default versions")
///     .with_no_client_auth()
///     .with_cert_resolver(resolver);
/// # let _ = config; Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReloadingCertResolver {
    key: Reloading<CertifiedKey>,
}

impl ReloadingCertResolver {
    /// Loads the chain in `cert_file` (PEM, leaf first) and the key in `key_file` (PEM PKCS#8,
    /// PKCS#1 or SEC1), checking that they belong together. Nothing is watched until
    /// [`watch`](Self::watch) is called.
    pub fn from_files(
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, Error> {
        Self::load(
            cert_file.into(),
            key_file.into(),
            ("certFile", "keyFile"),
            "server",
            provider,
        )
    }

    pub(crate) fn load(
        cert_file: PathBuf,
        key_file: PathBuf,
        fields: (&'static str, &'static str),
        role: &'static str,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, Error> {
        let files = [
            WatchedFile::new(fields.0, cert_file),
            WatchedFile::new(fields.1, key_file),
        ];
        let what = Cow::Owned(format!("{role} certificate"));
        let key = Reloading::open_files(what, files, move |contents| {
            let key = certified_key(contents, &provider, role);
            if contents.is_reload() {
                let result = if key.is_ok() { "reloaded" } else { "refused" };
                metrics::counter!(TLS_CERTIFICATE_RELOADS_TOTAL, labels::ROLE => role, labels::RESULT => result)
                    .increment(1);
            }
            key
        })
        .map_err(to_tls_error)?;
        Ok(ReloadingCertResolver { key })
    }

    /// The certificate and key in service.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.key.current().into_arc()
    }

    /// The certificate file.
    pub fn cert_file(&self) -> &Path {
        self.key.files()[0].file()
    }

    /// The key file.
    pub fn key_file(&self) -> &Path {
        self.key.files()[1].file()
    }

    /// Checks the files now and puts their content in service if it changed and is usable. On
    /// error the previous certificate stays in service; the same content is not retried.
    /// Reads files synchronously: from async code call it through `spawn_blocking` (as
    /// [`watch`](Self::watch) does).
    pub fn reload(&self) -> Result<ReloadOutcome, Error> {
        self.key.check().map_err(to_tls_error)
    }

    /// Checks the files every `interval` on the current tokio runtime, for as long as the
    /// resolver is alive (the task holds only a weak reference), replacing a watcher started
    /// before; a zero `interval` stops watching. Outcomes are logged and counted; the previous
    /// certificate stays in service when new files are refused.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        match self.key.watch(interval) {
            Ok(task) => task,
            Err(err) => panic!("{err}"),
        }
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for ReloadingCertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let key = self.current();
        key.key.choose_scheme(sigschemes).is_some().then_some(key)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The certificate and key of one version of the files. A certificate that has expired is
/// served at start-up (with a warning: there is nothing better to serve) but refused as a
/// renewal.
fn certified_key(
    contents: &Contents<'_>,
    provider: &CryptoProvider,
    role: &'static str,
) -> Result<CertifiedKey, ReloadError> {
    let (cert, key) = (contents.file(0), contents.file(1));
    let certified = load::certified_key(
        (cert.field(), key.field()),
        (cert.file(), key.file()),
        (contents.bytes(0), contents.bytes(1)),
        provider,
    )
    .map_err(|err| to_reload_error(contents, err))?;
    if let Some((not_before, not_after)) = leaf_validity(&certified) {
        let now = unix_now();
        if contents.is_reload() && (not_after < now || not_before > now) {
            return Err(contents.invalid(
                0,
                format!(
                    "the certificate in {} is not valid now (valid from {not_before} to {not_after}, unix time)",
                    cert.file().display()
                ),
            ));
        }
        if not_after < now {
            tracing::warn!(
                cert_file = %cert.file().display(),
                not_after,
                "the certificate has expired; clients will refuse it until it is renewed"
            );
        }
        record_not_after(role, not_after);
    }
    Ok(certified)
}

/// An error about the content of `contents` as a reload error, with its field path kept (a
/// field of the block, such as `clientAuth.crlFiles`, stays as it is) and the file it names.
pub(crate) fn to_reload_error(contents: &Contents<'_>, err: Error) -> ReloadError {
    let field = err.path().to_owned();
    let files = contents.files();
    let file = files
        .iter()
        .find(|file| file.field() == field)
        .or_else(|| {
            files
                .iter()
                .find(|file| !field.is_empty() && file.field().starts_with(&field))
        })
        .unwrap_or(&files[0]);
    ReloadError::Invalid {
        field,
        file: file.file().to_owned(),
        reason: err.reason(),
    }
}

/// A reload error as this crate's error, with the field path and reason it would have had if
/// the files had been read directly.
pub(crate) fn to_tls_error(err: ReloadError) -> Error {
    match err {
        ReloadError::Invalid { field, reason, .. } => Error::config(field, reason),
        other => Error::config(other.path(), other.reason()),
    }
}

/// `(not_before, not_after)` of the leaf in unix seconds.
fn leaf_validity(key: &CertifiedKey) -> Option<(i64, i64)> {
    let leaf = key.cert.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let validity = cert.validity();
    Some((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn record_not_after(role: &'static str, not_after: i64) {
    metrics::gauge!(TLS_CERTIFICATE_NOT_AFTER_SECONDS, labels::ROLE => role).set(not_after as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn pair(params: CertificateParams) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    fn leaf(resolver: &ReloadingCertResolver) -> Vec<u8> {
        resolver.current().cert[0].as_ref().to_vec()
    }

    #[test]
    fn reload_swaps_only_for_new_usable_content() {
        let dir = tempfile::tempdir().unwrap();
        let first = pair(CertificateParams::new(vec!["a.test".into()]).unwrap());
        let (c, k) = write(dir.path(), &first);
        let resolver = ReloadingCertResolver::from_files(&c, &k, provider()).unwrap();
        let before = leaf(&resolver);
        assert_eq!(resolver.reload().unwrap(), ReloadOutcome::Unchanged);

        // A certificate with someone else's key: refused, old one kept, reported once.
        let other = pair(CertificateParams::new(vec!["b.test".into()]).unwrap());
        std::fs::write(&c, &other.0).unwrap();
        let err = resolver.reload().unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
        assert_eq!(leaf(&resolver), before);
        assert_eq!(resolver.reload().unwrap(), ReloadOutcome::Unchanged);

        // The matching key arrives: the new pair is served.
        std::fs::write(&k, &other.1).unwrap();
        assert_eq!(resolver.reload().unwrap(), ReloadOutcome::Reloaded);
        assert_ne!(leaf(&resolver), before);
    }

    #[test]
    fn expired_renewal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write(
            dir.path(),
            &pair(CertificateParams::new(vec!["a.test".into()]).unwrap()),
        );
        let resolver = ReloadingCertResolver::from_files(&c, &k, provider()).unwrap();
        let before = leaf(&resolver);
        let mut params = CertificateParams::new(vec!["a.test".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        write(dir.path(), &pair(params));
        let err = resolver.reload().unwrap_err();
        assert!(err.to_string().contains("not valid now"), "{err}");
        assert_eq!(leaf(&resolver), before);
    }

    #[test]
    fn vanished_files_keep_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write(
            dir.path(),
            &pair(CertificateParams::new(vec!["a.test".into()]).unwrap()),
        );
        let resolver = ReloadingCertResolver::from_files(&c, &k, provider()).unwrap();
        let before = leaf(&resolver);
        std::fs::remove_file(&k).unwrap();
        let err = resolver.reload().unwrap_err();
        assert_eq!(agentgw_core::ConfigError::path(&err), "keyFile");
        assert_eq!(leaf(&resolver), before);
    }

    #[test]
    fn client_resolver_offers_the_certificate_only_for_usable_schemes() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write(
            dir.path(),
            &pair(CertificateParams::new(vec!["a.test".into()]).unwrap()),
        );
        let resolver = ReloadingCertResolver::from_files(&c, &k, provider()).unwrap();
        // rcgen's default key is ECDSA P-256.
        let ok =
            ResolvesClientCert::resolve(&resolver, &[], &[SignatureScheme::ECDSA_NISTP256_SHA256]);
        assert!(ok.is_some());
        let none = ResolvesClientCert::resolve(&resolver, &[], &[SignatureScheme::RSA_PSS_SHA256]);
        assert!(none.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn watcher_stops_when_the_resolver_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write(
            dir.path(),
            &pair(CertificateParams::new(vec!["a.test".into()]).unwrap()),
        );
        let resolver = Arc::new(ReloadingCertResolver::from_files(&c, &k, provider()).unwrap());
        let task = resolver.watch(Duration::from_secs(1));
        drop(resolver);
        tokio::time::advance(Duration::from_secs(2)).await;
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
