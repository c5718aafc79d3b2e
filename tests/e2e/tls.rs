//! The gateway's listener with mutual TLS, and an RBAC rule on the client certificate's identity.

use agentgw_test_support::MockServer;
use http::StatusCode;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::Value;

use crate::common::{chat, config};

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `cn` with DNS names `dns`.
    fn leaf(&self, cn: &str, dns: &[&str]) -> (String, String) {
        let mut params =
            CertificateParams::new(dns.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `text` to `name` in `dir`; returns the path for a config file.
fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The OpenAI and MCP mock upstreams on free loopback ports.
async fn mocks() -> (MockServer, MockServer) {
    let openai = agentgw_test_support::openai(crate::common::loopback())
        .await
        .unwrap();
    let mcp = agentgw_test_support::mcp(crate::common::loopback(), Default::default())
        .await
        .unwrap();
    (openai, mcp)
}

#[tokio::test]
async fn mtls_identity_reaches_rbac() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("agentgw test CA");
    let write = |name: &str, text: &str| write_file(&dir, name, text);
    let ca_file = write("ca.crt", &pki.ca_pem);
    let (cert, key) = pki.leaf("gateway", &["localhost"]);
    let (cert_file, key_file) = (write("server.crt", &cert), write("server.key", &key));

    let (openai, mcp) = mocks().await;
    let yaml = format!(
        r#"
tls:
  certFile: {cert_file}
  keyFile: {key_file}
  minVersion: "1.3"
  clientAuth: {{mode: Required, caFile: {ca_file}}}
routes:
  - name: openai
    pathPrefix: /openai
    kind: llm
    backend: {{url: "${{OPENAI}}/v1"}}
    policies:
      rbac:
        policy:
          matchExpressions:
            - 'source.identity.commonName == "alice"'
"#
    );
    // On per-core workers, as the binary runs by default: each worker terminates TLS itself.
    let workers = agentgw_gateway::Workers::PerCore(std::num::NonZeroUsize::new(2).unwrap());
    let gw = agentgw_gateway::start_with(config(&yaml, &openai, &mcp), None, workers)
        .await
        .unwrap();
    let url = format!(
        "https://localhost:{}/openai/chat/completions",
        gw.addr().port()
    );
    let root = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let client_for = |cn: &str| {
        let (cert, key) = pki.leaf(cn, &[]);
        let identity = reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([root.clone()])
            .identity(identity)
            .resolve("localhost", gw.addr())
            .build()
            .unwrap()
    };

    // alice's certificate: handshake, identity, RBAC allow, upstream answer.
    let res = client_for("alice")
        .post(&url)
        .body(chat("over mTLS", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "You said: over mTLS"
    );

    // bob's certificate is valid, but the rule wants alice.
    let res = client_for("bob")
        .post(&url)
        .body(chat("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // No client certificate: the handshake is refused.
    let anonymous = reqwest::Client::builder()
        .tls_certs_only([root.clone()])
        .resolve("localhost", gw.addr())
        .build()
        .unwrap();
    assert!(
        anonymous
            .post(&url)
            .body(chat("hi", false))
            .send()
            .await
            .is_err()
    );
    assert_eq!(openai.request_count(), 1);
    gw.shutdown().await;
}

/// A gateway whose backend is another gateway listening with TLS: the backend's certificate is
/// verified against `caFile`, bodies stream through both hops, and a backend whose certificate
/// does not chain to `caFile` is a 502.
#[tokio::test]
async fn https_backend_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("agentgw backend CA");
    let other = Pki::new("some other CA");
    let write = |name: &str, text: &str| write_file(&dir, name, text);
    let ca_file = write("ca.crt", &pki.ca_pem);
    let other_ca_file = write("other.crt", &other.ca_pem);
    let (cert, key) = pki.leaf("backend", &["localhost"]);
    let (cert_file, key_file) = (write("backend.crt", &cert), write("backend.key", &key));

    let (openai, mcp) = mocks().await;
    let backend_yaml = format!(
        r#"
tls: {{certFile: {cert_file}, keyFile: {key_file}}}
routes:
  - name: openai
    pathPrefix: /v1
    kind: llm
    backend: {{url: "${{OPENAI}}/v1"}}
"#
    );
    let backend = agentgw_gateway::start(config(&backend_yaml, &openai, &mcp), None)
        .await
        .unwrap();
    let port = backend.addr().port();
    let front_yaml = format!(
        r#"
routes:
  - name: verified
    pathPrefix: /openai
    kind: llm
    backend:
      url: "https://localhost:{port}/v1"
      tls: {{mode: SIMPLE, caFile: {ca_file}}}
  - name: untrusted
    pathPrefix: /untrusted
    kind: llm
    backend:
      url: "https://localhost:{port}/v1"
      tls: {{mode: SIMPLE, caFile: {other_ca_file}}}
"#
    );
    let front = agentgw_gateway::start(config(&front_yaml, &openai, &mcp), None)
        .await
        .unwrap();
    let post = |path: &str, text: &str, stream: bool| {
        reqwest::Client::new()
            .post(format!("http://{}{path}", front.addr()))
            .header("content-type", "application/json")
            .body(chat(text, stream))
            .send()
    };

    let res = post("/openai/chat/completions", "over TLS", false)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "You said: over TLS"
    );
    let res = post("/openai/chat/completions", "streamed over TLS", true)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let data = crate::common::sse_data(res).await;
    assert_eq!(
        crate::common::join_deltas(&data),
        "You said: streamed over TLS"
    );

    let res = post("/untrusted/chat/completions", "hi", false)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        openai.request_count(),
        2,
        "the untrusted backend was reached"
    );

    // A `tls` block on a plain http:// backend is a configuration error, not silently ignored.
    let plain = config(
        r#"
routes:
  - name: openai
    pathPrefix: /openai
    backend: {url: "${OPENAI}/v1", tls: {mode: SIMPLE}}
"#,
        &openai,
        &mcp,
    );
    let errors = agentgw_gateway::stack::Stack::build(&plain)
        .err()
        .expect("tls on http:// is refused");
    assert!(errors.has_path("routes[0].backend.tls"), "{errors}");
    front.shutdown().await;
    backend.shutdown().await;
}
