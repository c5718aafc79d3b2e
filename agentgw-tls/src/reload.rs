//! A certificate resolver that follows its files: renewed certificates are picked up without a
//! restart and without touching established connections.
//!
//! [`ReloadingCertResolver`] holds the current certificate and key behind an
//! [`ArcSwap`](arc_swap::ArcSwap): every handshake loads it without locking, and a reload swaps
//! in a new one that only later handshakes see. Connections already established keep the
//! session keys they negotiated and are not affected at all.
//!
//! Changes are found by polling: every interval the files are read and their content
//! fingerprinted, so a rename, an in-place rewrite and a Kubernetes secret mount swapping its
//! `..data` symlink are all seen, whatever the file system does with modification times. A new
//! pair that cannot be used (unparsable PEM, a key that does not match the certificate, an
//! expired certificate) is logged and counted, and the previous certificate stays in service;
//! the same broken content is reported once, not at every poll.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::metrics::{CERTIFICATE_NOT_AFTER_SECONDS, CERTIFICATE_RELOADS_TOTAL};
use crate::{TlsError, load};

/// What a reload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The files have the content already in service (or already refused).
    Unchanged,
    /// New content was loaded and is now in service.
    Reloaded,
}

/// A [`ResolvesServerCert`] (and [`ResolvesClientCert`]) that serves the certificate chain and
/// key read from two PEM files and reloads them when they change. See the module docs.
///
/// ```no_run
/// # async fn run() -> Result<(), agentgw_tls::TlsError> {
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
    current: ArcSwap<CertifiedKey>,
    cert_file: PathBuf,
    key_file: PathBuf,
    fields: (&'static str, &'static str),
    role: &'static str,
    provider: Arc<CryptoProvider>,
    /// Fingerprint of the last content tried, loaded or refused; also serializes reloads.
    last_seen: Mutex<[u8; 32]>,
}

impl ReloadingCertResolver {
    /// Loads the chain in `cert_file` (PEM, leaf first) and the key in `key_file` (PEM PKCS#8,
    /// PKCS#1 or SEC1), checking that they belong together. Nothing is watched until
    /// [`watch`](Self::watch) is called.
    pub fn from_files(
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
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
    ) -> Result<Self, TlsError> {
        let cert_pem = load::read(fields.0, &cert_file)?;
        let key_pem = load::read(fields.1, &key_file)?;
        let fingerprint = load::fingerprint([&cert_pem[..], &key_pem[..]]);
        let key = load::certified_key(
            fields,
            (&cert_file, &key_file),
            (&cert_pem, &key_pem),
            &provider,
        )?;
        let validity = leaf_validity(&key);
        if let Some((_, not_after)) = validity {
            record_not_after(role, not_after);
            if not_after < unix_now() {
                tracing::warn!(
                    cert_file = %cert_file.display(),
                    not_after,
                    "the certificate has expired; clients will refuse it until it is renewed"
                );
            }
        }
        Ok(ReloadingCertResolver {
            current: ArcSwap::from_pointee(key),
            cert_file,
            key_file,
            fields,
            role,
            provider,
            last_seen: Mutex::new(fingerprint),
        })
    }

    /// The certificate and key in service.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// The certificate file.
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    /// The key file.
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// Reads the files now and puts their content in service if it changed and is usable. On
    /// error the previous certificate stays in service; the same content is not retried.
    /// Reads files synchronously: from async code call it through `spawn_blocking` (as
    /// [`watch`](Self::watch) does).
    pub fn reload(&self) -> Result<ReloadOutcome, TlsError> {
        let mut last_seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        let cert_pem = load::read(self.fields.0, &self.cert_file)?;
        let key_pem = load::read(self.fields.1, &self.key_file)?;
        let fingerprint = load::fingerprint([&cert_pem[..], &key_pem[..]]);
        if fingerprint == *last_seen {
            return Ok(ReloadOutcome::Unchanged);
        }
        *last_seen = fingerprint;
        let result = load::certified_key(
            self.fields,
            (&self.cert_file, &self.key_file),
            (&cert_pem, &key_pem),
            &self.provider,
        )
        .and_then(|key| {
            let validity = leaf_validity(&key);
            if let Some((not_before, not_after)) = validity {
                let now = unix_now();
                if not_after < now || not_before > now {
                    return Err(TlsError::config(
                        self.fields.0,
                        format!(
                            "the certificate in {} is not valid now (valid from {not_before} to {not_after}, unix time)",
                            self.cert_file.display()
                        ),
                    ));
                }
            }
            Ok((key, validity))
        });
        match result {
            Ok((key, validity)) => {
                self.current.store(Arc::new(key));
                if let Some((_, not_after)) = validity {
                    record_not_after(self.role, not_after);
                }
                metrics::counter!(CERTIFICATE_RELOADS_TOTAL, "role" => self.role, "result" => "reloaded")
                    .increment(1);
                tracing::info!(
                    role = self.role,
                    cert_file = %self.cert_file.display(),
                    "certificate reloaded"
                );
                Ok(ReloadOutcome::Reloaded)
            }
            Err(err) => {
                metrics::counter!(CERTIFICATE_RELOADS_TOTAL, "role" => self.role, "result" => "refused")
                    .increment(1);
                Err(err)
            }
        }
    }

    /// Polls the files every `interval` on the current tokio runtime, for as long as the
    /// resolver is alive (the task holds only a weak reference). Errors are logged; the previous
    /// certificate stays in service.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        spawn_poller(weak, interval, |resolver: &ReloadingCertResolver| {
            if let Err(err) = resolver.reload() {
                tracing::error!(
                    role = resolver.role,
                    error = %err,
                    "new certificate files refused; the previous certificate stays in service"
                );
            }
        })
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ResolvesClientCert for ReloadingCertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let key = self.current.load_full();
        key.key.choose_scheme(sigschemes).is_some().then_some(key)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Runs `poll` on the blocking pool every `interval` while `target` is alive.
pub(crate) fn spawn_poller<T, F>(
    target: Weak<T>,
    interval: Duration,
    poll: F,
) -> tokio::task::JoinHandle<()>
where
    T: Send + Sync + 'static,
    F: Fn(&T) + Send + Sync + Copy + 'static,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(target) = target.upgrade() else {
                break;
            };
            if let Err(err) = tokio::task::spawn_blocking(move || poll(&target)).await {
                tracing::error!(error = %err, "certificate reload task failed");
            }
        }
    })
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
    metrics::gauge!(CERTIFICATE_NOT_AFTER_SECONDS, "role" => role).set(not_after as f64);
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
        assert_eq!(err.field(), Some("keyFile"));
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
