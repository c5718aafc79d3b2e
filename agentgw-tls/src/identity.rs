//! The identity a verified client certificate proves, as the [`PeerIdentity`] request extension.
//!
//! Policies read it through `agentgw_core::Attributes::peer` (CEL `source.identity.*`):
//! `commonName`, `dnsNames`, `uris`, `spiffeId`, `fingerprintSha256`.

use agentgw_core::identity::PeerIdentity;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;

/// The identity in a leaf certificate: subject CN, DNS and URI SANs, the SPIFFE ID (the one
/// `spiffe://` URI SAN; none when there are several, as the SPIFFE X.509-SVID spec allows only
/// one) and the lowercase hex SHA-256 fingerprint of the DER encoding.
///
/// The certificate is only parsed, not verified: call this with a certificate the TLS layer has
/// already verified (the acceptor does).
pub fn peer_identity(cert: &CertificateDer<'_>) -> Result<PeerIdentity, Error> {
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| Error::Certificate(format!("unparsable certificate: {e}")))?;
    let common_name = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let mut dns_names = Vec::new();
    let mut uris = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                _ => {}
            }
        }
    }
    let mut spiffe = uris.iter().filter(|uri| is_spiffe(uri));
    let spiffe_id = match (spiffe.next(), spiffe.next()) {
        (Some(id), None) => Some(id.clone()),
        _ => None,
    };
    Ok(PeerIdentity {
        common_name,
        dns_names,
        uris,
        spiffe_id,
        fingerprint_sha256: Some(hex::encode(Sha256::digest(cert.as_ref()))),
    })
}

/// The identity of the peer of an established server-side connection: `None` when the client
/// presented no certificate (or its leaf cannot be parsed, which a verified certificate can).
pub fn connection_identity(conn: &rustls::ServerConnection) -> Option<PeerIdentity> {
    let leaf = conn.peer_certificates()?.first()?;
    match peer_identity(leaf) {
        Ok(identity) => Some(identity),
        Err(err) => {
            tracing::warn!(error = %err, "verified client certificate could not be parsed for its identity");
            None
        }
    }
}

fn is_spiffe(uri: &str) -> bool {
    uri.get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("spiffe://"))
        && uri.len() > 9
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(cn: Option<&str>, sans: Vec<SanType>) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    fn dns(s: &str) -> SanType {
        SanType::DnsName(s.try_into().unwrap())
    }

    #[test]
    fn reads_cn_sans_spiffe_and_fingerprint() {
        let der = cert(
            Some("billing-agent"),
            vec![
                dns("billing.internal"),
                uri("spiffe://prod.example/ns/billing/sa/agent"),
                uri("https://example.com/agent"),
                SanType::IpAddress("10.0.0.1".parse().unwrap()),
            ],
        );
        let id = peer_identity(&der).unwrap();
        assert_eq!(id.common_name.as_deref(), Some("billing-agent"));
        assert_eq!(id.dns_names, vec!["billing.internal"]);
        assert_eq!(
            id.uris,
            vec![
                "spiffe://prod.example/ns/billing/sa/agent",
                "https://example.com/agent"
            ]
        );
        assert_eq!(
            id.spiffe_id.as_deref(),
            Some("spiffe://prod.example/ns/billing/sa/agent")
        );
        let fp = id.fingerprint_sha256.unwrap();
        assert_eq!(fp, hex::encode(Sha256::digest(der.as_ref())));
        assert_eq!(fp.len(), 64);
    }

    #[test]
    fn no_spiffe_id_when_absent_or_ambiguous() {
        let id = peer_identity(&cert(None, vec![dns("a.test")])).unwrap();
        assert_eq!(id.common_name, None);
        assert_eq!(id.spiffe_id, None);
        assert!(id.uris.is_empty());
        let id =
            peer_identity(&cert(None, vec![uri("spiffe://a/x"), uri("spiffe://b/y")])).unwrap();
        assert_eq!(id.uris.len(), 2);
        assert_eq!(
            id.spiffe_id, None,
            "two SPIFFE IDs: neither is the identity"
        );
        let id = peer_identity(&cert(None, vec![uri("SPIFFE://td/w")])).unwrap();
        assert_eq!(id.spiffe_id.as_deref(), Some("SPIFFE://td/w"));
        let id = peer_identity(&cert(None, vec![uri("spiffe://")])).unwrap();
        assert_eq!(id.spiffe_id, None);
    }

    proptest::proptest! {
        /// Whatever bytes arrive (a truncated or bit-flipped certificate), parsing returns and
        /// never panics; an intact certificate keeps its fingerprint.
        #[test]
        fn arbitrary_or_damaged_certificates_never_panic(
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            flip in 0usize..4096,
            cut in 0usize..4096,
        ) {
            let _ = peer_identity(&CertificateDer::from(noise));
            let der = cert(Some("cn"), vec![dns("a.test"), uri("spiffe://td/x")]);
            let mut damaged = der.as_ref().to_vec();
            let at = flip % damaged.len();
            damaged[at] ^= 0x5a;
            damaged.truncate(damaged.len() - cut % damaged.len());
            let _ = peer_identity(&CertificateDer::from(damaged));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let err = peer_identity(&CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01])).unwrap_err();
        assert!(err.to_string().contains("unparsable certificate"), "{err}");
    }
}
