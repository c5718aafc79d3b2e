//! From a compact JWS to verified claims.
//!
//! The checks run cheapest first, and nothing is decoded before the size check:
//!
//! 1. size (`maxTokenBytes`), then the verified-token cache;
//! 2. shape: exactly three base64url (no padding) parts, a JSON header and a JSON object of
//!    claims;
//! 3. header: `crit` is rejected (no extension is understood); `alg` must name a supported
//!    algorithm exactly (`none` in any spelling is not one); `jwk`, `jku`, `x5u`, `x5c` are never
//!    read, so a token cannot bring or point at its own key;
//! 4. the provider whose `issuer` equals `iss`;
//! 5. the key: by `kid`, or the only key that allows `alg` when the token names none; the key's
//!    type decides which algorithms it verifies (an RSA key never verifies HS256);
//! 6. the signature, with the key parsed once when it was loaded (aws-lc-rs);
//! 7. claims: `exp` (required by default), `nbf`, `iat` (each a NumericDate between 1970 and
//!    the end of year 9999, checked with the leeway), the provider's `maxTokenLifetime`, and
//!    `aud`.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use agentgw_core::identity::JwtClaims;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::cache::{Entry, TokenCache, TokenDigest};
use super::config::{InlineJwks, JwksSource, JwtConfig, LocalJwks};
use super::keys::{KeySet, Selection, parse_algorithm};
use crate::error::Error;
use crate::secret::Loaded;
use crate::unix_now;

/// A request's wait for a key fetch in flight.
pub(crate) type WaitFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How often a local JWKS or HMAC secret file is checked for changes.
const FILE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a verified token without `exp` (allowed only with `requireExpiration: false`) is
/// remembered.
const UNEXPIRING_CACHE_SECS: u64 = 600;
/// The largest NumericDate accepted in `exp`, `nbf` and `iat`: 9999-12-31T23:59:59Z, the last
/// second a four-digit year can name. Anything later is no date an issuer means, only a way to
/// make a token that never expires.
const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// Why a token was not accepted.
///
/// [`reason`](JwtError::reason) is the short label used in logs and in the metric
/// `agentgateway_rejected_requests_total{layer="jwt", reason}`. Clients never see it: every
/// invalid token gets the same `401` with `WWW-Authenticate: Bearer error="invalid_token"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Longer than `maxTokenBytes`.
    #[error("token larger than the configured limit")]
    TooLarge,
    /// Not three base64url parts, or the header or claims are not JSON objects.
    #[error("token is not a well-formed compact JWS")]
    Malformed,
    /// The request carries more than one token.
    #[error("more than one token in the request")]
    MultipleTokens,
    /// `alg` names no supported algorithm (`none` in any spelling included).
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The header has `crit`: no extension is understood, so it cannot be honoured.
    #[error("critical header extensions are not supported")]
    CriticalHeader,
    /// No `iss` claim (or not a string).
    #[error("token has no issuer")]
    MissingIssuer,
    /// `iss` matches no configured provider.
    #[error("issuer not accepted")]
    UnknownIssuer,
    /// No key has the token's `kid` (or, without `kid`, no key allows its algorithm).
    #[error("no key for this token")]
    UnknownKey,
    /// The token names no `kid` and several keys could verify it.
    #[error("several keys could verify this token")]
    AmbiguousKey,
    /// The key the token names does not allow the token's algorithm.
    #[error("the key does not allow the token's algorithm")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("signature does not verify")]
    InvalidSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// No `exp` while expiration is required.
    #[error("token has no expiration")]
    MissingExpiration,
    /// `exp`, `nbf` or `iat` is not a JSON number.
    #[error("a time claim is not a number")]
    InvalidClaim,
    /// `exp`, `nbf` or `iat` is a number outside the dates a token can carry: negative, or
    /// later than 9999-12-31T23:59:59Z (`253402300799`), such as `1e300`.
    #[error("a time claim is out of range")]
    TimeClaimOutOfRange,
    /// The token's lifetime (`exp - iat`, or `exp - now` without `iat`) is longer than the
    /// provider's `maxTokenLifetime`.
    #[error("token lifetime longer than the configured maximum")]
    LifetimeTooLong,
    /// `aud` does not contain an accepted audience.
    #[error("audience not accepted")]
    InvalidAudience,
    /// The issuer's keys have not been fetched yet.
    #[error("the issuer's keys are not available")]
    KeysUnavailable,
}

