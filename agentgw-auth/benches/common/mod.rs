//! Keys, tokens and layers shared by the benchmarks.

use agentgw_auth::api_key::{ApiKeyConfig, ApiKeyEntry, ApiKeyLayer};
use agentgw_auth::jwt::{JwksSource, JwtConfig, JwtLayer, JwtProvider};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

pub(crate) const ISSUER: &str = "https://auth.example/realms/ai";
pub(crate) const AUDIENCE: &str = "agentgateway";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A realistic access token's claims (about 600 bytes encoded with an RS256 signature).
pub(crate) fn claims(n: usize) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": format!("user-{n}"), "exp": now + 3600, "iat": now,
        "azp": "agentgw-cli", "scope": "openid profile email", "role": "user",
        "email": format!("user{n}@example.com"), "groups": ["ml", "platform"],
    })
}

pub(crate) enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Key {
    pub(crate) fn alg(&self) -> &'static str {
        match self {
            Key::Rsa(_) => "RS256",
            Key::Ec(_) => "ES256",
        }
    }

    pub(crate) fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "typ": "JWT", "kid": "k1"});
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let signature = match self {
            Key::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    message.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            Key::Ec(pair) => pair
                .sign(&rng, message.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        format!("{message}.{}", b64(&signature))
    }

    pub(crate) fn jwk(&self) -> Value {
        match self {
            Key::Rsa(pair) => {
                let parts = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "kid": "k1", "n": b64(&parts.n), "e": b64(&parts.e)})
            }
            Key::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "kid": "k1", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
        }
    }

    pub(crate) fn decoding_key(&self) -> DecodingKey {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(self.jwk()).unwrap();
        DecodingKey::from_jwk(&jwk).unwrap()
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            Key::Rsa(_) => Algorithm::RS256,
            Key::Ec(_) => Algorithm::ES256,
        }
    }
}

pub(crate) fn layer(key: &Key, cache_size: usize) -> JwtLayer {
    let jwks = json!({"keys": [key.jwk()]}).to_string();
    let provider = JwtProvider::new(ISSUER, JwksSource::inline(jwks)).audiences([AUDIENCE]);
    JwtLayer::from_config(
        &JwtConfig::default()
            .provider(provider)
            .cache_size(cache_size),
    )
    .unwrap()
}

impl Key {
    pub(crate) fn rsa() -> Key {
        Key::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    pub(crate) fn es256() -> Key {
        Key::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    /// `jsonwebtoken` validation equivalent to the layer's.
    pub(crate) fn validation(&self) -> Validation {
        let mut validation = Validation::new(self.algorithm());
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation
    }
}

/// An API key layer with `count` keys named `key-N`, keys `sk-live-NNNNN-0123456789abcdef`.
pub(crate) fn api_key_layer(count: usize) -> ApiKeyLayer {
    let mut config = ApiKeyConfig::default();
    for n in 0..count {
        config = config.key(
            ApiKeyEntry::new(
                format!("key-{n}"),
                format!("sk-live-{n:05}-0123456789abcdef"),
            )
            .team("platform")
            .allowed_models(["gpt-4o"]),
        );
    }
    ApiKeyLayer::from_config(&config).unwrap()
}
