//! Serde configuration for the listener (`tls`) and for upstreams (`backend.tls`).
//!
//! Field names are camelCase and unknown fields are errors, like the rest of the agentgw
//! configuration:
//!
//! ```yaml
//! tls:
//!   certFile: /etc/agentgw/tls/tls.crt     # PEM chain, leaf first
//!   keyFile: /etc/agentgw/tls/tls.key      # PEM private key (PKCS#8, PKCS#1 or SEC1)
//!   minVersion: "1.2"                      # "1.2" (default) or "1.3"
//!   cipherSuites:                          # IANA names, in order of preference
//!     - TLS_AES_256_GCM_SHA384
//!     - TLS_AES_128_GCM_SHA256
//!     - TLS_CHACHA20_POLY1305_SHA256
//!   clientAuth:                            # mutual TLS; absent: no client certificates
//!     mode: Required                       # Required | Optional
//!     caFile: /etc/agentgw/tls/clients-ca.crt
//!     crlFiles: [/etc/agentgw/tls/clients.crl]   # optional
//!   reloadInterval: 10s                    # how often files are checked for changes; 0s: never
//!   handshakeTimeout: 10s
//! ```
//!
//! ```yaml
//! backend:
//!   tls:
//!     mode: MUTUAL                         # SIMPLE | MUTUAL
//!     caFile: /etc/agentgw/upstream/ca.crt # absent: the operating system's roots
//!     certFile: /etc/agentgw/upstream/client.crt   # MUTUAL only
//!     keyFile: /etc/agentgw/upstream/client.key    # MUTUAL only
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use agentgw_core::config::SecretName;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// Default interval between checks of the certificate files.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);
/// Default limit on how long a client may take to finish the handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS termination on a listener: the `tls` block.
///
/// `certFile` and `keyFile` have no default: [`TlsConfig::new`] is the natural way to start
/// one in code, the other fields keep their documented defaults until a builder method sets
/// them. [`Default`] leaves both paths empty, which
/// [`TlsAcceptor::from_config`](crate::TlsAcceptor::from_config) refuses naming the field.
///
/// ```
/// use std::time::Duration;
/// use agentgw_tls::{ClientAuthConfig, TlsConfig, TlsVersion};
///
/// let config = TlsConfig::new("/etc/tls/tls.crt", "/etc/tls/tls.key")
///     .min_version(TlsVersion::Tls13)
///     .client_auth(ClientAuthConfig::required("/etc/tls/clients-ca.crt"))
///     .reload_interval(Duration::from_secs(30));
///
/// let yaml = r#"
/// certFile: /etc/tls/tls.crt
/// keyFile: /etc/tls/tls.key
/// minVersion: "1.3"
/// clientAuth: { mode: Required, caFile: /etc/tls/clients-ca.crt }
/// reloadInterval: 30s
/// "#;
/// assert_eq!(serde_saphyr::from_str::<TlsConfig>(yaml).unwrap(), config);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first. Required.
    pub cert_file: PathBuf,
    /// PEM file with the private key of the leaf certificate. Required.
    pub key_file: PathBuf,
    /// Lowest protocol version accepted (default 1.2).
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Cipher suites by IANA name, most preferred first. Empty (the default): every suite of
    /// the aws-lc-rs provider's default set (all forward-secret AEAD suites). Suites restrict
    /// their own protocol version only: a list naming only TLS 1.3 suites leaves the TLS 1.2
    /// defaults in place when `minVersion` is 1.2. When the list is not empty the server's
    /// order wins.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Client certificate verification (mutual TLS); none when absent (the default).
    #[serde(default)]
    pub client_auth: Option<ClientAuthConfig>,
    /// How often the certificate, key, CA and CRL files are checked for changes (default
    /// [`DEFAULT_RELOAD_INTERVAL`]); `0s` turns reloading off.
    #[serde(
        default = "default_reload_interval",
        with = "agentgw_core::config::duration"
    )]
    pub reload_interval: Duration,
    /// How long a client may take to finish the handshake before the connection is closed
    /// (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    #[serde(
        default = "default_handshake_timeout",
        with = "agentgw_core::config::duration"
    )]
    pub handshake_timeout: Duration,
}