impl JwtError {
    /// A short, fixed label (`"expired"`, `"invalid_signature"`, ...) for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::TooLarge => "token_too_large",
            JwtError::Malformed => "malformed",
            JwtError::MultipleTokens => "multiple_tokens",
            JwtError::UnsupportedAlgorithm => "unsupported_algorithm",
            JwtError::CriticalHeader => "critical_header",
            JwtError::MissingIssuer => "missing_issuer",
            JwtError::UnknownIssuer => "unknown_issuer",
            JwtError::UnknownKey => "unknown_key",
            JwtError::AmbiguousKey => "ambiguous_key",
            JwtError::AlgorithmMismatch => "algorithm_mismatch",
            JwtError::InvalidSignature => "invalid_signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::IssuedInFuture => "issued_in_future",
            JwtError::MissingExpiration => "missing_expiration",
            JwtError::InvalidClaim => "invalid_claim",
            JwtError::TimeClaimOutOfRange => "time_claim_out_of_range",
            JwtError::LifetimeTooLong => "lifetime_too_long",
            JwtError::InvalidAudience => "invalid_audience",
            JwtError::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// The result of checking one token.
pub(crate) enum Verdict {
    Valid(JwtClaims),
    Invalid(JwtError),
    /// The keys may be out of date: wait for the fetch, then check again without waiting.
    Refetch(WaitFuture),
}

impl From<JwtError> for Verdict {
    fn from(error: JwtError) -> Self {
        Verdict::Invalid(error)
    }
}

/// Where one provider's keys are right now.
pub(crate) enum KeySource {
    Loaded(Loaded<KeySet>),
    #[cfg(feature = "remote-jwks")]
    Remote(std::sync::Arc<super::remote::RemoteKeys>),
}

impl KeySource {
    fn build(source: &JwksSource, field: &str) -> Result<Self, Error> {
        let non_empty = |set: KeySet| {
            if set.len() == 0 {
                Err("no usable verification key".to_owned())
            } else {
                Ok(set)
            }
        };
        match source {
            JwksSource::Local(LocalJwks::File(path)) => {
                Ok(KeySource::Loaded(Loaded::File(crate::reload::watch_file(
                    path,
                    FILE_CHECK_INTERVAL,
                    "JWKS",
                    &format!("{field}.local.file"),
                    move |bytes| KeySet::from_document(bytes).and_then(non_empty),
                )?)))
            }
            JwksSource::Local(LocalJwks::Inline(inline)) => {
                let set = match inline {
                    InlineJwks::Text(text) => KeySet::from_document(text.as_bytes()),
                    InlineJwks::Document(document) => serde_json::to_vec(document)
                        .map_err(|e| e.to_string())
                        .and_then(|bytes| KeySet::from_jwks(&bytes)),
                }
                .and_then(non_empty)
                .map_err(|reason| Error::invalid(format!("{field}.local.inline"), reason))?;
                Ok(KeySource::Loaded(Loaded::Fixed(std::sync::Arc::new(set))))
            }
            JwksSource::HmacSecret(secret) => Ok(KeySource::Loaded(Loaded::load(
                secret,
                FILE_CHECK_INTERVAL,
                "HMAC secret",
                &format!("{field}.hmacSecret"),
                KeySet::hmac,
            )?)),
            #[cfg(feature = "remote-jwks")]
            JwksSource::Remote(remote) => Ok(KeySource::Remote(super::remote::RemoteKeys::start(
                remote,
                &format!("{field}.remote"),
            )?)),
            #[cfg(not(feature = "remote-jwks"))]
            JwksSource::Remote(remote) => {
                // Report a wrong URL before the missing feature.
                remote.resolve_url().map_err(|(sub, reason)| {
                    Error::invalid(format!("{field}.remote.{sub}"), reason)
                })?;
                Err(Error::FeatureDisabled {
                    field: format!("{field}.remote"),
                    feature: "remote-jwks",
                })
            }
        }
    }

    fn with_keys<R>(&self, f: impl FnOnce(Option<&KeySet>) -> R) -> R {
        match self {
            KeySource::Loaded(loaded) => f(Some(&loaded.get())),
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => remote.with_keys(f),
        }
    }

    fn epoch(&self) -> Option<u64> {
        self.with_keys(|keys| keys.map(KeySet::epoch))
    }

