//! Keys generated at test time, token crafting (including malicious tokens), and small real
//! HTTP servers on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use agentgw_core::identity::{ApiKeyInfo, JwtClaims};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _,
};
use axum::Router;
use axum::extract::Request;
use axum::routing::any;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub(crate) const ISSUER: &str = "https://auth.sklab.dev/realms/ai";
pub(crate) const AUDIENCE: &str = "agentgateway";

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Valid claims for `sub`: right issuer and audience, expiring in ten minutes.
pub(crate) fn claims(sub: &str) -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "role": "user", "iat": now, "exp": now + 600})
}

enum Key {
    Rsa(Arc<RsaKeyPair>),
    Ec(Arc<EcdsaKeyPair>),
    Ed(Arc<Ed25519KeyPair>),
    Hmac(Vec<u8>),
}

/// A signing key with its `kid` and `alg`.
pub(crate) struct Signer {
    pub(crate) kid: Option<String>,
    pub(crate) alg: &'static str,
    key: Key,
}

fn new_rsa() -> Arc<RsaKeyPair> {
    Arc::new(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
}

fn new_ec(alg: &'static EcdsaSigningAlgorithm) -> Arc<EcdsaKeyPair> {
    Arc::new(EcdsaKeyPair::generate(alg).unwrap())
}

// RSA key generation is slow: a few keys shared by all tests.
static RSA_VICTIM: LazyLock<Arc<RsaKeyPair>> = LazyLock::new(new_rsa);
static RSA_ATTACKER: LazyLock<Arc<RsaKeyPair>> = LazyLock::new(new_rsa);
static RSA_SPARE: LazyLock<Arc<RsaKeyPair>> = LazyLock::new(new_rsa);

impl Signer {
    /// The shared "victim" RSA key (the one the gateway trusts in most tests), RS256.
    pub(crate) fn rsa(kid: &str) -> Signer {
        Signer::with_key(kid, "RS256", Key::Rsa(RSA_VICTIM.clone()))
    }

    /// An RSA key the gateway does not trust.
    pub(crate) fn rsa_attacker(kid: &str) -> Signer {
        Signer::with_key(kid, "RS256", Key::Rsa(RSA_ATTACKER.clone()))
    }

    /// A third RSA key (for rotations).
    pub(crate) fn rsa_spare(kid: &str) -> Signer {
        Signer::with_key(kid, "RS256", Key::Rsa(RSA_SPARE.clone()))
    }

    pub(crate) fn es256(kid: &str) -> Signer {
        Signer::with_key(
            kid,
            "ES256",
            Key::Ec(new_ec(&ECDSA_P256_SHA256_FIXED_SIGNING)),
        )
    }

    pub(crate) fn es384(kid: &str) -> Signer {
        Signer::with_key(
            kid,
            "ES384",
            Key::Ec(new_ec(&ECDSA_P384_SHA384_FIXED_SIGNING)),
        )
    }

    pub(crate) fn ed25519(kid: &str) -> Signer {
        Signer::with_key(
            kid,
            "EdDSA",
            Key::Ed(Arc::new(Ed25519KeyPair::generate().unwrap())),
        )
    }

    pub(crate) fn hmac(secret: &[u8]) -> Signer {
        Signer {
            kid: None,
            alg: "HS256",
            key: Key::Hmac(secret.to_vec()),
        }
    }

    fn with_key(kid: &str, alg: &'static str, key: Key) -> Signer {
        Signer {
            kid: (!kid.is_empty()).then(|| kid.to_owned()),
            alg,
            key,
        }
    }

    /// The same key with another algorithm of its family (RS256 -> PS256, ...).
    pub(crate) fn alg(mut self, alg: &'static str) -> Signer {
        self.alg = alg;
        self
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(&self) -> Value {
        let mut jwk = match &self.key {
            Key::Rsa(pair) => {
                let parts = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e)})
            }
            Key::Ec(pair) => {
                let point = pair.public_key().as_ref();
                let size = (point.len() - 1) / 2;
                let crv = if size == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=size]), "y": b64(&point[1 + size..])})
            }
            Key::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())})
            }
            Key::Hmac(secret) => json!({"kty": "oct", "k": b64(secret)}),
        };
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    /// RSA public key as DER SubjectPublicKeyInfo.
    pub(crate) fn rsa_public_der(&self) -> Vec<u8> {
        let Key::Rsa(pair) = &self.key else {
            panic!("not RSA")
        };
        let der: PublicKeyX509Der<'static> = pair.public_key().as_der().unwrap();
        der.as_ref().to_vec()
    }

    /// RSA public key as PEM.
    pub(crate) fn rsa_public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.rsa_public_der())
    }

    /// The header this signer puts on its tokens: `alg` and `kid`.
    pub(crate) fn header(&self) -> Value {
        let mut header = json!({"typ": "JWT", "alg": self.alg});
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid);
        }
        header
    }

    /// A token with this signer's header.
    pub(crate) fn token(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }

    /// A token with any header, signed with this key under `self.alg`.
    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_text(header, &claims.to_string())
    }

    /// A token whose claims are the JSON text `claims` (which need not parse), validly signed.
    pub(crate) fn sign_text(&self, header: &Value, claims: &str) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.as_bytes())
        );
        let signature = self.signature(message.as_bytes());
        format!("{message}.{}", b64(&signature))
    }

    fn signature(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            Key::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    other => panic!("{other} is not an RSA algorithm"),
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut sig).unwrap();
                sig
            }
            Key::Ec(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Key::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            Key::Hmac(secret) => hmac_sha256(secret, message),
        }
    }
}

pub(crate) fn hmac_sha256(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
}

pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A token from raw parts, for malformed and unsigned tokens.
pub(crate) fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// A JWKS document with the signers' public keys.
pub(crate) fn jwks(signers: &[&Signer]) -> Value {
    json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()})
}

/// Serves `router` on 127.0.0.1 with an ephemeral port.
pub(crate) async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// An upstream that answers with what it received: identity extensions and credential headers.
pub(crate) fn echo() -> Router {
    Router::new().fallback(any(|req: Request| async move {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
        };
        axum::Json(json!({
            "sub": req.extensions().get::<JwtClaims>().and_then(|c| c.subject().map(str::to_owned)),
            "claims": req.extensions().get::<JwtClaims>().map(|c| Value::Object(c.as_map().clone())),
            "apiKey": req.extensions().get::<ApiKeyInfo>().map(|k| Value::Object(k.as_map().clone())),
            "authorization": header("authorization"),
            "xApiKey": header("x-api-key"),
            "cookie": header("cookie"),
            "uri": req.uri().to_string(),
        }))
    }))
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}
