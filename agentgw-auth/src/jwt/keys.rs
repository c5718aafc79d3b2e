//! Verification keys: parsed from a JWKS, a PEM public key or an HMAC secret, each with the
//! algorithms its type allows.
//!
//! | key | algorithms |
//! |---|---|
//! | RSA (2048 bits or more) | RS256, RS384, RS512, PS256, PS384, PS512 |
//! | EC P-256 / P-384 | ES256 / ES384 |
//! | OKP Ed25519 | EdDSA |
//! | HMAC secret from `hmacSecret` (32 bytes or more) | HS256, HS384, HS512 |
//!
//! A JWK's `alg` narrows the list to that one algorithm. Keys marked `use: enc`, keys whose
//! `key_ops` lack `verify`, symmetric (`oct`) keys inside a JWKS, unsupported curves and short
//! RSA moduli are skipped with a warning; the rest of the set still loads.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self as aws, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// Every key set gets a new epoch; cached verifications remember the epoch they were made with.
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

/// A set of algorithms, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AlgSet(u16);

impl AlgSet {
    const RSA: AlgSet = AlgSet::of(&[
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ]);
    const HMAC: AlgSet = AlgSet::of(&[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);

    const fn of(algorithms: &[Algorithm]) -> AlgSet {
        let mut bits = 0;
        let mut i = 0;
        while i < algorithms.len() {
            bits |= bit(algorithms[i]);
            i += 1;
        }
        AlgSet(bits)
    }

    pub(crate) fn contains(self, algorithm: Algorithm) -> bool {
        self.0 & bit(algorithm) != 0
    }
}

const fn bit(algorithm: Algorithm) -> u16 {
    1 << match algorithm {
        Algorithm::HS256 => 0,
        Algorithm::HS384 => 1,
        Algorithm::HS512 => 2,
        Algorithm::ES256 => 3,
        Algorithm::ES384 => 4,
        Algorithm::RS256 => 5,
        Algorithm::RS384 => 6,
        Algorithm::RS512 => 7,
        Algorithm::PS256 => 8,
        Algorithm::PS384 => 9,
        Algorithm::PS512 => 10,
        Algorithm::EdDSA => 11,
        // A future algorithm: a bit no key set ever contains.
        _ => 15,
    }
}

/// The algorithm named by a JOSE `alg` value, matched exactly (`none`, `None` and `rs256` are
/// not algorithms we verify).
pub(crate) fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Every algorithm a key can be prepared for.
const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

/// One key and what it may verify.
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<Box<str>>,
    pub(crate) algorithms: AlgSet,
    /// The key parsed once per allowed algorithm (aws-lc-rs keeps, for instance, an RSA key's
    /// Montgomery context), so a verification does no key parsing.
    checks: Box<[(Algorithm, Check)]>,
}

enum Check {
    Public(ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

impl VerifyingKey {
    /// Whether `signature` is a valid `algorithm` signature of `message` by this key.
    pub(crate) fn verify(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.checks
            .iter()
            .find(|(allowed, _)| *allowed == algorithm)
            .is_some_and(|(_, check)| match check {
                Check::Public(key) => key.verify_sig(message, signature).is_ok(),
                // Constant-time comparison.
                Check::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            })
    }
}

fn verification_algorithm(algorithm: Algorithm) -> Option<&'static dyn aws::VerificationAlgorithm> {
    Some(match algorithm {
        Algorithm::RS256 => &aws::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &aws::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &aws::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &aws::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &aws::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &aws::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &aws::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &aws::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &aws::ED25519,
        _ => return None,
    })
}

/// Parses `public_key` (SubjectPublicKeyInfo or RSAPublicKey DER for RSA, the uncompressed point
/// for EC, the 32 bytes for Ed25519) for every algorithm in `algorithms`.
fn public_checks(algorithms: AlgSet, public_key: &[u8]) -> Result<Vec<(Algorithm, Check)>, String> {
    ALGORITHMS
        .iter()
        .filter(|algorithm| algorithms.contains(**algorithm))
        .map(|&algorithm| {
            let verification = verification_algorithm(algorithm)
                .ok_or_else(|| format!("{algorithm:?} needs a secret, not a public key"))?;
            ParsedPublicKey::new(verification, public_key)
                .map(|key| (algorithm, Check::Public(key)))
                .map_err(|e| format!("invalid public key: {e}"))
        })
        .collect()
}

/// The keys of one provider at one point in time.
pub(crate) struct KeySet {
    keys: Vec<VerifyingKey>,
    epoch: u64,
    /// Digest of every key's id, algorithms and material, to tell a changed set from a refetch
    /// of the same one.
    #[cfg_attr(not(feature = "remote-jwks"), allow(dead_code))]
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: an HMAC key is a secret.
        let kids: Vec<_> = self.keys.iter().map(|k| k.kid.as_deref()).collect();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The outcome of picking a key for a token.
pub(crate) enum Selection<'a> {
    Key(&'a VerifyingKey),
    /// No key has the token's `kid` (or, without a `kid`, no key at all).
    Unknown,
    /// More than one key could verify the token and it does not say which.
    Ambiguous,
    /// The key named by the token does not allow the token's algorithm.
    AlgorithmMismatch,
}

struct KeyBuilder {
    keys: Vec<VerifyingKey>,
    fingerprint: Sha256,
}

impl KeyBuilder {
    fn new() -> Self {
        KeyBuilder {
            keys: Vec::new(),
            fingerprint: Sha256::new(),
        }
    }