    fn refetch(&self) -> Option<WaitFuture> {
        match self {
            KeySource::Loaded(_) => None,
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => remote.refetch(),
        }
    }

    fn is_ready(&self) -> bool {
        match self {
            KeySource::Loaded(_) => true,
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => remote.is_ready(),
        }
    }

    async fn ready(&self) {
        match self {
            KeySource::Loaded(_) => {}
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => remote.ready().await,
        }
    }

    fn describe(&self) -> String {
        match self {
            KeySource::Loaded(Loaded::Fixed(_)) => "fixed".to_owned(),
            KeySource::Loaded(Loaded::File(file)) => {
                format!("file:{}", crate::reload::file_of(file).display())
            }
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => format!("remote:{}", remote.url()),
        }
    }
}

struct Provider {
    issuer: Box<str>,
    audiences: Option<Box<[Box<str>]>>,
    max_lifetime: Option<std::time::Duration>,
    keys: KeySource,
}

/// Checks tokens against the configured providers. Shared by every clone of the layer.
pub(crate) struct Verifier {
    providers: Box<[Provider]>,
    leeway: u64,
    require_exp: bool,
    max_token_bytes: usize,
    cache: TokenCache,
    cache_enabled: bool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let providers: Vec<_> = self
            .providers
            .iter()
            .map(|p| (&*p.issuer, p.keys.describe()))
            .collect();
        f.debug_struct("Verifier")
            .field("providers", &providers)
            .field("leeway", &self.leeway)
            .field("require_exp", &self.require_exp)
            .field("max_token_bytes", &self.max_token_bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(de)?;
    Ok(true)
}

impl Verifier {
    pub(crate) fn new(config: &JwtConfig) -> Result<Self, Error> {
        if config.providers.is_empty() {
            return Err(Error::invalid(
                "providers",
                "at least one provider is required",
            ));
        }
        if config.max_token_bytes == 0 {
            return Err(Error::invalid("maxTokenBytes", "must be greater than zero"));
        }
        let mut providers = Vec::with_capacity(config.providers.len());
        for (i, provider) in config.providers.iter().enumerate() {
            let field = format!("providers[{i}]");
            if provider.issuer.is_empty() {
                return Err(Error::invalid(
                    format!("{field}.issuer"),
                    "must not be empty",
                ));
            }
            if config.providers[..i]
                .iter()
                .any(|other| other.issuer == provider.issuer)
            {
                return Err(Error::invalid(
                    format!("{field}.issuer"),
                    format!("issuer {:?} is configured twice", provider.issuer),
                ));
            }
            let audiences = match &provider.audiences {
                Some(list) if list.is_empty() || list.iter().any(String::is_empty) => {
                    return Err(Error::invalid(
                        format!("{field}.audiences"),
                        "must list non-empty audiences; omit it to accept any aud",
                    ));
                }
                Some(list) => Some(list.iter().map(|a| a.as_str().into()).collect()),
                None => None,
            };
            if provider.max_token_lifetime == Some(std::time::Duration::ZERO) {
                return Err(Error::invalid(
                    format!("{field}.maxTokenLifetime"),
                    "must be greater than zero; omit it for no limit",
                ));
            }
            providers.push(Provider {
                issuer: provider.issuer.as_str().into(),
                audiences,
                max_lifetime: provider.max_token_lifetime,
                keys: KeySource::build(&provider.jwks, &format!("{field}.jwks"))?,
            });
        }
        Ok(Verifier {
            providers: providers.into(),
            leeway: config.leeway.as_secs(),
            require_exp: config.require_expiration,
            max_token_bytes: config.max_token_bytes,
            cache: TokenCache::new(config.cache_size),
            cache_enabled: config.cache_size > 0,
        })
    }

    /// Whether every provider has keys.
    pub(crate) fn is_ready(&self) -> bool {
        self.providers.iter().all(|p| p.keys.is_ready())
    }

    /// The remote key sets and their state (local keys are not dependencies).
    pub(crate) fn dependencies(&self) -> Vec<agentgw_core::health::Dependency> {
        #[cfg(feature = "remote-jwks")]
        {
            self.providers
                .iter()
                .filter_map(|p| match &p.keys {
                    KeySource::Remote(remote) => Some(agentgw_core::health::Dependency::new(
                        "jwks",
                        remote.url(),
                        remote.state(),
                    )),
                    KeySource::Loaded(_) => None,
                })
                .collect()
        }
        #[cfg(not(feature = "remote-jwks"))]
        {
            Vec::new()
        }
    }

