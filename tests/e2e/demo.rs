//! `agentgw --demo`: the embedded configuration works offline, and the requests it prints
//! behave as described.

use agentgw_gateway::demo;
use http::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn demo_config_serves_the_printed_requests() {
    let listen = "127.0.0.1:0".parse().unwrap();
    let demo = demo::prepare(Some(listen), true)
        .await
        .expect("demo prepares offline");
    let gw = agentgw_gateway::start(demo.config.clone(), None)
        .await
        .unwrap();
    let printed = demo::curl_examples(gw.addr(), gw.metrics_addr(), gw.health_addr());
    let base = format!("http://{}", gw.addr());
    assert!(printed.contains(&format!("{base}/openai/chat/completions")));
    assert!(printed.contains(&format!("{base}/mcp")));

    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/openai/chat/completions"))
        .header("content-type", "application/json")
        .body(r#"{"model":"gpt-4","messages":[{"role":"user","content":"Hello there"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "You said: Hello there"
    );

    let res = client
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let res = client.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    gw.shutdown().await;
}
