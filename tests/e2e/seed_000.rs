//! Seed 000 loads as written: every YAML fragment of `../shared/seeds/000_e808cbebaca887c7.txt`
//! (read at test time, from the file itself) is placed unchanged into a gateway configuration,
//! which must load and build (what `--check-config` does) with the warnings the fragment
//! deserves; a few fragments are then exercised over real sockets.
//!
//! Placement: a `TrafficPolicy`'s `spec` is a route's `policies`, a `Backend`'s `spec` is a
//! route's `backend`, a `BackendConfigPolicy`'s `spec.tls` is a backend's `tls`, and the flat
//! "defense in depth" block is the global `policies`. Kubernetes objects the gateway does not
//! read (ExternalSecret, NetworkPolicy, PrometheusRule, ServiceMonitor) and excerpts of them
//! are listed as skipped, with the reason.

use std::path::{Path, PathBuf};

use agentgw_gateway::Config;
use agentgw_gateway::stack::Stack;
use http::StatusCode;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;

use crate::common::{chat, join_deltas, loopback, sse_data};

/// The seed, beside the repository (`../shared/seeds`), or where `AGENTGW_SEEDS_DIR` says.
fn seed_text() -> String {
    let dir = std::env::var_os("AGENTGW_SEEDS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seeds"),
        PathBuf::from,
    );
    let path = dir.join("000_e808cbebaca887c7.txt");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "seed 000 is read from {} ({e}): check out the shared seeds beside the repository \
             (../shared/seeds) or set AGENTGW_SEEDS_DIR",
            path.display()
        )
    })
}

