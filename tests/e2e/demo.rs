//! `agentgw --demo`: the embedded configuration works offline, and every request it prints
//! behaves as its title says.

use agentgw_gateway::demo::{self, EXAMPLES};
use agentgw_test_support as mock;
use http::StatusCode;
use serde_json::Value;

use crate::common::sse_data;

async fn send(base: &str, index: usize) -> reqwest::Response {
    let example = &EXAMPLES[index];
    let mut req = reqwest::Client::new()
        .post(format!("{base}{}", example.path))
        .header("content-type", "application/json")
        .body(example.body);
    for (name, value) in example.headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_printed_request_behaves_as_described() {
    let listen = "127.0.0.1:0".parse().unwrap();
    let demo = demo::prepare(Some(listen), true)
        .await
        .expect("demo prepares offline");
    let gw = agentgw_gateway::start(demo.config.clone(), None)
        .await
        .unwrap();
    let base = format!("http://{}", gw.addr());
    let printed = demo::curl_examples(gw.addr(), gw.metrics_addr(), gw.health_addr());
    for example in EXAMPLES {
        assert!(printed.contains(example.title) && printed.contains(example.body));
    }

    // 0: allowed.
    let res = send(&base, 0).await;
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "You said: Hello there"
    );

    // 1: no key.
    let res = send(&base, 1).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["error"]["type"], "authentication_error");

    // 2: model not allowed for the key.
    let res = send(&base, 2).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // 3: prompt injection.
    let res = send(&base, 3).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let json: Value = res.json().await.unwrap();
    assert_eq!(
        json["error"]["message"],
        "Request blocked due to policy violation"
    );

    // 4: streamed PII arrives masked.
    let res = send(&base, 4).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = crate::common::join_deltas(&sse_data(res).await);
    assert!(text.starts_with("You said: show me some pii"), "{text}");
    for secret in [
        "4111 1111 1111 1111",
        "jane.doe@example.com",
        "415-555-0132",
        "536-22-8417",
    ] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
    assert!(text.contains("<CREDIT_CARD>"), "{text}");

    // 5: the poisoned tool is hidden, the others are listed.
    let res = send(&base, 5).await;
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    let names: Vec<&str> = json["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(!names.contains(&"add-numbers"), "{names:?}");
    assert!(
        names.contains(&"read-file") && names.contains(&"list-pods"),
        "{names:?}"
    );
    assert!(!json.to_string().contains(mock::POISONED_TOOL_DESCRIPTION));

    // 6: allowed tool call.
    let res = send(&base, 6).await;
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["id"], 2);
    assert!(
        json["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("notes.txt")
    );

    // 7: path traversal refused with a JSON-RPC error carrying the id.
    let res = send(&base, 7).await;
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["id"], 3);
    assert!(json["error"]["code"].is_i64(), "{json}");
    assert!(
        !json.to_string().contains("../../etc/passwd"),
        "the denial echoes the argument: {json}"
    );

    // 8: an injection without any configured keyword, rejected by the classifier.
    let res = send(&base, 8).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["error"]["code"], "prompt-injection-classifier");

    gw.shutdown().await;
}
