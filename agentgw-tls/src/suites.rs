//! Cipher suites by IANA name and the crypto provider built from a configured list.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::{ProtocolVersion, SupportedCipherSuite};

use crate::Error;
use crate::config::TlsVersion;

/// The cipher suites this crate can be configured with, by IANA name. All are forward-secret
/// AEAD suites; CBC, RSA key exchange and anything older are not offered by rustls at all.
pub const SUPPORTED_CIPHER_SUITES: &[&str] = &[
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// The suite with IANA name `name` (ASCII case-insensitive).
pub fn cipher_suite_by_name(name: &str) -> Option<SupportedCipherSuite> {
    let suite = match name.trim().to_ascii_uppercase().as_str() {
        "TLS_AES_256_GCM_SHA384" => cipher_suite::TLS13_AES_256_GCM_SHA384,
        "TLS_AES_128_GCM_SHA256" => cipher_suite::TLS13_AES_128_GCM_SHA256,
        "TLS_CHACHA20_POLY1305_SHA256" => cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    };
    Some(suite)
}

/// The aws-lc-rs provider restricted to `names` (see [`TlsConfig::cipher_suites`] for the rules).
///
/// [`TlsConfig::cipher_suites`]: crate::TlsConfig::cipher_suites
pub(crate) fn provider(
    names: &[String],
    min_version: TlsVersion,
) -> Result<Arc<CryptoProvider>, Error> {
    let mut provider = aws_lc_rs::default_provider();
    if names.is_empty() {
        if min_version == TlsVersion::Tls13 {
            provider.cipher_suites.retain(is_tls13);
        }
        return Ok(Arc::new(provider));
    }
    let mut chosen: Vec<SupportedCipherSuite> = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let field = format!("cipherSuites[{index}]");
        let suite = cipher_suite_by_name(name).ok_or_else(|| {
            Error::config(
                &field,
                format!(
                    "unknown or unsupported cipher suite {name:?}; supported: {}",
                    SUPPORTED_CIPHER_SUITES.join(", ")
                ),
            )
        })?;
        if chosen.iter().any(|c| c.suite() == suite.suite()) {
            return Err(Error::config(field, format!("{name} is listed twice")));
        }
        if min_version == TlsVersion::Tls13 && !is_tls13(&suite) {
            return Err(Error::config(
                field,
                format!("{name} is a TLS 1.2 suite, but minVersion is 1.3"),
            ));
        }
        chosen.push(suite);
    }
    // A version none of the names belongs to keeps the provider's defaults for that version.
    if min_version == TlsVersion::Tls12 && !chosen.iter().any(|s| !is_tls13(s)) {
        chosen.extend(
            provider
                .cipher_suites
                .iter()
                .filter(|s| !is_tls13(s))
                .copied(),
        );
    }
    if !chosen.iter().any(is_tls13) {
        let tls13 = provider
            .cipher_suites
            .iter()
            .filter(|s| is_tls13(s))
            .copied();
        chosen.splice(0..0, tls13.collect::<Vec<_>>());
    }
    provider.cipher_suites = chosen;
    Ok(Arc::new(provider))
}

fn is_tls13(suite: &SupportedCipherSuite) -> bool {
    suite.version().version == ProtocolVersion::TLSv1_3
}

/// The protocol versions enabled from `min_version` up.
pub(crate) fn versions(
    min_version: TlsVersion,
) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static FROM_TLS12: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    static FROM_TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match min_version {
        TlsVersion::Tls12 => FROM_TLS12,
        TlsVersion::Tls13 => FROM_TLS13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ConfigError;
    use rustls::CipherSuite;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn suites(provider: &CryptoProvider) -> Vec<CipherSuite> {
        provider.cipher_suites.iter().map(|s| s.suite()).collect()
    }

    #[test]
    fn every_supported_name_resolves_to_a_provider_suite() {
        let all = aws_lc_rs::ALL_CIPHER_SUITES;
        for name in SUPPORTED_CIPHER_SUITES {
            let suite = cipher_suite_by_name(name).unwrap();
            assert!(all.iter().any(|s| s.suite() == suite.suite()), "{name}");
        }
        assert_eq!(SUPPORTED_CIPHER_SUITES.len(), all.len());
        assert!(cipher_suite_by_name("tls_aes_128_gcm_sha256").is_some());
    }

    #[test]
    fn seed_list_restricts_tls13_and_keeps_tls12_defaults() {
        let seed = names(&[
            "TLS_AES_256_GCM_SHA384",
            "TLS_AES_128_GCM_SHA256",
            "TLS_CHACHA20_POLY1305_SHA256",
        ]);
        let p = provider(&seed, TlsVersion::Tls12).unwrap();
        let got = suites(&p);
        assert_eq!(got[0], CipherSuite::TLS13_AES_256_GCM_SHA384);
        assert!(got.contains(&CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256));
        let p = provider(&seed, TlsVersion::Tls13).unwrap();
        assert_eq!(suites(&p).len(), 3);
    }

    #[test]
    fn listed_order_is_kept_and_tls13_only_names_restrict() {
        let p = provider(
            &names(&["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"]),
            TlsVersion::Tls13,
        )
        .unwrap();
        assert_eq!(
            suites(&p),
            vec![
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS13_AES_128_GCM_SHA256
            ]
        );
    }

    #[test]
    fn tls12_only_list_keeps_tls13_defaults() {
        let p = provider(
            &names(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]),
            TlsVersion::Tls12,
        )
        .unwrap();
        let got = suites(&p);
        assert!(got.contains(&CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert!(got.contains(&CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(!got.contains(&CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256));
    }

    #[test]
    fn bad_lists_name_the_entry() {
        let err = provider(
            &names(&["TLS_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA"]),
            TlsVersion::Tls12,
        )
        .unwrap_err();
        assert_eq!(err.path(), "cipherSuites[1]");
        assert!(
            err.to_string()
                .contains("unknown or unsupported cipher suite"),
            "{err}"
        );
        let err = provider(
            &names(&["TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"]),
            TlsVersion::Tls12,
        )
        .unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
        let err = provider(
            &names(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]),
            TlsVersion::Tls13,
        )
        .unwrap_err();
        assert!(err.to_string().contains("minVersion is 1.3"), "{err}");
    }

    #[test]
    fn tls13_minimum_drops_tls12_defaults() {
        let p = provider(&[], TlsVersion::Tls13).unwrap();
        assert!(p.cipher_suites.iter().all(is_tls13));
        let p = provider(&[], TlsVersion::Tls12).unwrap();
        assert!(!p.cipher_suites.iter().all(is_tls13));
    }
}