    /// Resolves once every provider has keys.
    pub(crate) async fn ready(&self) {
        for provider in &*self.providers {
            provider.keys.ready().await;
        }
    }

    /// Checks `token`. With `may_wait`, a token whose keys may have changed (unknown `kid`,
    /// keys not fetched yet) asks the caller to wait for a fetch and call again without waiting.
    pub(crate) fn verify(&self, token: &str, may_wait: bool) -> Verdict {
        if token.len() > self.max_token_bytes {
            return JwtError::TooLarge.into();
        }
        let now = unix_now();
        let digest = self.cache_enabled.then(|| TokenDigest::of(token));
        if let Some(digest) = &digest
            && let Some(entry) = self.cache.get(digest, now, |index| {
                self.providers.get(index).and_then(|p| p.keys.epoch())
            })
        {
            return Verdict::Valid(entry.claims);
        }
        match self.verify_uncached(token, now, may_wait) {
            Ok(entry) => {
                let claims = entry.claims.clone();
                if let Some(digest) = digest {
                    self.cache.insert(digest, entry, now);
                }
                Verdict::Valid(claims)
            }
            Err(verdict) => verdict,
        }
    }

    fn verify_uncached(&self, token: &str, now: u64, may_wait: bool) -> Result<Entry, Verdict> {
        let (message, signature) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
        let (header_part, claims_part) = message.split_once('.').ok_or(JwtError::Malformed)?;
        if header_part.is_empty() || claims_part.is_empty() || claims_part.contains('.') {
            return Err(JwtError::Malformed.into());
        }
        let header_bytes = URL_SAFE_NO_PAD
            .decode(header_part)
            .map_err(|_| JwtError::Malformed)?;
        let header: JoseHeader<'_> =
            serde_json::from_slice(&header_bytes).map_err(|_| JwtError::Malformed)?;
        if header.crit {
            return Err(JwtError::CriticalHeader.into());
        }
        let algorithm = parse_algorithm(&header.alg).ok_or(JwtError::UnsupportedAlgorithm)?;
        if signature.is_empty() {
            return Err(JwtError::InvalidSignature.into());
        }
        let claims_bytes = URL_SAFE_NO_PAD
            .decode(claims_part)
            .map_err(|_| JwtError::Malformed)?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&claims_bytes).map_err(|_| JwtError::Malformed)?;
        let issuer = match claims.get("iss") {
            Some(Value::String(issuer)) => issuer,
            _ => return Err(JwtError::MissingIssuer.into()),
        };
        let (index, provider) = self
            .providers
            .iter()
            .enumerate()
            .find(|(_, p)| *p.issuer == **issuer)
            .ok_or(JwtError::UnknownIssuer)?;

        let kid = header.kid.as_deref();
        let checked = provider.keys.with_keys(|keys| {
            let Some(keys) = keys else {
                return Err(JwtError::KeysUnavailable);
            };
            let key = match keys.select(kid, algorithm) {
                Selection::Key(key) => key,
                Selection::Unknown => return Err(JwtError::UnknownKey),
                Selection::Ambiguous => return Err(JwtError::AmbiguousKey),
                Selection::AlgorithmMismatch => return Err(JwtError::AlgorithmMismatch),
            };
            let signature = URL_SAFE_NO_PAD
                .decode(signature)
                .map_err(|_| JwtError::InvalidSignature)?;
            if key.verify(algorithm, message.as_bytes(), &signature) {
                Ok(keys.epoch())
            } else {
                Err(JwtError::InvalidSignature)
            }
        });
        let epoch = match checked {
            Ok(epoch) => epoch,
            Err(error @ (JwtError::KeysUnavailable | JwtError::UnknownKey))
                if may_wait && (error == JwtError::KeysUnavailable || kid.is_some()) =>
            {
                return Err(match provider.keys.refetch() {
                    Some(wait) => Verdict::Refetch(wait),
                    None => error.into(),
                });
            }
            Err(error) => return Err(error.into()),
        };
        let expires_at = self.check_claims(&claims, provider, now)?;
        Ok(Entry {
            claims: JwtClaims::new(claims),
            provider: index,
            epoch,
            expires_at,
        })
    }

