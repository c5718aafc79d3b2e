//! The official MCP Rust SDK's client (rmcp, Streamable HTTP) through the gateway with tool
//! security, against the mock MCP server: what a real agent would see.

use agentgw_gateway::mock::{self, McpOptions};
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
