//! TLS towards upstreams: a `rustls::ClientConfig` trusting a custom CA (or the operating
//! system's roots) and presenting an optional, hot-reloaded client certificate.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls_platform_verifier::BuilderVerifierExt;

use crate::config::{UpstreamTlsConfig, UpstreamTlsMode};
use crate::reload::ReloadingCertResolver;
use crate::{Error, load};

/// Client-side TLS for one upstream, built from [`UpstreamTlsConfig`]. Cheap to clone.
///
/// - reqwest: `reqwest::Client::builder().tls_backend_preconfigured(tls.client_config())`
///   (formerly `use_preconfigured_tls`); the configuration offers ALPN `h2` and `http/1.1`.
/// - hyper or raw tokio streams: [`connector`](Self::connector), then a hyper client
///   connection over the TLS stream.
///
/// With `mode: MUTUAL` the client certificate files are polled every `reloadInterval` (when
/// built inside a tokio runtime) and renewals are presented on new connections.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    config: Arc<ClientConfig>,
    client_cert: Option<Arc<ReloadingCertResolver>>,
}

impl UpstreamTls {
    /// Validates `config`, loads its files and builds the client configuration (TLS 1.2 and
    /// 1.3, the aws-lc-rs provider's default cipher suites). Errors name the offending field
    /// relative to the `tls` block.
    pub fn from_config(config: &UpstreamTlsConfig) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let files = Files::of(config)?;
        let client_cert = match config.mode {
            UpstreamTlsMode::Simple => {
                if let Some((field, _)) = files.cert.as_ref().or(files.key.as_ref()) {
                    return Err(Error::config(
                        *field,
                        "a client certificate is only presented with mode: MUTUAL",
                    ));
                }
                None
            }
            UpstreamTlsMode::Mutual => {
                let (cert_field, cert) = files.cert.clone().ok_or_else(|| {
                    Error::config(
                        "certFile",
                        "mode: MUTUAL needs certFile and keyFile, or clientCertificate",
                    )
                })?;
                let (key_field, key) = files
                    .key
                    .clone()
                    .ok_or_else(|| Error::config("keyFile", "mode: MUTUAL needs keyFile"))?;
                let resolver = Arc::new(ReloadingCertResolver::load(
                    cert,
                    key,
                    (cert_field, key_field),
                    "client",
                    provider.clone(),
                )?);
                if !config.reload_interval.is_zero()
                    && tokio::runtime::Handle::try_current().is_ok()
                {
                    resolver.watch(config.reload_interval);
                }
                Some(resolver)
            }
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config("mode", format!("cannot enable TLS 1.2 and 1.3: {e}")))?;
        let builder = match &files.ca {
            Some((field, path)) => {
                let roots = load::root_store(field, path, &load::read(field, path)?)?;
                let verifier = server_verifier(roots, provider)?;
                builder.with_webpki_verifier(verifier)
            }
            None => builder.with_platform_verifier().map_err(|e| {
                Error::config(
                    "caFile",
                    format!("cannot use the operating system's trust store: {e}"),
                )
            })?,
        };
        let mut client = match &client_cert {
            Some(resolver) => builder.with_client_cert_resolver(resolver.clone()),
            None => builder.with_no_client_auth(),
        };
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(UpstreamTls {
            config: Arc::new(client),
            client_cert,
        })
    }

    /// A copy of the client configuration, for `reqwest::ClientBuilder::tls_backend_preconfigured`
    /// (which takes it by value). Copies share the client certificate resolver, so they see
    /// reloads. Set `alpn_protocols` on the copy to restrict HTTP versions.
    pub fn client_config(&self) -> ClientConfig {
        (*self.config).clone()
    }

    /// The shared client configuration.
    pub fn shared_client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// A tokio-rustls connector (for hyper clients over `tokio_rustls::client::TlsStream`).
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.config.clone())
    }

    /// The reloading client certificate, with `mode: MUTUAL`.
    pub fn client_certificate(&self) -> Option<&Arc<ReloadingCertResolver>> {
        self.client_cert.as_ref()
    }
}