    /// Checks the time claims and `aud`; returns when the token stops being accepted.
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        provider: &Provider,
        now: u64,
    ) -> Result<u64, JwtError> {
        let exp = time_claim(claims, "exp")?;
        let nbf = time_claim(claims, "nbf")?;
        let iat = time_claim(claims, "iat")?;
        match exp {
            // A token that never expires outlives any maximum lifetime.
            None if self.require_exp || provider.max_lifetime.is_some() => {
                return Err(JwtError::MissingExpiration);
            }
            Some(exp) if now >= exp.saturating_add(self.leeway) => return Err(JwtError::Expired),
            _ => {}
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(JwtError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(self.leeway)) {
            return Err(JwtError::IssuedInFuture);
        }
        if let (Some(max), Some(exp)) = (provider.max_lifetime, exp) {
            let too_long = match iat {
                // Both instants come from the issuer: no clock skew between them.
                Some(iat) => secs(exp.saturating_sub(iat)) > max,
                // Measured on our clock: the issuer's may be ahead by up to the leeway.
                None => secs(exp.saturating_sub(now)) > max.saturating_add(secs(self.leeway)),
            };
            if too_long {
                return Err(JwtError::LifetimeTooLong);
            }
        }
        if let Some(accepted) = &provider.audiences {
            let accepts = |aud: &str| accepted.iter().any(|a| **a == *aud);
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => accepts(aud),
                Some(Value::Array(list)) => list.iter().any(|v| v.as_str().is_some_and(accepts)),
                _ => false,
            };
            if !ok {
                return Err(JwtError::InvalidAudience);
            }
        }
        Ok(match exp {
            Some(exp) => exp.saturating_add(self.leeway),
            None => now.saturating_add(UNEXPIRING_CACHE_SECS),
        })
    }
}

fn secs(secs: u64) -> std::time::Duration {
    std::time::Duration::from_secs(secs)
}