impl Default for TlsConfig {
    /// No certificate or key (to be set), TLS 1.2 and up, default cipher suites, no client
    /// certificates, reloading every 10 s, a 10 s handshake timeout.
    fn default() -> Self {
        TlsConfig {
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            min_version: TlsVersion::default(),
            cipher_suites: Vec::new(),
            client_auth: None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl TlsConfig {
    /// A configuration serving the certificate in `cert_file` with the key in `key_file`,
    /// everything else at its default: the usual start of a configuration written in code.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        TlsConfig::default().cert_file(cert_file).key_file(key_file)
    }

    /// Sets `certFile`.
    #[must_use]
    pub fn cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cert_file = path.into();
        self
    }

    /// Sets `keyFile`.
    #[must_use]
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = path.into();
        self
    }

    /// Sets `minVersion`.
    #[must_use]
    pub fn min_version(mut self, version: TlsVersion) -> Self {
        self.min_version = version;
        self
    }

    /// Sets `cipherSuites` (IANA names, most preferred first).
    #[must_use]
    pub fn cipher_suites<I, S>(mut self, suites: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cipher_suites = suites.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `clientAuth`: client certificates are verified (mutual TLS).
    #[must_use]
    pub fn client_auth(mut self, client_auth: ClientAuthConfig) -> Self {
        self.client_auth = Some(client_auth);
        self
    }

    /// Sets `reloadInterval` (zero: no reloading).
    #[must_use]
    pub fn reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// Sets `handshakeTimeout`.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}

/// A TLS protocol version. Deserializes from `"1.2"`/`"1.3"` (also unquoted YAML numbers and
/// `TLSv1.2`/`TLSv1_3` spellings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[default]
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// The version from its textual name.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text
            .strip_prefix("TLSv")
            .or_else(|| text.strip_prefix("tlsv"))
            .or_else(|| text.strip_prefix("TLS"))
            .unwrap_or(text);
        match text.trim() {
            "1.2" | "1_2" => Some(TlsVersion::Tls12),
            "1.3" | "1_3" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        })
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct VersionVisitor;

        impl Visitor<'_> for VersionVisitor {
            type Value = TlsVersion;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TLS version, \"1.2\" or \"1.3\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TlsVersion, E> {
                TlsVersion::parse(v).ok_or_else(|| {
                    E::custom(format!(
                        "unsupported TLS version {v:?}; use \"1.2\" or \"1.3\""
                    ))
                })
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TlsVersion, E> {
                if v == 1.2 {
                    Ok(TlsVersion::Tls12)
                } else if v == 1.3 {
                    Ok(TlsVersion::Tls13)
                } else {
                    Err(E::custom(format!(
                        "unsupported TLS version {v}; use \"1.2\" or \"1.3\""
                    )))
                }
            }
        }

        de.deserialize_any(VersionVisitor)
    }
}

/// Client certificate verification: the `tls.clientAuth` block.
///
/// `caFile` has no default: start with [`ClientAuthConfig::required`] or
/// [`ClientAuthConfig::optional`]. [`Default`] (mode `Required`, no CA file) is refused by
/// [`TlsAcceptor::from_config`](crate::TlsAcceptor::from_config) naming `clientAuth.caFile`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientAuthConfig {
    /// Whether a client certificate is required.
    pub mode: ClientAuthMode,
    /// PEM bundle of the certificate authorities that issue client certificates. Required.
    pub ca_file: PathBuf,
    /// PEM (or DER) certificate revocation lists (default none). When any are given, every
    /// certificate of a client chain must be covered by one of them (revocation status unknown
    /// is refused).
    #[serde(default)]
    pub crl_files: Vec<PathBuf>,
}

impl ClientAuthConfig {
    /// Clients must present a certificate issued by a CA of `ca_file`.
    pub fn required(ca_file: impl Into<PathBuf>) -> Self {
        ClientAuthConfig::default()
            .mode(ClientAuthMode::Required)
            .ca_file(ca_file)
    }

    /// Clients may present a certificate; one they present must be issued by a CA of
    /// `ca_file`.
    pub fn optional(ca_file: impl Into<PathBuf>) -> Self {
        ClientAuthConfig::default()
            .mode(ClientAuthMode::Optional)
            .ca_file(ca_file)
    }

    /// Sets `mode`.
    #[must_use]
    pub fn mode(mut self, mode: ClientAuthMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets `caFile`.
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = path.into();
        self
    }