    fn push(
        &mut self,
        kid: Option<&str>,
        algorithms: AlgSet,
        material: &[&[u8]],
        checks: Vec<(Algorithm, Check)>,
    ) {
        let kid_bytes = kid.unwrap_or("").as_bytes();
        self.fingerprint
            .update((kid_bytes.len() as u64).to_le_bytes());
        self.fingerprint.update(kid_bytes);
        self.fingerprint.update(algorithms.0.to_le_bytes());
        for part in material {
            self.fingerprint.update((part.len() as u64).to_le_bytes());
            self.fingerprint.update(part);
        }
        self.keys.push(VerifyingKey {
            kid: kid.map(Into::into),
            algorithms,
            checks: checks.into(),
        });
    }

    fn build(self) -> KeySet {
        KeySet {
            keys: self.keys,
            epoch: NEXT_EPOCH.fetch_add(1, Ordering::Relaxed),
            fingerprint: self.fingerprint.finalize().into(),
        }
    }
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`) or a PEM public key.
    pub(crate) fn from_document(bytes: &[u8]) -> Result<KeySet, String> {
        if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            KeySet::from_pem(bytes)
        } else {
            KeySet::from_jwks(bytes)
        }
    }

    /// Parses a JWKS document, skipping (and logging) keys it cannot use.
    pub(crate) fn from_jwks(bytes: &[u8]) -> Result<KeySet, String> {
        let raw: RawJwks =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
        KeySet::from_jwk_values(&raw.keys)
    }

    /// Builds a key set from parsed JWK objects.
    pub(crate) fn from_jwk_values(keys: &[serde_json::Value]) -> Result<KeySet, String> {
        let mut builder = KeyBuilder::new();
        for (index, value) in keys.iter().enumerate() {
            if let Err(reason) = add_jwk(&mut builder, value) {
                let kid = value.get("kid").and_then(|k| k.as_str()).unwrap_or("");
                tracing::warn!(index, kid, reason, "skipping JWKS key");
            }
        }
        Ok(builder.build())
    }

    /// Parses one PEM public key (RSA, EC P-256/P-384 or Ed25519); it has no `kid`.
    pub(crate) fn from_pem(bytes: &[u8]) -> Result<KeySet, String> {
        let public_key = |key: &DecodingKey| key.try_get_as_bytes().map(<[u8]>::to_vec).ok();
        let (family, label, der) = if let Some(der) = DecodingKey::from_rsa_pem(bytes)
            .ok()
            .as_ref()
            .and_then(public_key)
        {
            (AlgSet::RSA, "RSA", der)
        } else if let Some(point) = DecodingKey::from_ec_pem(bytes)
            .ok()
            .as_ref()
            .and_then(public_key)
        {
            let algorithm = match point.len() {
                65 => Algorithm::ES256,
                97 => Algorithm::ES384,
                _ => return Err("unsupported EC curve (use P-256 or P-384)".to_owned()),
            };
            (AlgSet::of(&[algorithm]), "EC", point)
        } else if let Some(point) = DecodingKey::from_ed_pem(bytes)
            .ok()
            .as_ref()
            .and_then(public_key)
        {
            if point.len() != 32 {
                return Err("unsupported OKP key (use Ed25519)".to_owned());
            }
            (AlgSet::of(&[Algorithm::EdDSA]), "OKP", point)
        } else {
            return Err("not a PEM RSA, EC or Ed25519 public key".to_owned());
        };
        let checks = public_checks(family, &der)?;
        let mut builder = KeyBuilder::new();
        builder.push(None, family, &[label.as_bytes(), &der], checks);
        Ok(builder.build())
    }

    /// An HMAC secret (HS256/384/512). Needs 32 bytes or more (RFC 7518 section 3.2).
    pub(crate) fn hmac(secret: &[u8]) -> Result<KeySet, String> {
        if secret.len() < 32 {
            return Err(format!(
                "an HMAC secret needs at least 32 bytes, this one has {}",
                secret.len()
            ));
        }
        let mut builder = KeyBuilder::new();
        // The fingerprint only needs to change when the secret does: use its digest.
        let digest: [u8; 32] = Sha256::digest(secret).into();
        let checks = vec![
            (
                Algorithm::HS256,
                Check::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
            ),
            (
                Algorithm::HS384,
                Check::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA384, secret))),
            ),
            (
                Algorithm::HS512,
                Check::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA512, secret))),
            ),
        ];
        builder.push(None, AlgSet::HMAC, &[b"oct", &digest], checks);
        Ok(builder.build())
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether `other` holds the same keys (ids, algorithms and material).
    #[cfg_attr(not(feature = "remote-jwks"), allow(dead_code))]
    pub(crate) fn same_keys(&self, other: &KeySet) -> bool {
        self.fingerprint == other.fingerprint
    }

    /// Picks the key for a token with `kid` and `algorithm`.
    ///
    /// A token naming a `kid` uses the keys with that id; if none has it, keys without an id
    /// are considered. A token without `kid` is verified only when exactly one key allows its
    /// algorithm.
    pub(crate) fn select(&self, kid: Option<&str>, algorithm: Algorithm) -> Selection<'_> {
        if let Some(kid) = kid {
            let named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
            if let Some(selection) = pick(named, algorithm) {
                return selection;
            }
        }
        let anonymous = self
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.is_none());
        pick(anonymous, algorithm).unwrap_or(Selection::Unknown)
    }
}

/// `None` when `candidates` is empty.
fn pick<'a>(
    candidates: impl Iterator<Item = &'a VerifyingKey>,
    algorithm: Algorithm,
) -> Option<Selection<'a>> {
    let mut any = false;
    let mut chosen = None;
    for key in candidates {
        any = true;
        if key.algorithms.contains(algorithm) {
            if chosen.is_some() {
                return Some(Selection::Ambiguous);
            }
            chosen = Some(key);
        }
    }
    match chosen {
        Some(key) => Some(Selection::Key(key)),
        None if any => Some(Selection::AlgorithmMismatch),
        None => None,
    }
}

fn add_jwk(builder: &mut KeyBuilder, value: &serde_json::Value) -> Result<(), String> {
    let jwk = RawJwk::deserialize(value).map_err(|e| format!("malformed JWK: {e}"))?;
    if let Some(key_use) = &jwk.key_use
        && key_use != "sig"
    {
        return Err(format!("key use is {key_use:?}, not \"sig\""));
    }
    if let Some(ops) = &jwk.key_ops
        && !ops.iter().any(|op| op == "verify")
    {
        return Err("key_ops does not include \"verify\"".to_owned());
    }
    let kid = jwk.kid.as_deref();
    // (allowed algorithms, bytes for the fingerprint, public key in the form aws-lc-rs parses)
    let (family, material, public_key): (AlgSet, Vec<Vec<u8>>, Vec<u8>) = match jwk.kty.as_str() {
        "RSA" => {
            let n = decode_member(&jwk.n, "n")?;
            let e = decode_member(&jwk.e, "e")?;
            let bits = significant_bits(&n);
            if bits < 2048 {
                return Err(format!(
                    "RSA modulus of {bits} bits (2048 or more required)"
                ));
            }
            let components = aws_lc_rs::rsa::PublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            };
            let der: PublicKeyX509Der<'static> = components
                .as_der()
                .map_err(|_| "invalid RSA modulus or exponent".to_owned())?;
            let der = der.as_ref().to_vec();
            (AlgSet::RSA, vec![b"RSA".to_vec(), n, e], der)
        }
        "EC" => {
            let (algorithm, size) = match jwk.crv.as_deref() {
                Some("P-256") => (Algorithm::ES256, 32),
                Some("P-384") => (Algorithm::ES384, 48),
                other => return Err(format!("unsupported EC curve {other:?}")),
            };
            let x = decode_member(&jwk.x, "x")?;
            let y = decode_member(&jwk.y, "y")?;
            if x.len() != size || y.len() != size {
                return Err("EC coordinates of the wrong length".to_owned());
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (
                AlgSet::of(&[algorithm]),
                vec![b"EC".to_vec(), point.clone()],
                point,
            )
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Err(format!("unsupported OKP curve {:?}", jwk.crv));
            }
            let x = decode_member(&jwk.x, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 key of the wrong length".to_owned());
            }
            (
                AlgSet::of(&[Algorithm::EdDSA]),
                vec![b"OKP".to_vec(), x.clone()],
                x,
            )
        }
        "oct" => {
            return Err("symmetric keys are not accepted from a JWKS; use hmacSecret".to_owned());
        }
        other => return Err(format!("unsupported key type {other:?}")),
    };
    let algorithms = match &jwk.alg {
        None => family,
        Some(name) => match parse_algorithm(name) {
            Some(algorithm) if family.contains(algorithm) => AlgSet::of(&[algorithm]),
            _ => return Err(format!("alg {name:?} does not fit key type {}", jwk.kty)),
        },
    };
    // Parsing validates the key (an EC point must be on its curve): a bad key is skipped here
    // instead of failing every request.
    let checks = public_checks(algorithms, &public_key)?;
    let parts: Vec<&[u8]> = material.iter().map(Vec::as_slice).collect();
    builder.push(kid, algorithms, &parts, checks);
    Ok(())
}

fn decode_member(value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let text = value
        .as_deref()
        .ok_or_else(|| format!("missing {name:?}"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("{name:?} is not base64url without padding"))
}

fn significant_bits(big_endian: &[u8]) -> usize {
    let mut bytes = big_endian.iter().skip_while(|b| **b == 0);
    match bytes.next() {
        Some(first) => (8 - first.leading_zeros() as usize) + 8 * bytes.count(),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_jwk(kid: &str) -> serde_json::Value {
        let mut n = vec![0xc5u8; 256];
        n[255] = 0x01;
        json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"})
    }

    /// A real P-256 public key (a point on the curve).
    fn ec_jwk(kid: &str) -> serde_json::Value {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws::EcdsaKeyPair::generate(&aws::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref();
        json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
    }

    #[test]
    fn algorithms_follow_key_type() {
        let set = KeySet::from_jwk_values(&[rsa_jwk("r"), ec_jwk("e")]).unwrap();
        assert_eq!(set.len(), 2);
        assert!(matches!(
            set.select(Some("r"), Algorithm::PS384),
            Selection::Key(_)
        ));
        assert!(matches!(
            set.select(Some("r"), Algorithm::HS256),
            Selection::AlgorithmMismatch
        ));
        assert!(matches!(
            set.select(Some("r"), Algorithm::ES256),
            Selection::AlgorithmMismatch
        ));
        assert!(matches!(
            set.select(Some("e"), Algorithm::ES256),
            Selection::Key(_)
        ));
        assert!(matches!(
            set.select(Some("e"), Algorithm::ES384),
            Selection::AlgorithmMismatch
        ));
        assert!(matches!(
            set.select(Some("x"), Algorithm::RS256),
            Selection::Unknown
        ));
    }

    #[test]
    fn token_without_kid_needs_exactly_one_candidate() {
        let one = KeySet::from_jwk_values(&[rsa_jwk("r"), ec_jwk("e")]).unwrap();
        assert!(matches!(
            one.select(None, Algorithm::RS256),
            Selection::Key(_)
        ));
        let two = KeySet::from_jwk_values(&[rsa_jwk("r1"), rsa_jwk("r2")]).unwrap();
        assert!(matches!(
            two.select(None, Algorithm::RS256),
            Selection::Ambiguous
        ));
        assert!(matches!(
            two.select(None, Algorithm::HS256),
            Selection::AlgorithmMismatch
        ));
    }

    #[test]
    fn jwk_alg_narrows_and_must_fit() {
        let mut narrowed = rsa_jwk("r");
        narrowed["alg"] = json!("PS256");
        let set = KeySet::from_jwk_values(&[narrowed]).unwrap();
        assert!(matches!(
            set.select(Some("r"), Algorithm::PS256),
            Selection::Key(_)
        ));
        assert!(matches!(
            set.select(Some("r"), Algorithm::RS256),
            Selection::AlgorithmMismatch
        ));

        let mut wrong = rsa_jwk("r");
        wrong["alg"] = json!("HS256");
        assert_eq!(KeySet::from_jwk_values(&[wrong]).unwrap().len(), 0);
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let mut enc = rsa_jwk("enc");
        enc["use"] = json!("enc");
        let mut sign_only = ec_jwk("ops");
        sign_only["key_ops"] = json!(["sign"]);
        let short = json!({"kty": "RSA", "kid": "short", "n": b64(&[0xff; 128]), "e": "AQAB"});
        let oct = json!({"kty": "oct", "kid": "h", "k": b64(&[7; 32])});
        let p521 = json!({"kty": "EC", "kid": "p", "crv": "P-521", "x": "AA", "y": "AA"});
        let off_curve = json!({"kty": "EC", "kid": "c", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])});
        let padded = json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA="});
        let set = KeySet::from_jwk_values(&[
            enc,
            sign_only,
            short,
            oct,
            p521,
            off_curve,
            padded,
            rsa_jwk("ok"),
        ])
        .unwrap();
        assert_eq!(set.len(), 1);
        assert!(matches!(
            set.select(Some("ok"), Algorithm::RS256),
            Selection::Key(_)
        ));
    }

    #[test]
    fn fingerprint_tells_changes_apart() {
        let ec = ec_jwk("e");
        let a = KeySet::from_jwk_values(&[rsa_jwk("r"), ec.clone()]).unwrap();
        let same = KeySet::from_jwk_values(&[rsa_jwk("r"), ec.clone()]).unwrap();
        let renamed = KeySet::from_jwk_values(&[rsa_jwk("r2"), ec.clone()]).unwrap();
        let rekeyed = KeySet::from_jwk_values(&[rsa_jwk("r"), ec_jwk("e")]).unwrap();
        assert!(a.same_keys(&same));
        assert!(!a.same_keys(&renamed));
        assert!(!a.same_keys(&rekeyed));
        assert_ne!(a.epoch(), same.epoch(), "every set has its own epoch");
    }

    #[test]
    fn hmac_secret_length() {
        assert!(KeySet::hmac(b"short").unwrap_err().contains("32 bytes"));
        let set = KeySet::hmac(&[9; 32]).unwrap();
        assert!(matches!(
            set.select(Some("any"), Algorithm::HS512),
            Selection::Key(_)
        ));
        assert!(matches!(
            set.select(None, Algorithm::RS256),
            Selection::AlgorithmMismatch
        ));
    }

    #[test]
    fn not_a_jwks() {
        assert!(KeySet::from_document(b"<html>").is_err());
        assert!(
            KeySet::from_document(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }

    #[test]
    fn exact_algorithm_names() {
        assert_eq!(parse_algorithm("RS256"), Some(Algorithm::RS256));
        for name in ["none", "None", "NONE", "rs256", "", "HS256 "] {
            assert_eq!(parse_algorithm(name), None, "{name:?}");
        }
    }
}