/// The files of a configuration, each with the field it comes from: `caFile` or
/// `caCertificates` (a Kubernetes Secret's mounted `ca.crt`), `certFile`/`keyFile` or
/// `clientCertificate` (`tls.crt`/`tls.key`).
struct Files {
    ca: Option<(&'static str, PathBuf)>,
    cert: Option<(&'static str, PathBuf)>,
    key: Option<(&'static str, PathBuf)>,
}

impl Files {
    fn of(config: &UpstreamTlsConfig) -> Result<Files, Error> {
        const CA: &str = "caCertificates.secretRef.name";
        const CLIENT: &str = "clientCertificate.secretRef.name";
        let ca = match (&config.ca_file, &config.ca_certificates) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "caCertificates",
                    "give the certificate authorities once: caFile or caCertificates",
                ));
            }
            (Some(path), None) => Some(("caFile", path.clone())),
            (None, Some(secret)) => Some((
                CA,
                secret
                    .secret_ref
                    .path("ca.crt")
                    .map_err(|reason| Error::config(CA, reason))?,
            )),
            (None, None) => None,
        };
        let (cert, key) = match &config.client_certificate {
            Some(_) if config.cert_file.is_some() || config.key_file.is_some() => {
                return Err(Error::config(
                    "clientCertificate",
                    "give the client certificate once: certFile and keyFile, or \
                     clientCertificate",
                ));
            }
            Some(secret) if secret.secret_ref.key.is_some() => {
                return Err(Error::config(
                    "clientCertificate.secretRef.key",
                    "a client certificate Secret is a Kubernetes TLS Secret: its keys are \
                     tls.crt and tls.key; remove `key`",
                ));
            }
            Some(secret) => {
                let path = |key| {
                    secret
                        .secret_ref
                        .path(key)
                        .map_err(|reason| Error::config(CLIENT, reason))
                };
                (
                    Some((CLIENT, path("tls.crt")?)),
                    Some((CLIENT, path("tls.key")?)),
                )
            }
            None => (
                config.cert_file.clone().map(|p| ("certFile", p)),
                config.key_file.clone().map(|p| ("keyFile", p)),
            ),
        };
        Ok(Files { ca, cert, key })
    }
}

/// The `rustls::ClientConfig` for `config`: shorthand for
/// `UpstreamTls::from_config(config)?.client_config()`, ready for
/// `reqwest::ClientBuilder::tls_backend_preconfigured`.
pub fn client_config(config: &UpstreamTlsConfig) -> Result<ClientConfig, Error> {
    Ok(UpstreamTls::from_config(config)?.client_config())
}

fn server_verifier(
    roots: Arc<rustls::RootCertStore>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, Error> {
    WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| {
            Error::config(
                "caFile",
                format!("cannot build the server certificate verifier: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CertificateSecret;
    use agentgw_core::ConfigError;
    use std::path::PathBuf;

    #[test]
    fn mode_and_files_must_agree() {
        let mut config = UpstreamTlsConfig::simple("ca.pem");
        config.cert_file = Some(PathBuf::from("c.pem"));
        let err = UpstreamTls::from_config(&config).unwrap_err();
        assert_eq!(err.path(), "certFile");
        assert!(
            err.to_string().contains("only presented with mode: MUTUAL"),
            "{err}"
        );

        let mut config = UpstreamTlsConfig::mutual("ca.pem", "c.pem", "k.pem");
        config.key_file = None;
        let err = UpstreamTls::from_config(&config).unwrap_err();
        assert_eq!(err.to_string(), "keyFile: mode: MUTUAL needs keyFile");
    }

    #[test]
    fn missing_ca_file_is_named() {
        let err = UpstreamTls::from_config(&UpstreamTlsConfig::simple("/nope/ca.pem")).unwrap_err();
        assert_eq!(err.path(), "caFile");
    }

    #[test]
    fn seed_secret_names_read_the_mounted_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        for (file, text) in [
            ("ca-cert/ca.crt", cert.pem()),
            ("client-cert/tls.crt", cert.pem()),
            ("client-cert/tls.key", key.serialize_pem()),
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        // The seed's mTLS BackendConfigPolicy `tls`, as written.
        let seed = "mode: MUTUAL\nclientCertificate:\n  secretRef:\n    name: client-cert\ncaCertificates:\n  secretRef:\n    name: ca-cert\n";
        let config: UpstreamTlsConfig = serde_saphyr::from_str(seed).unwrap();
        let config = config.reload_interval(std::time::Duration::ZERO);
        let tls = UpstreamTls::from_config(&config.clone().secrets_dir(dir.path())).unwrap();
        assert!(tls.client_certificate().is_some());

        // Under the default directory the files are missing: the error names the field.
        let err = UpstreamTls::from_config(&config).unwrap_err();
        assert!(err.path().ends_with(".secretRef.name"), "{err}");
        let both =
            UpstreamTlsConfig::simple("ca.pem").ca_certificates(CertificateSecret::new("ca-cert"));
        assert_eq!(
            UpstreamTls::from_config(&both).unwrap_err().path(),
            "caCertificates"
        );
        let keyed: UpstreamTlsConfig = serde_saphyr::from_str(
            "mode: MUTUAL\nclientCertificate: {secretRef: {name: client-cert, key: tls.crt}}\n",
        )
        .unwrap();
        assert_eq!(
            UpstreamTls::from_config(&keyed).unwrap_err().path(),
            "clientCertificate.secretRef.key"
        );
    }

    #[test]
    fn simple_without_ca_uses_system_roots() {
        let mut config = UpstreamTlsConfig::simple("unused");
        config.ca_file = None;
        let tls = UpstreamTls::from_config(&config).unwrap();
        assert!(tls.client_certificate().is_none());
        assert_eq!(
            tls.client_config().alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