/// A NumericDate claim (RFC 7519 section 2): absent, or a number of seconds from
/// 0 to [`MAX_NUMERIC_DATE`].
///
/// Fractional seconds, which a NumericDate may carry, are accepted and truncated toward the
/// past (`1700000000.9` is `1700000000`): a token then expires up to a second early, and its
/// `nbf`/`iat` move up to a second earlier, far inside the leeway. A number that is negative,
/// later than year 9999 or too large for any integer (`1e300`) is
/// [`JwtError::TimeClaimOutOfRange`]; a value that is not a number is [`JwtError::InvalidClaim`].
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, JwtError> {
    let number = match claims.get(name) {
        None => return Ok(None),
        Some(Value::Number(number)) => number,
        Some(_) => return Err(JwtError::InvalidClaim),
    };
    let seconds = match number.as_u64() {
        Some(seconds) => seconds,
        // Negative integers and every float; `f64 as u64` saturates, so a huge float becomes
        // `u64::MAX` and fails the range check below instead of wrapping.
        None => match number.as_f64() {
            Some(float) if float.is_finite() && float >= 0.0 => float as u64,
            _ => return Err(JwtError::TimeClaimOutOfRange),
        },
    };
    if seconds > MAX_NUMERIC_DATE {
        return Err(JwtError::TimeClaimOutOfRange);
    }
    Ok(Some(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ConfigError as _;
    use serde_json::json;

    use super::super::JwtProvider;

    const SECRET: [u8; 32] = [7u8; 32];
    const ISSUER: &str = "https://issuer";

    /// A verifier for one HMAC provider of [`ISSUER`], shaped by `provider`, and the directory
    /// holding its secret file.
    fn hmac_verifier_with(
        provider: impl FnOnce(JwtProvider) -> JwtProvider,
        config: impl FnOnce(JwtConfig) -> JwtConfig,
    ) -> (Verifier, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, SECRET).unwrap();
        let config = config(JwtConfig::default().provider(provider(JwtProvider::new(
            ISSUER,
            JwksSource::hmac_secret(crate::SecretRef::File(path)),
        ))));
        // The secret file is watched on the runtime the verifier is built in; this one is
        // dropped at once, so the key stays as loaded.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        (Verifier::new(&config).unwrap(), dir)
    }

    /// A verifier with one HMAC key and a valid token for it (built once: proptest runs many
    /// cases).
    fn hmac_verifier() -> &'static (Verifier, String, tempfile::TempDir) {
        static VERIFIER: std::sync::LazyLock<(Verifier, String, tempfile::TempDir)> =
            std::sync::LazyLock::new(|| {
                let (verifier, dir) = hmac_verifier_with(|p| p, |c| c);
                let token = sign(&json!({"iss": ISSUER, "sub": "p", "exp": unix_now() + 600}));
                (verifier, token, dir)
            });
        &VERIFIER
    }

    /// An HS256 token over `claims` exactly as written (numbers keep their spelling).
    fn sign_text(claims: &str) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(&SECRET),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{signature}")
    }

    fn sign(claims: &Value) -> String {
        sign_text(&claims.to_string())
    }

    fn accepted(verifier: &Verifier, token: &str) -> bool {
        matches!(verifier.verify(token, false), Verdict::Valid(_))
    }

    /// What the verifier says about `token`.
    fn outcome(verifier: &Verifier, token: &str) -> Result<(), JwtError> {
        match verifier.verify(token, false) {
            Verdict::Valid(_) => Ok(()),
            Verdict::Invalid(error) => Err(error),
            Verdict::Refetch(_) => panic!("local keys never ask for a fetch"),
        }
    }

    /// Valid claims (issued now, valid ten minutes) with `changes` applied; a `null` removes
    /// the member.
    fn claims_with(changes: Value) -> Value {
        let now = unix_now();
        let mut claims = json!({"iss": ISSUER, "sub": "p", "iat": now, "exp": now + 600});
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    proptest::proptest! {
        #[test]
        fn any_single_character_change_is_rejected(
            index in 0usize..4096,
            replacement in proptest::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".to_vec()
            ),
        ) {
            let (verifier, token, _) = hmac_verifier();
            proptest::prop_assert!(accepted(verifier, token));
            let index = index % token.len();
            let mut bytes = token.clone().into_bytes();
            proptest::prop_assume!(bytes[index] != replacement);
            bytes[index] = replacement;
            let mutated = String::from_utf8(bytes).unwrap();
            proptest::prop_assert!(!accepted(verifier, &mutated), "accepted {mutated}");
        }

        #[test]
        fn arbitrary_input_is_rejected_without_panicking(input in ".{0,300}") {
            let (verifier, _, _) = hmac_verifier();
            proptest::prop_assert!(!accepted(verifier, &input));
        }

        /// Any JSON number in `exp`, as written in the token: a value outside 0 ..= year 9999
        /// is refused for that reason (or as malformed JSON when it overflows even `f64`), and
        /// one inside is either accepted or expired. Nothing panics.
        #[test]
        fn any_exp_number_is_in_range_or_refused(
            text in "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,3})?",
        ) {
            let (verifier, _, _) = hmac_verifier();
            let token = sign_text(&format!(r#"{{"iss":"{ISSUER}","sub":"p","exp":{text}}}"#));
            let value: f64 = text.parse().unwrap();
            let verdict = outcome(verifier, &token);
            if value.is_infinite() {
                proptest::prop_assert!(
                    matches!(verdict, Err(JwtError::Malformed | JwtError::TimeClaimOutOfRange)),
                    "{text}: {verdict:?}"
                );
            } else if value < 0.0 || value.trunc() > MAX_NUMERIC_DATE as f64 {
                proptest::prop_assert_eq!(verdict, Err(JwtError::TimeClaimOutOfRange), "{}", text);
            } else {
                proptest::prop_assert!(
                    matches!(verdict, Ok(()) | Err(JwtError::Expired)),
                    "{text}: {verdict:?}"
                );
            }
        }
    }

    #[test]
    fn time_claims_must_be_numbers() {
        let claims = |v: Value| json!({ "exp": v }).as_object().unwrap().clone();
        assert_eq!(time_claim(&claims(json!(5)), "exp"), Ok(Some(5)));
        assert_eq!(time_claim(&claims(json!(5.9)), "exp"), Ok(Some(5)));
        assert_eq!(
            time_claim(&claims(json!("5")), "exp"),
            Err(JwtError::InvalidClaim)
        );
        assert_eq!(
            time_claim(&claims(Value::Null), "exp"),
            Err(JwtError::InvalidClaim)
        );
        assert_eq!(
            time_claim(&claims(json!(true)), "exp"),
            Err(JwtError::InvalidClaim)
        );
        assert_eq!(time_claim(&claims(json!(1)), "nbf"), Ok(None));
    }

    #[test]
    fn time_claims_must_be_dates_up_to_year_9999() {
        let parse = |text: &str| {
            let claims: Map<String, Value> =
                serde_json::from_str(&format!(r#"{{"exp": {text}}}"#)).unwrap();
            time_claim(&claims, "exp")
        };
        assert_eq!(parse("0"), Ok(Some(0)));
        assert_eq!(parse("-0"), Ok(Some(0)));
        assert_eq!(parse("1700000000.5"), Ok(Some(1_700_000_000)));
        assert_eq!(parse("1.7e9"), Ok(Some(1_700_000_000)));
        assert_eq!(parse("253402300799"), Ok(Some(MAX_NUMERIC_DATE)));
        assert_eq!(parse("253402300799.9"), Ok(Some(MAX_NUMERIC_DATE)));
        for absurd in [
            "1e300",
            "253402300800",
            "2.534023008e11",
            "18446744073709551615",
            "100000000000000000000000000",
            "-1",
            "-0.5",
            "-1e300",
            "-9223372036854775808",
        ] {
            assert_eq!(
                parse(absurd),
                Err(JwtError::TimeClaimOutOfRange),
                "{absurd}"
            );
        }
    }

    #[test]
    fn absurd_time_claims_are_refused() {
        let (verifier, _dir) = hmac_verifier_with(|p| p, |c| c);
        assert_eq!(outcome(&verifier, &sign(&claims_with(json!({})))), Ok(()));
        // Without `maxTokenLifetime`, a token valid until the end of year 9999 is still a date.
        let last_second = claims_with(json!({"exp": MAX_NUMERIC_DATE}));
        assert_eq!(outcome(&verifier, &sign(&last_second)), Ok(()));
        let fractional = claims_with(json!({"exp": unix_now() as f64 + 600.5}));
        assert_eq!(outcome(&verifier, &sign(&fractional)), Ok(()));

        let refused = [
            (
                "exp 1e300",
                json!({"exp": 1e300}),
                JwtError::TimeClaimOutOfRange,
            ),
            (
                "exp after year 9999",
                json!({"exp": MAX_NUMERIC_DATE + 1}),
                JwtError::TimeClaimOutOfRange,
            ),
            (
                "exp u64::MAX",
                json!({"exp": u64::MAX}),
                JwtError::TimeClaimOutOfRange,
            ),
            (
                "negative exp",
                json!({"exp": -1}),
                JwtError::TimeClaimOutOfRange,
            ),
            (
                "nbf 1e300",
                json!({"nbf": 1e300}),
                JwtError::TimeClaimOutOfRange,
            ),
            (
                "negative nbf",
                json!({"nbf": -86400}),
                JwtError::TimeClaimOutOfRange,
            ),
            (
                "iat 1e20",
                json!({"iat": 1e20}),
                JwtError::TimeClaimOutOfRange,
            ),
            (
                "negative iat",
                json!({"iat": -5}),
                JwtError::TimeClaimOutOfRange,
            ),
            (
                "exp as a string",
                json!({"exp": "4102444800"}),
                JwtError::InvalidClaim,
            ),
            ("iat as a list", json!({"iat": [1]}), JwtError::InvalidClaim),
        ];
        for (name, changes, expected) in refused {
            let token = sign(&claims_with(changes));
            assert_eq!(outcome(&verifier, &token), Err(expected), "{name}");
        }
        // The text form a JSON encoder never writes but a forger can.
        let token = sign_text(&format!(r#"{{"iss":"{ISSUER}","sub":"p","exp":1e300}}"#));
        assert_eq!(
            outcome(&verifier, &token),
            Err(JwtError::TimeClaimOutOfRange)
        );
    }

    #[test]
    fn lifetime_over_the_maximum_is_refused() {
        let hour = std::time::Duration::from_secs(3600);
        let (verifier, _dir) = hmac_verifier_with(|p| p.max_token_lifetime(hour), |c| c);
        let now = unix_now();
        let check = |changes: Value| outcome(&verifier, &sign(&claims_with(changes)));

        // exp - iat.
        assert_eq!(check(json!({})), Ok(()), "ten minutes");
        assert_eq!(
            check(json!({"iat": now, "exp": now + 3600})),
            Ok(()),
            "exactly one hour"
        );
        assert_eq!(
            check(json!({"iat": now, "exp": now + 3601})),
            Err(JwtError::LifetimeTooLong)
        );
        assert_eq!(
            check(json!({"iat": now - 7200, "exp": now + 600})),
            Err(JwtError::LifetimeTooLong),
            "a two-hour token is too long even near its end"
        );
        assert_eq!(
            check(json!({"exp": MAX_NUMERIC_DATE})),
            Err(JwtError::LifetimeTooLong)
        );

        // Without iat: exp - now, with the leeway (60 s) for the issuer's clock.
        assert_eq!(check(json!({"iat": null, "exp": now + 3600})), Ok(()));
        assert_eq!(
            check(json!({"iat": null, "exp": now + 3630})),
            Ok(()),
            "within leeway"
        );
        assert_eq!(
            check(json!({"iat": null, "exp": now + 7200})),
            Err(JwtError::LifetimeTooLong)
        );

        // Without exp the token would never expire: refused even when exp is optional.
        let (optional_exp, _dir) = hmac_verifier_with(
            |p| p.max_token_lifetime(hour),
            |c| c.require_expiration(false),
        );
        assert_eq!(
            outcome(&optional_exp, &sign(&claims_with(json!({"exp": null})))),
            Err(JwtError::MissingExpiration)
        );
        let (no_limit, _dir) = hmac_verifier_with(|p| p, |c| c.require_expiration(false));
        assert_eq!(
            outcome(&no_limit, &sign(&claims_with(json!({"exp": null})))),
            Ok(())
        );
        assert_eq!(
            outcome(
                &no_limit,
                &sign(&claims_with(json!({"iat": now - 7200, "exp": now + 600})))
            ),
            Ok(()),
            "no maximum by default"
        );
    }

    #[test]
    fn reasons_are_snake_case_and_distinct() {
        use std::collections::HashSet;
        let all = [
            JwtError::TooLarge,
            JwtError::Malformed,
            JwtError::MultipleTokens,
            JwtError::UnsupportedAlgorithm,
            JwtError::CriticalHeader,
            JwtError::MissingIssuer,
            JwtError::UnknownIssuer,
            JwtError::UnknownKey,
            JwtError::AmbiguousKey,
            JwtError::AlgorithmMismatch,
            JwtError::InvalidSignature,
            JwtError::Expired,
            JwtError::NotYetValid,
            JwtError::IssuedInFuture,
            JwtError::MissingExpiration,
            JwtError::InvalidClaim,
            JwtError::TimeClaimOutOfRange,
            JwtError::LifetimeTooLong,
            JwtError::InvalidAudience,
            JwtError::KeysUnavailable,
        ];
        let reasons: HashSet<_> = all.iter().map(JwtError::reason).collect();
        assert_eq!(reasons.len(), all.len());
        assert!(
            reasons
                .iter()
                .all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }

    #[cfg(not(feature = "remote-jwks"))]
    #[test]
    fn remote_jwks_needs_its_feature() {
        let config = JwtConfig::default().provider(super::super::JwtProvider::new(
            "https://a",
            JwksSource::remote("https://idp.example/jwks"),
        ));
        let err = Verifier::new(&config).unwrap_err();
        assert!(
            matches!(
                err,
                Error::FeatureDisabled {
                    feature: "remote-jwks",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.path(), "providers[0].jwks.remote");

        let config = JwtConfig::default().provider(super::super::JwtProvider::new(
            "https://a",
            JwksSource::remote("ftp://idp.example/jwks"),
        ));
        assert_eq!(
            Verifier::new(&config).unwrap_err().path(),
            "providers[0].jwks.remote.url"
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let empty = JwtConfig::default();
        assert_eq!(Verifier::new(&empty).unwrap_err().path(), "providers");

        let jwks = r#"{"keys": []}"#;
        let config = JwtConfig::default().provider(super::super::JwtProvider::new(
            "https://a",
            JwksSource::inline(jwks),
        ));
        assert_eq!(
            Verifier::new(&config).unwrap_err().path(),
            "providers[0].jwks.local.inline"
        );

        let config = JwtConfig::default().provider(
            super::super::JwtProvider::new("https://a", JwksSource::inline(jwks))
                .max_token_lifetime(std::time::Duration::ZERO),
        );
        assert_eq!(
            Verifier::new(&config).unwrap_err().path(),
            "providers[0].maxTokenLifetime"
        );
    }
}
