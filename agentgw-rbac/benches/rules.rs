//! The seed's rules, on our evaluator and on the `cel` crate's interpreter
//! (`Program::execute`), with the same request.
//!
//! Both sides pay for what a request costs them: ours builds `Attributes` (a few borrowed
//! pointers) and evaluates; the interpreter's side opens a child scope of a root
//! `cel::Context` built once, adds exactly the variables the rule reads (converted from the
//! request: claims, headers, body, tool call) and executes. `cel-0.15-execute-only` runs the
//! program on a context built outside the measurement. The body's JSON is parsed before the measurement for both: in a gateway it is
//! parsed once per request and shared by every layer.
//!
//! Run: `cargo bench -p agentgw-rbac --bench rules`.

use std::collections::HashMap;
use std::hint::black_box;

use agentgw_core::identity::JwtClaims;
use agentgw_core::{Attributes, Payload};
use agentgw_rbac::config::{PolicyConfig, RbacConfig};
use agentgw_rbac::{CelPolicy, Expression};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use serde_json::json;

const LLM_RULE: &str = r#"jwt.role == "user" && request.path.startsWith("/openai") && request.body.model == "gpt-3.5-turbo""#;
const MCP_RULE: &str =
    r#"mcp.tool.name in ["kubectl-get", "kubectl-describe", "list-pods"] && jwt.sub != """#;
const HEADER_RULE: &str = r#"request.headers["x-llm"] in ["openai", "anthropic", "gemini"]"#;
/// Business hours in Berlin on weekdays, until a contract ends: reads the clock once and looks
/// up the zone's offset three times (the zone itself is resolved when the rule compiles).
const TIME_RULE: &str = r#"request.time < timestamp("2100-01-01T00:00:00Z") && request.time.getDayOfWeek("Europe/Berlin") in [1, 2, 3, 4, 5] && request.time.getHours("Europe/Berlin") >= 9 && request.time.getHours("Europe/Berlin") < 17"#;

fn claims() -> JwtClaims {
    JwtClaims::from_value(json!({
        "sub": "alice", "role": "user", "iss": "https://idp.example", "aud": "agentgw",
        "exp": 1900000000, "iat": 1700000000, "groups": ["ml", "dev"]
    }))
    .unwrap()
}

fn llm_request() -> Request<()> {
    let payload = Payload::from_static(
        br#"{"model":"gpt-3.5-turbo","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Summarise the quarterly report in three bullet points."}],"temperature":0.2,"max_tokens":256}"#,
    );
    payload.json().unwrap();
    Request::builder()
        .method("POST")
        .uri("/openai/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig")
        .header("user-agent", "openai-python/1.40.0")
        .header("x-llm", "openai")
        .extension(claims())
        .extension(payload)
        .body(())
        .unwrap()
}

fn mcp_request() -> Request<()> {
    let payload = Payload::from_static(
        br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"kubectl-get","arguments":{"resource":"pods","namespace":"default"}}}"#,
    );
    payload.json().unwrap();
    payload.mcp().unwrap();
    Request::builder()
        .method("POST")
        .uri("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", "3f1c9b2e")
        .extension(claims())
        .extension(payload)
        .body(())
        .unwrap()
}

/// The interpreter's context for a request: a child scope of the shared root context (whose
/// standard library is built once), holding only the variables `rule` reads.
fn cel_context<'r>(
    root: &'r cel::Context<'static, 'static>,
    rule: &str,
    req: &Request<()>,
) -> cel::Context<'r, 'static> {
    let attrs = Attributes::new(req);
    let mut ctx = root.new_inner_scope();
    let jwt = || cel::to_value(attrs.jwt().unwrap().as_map()).unwrap();
    match rule {
        LLM_RULE => {
            ctx.add_variable_from_value("jwt", jwt());
            let mut request: HashMap<String, cel::Value> = HashMap::new();
            request.insert("path".into(), attrs.path().into());
            request.insert(
                "body".into(),
                cel::to_value(attrs.body_json().unwrap()).unwrap(),
            );
            ctx.add_variable_from_value("request", request);
        }
        MCP_RULE => {
            ctx.add_variable_from_value("jwt", jwt());
            let call = attrs.tool_call().unwrap();
            let tool = HashMap::from([("name".to_owned(), cel::Value::from(call.name))]);
            let mcp = HashMap::from([("tool".to_owned(), cel::Value::from(tool))]);
            ctx.add_variable_from_value("mcp", mcp);
        }
        _ => {
            let headers: HashMap<String, cel::Value> = attrs
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
                    )
                })
                .collect();
            let request = HashMap::from([("headers".to_owned(), cel::Value::from(headers))]);
            ctx.add_variable_from_value("request", request);
        }
    }
    ctx
}

fn rules(c: &mut Criterion) {
    let cases = [
        ("llm_jwt_path_body", LLM_RULE, llm_request()),
        ("mcp_tool_in_list", MCP_RULE, mcp_request()),
        ("header_in_list", HEADER_RULE, llm_request()),
    ];
    let root = cel::Context::default();
    let mut group = c.benchmark_group("rule");
    for (name, rule, req) in &cases {
        let ours = Expression::compile(rule).unwrap();
        assert_eq!(
            ours.evaluate(&Attributes::new(req)).unwrap().as_bool(),
            Some(true)
        );
        let program = cel::Program::compile(rule).unwrap();
        assert_eq!(
            program.execute(&cel_context(&root, rule, req)).unwrap(),
            cel::Value::Bool(true)
        );

        group.bench_function(format!("agentgw/{name}"), |b| {
            b.iter(|| {
                let attrs = Attributes::new(black_box(req));
                black_box(ours.evaluate(&attrs).unwrap().as_bool())
            })
        });
        group.bench_function(format!("cel-0.15/{name}"), |b| {
            b.iter(|| {
                let ctx = cel_context(&root, rule, black_box(req));
                black_box(program.execute(&ctx).unwrap())
            })
        });
        group.bench_function(format!("cel-0.15-execute-only/{name}"), |b| {
            let ctx = cel_context(&root, rule, req);
            b.iter(|| black_box(program.execute(black_box(&ctx)).unwrap()))
        });
    }
    // Ours only: the interpreter's side would need the clock converted into its context.
    let time_rule = Expression::compile(TIME_RULE).unwrap();
    let req = llm_request();
    assert!(
        time_rule
            .evaluate(&Attributes::new(&req))
            .unwrap()
            .as_bool()
            .is_some()
    );
    group.bench_function("agentgw/business_hours_and_expiry", |b| {
        b.iter(|| {
            let attrs = Attributes::new(black_box(&req));
            black_box(time_rule.evaluate(&attrs).unwrap().as_bool())
        })
    });
    group.finish();

    // A whole decision: the seed's JWT policy (two matchExpressions, the second one matching).
    let policy =
        CelPolicy::from_config(&RbacConfig::default().policy(
            PolicyConfig::default().match_expressions([r#"jwt.role == "admin""#, LLM_RULE]),
        ))
        .unwrap();
    let req = llm_request();
    c.bench_function("policy/seed_jwt_two_rules", |b| {
        b.iter(|| {
            black_box(
                policy
                    .evaluate(&Attributes::new(black_box(&req)))
                    .is_allowed(),
            )
        })
    });
}

criterion_group!(benches, rules);
criterion_main!(benches);