    /// Sets `crlFiles`.
    #[must_use]
    pub fn crl_files<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.crl_files = paths.into_iter().map(Into::into).collect();
        self
    }
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ClientAuthMode {
    /// A client without a valid certificate is refused during the handshake (the default).
    #[default]
    #[serde(alias = "required", alias = "REQUIRED")]
    Required,
    /// A client may connect without a certificate; one it presents must be valid. Requests on a
    /// connection without a certificate carry no [`PeerIdentity`](agentgw_core::identity::PeerIdentity).
    #[serde(alias = "optional", alias = "OPTIONAL")]
    Optional,
}

/// TLS towards an upstream: the `backend.tls` block (seed `BackendConfigPolicy.tls` with files
/// in place of Kubernetes secrets).
///
/// [`Default`] is [`UpstreamTlsConfig::system_roots`]: `SIMPLE`, trusting the operating
/// system's certificate authorities.
///
/// ```
/// use agentgw_tls::{UpstreamTlsConfig, UpstreamTlsMode};
///
/// let config = UpstreamTlsConfig::default()
///     .mode(UpstreamTlsMode::Mutual)
///     .ca_file("ca.crt")
///     .cert_file("client.crt")
///     .key_file("client.key");
/// assert_eq!(config, UpstreamTlsConfig::mutual("ca.crt", "client.crt", "client.key"));
/// let yaml = "mode: MUTUAL\ncaFile: ca.crt\ncertFile: client.crt\nkeyFile: client.key\n";
/// assert_eq!(serde_saphyr::from_str::<UpstreamTlsConfig>(yaml).unwrap(), config);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct UpstreamTlsConfig {
    /// `SIMPLE`: verify the server; `MUTUAL`: also present a client certificate.
    pub mode: UpstreamTlsMode,
    /// PEM bundle of the certificate authorities trusted for the upstream's certificate;
    /// absent (the default): the operating system's trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (`MUTUAL` only).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate (`MUTUAL` only).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The seed's spelling of `caFile`: a Kubernetes Secret holding the certificate
    /// authorities, `caCertificates: {secretRef: {name: internal-ca-cert}}`, read from the
    /// mounted file `SECRETS_DIR/NAME/ca.crt` (or `/KEY` with `key`); see [`SecretName`].
    #[serde(default)]
    pub ca_certificates: Option<CertificateSecret>,
    /// The seed's spelling of `certFile` and `keyFile` (`MUTUAL` only): a Kubernetes TLS
    /// Secret, `clientCertificate: {secretRef: {name: client-cert}}`, read from the mounted
    /// files `SECRETS_DIR/NAME/tls.crt` and `SECRETS_DIR/NAME/tls.key`.
    #[serde(default)]
    pub client_certificate: Option<CertificateSecret>,
    /// How often the client certificate files are checked for changes (default
    /// [`DEFAULT_RELOAD_INTERVAL`]); `0s` turns reloading off.
    #[serde(
        default = "default_reload_interval",
        with = "agentgw_core::config::duration"
    )]
    pub reload_interval: Duration,
}

impl Default for UpstreamTlsConfig {
    fn default() -> Self {
        UpstreamTlsConfig {
            mode: UpstreamTlsMode::Simple,
            ca_file: None,
            cert_file: None,
            key_file: None,
            ca_certificates: None,
            client_certificate: None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        }
    }
}

/// A certificate (or certificate authorities) in a Kubernetes Secret: `{secretRef: {name,
/// key}}`, as the seed's `BackendConfigPolicy` writes `caCertificates` and
/// `clientCertificate`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSecret {
    /// The Secret, read from the directory Kubernetes mounts it in.
    pub secret_ref: SecretName,
}

impl CertificateSecret {
    /// The Secret named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        CertificateSecret {
            secret_ref: SecretName::new(name),
        }
    }
}

impl UpstreamTlsConfig {
    /// `SIMPLE` TLS trusting the operating system's certificate authorities (what an
    /// `https://` backend without a `tls` block gets). The same as [`Default`].
    pub fn system_roots() -> Self {
        UpstreamTlsConfig::default()
    }

    /// `SIMPLE` TLS trusting the certificate authorities in `ca_file`.
    pub fn simple(ca_file: impl Into<PathBuf>) -> Self {
        UpstreamTlsConfig::default().ca_file(ca_file)
    }