/// The text of every ```yaml fragment, in order.
fn yaml_fragments(text: &str) -> Vec<String> {
    let mut fragments = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim() == "```yaml" => current = Some(String::new()),
            Some(fragment) if line.trim() == "```" => {
                fragments.push(std::mem::take(fragment));
                current = None;
            }
            Some(fragment) => {
                fragment.push_str(line);
                fragment.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an unterminated ```yaml fragment");
    fragments
}

/// The YAML documents of a fragment (split at `---`), without the empty ones.
fn documents(fragment: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in fragment.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().unwrap();
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|doc| {
        doc.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// The lines of the block under `key:` (a line of its own at `indent` spaces), as written.
fn block(doc: &str, key: &str, indent: usize) -> String {
    let head = format!("{}{key}:", " ".repeat(indent));
    let mut lines = doc.lines().skip_while(|l| l.trim_end() != head);
    assert!(lines.next().is_some(), "no `{key}:` in\n{doc}");
    let mut out = String::new();
    for line in lines {
        let content = !line.trim().is_empty() && !line.trim_start().starts_with('#');
        if content && line.len() - line.trim_start().len() <= indent {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `text` with every line moved right by `by` spaces.
fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// How a document of the seed is used.
#[derive(Debug)]
enum Placement {
    /// A configuration to load, with the warnings (paths) it must report.
    Load {
        what: String,
        config: String,
        warnings: Vec<String>,
    },
    /// Not a gateway object.
    Skipped { what: String, reason: &'static str },
}

/// The secrets the seed names, mounted the Kubernetes way under `dir`.
fn mount_secrets(dir: &Path) {
    let ca = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "seed ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = params.self_signed(&ca).unwrap();
    let issuer = Issuer::new(params, ca);
    let key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["client.example".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let files = [
        ("openai-secret/Authorization", "sk-seed-openai\n".to_owned()),
        ("internal-ca-cert/ca.crt", ca_cert.pem()),
        ("ca-cert/ca.crt", ca_cert.pem()),
        ("client-cert/tls.crt", client.pem()),
        ("client-cert/tls.key", key.serialize_pem()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn route(kind: &str, backend: &str, policies: &str) -> String {
    format!(
        "routes:\n  - name: seed\n    pathPrefix: /seed\n    kind: {kind}\n    backend:\n{backend}    policies:\n{policies}"
    )
}

/// Where each document of the seed goes.
fn placements(seed: &str, secrets: &Path) -> Vec<Placement> {
    let head = format!("secretsDir: {}\n", secrets.display());
    let mut out = Vec::new();
    for fragment in yaml_fragments(seed) {
        for doc in documents(&fragment) {
            let value: Value = serde_saphyr::from_str(&doc)
                .unwrap_or_else(|e| panic!("the seed's YAML does not parse ({e}):\n{doc}"));
            let kind = value["kind"].as_str().unwrap_or_default();
            let name = value["metadata"]["name"].as_str().unwrap_or_default();
            let what = format!("{kind} {name}");
            let placement = match kind {
                "TrafficPolicy" => {
                    let spec = block(&doc, "spec", 0);
                    let mcp = value["spec"]["targetRefs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|r| r["name"].as_str().is_some_and(|n| n.contains("mcp")));
                    let (kind, url) = if mcp {
                        ("mcp", "http://127.0.0.1:9/mcp")
                    } else {
                        ("llm", "http://127.0.0.1:9/v1")
                    };
                    let backend = format!("      url: {url}\n");
                    let mut warnings = Vec::new();
                    if name == "response-masking" {
                        warnings.push(
                            "routes[0].policies.ai.promptGuard.response[0].regex.matches[0].pattern"
                                .to_owned(),
                        );
                    }
                    if name == "tool-sandbox" {
                        for key in ["networkAccess", "fileSystemAccess"] {
                            warnings.push(format!(
                                "routes[0].policies.ai.toolSecurity.sandbox.limits.{key}"
                            ));
                        }
                    }
                    Placement::Load {
                        what,
                        config: format!("{head}{}", route(kind, &backend, &indent(&spec, 4))),
                        warnings,
                    }
                }
                "Backend" => Placement::Load {
                    what,
                    // No URL: the provider's own.
                    config: format!(
                        "{head}routes:\n  - name: seed\n    pathPrefix: /seed\n    backend:\n{}",
                        indent(&block(&doc, "spec", 0), 4)
                    ),
                    warnings: Vec::new(),
                },
                "BackendConfigPolicy" => {
                    let tls = format!("  tls:\n{}", block(&doc, "tls", 2));
                    let backend = format!("      url: https://127.0.0.1:9/v1\n{}", indent(&tls, 4));
                    Placement::Load {
                        what,
                        config: format!("{head}{}", route("llm", &backend, "      {}\n")),
                        warnings: Vec::new(),
                    }
                }
                "ExternalSecret" | "NetworkPolicy" | "PrometheusRule" | "ServiceMonitor" => {
                    Placement::Skipped {
                        what,
                        reason: "a Kubernetes object for deploy/, not gateway configuration",
                    }
                }
                "" if value.get("jwtAuthentication").is_some() => Placement::Load {
                    what: "defense-in-depth summary block".to_owned(),
                    // The global policies; the route's own JWT block (the seed's jwt-auth
                    // TrafficPolicy) gives the providers the summary leaves out.
                    config: format!(
                        "{head}policies:\n{}{}",
                        indent(&doc, 2),
                        route(
                            "llm",
                            "      url: http://127.0.0.1:9/v1\n",
                            &indent(&jwt_auth_spec(seed), 4)
                        )
                    ),
                    warnings: Vec::new(),
                },
                "" if value.get("spec").is_some() || value.get("stringData").is_some() => {
                    Placement::Skipped {
                        what: "ExternalSecret/Secret excerpt".to_owned(),
                        reason: "an excerpt of a Kubernetes Secret or ExternalSecret",
                    }
                }
                other => panic!("a seed fragment of unknown kind {other:?}:\n{doc}"),
            };
            out.push(placement);
        }
    }
    out
}

/// The `spec` of the seed's `jwt-auth` TrafficPolicy.
fn jwt_auth_spec(seed: &str) -> String {
    yaml_fragments(seed)
        .iter()
        .flat_map(|f| documents(f))
        .find(|doc| doc.contains("name: jwt-auth\n"))
        .map(|doc| block(&doc, "spec", 0))
        .expect("the seed's jwt-auth TrafficPolicy")
}

/// Loads and builds `config` as `--check-config` does; returns the warnings' paths.
fn check(what: &str, config: &str) -> Vec<String> {
    let config = Config::from_yaml(config)
        .unwrap_or_else(|e| panic!("{what} does not load:\n{e}\n--- config ---\n{config}"));
    let stack = Stack::build(&config).unwrap_or_else(|e| panic!("{what} does not build:\n{e}"));
    stack.warnings().iter().map(|w| w.path.clone()).collect()
}

#[tokio::test]
async fn every_fragment_of_seed_000_loads_as_written() {
    let seed = seed_text();
    let secrets = tempfile::tempdir().unwrap();
    mount_secrets(secrets.path());
    let placements = placements(&seed, secrets.path());
    let mut loaded = Vec::new();
    let mut skipped = Vec::new();
    for placement in &placements {
        match placement {
            Placement::Load {
                what,
                config,
                warnings,
            } => {
                let found = check(what, config);
                for expected in warnings {
                    assert!(
                        found.contains(expected),
                        "{what}: no warning at {expected}; warnings: {found:?}"
                    );
                }
                assert_eq!(found.len(), warnings.len(), "{what}: {found:?}");
                loaded.push(what.as_str());
            }
            Placement::Skipped { what, reason } => skipped.push(format!("{what}: {reason}")),
        }
    }
    eprintln!("loaded: {loaded:#?}\nskipped: {skipped:#?}");
    // 13 TrafficPolicies, 2 Backends, 2 BackendConfigPolicies, the summary block; 3
    // ExternalSecrets, a NetworkPolicy, 2 PrometheusRules, 2 excerpts.
    assert_eq!(loaded.len(), 18, "{loaded:#?}");
    assert_eq!(skipped.len(), 8, "{skipped:#?}");
}

#[tokio::test]
async fn seed_audit_levels_below_full_warn_about_include_arguments() {
    let seed = seed_text();
    let doc = yaml_fragments(&seed)
        .iter()
        .flat_map(|f| documents(f))
        .find(|doc| doc.contains("name: tool-audit\n"))
        .expect("the seed's tool-audit TrafficPolicy");
    // The seed's comment offers `none, basic, full`.
    for level in ["none", "basic"] {
        let spec = block(&doc, "spec", 0).replace("level: full", &format!("level: {level}"));
        let config = route(
            "mcp",
            "      url: http://127.0.0.1:9/mcp\n",
            &indent(&spec, 4),
        );
        let warnings = check(&format!("tool-audit with level {level}"), &config);
        assert_eq!(
            warnings,
            [
                "routes[0].policies.ai.toolSecurity.audit.includeArguments",
                "routes[0].policies.ai.toolSecurity.audit.includeResponse"
            ]
        );
    }
}

#[tokio::test]
async fn seed_backend_and_response_masking_over_real_sockets() {
    let seed = seed_text();
    let secrets = tempfile::tempdir().unwrap();
    mount_secrets(secrets.path());
    let docs: Vec<String> = yaml_fragments(&seed)
        .iter()
        .flat_map(|f| documents(f))
        .collect();
    let find = |name: &str| {
        docs.iter()
            .find(|doc| doc.contains(&format!("  name: {name}\n")))
            .unwrap_or_else(|| panic!("no {name} in the seed"))
            .clone()
    };
    let openai = agentgw_test_support::openai(loopback()).await.unwrap();
    // The seed's `openai` Backend, pointed at the mock, with the seed's response masking.
    let backend = format!(
        "      url: {}/v1\n{}",
        openai.url(),
        indent(&block(&find("openai"), "spec", 0), 4)
    );
    let masking = indent(&block(&find("response-masking"), "spec", 0), 4);
    let yaml = format!(
        "secretsDir: {}\nroutes:\n  - name: seed\n    pathPrefix: /openai\n    backend:\n{backend}    policies:\n{masking}",
        secrets.path().display()
    );
    let mut config = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    config.listen = loopback();
    let gateway = agentgw_gateway::start(config, None).await.unwrap();
    let url = format!("http://{}/openai/chat/completions", gateway.addr());
    let client = reqwest::Client::new();
    let prompt = "write to jane.roe@corp.example.org today";
    // The client asks for another model: the Backend's `model` wins.
    let chat = |prompt: &str, stream: bool| {
        let mut body: Value = serde_json::from_slice(&chat(prompt, stream)).unwrap();
        body["model"] = "gpt-3.5-turbo".into();
        serde_json::to_vec(&body).unwrap()
    };

    let res = client
        .post(&url)
        .header("content-type", "application/json")
        .body(chat(prompt, false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(answer, "You said: write to <EMAIL> today");

    let res = client
        .post(&url)
        .header("content-type", "application/json")
        .body(chat(prompt, true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let streamed = join_deltas(&sse_data(res).await);
    assert_eq!(streamed, "You said: write to <EMAIL> today");

    // The Backend's `secretRef: {name: openai-secret}` and `model: "gpt-4"` reached upstream.
    let requests = openai.received_requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.headers["authorization"], "Bearer sk-seed-openai");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["model"], "gpt-4");
    }
}
