//! The official MCP Rust SDK's client (rmcp, Streamable HTTP) through the gateway with tool
//! security, against the mock MCP server: what a real agent would see.

use agentgw_test_support::{self as mock, McpOptions};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;

use crate::common::loopback;

const YAML: &str = r#"
routes:
  - name: mcp
    pathPrefix: /mcp
    kind: mcp
    backend: {url: "${MCP}/mcp"}
    policies:
      ai:
        toolSecurity:
          validation: {enabled: true}
          inputValidation:
            enabled: true
            rules:
              - tool: "*"
                arguments:
                  - field: "*"
                    reject:
                      - pattern: "\\.\\./"
                        name: "path-traversal"
"#;

async fn agent_session(options: McpOptions) {
    let openai = mock::openai(loopback()).await.unwrap();
    let server = mock::mcp(loopback(), options).await.unwrap();
    let gw = crate::common::gateway(YAML, &openai, &server).await;
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", gw.addr()));
    let client = ().serve(transport).await.expect("initialize through the gateway");

    // The poisoned tool never reaches the agent; the others do.
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(!names.contains(&"add-numbers"), "{names:?}");
    assert!(
        names.contains(&"read-file") && names.contains(&"kubectl-get"),
        "{names:?}"
    );

    // An allowed call returns the tool's result.
    let mut args = serde_json::Map::new();
    args.insert("path".into(), "notes.txt".into());
    let result = client
        .call_tool(CallToolRequestParams::new("read-file").with_arguments(args))
        .await
        .expect("allowed tools/call");
    assert_ne!(result.is_error, Some(true));
    assert!(format!("{:?}", result.content).contains("notes.txt"));

    // Path traversal is refused as a tool error, and the session goes on.
    let mut args = serde_json::Map::new();
    args.insert("path".into(), "../../etc/passwd".into());
    let denied = client
        .call_tool(CallToolRequestParams::new("read-file").with_arguments(args))
        .await;
    assert!(denied.is_err(), "traversal must be refused: {denied:?}");
    let again = client.list_all_tools().await.expect("session still usable");
    assert_eq!(again.len(), tools.len());

    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn rmcp_client_through_the_gateway_json() {
    agent_session(McpOptions::default()).await;
}

#[tokio::test]
async fn rmcp_client_through_the_gateway_sse() {
    agent_session(McpOptions {
        sse: true,
        require_session: true,
    })
    .await;
}

/// An MCP route without tool security still counts tool calls, by the names the upstream
/// listed (`other` beyond them) and whether a layer denied them (here RBAC).
#[tokio::test]
async fn tool_calls_are_counted_on_every_mcp_route() {
    let yaml = r#"
routes:
  - name: mcp
    pathPrefix: /mcp
    kind: mcp
    backend: {url: "${MCP}/mcp"}
    policies:
      rbac:
        policy:
          deny:
            - name: no-traversal
              expression: 'has(mcp.tool) && mcp.tool.name == "list-pods" && mcp.tool.arguments.namespace == "kube-system"'
"#;
    let openai = mock::openai(loopback()).await.unwrap();
    let server = mock::mcp(
        loopback(),
        McpOptions {
            sse: true,
            require_session: true,
        },
    )
    .await
    .unwrap();
    let mut config = crate::common::config(yaml, &openai, &server);
    config.metrics = Some(loopback());
    let gw = agentgw_gateway::start(config, None).await.unwrap();
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", gw.addr()));
    let client = ().serve(transport).await.expect("initialize through the gateway");

    // `list-pods` is called by no other test of this process (the recorder is process-wide).
    let call = |name: &'static str, namespace: &str| {
        let mut args = serde_json::Map::new();
        args.insert("namespace".into(), namespace.into());
        CallToolRequestParams::new(name).with_arguments(args)
    };
    // Before the tools are listed, a name is not yet a label value: this call is `other`.
    let _ = client.call_tool(call("list-pods", "default")).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "list-pods"));
    client
        .call_tool(call("list-pods", "default"))
        .await
        .expect("allowed");
    let denied = client.call_tool(call("list-pods", "kube-system")).await;
    assert!(denied.is_err(), "{denied:?}");
    let _ = client.call_tool(call("no-such-tool-4711", "x")).await;

    let text = reqwest::get(format!("http://{}/metrics", gw.metrics_addr().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |labels: &str| {
        text.lines()
            .find(|line| line.starts_with(&format!("agentgateway_tool_calls_total{{{labels}}}")))
            .and_then(|line| line.rsplit(' ').next())
            .map(|n| n.parse::<u64>().unwrap())
    };
    assert_eq!(
        count(r#"tool="list-pods",allowed="true""#),
        Some(1),
        "{text}"
    );
    assert_eq!(
        count(r#"tool="list-pods",allowed="false""#),
        Some(1),
        "{text}"
    );
    assert!(count(r#"tool="other",allowed="true""#) >= Some(2), "{text}");
    assert!(!text.contains("no-such-tool-4711"), "{text}");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}