    /// `MUTUAL` TLS trusting `ca_file` and presenting the certificate in `cert_file`/`key_file`.
    pub fn mutual(
        ca_file: impl Into<PathBuf>,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        UpstreamTlsConfig::default()
            .mode(UpstreamTlsMode::Mutual)
            .ca_file(ca_file)
            .cert_file(cert_file)
            .key_file(key_file)
    }

    /// Sets `mode`.
    #[must_use]
    pub fn mode(mut self, mode: UpstreamTlsMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets `caFile`.
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sets `certFile` (`MUTUAL` only).
    #[must_use]
    pub fn cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cert_file = Some(path.into());
        self
    }

    /// Sets `keyFile` (`MUTUAL` only).
    #[must_use]
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// Sets `reloadInterval` (zero: no reloading).
    #[must_use]
    pub fn reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// Sets `caCertificates`: the certificate authorities from a Kubernetes Secret.
    #[must_use]
    pub fn ca_certificates(mut self, secret: CertificateSecret) -> Self {
        self.ca_certificates = Some(secret);
        self
    }

    /// Sets `clientCertificate`: the client certificate from a Kubernetes TLS Secret.
    #[must_use]
    pub fn client_certificate(mut self, secret: CertificateSecret) -> Self {
        self.client_certificate = Some(secret);
        self
    }

    /// Reads the Secrets of `caCertificates` and `clientCertificate` from `dir` (where they
    /// are mounted) instead of [`DEFAULT_SECRETS_DIR`](agentgw_core::config::DEFAULT_SECRETS_DIR).
    #[must_use]
    pub fn secrets_dir(mut self, dir: &std::path::Path) -> Self {
        for secret in [&mut self.ca_certificates, &mut self.client_certificate]
            .into_iter()
            .flatten()
        {
            secret.secret_ref.dir = Some(dir.to_path_buf());
        }
        self
    }
}

/// The upstream TLS mode, spelled as in the seed (`SIMPLE`, `MUTUAL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpstreamTlsMode {
    /// Verify the upstream's certificate (the default).
    #[default]
    Simple,
    /// Verify the upstream and present a client certificate.
    Mutual,
}

fn default_reload_interval() -> Duration {
    DEFAULT_RELOAD_INTERVAL
}

