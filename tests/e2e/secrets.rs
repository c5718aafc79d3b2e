//! Secrets are named in one shape across the family (`agentgw_core::config::SecretRef`) and a
//! Kubernetes Secret is read from the gateway's `secretsDir`, whichever crate reads it: here
//! the Redis URL of shared tool pins (agentgw-toolsec), next to a backend key (agentgw-auth).

use agentgw_gateway::Config;
use agentgw_gateway::stack::Stack;

fn config(secrets: &std::path::Path) -> Config {
    let text = format!(
        "secretsDir: {}\npolicies:\n  ai:\n    toolSecurity:\n      pinning:\n        redis: {{secretRef: {{name: redis-pins}}, keyPrefix: \"e2e:\"}}\nroutes:\n  - name: tools\n    pathPrefix: /tools\n    kind: mcp\n    backend: {{url: \"http://127.0.0.1:9/mcp\"}}\n",
        secrets.display()
    );
    Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn the_redis_url_of_shared_pins_is_read_from_the_gateways_secrets_dir() {
    let secrets = tempfile::tempdir().unwrap();
    // Not mounted yet: the error names the field and the file under `secretsDir`.
    let errors = Stack::build(&config(secrets.path()))
        .err()
        .expect("a missing secret is an error");
    let text = errors.to_string();
    assert!(
        text.contains("toolSecurity.pinning.redis.secretRef.name"),
        "{text}"
    );
    let file = secrets.path().join("redis-pins").join("url");
    assert!(text.contains(&file.display().to_string()), "{text}");

    // A URL that is not Redis's: refused, and its password never printed.
    std::fs::create_dir(secrets.path().join("redis-pins")).unwrap();
    std::fs::write(&file, "http://:hunter2@cache:6379\n").unwrap();
    let errors = Stack::build(&config(secrets.path()))
        .err()
        .expect("an http:// URL is refused");
    let text = errors.to_string();
    assert!(
        text.contains("secretRef.name") && !text.contains("hunter2"),
        "{text}"
    );

    // Mounted with a Redis URL: the gateway builds.
    std::fs::write(&file, "redis://:hunter2@127.0.0.1:6379/0\n").unwrap();
    if let Err(errors) = Stack::build(&config(secrets.path())) {
        panic!("{errors}");
    }
}