fn default_handshake_timeout() -> Duration {
    DEFAULT_HANDSHAKE_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn listener_config_reads_the_documented_shape() {
        let config: TlsConfig = yaml(
            r#"
certFile: /tls/tls.crt
keyFile: /tls/tls.key
minVersion: "1.3"
cipherSuites: [TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]
clientAuth:
  mode: Required
  caFile: /tls/ca.crt
  crlFiles: [/tls/a.crl]
reloadInterval: 30s
handshakeTimeout: 5s
"#,
        )
        .unwrap();
        assert_eq!(config.cert_file, PathBuf::from("/tls/tls.crt"));
        assert_eq!(config.min_version, TlsVersion::Tls13);
        assert_eq!(config.cipher_suites.len(), 2);
        let auth = config.client_auth.unwrap();
        assert_eq!(auth.mode, ClientAuthMode::Required);
        assert_eq!(auth.crl_files, vec![PathBuf::from("/tls/a.crl")]);
        assert_eq!(config.reload_interval, Duration::from_secs(30));
        assert_eq!(config.handshake_timeout, Duration::from_secs(5));
    }

    #[test]
    fn defaults_are_tls12_no_client_auth_and_reloading() {
        let config: TlsConfig = yaml("certFile: a.crt\nkeyFile: a.key\n").unwrap();
        assert_eq!(config, TlsConfig::new("a.crt", "a.key"));
        assert_eq!(config.min_version, TlsVersion::Tls12);
        assert_eq!(config.reload_interval, DEFAULT_RELOAD_INTERVAL);
    }

    #[test]
    fn min_version_accepts_unquoted_numbers_and_refuses_others() {
        let config: TlsConfig = yaml("certFile: a\nkeyFile: b\nminVersion: 1.3\n").unwrap();
        assert_eq!(config.min_version, TlsVersion::Tls13);
        let config: TlsConfig = yaml("certFile: a\nkeyFile: b\nminVersion: 1.2\n").unwrap();
        assert_eq!(config.min_version, TlsVersion::Tls12);
        let err = yaml::<TlsConfig>("certFile: a\nkeyFile: b\nminVersion: \"1.1\"\n").unwrap_err();
        assert!(err.contains("unsupported TLS version"), "{err}");
        let err = yaml::<TlsConfig>("certFile: a\nkeyFile: b\nminVersion: 1.0\n").unwrap_err();
        assert!(err.contains("unsupported TLS version"), "{err}");
        assert_eq!(TlsVersion::parse("TLSv1.3"), Some(TlsVersion::Tls13));
        assert_eq!(TlsVersion::parse("TLSv1_2"), Some(TlsVersion::Tls12));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = yaml::<TlsConfig>("certFile: a\nkeyFile: b\ncert_file: c\n").unwrap_err();
        assert!(err.contains("cert_file"), "{err}");
        let err = yaml::<TlsConfig>(
            "certFile: a\nkeyFile: b\nclientAuth: {mode: Required, caFile: c, ca: d}\n",
        )
        .unwrap_err();
        assert!(err.contains("ca"), "{err}");
        let err = yaml::<UpstreamTlsConfig>("mode: SIMPLE\ncaCertificates: x\n").unwrap_err();
        assert!(err.contains("caCertificates"), "{err}");
    }

    #[test]
    fn client_auth_mode_spellings() {
        let auth: ClientAuthConfig = yaml("mode: optional\ncaFile: ca.pem\n").unwrap();
        assert_eq!(auth.mode, ClientAuthMode::Optional);
        assert!(yaml::<ClientAuthConfig>("mode: Sometimes\ncaFile: ca.pem\n").is_err());
    }

    #[test]
    fn upstream_config_reads_seed_modes() {
        let config: UpstreamTlsConfig =
            yaml("mode: MUTUAL\ncaFile: ca.crt\ncertFile: c.crt\nkeyFile: c.key\n").unwrap();
        assert_eq!(
            config,
            UpstreamTlsConfig::mutual("ca.crt", "c.crt", "c.key")
        );
        let config: UpstreamTlsConfig = yaml("mode: SIMPLE\n").unwrap();
        assert_eq!(config.mode, UpstreamTlsMode::Simple);
        assert_eq!(config.ca_file, None);
        assert!(yaml::<UpstreamTlsConfig>("mode: simple\n").is_err());
    }

    #[test]
    fn durations_use_the_shared_rule() {
        let err = yaml::<TlsConfig>("certFile: a\nkeyFile: b\nreloadInterval: soon\n").unwrap_err();
        assert!(err.contains("invalid duration `soon`"), "{err}");
        assert!(err.contains("expected e.g."), "{err}");
        // A number is seconds, as everywhere in agentgw.
        let config: TlsConfig =
            yaml("certFile: a\nkeyFile: b\nreloadInterval: 0\nhandshakeTimeout: 2.5\n").unwrap();
        assert_eq!(config.reload_interval, Duration::ZERO);
        assert_eq!(config.handshake_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn builders_set_every_field() {
        let config = TlsConfig::default()
            .cert_file("c.crt")
            .key_file("c.key")
            .min_version(TlsVersion::Tls13)
            .cipher_suites(["TLS_AES_128_GCM_SHA256"])
            .client_auth(ClientAuthConfig::optional("ca.crt").crl_files(["a.crl"]))
            .reload_interval(Duration::ZERO)
            .handshake_timeout(Duration::from_secs(3));
        let parsed: TlsConfig = yaml(
            "certFile: c.crt\nkeyFile: c.key\nminVersion: \"1.3\"\ncipherSuites: [TLS_AES_128_GCM_SHA256]\n\
             clientAuth: {mode: Optional, caFile: ca.crt, crlFiles: [a.crl]}\nreloadInterval: 0s\nhandshakeTimeout: 3s\n",
        )
        .unwrap();
        assert_eq!(config, parsed);
        assert_eq!(ClientAuthConfig::default().mode, ClientAuthMode::Required);
        assert_eq!(
            UpstreamTlsConfig::default(),
            UpstreamTlsConfig::system_roots()
        );
        assert_eq!(
            UpstreamTlsConfig::default()
                .reload_interval(Duration::ZERO)
                .reload_interval,
            Duration::ZERO
        );
    }
}
