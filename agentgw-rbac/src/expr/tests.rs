//! Expressions against requests.

use agentgw_core::identity::{ApiKeyInfo, BackendName, ClientAddr, JwtClaims};
use agentgw_core::rejection::RouteKind;
use agentgw_core::{Attributes, Payload};
use http::Request;
use serde_json::json;

use super::*;

fn request() -> http::request::Builder {
    Request::builder()
        .method("POST")
        .uri("http://ai.example/openai/v1/chat/completions?debug=1&name=a%20b")
        .header("X-LLM", "openai")
        .header("x-api-key", "k-123")
}

fn eval(source: &str, req: &Request<()>) -> Result<Value<'static>, EvalError> {
    let expr = Expression::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    expr.evaluate(&Attributes::new(req)).map(|v| v.to_static())
}

fn truth(source: &str, req: &Request<()>) -> bool {
    match eval(source, req) {
        Ok(Value::Bool(b)) => b,
        other => panic!("{source}: {other:?}"),
    }
}

fn claims(value: serde_json::Value) -> JwtClaims {
    JwtClaims::from_value(value).unwrap()
}

fn tools_call(name: &str, arguments: serde_json::Value) -> Payload {
    Payload::from_json(json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}
    }))
}

#[test]
fn seed_expressions() {
    let user = request()
        .extension(claims(json!({"sub": "alice", "role": "user"})))
        .extension(Payload::from_static(br#"{"model":"gpt-3.5-turbo"}"#))
        .body(())
        .unwrap();
    let seed = r#"jwt.role == "user" && request.path.startsWith("/openai") && request.body.model == "gpt-3.5-turbo""#;
    assert!(truth(seed, &user));
    assert!(!truth(r#"jwt.role == "admin""#, &user));
    assert!(truth(r#"request.headers["x-api-key"] != """#, &user));
    assert!(truth(
        r#"request.headers["x-llm"] in ["openai", "anthropic", "gemini"]"#,
        &user
    ));

    let gpt4 = request()
        .extension(claims(json!({"role": "user"})))
        .extension(Payload::from_static(br#"{"model":"gpt-4"}"#))
        .body(())
        .unwrap();
    assert!(!truth(seed, &gpt4));

    let mcp = request()
        .extension(claims(json!({"sub": "bob", "role": "user"})))
        .extension(tools_call("kubectl-get", json!({"resource": "pods"})))
        .body(())
        .unwrap();
    assert!(truth(
        r#"mcp.tool.name in ["kubectl-get", "kubectl-describe", "list-pods"] && jwt.sub != """#,
        &mcp
    ));
    assert!(!truth(
        r#"mcp.tool.name in ["kubectl-delete", "helm-uninstall"] && jwt.role == "admin""#,
        &mcp
    ));
}

#[test]
fn request_attributes() {
    let req = request()
        .extension(ClientAddr("10.1.2.3:5555".parse().unwrap()))
        .body(())
        .unwrap();
    assert!(truth(r#"request.method == "POST""#, &req));
    assert!(truth(r#"request.host == "ai.example""#, &req));
    assert!(truth(r#"request.query == "debug=1&name=a%20b""#, &req));
    assert!(truth(r#"request.queryParams["name"] == "a b""#, &req));
    assert!(truth(r#"request.queryParams.debug == "1""#, &req));
    assert!(truth(r#"size(request.queryParams) == 2"#, &req));
    assert!(truth(r#"!has(request.queryParams.missing)"#, &req));
    assert!(truth(r#"request.headers["X-Llm"] == "openai""#, &req));
    assert!(truth(r#"request.headers.x_missing_ok == "" || true"#, &req));
    assert!(truth(r#""x-llm" in request.headers"#, &req));
    assert!(truth(
        r#"has(request.headers.authorization) == false"#,
        &req
    ));
    assert!(truth(
        r#"request.headers["x-llm"].upperAscii() == "OPENAI""#,
        &req
    ));
    assert!(truth(
        r#"source.ip == "10.1.2.3" && source.port == 5555"#,
        &req
    ));
    assert!(truth(r#"cidr("10.0.0.0/8").containsIP(source.ip)"#, &req));
    assert!(!truth(
        r#"cidr("192.168.0.0/16").containsIP(source.ip)"#,
        &req
    ));
    assert!(truth(
        r#"cidr("10.1.0.0/16").containsIP("10.1.200.1")"#,
        &req
    ));
    assert!(truth(r#"!has(source.identity) && has(source.ip)"#, &req));
    assert!(truth(r#"request.path.matches("^/openai/v[0-9]+/")"#, &req));
}

#[test]
fn missing_attributes_are_errors_and_has_tests_presence() {
    let bare = Request::builder().uri("/x").body(()).unwrap();
    assert!(matches!(
        eval(r#"request.headers["x-api-key"] != """#, &bare),
        Err(EvalError::NoSuchKey(k)) if &*k == "x-api-key"
    ));
    assert!(matches!(
        eval("request.body.model == 'x'", &bare),
        Err(EvalError::Missing("request.body"))
    ));
    assert!(matches!(
        eval("mcp.tool.name == 'x'", &bare),
        Err(EvalError::Missing("mcp.tool"))
    ));
    assert!(matches!(
        eval("jwt.role == 'x'", &bare),
        Err(EvalError::NoSuchKey(_))
    ));
    assert!(matches!(
        eval("source.ip == 'x'", &bare),
        Err(EvalError::Missing("source"))
    ));
    assert!(truth(
        "!has(request.body) && !has(mcp.tool) && !has(jwt.role) && size(jwt) == 0",
        &bare
    ));
    assert!(truth(
        "size(apiKey) == 0 && !has(source.ip) && request.query == ''",
        &bare
    ));
    // An absent attribute on the side that does not decide is absorbed.
    assert!(!truth(
        r#"false && request.headers["x-api-key"] == "k""#,
        &bare
    ));
    assert!(truth(
        r#"request.headers["x-api-key"] == "k" || true"#,
        &bare
    ));
}

#[test]
fn identity_extensions() {
    let mut meta = serde_json::Map::new();
    meta.insert("team".into(), json!("ml"));
    meta.insert("models".into(), json!(["gpt-4o", "gpt-4o-mini"]));
    let req = request()
        .extension(ApiKeyInfo::new("ci-bot", meta))
        .extension(claims(
            json!({"sub": "alice", "groups": ["a", "b"], "exp": 1700000000, "nested": {"x": 1.5}}),
        ))
        .body(())
        .unwrap();
    assert!(truth(
        r#"apiKey.name == "ci-bot" && apiKey.team == "ml""#,
        &req
    ));
    assert!(truth(r#""gpt-4o" in apiKey.models"#, &req));
    assert!(truth(
        r#"jwt.groups.exists(g, g == "b") && size(jwt.groups) == 2"#,
        &req
    ));
    assert!(truth(
        "jwt.exp > 1600000000 && jwt.exp + 1 == 1700000001",
        &req
    ));
    assert!(truth(
        "jwt.nested.x == 1.5 && has(jwt.nested.x) && !has(jwt.nested.y)",
        &req
    ));
    assert!(truth("jwt.groups.map(g, g + '!') == ['a!', 'b!']", &req));
    assert!(truth("jwt.groups.filter(g, g != 'a') == ['b']", &req));
    assert!(truth(
        "jwt.groups.all(g, size(g) == 1) && jwt.groups.exists_one(g, g == 'a')",
        &req
    ));
}

#[test]
fn mcp_attributes() {
    let req = request()
        .extension(tools_call(
            "kubectl-get",
            json!({"resource": "pods", "namespace": "prod"}),
        ))
        .extension(BackendName("k8s".into()))
        .body(())
        .unwrap();
    assert!(truth(r#"mcp.method == "tools/call""#, &req));
    assert!(truth(r#"mcp.tool.target == "k8s""#, &req));
    assert!(truth(
        r#"mcp.tool.arguments.namespace != "kube-system""#,
        &req
    ));
    assert!(truth(
        r#"has(mcp.tool.arguments.resource) && has(mcp.tool)"#,
        &req
    ));
    assert!(truth(
        r#"mcp.tool.name.startsWith("kubectl-") && size(mcp.tool.arguments) == 2"#,
        &req
    ));
    assert!(truth(r#"request.body.params.name == mcp.tool.name"#, &req));

    let no_args = request()
        .extension(Payload::from_json(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ping"}}),
        ))
        .body(())
        .unwrap();
    assert!(truth(
        "size(mcp.tool.arguments) == 0 && !has(mcp.tool.target)",
        &no_args
    ));

    let list = request()
        .extension(Payload::from_json(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        ))
        .body(())
        .unwrap();
    assert!(truth(
        r#"mcp.method == "tools/list" && !has(mcp.tool)"#,
        &list
    ));
    // Deciding a listed tool: the call's name is known, its arguments are not.
    let attrs = Attributes::new(&list);
    let expr =
        Expression::compile("has(mcp.tool) && mcp.tool.name == 'x' && mcp.method == 'tools/call'")
            .unwrap();
    assert_eq!(expr.evaluate_listing(&attrs, "x"), Ok(Value::Bool(true)));
    let expr = Expression::compile("mcp.tool.arguments.force == true").unwrap();
    assert_eq!(
        expr.evaluate_listing(&attrs, "x"),
        Err(EvalError::Unknown("mcp.tool.arguments"))
    );
    let bare = Request::builder().body(()).unwrap();
    assert!(truth(
        "!has(mcp.method) && !has(mcp.tool) && has(request.path)",
        &bare
    ));
}

#[test]
fn what_is_read_decides_buffering() {
    let header = Expression::compile(r#"request.headers["x-llm"] == "openai""#).unwrap();
    assert!(!header.reads_body());
    assert!(!header.reads_mcp());
    let body = Expression::compile("request.body.model == 'gpt-4'").unwrap();
    assert!(body.reads_body());
    assert!(!body.reads_mcp());
    let tool = Expression::compile("mcp.tool.name == 'x'").unwrap();
    assert!(tool.reads_body() && tool.reads_mcp());
    let has_tool = Expression::compile("has(mcp.tool)").unwrap();
    assert!(has_tool.reads_body() && has_tool.reads_mcp());
    // A whole-request read includes the body.
    assert!(
        Expression::compile("size(request) > 0")
            .unwrap()
            .reads_body()
    );
}

#[test]
fn compile_errors_name_the_problem_and_place() {
    let cases = [
        ("jwt.role == ", "CEL syntax error at line 1, column 13"),
        (
            "user.role == 'x'",
            "unknown variable `user` at line 1, column 1; known variables: request, jwt, apiKey, source, mcp",
        ),
        (
            "request.pth == '/'",
            "unknown attribute `request.pth` at line 1, column 8; request has: method, path, host, query, queryParams, headers, body",
        ),
        ("mcp.tool.nme == 'x'", "unknown attribute `mcp.tool.nme`"),
        (
            "request.path.lowercase()",
            "unknown function `lowercase` at line 1, column 23",
        ),
        (
            "timestamp(jwt.iat) > timestamp(0)",
            "unsupported CEL at line 1, column 10: function `timestamp`",
        ),
        (
            "request.path.matches(jwt.pattern)",
            "pattern that is not a string literal",
        ),
        (
            "request.path.matches('(')",
            "invalid regular expression at line 1, column 22",
        ),
        ("size(1, 2)", "invalid call of `size`"),
        (
            "cidr('10.0.0.0/99').containsIP(source.ip)",
            "is not an IP address or CIDR range",
        ),
        (
            "[1].all(1, v, v > 0)",
            "the first two arguments must be variable names",
        ),
        ("Foo{a: 1}", "message construction"),
    ];
    for (source, needle) in cases {
        let err = Expression::compile(source).expect_err(source).to_string();
        assert!(err.contains(needle), "{source}: {err}");
    }
    let multi_line =
        Expression::compile("jwt.role == 'admin' &&\n  request.pathh == '/'").unwrap_err();
    assert_eq!(
        multi_line.position(),
        Some(Position {
            line: 2,
            column: 10
        })
    );
}

#[test]
fn tool_attributes_where_no_tool_call_exists_are_rejected() {
    for source in [
        r#"mcp.method == "tools/list" && mcp.tool.arguments.x == 1"#,
        r#"mcp.tool.arguments.x == 1 && mcp.method == "initialize""#,
        r#"mcp.method != "tools/call" && mcp.tool.name == "x""#,
        r#"mcp.method in ["tools/list", "prompts/list"] && mcp.tool.target == "x""#,
        r#"mcp.method == "tools/call" ? true : mcp.tool.arguments.x == 1"#,
        r#"mcp.method == "resources/read" ? mcp.tool.name == "x" : true"#,
    ] {
        match Expression::compile(source) {
            Err(CompileError::NoToolCall {
                attribute, reason, ..
            }) => {
                assert!(attribute.starts_with("mcp.tool"), "{source}: {attribute}");
                assert!(reason.contains("tools/call"), "{source}: {reason}");
            }
            other => panic!("{source}: {other:?}"),
        }
    }
    // Guards that leave room for a tool call are fine.
    for source in [
        r#"mcp.method == "tools/call" && mcp.tool.arguments.x == 1"#,
        r#"mcp.method != "tools/list" && mcp.tool.name == "x""#,
        r#"mcp.method == "tools/list" || mcp.tool.name == "x""#,
        r#"mcp.method == "tools/call" ? mcp.tool.name == "x" : true"#,
        r#"[1].exists(mcp, mcp == 1) && mcp.tool.name == "x""#,
    ] {
        Expression::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    }
    // On an LLM route no MCP request ever arrives.
    let llm = CompileOptions::new().route(RouteKind::Llm);
    let err = Expression::compile_with("mcp.tool.arguments.x == 1", &llm).unwrap_err();
    assert!(err.to_string().contains("LLM route"), "{err}");
    let err = Expression::compile_with(r#"mcp.method == "tools/call""#, &llm).unwrap_err();
    assert!(matches!(err, CompileError::NoToolCall { .. }), "{err}");
    let mcp = CompileOptions::new().route(RouteKind::Mcp);
    Expression::compile_with("mcp.tool.arguments.x == 1", &mcp).unwrap();
}

#[test]
fn constants_fold_and_literal_lists_are_sets() {
    let folded =
        Expression::compile("1 + 2 == 3 && 'a' + 'b' == 'ab' && [1, 2].map(x, x * 2) == [2, 4]")
            .unwrap();
    assert!(folded.is_constant());
    assert_eq!(folded.constant_value(), Some(&Value::Bool(true)));
    let failing = Expression::compile("1 / 0 == 1").unwrap();
    assert!(failing.is_constant() && failing.constant_value().is_none());
    let req = request().body(()).unwrap();
    assert_eq!(eval("1 / 0 == 1", &req), Err(EvalError::DivisionByZero));

    // Large literal lists are hashed; membership keeps CEL semantics.
    let many: Vec<String> = (0..40).map(|i| format!("'m{i}'")).collect();
    let list = many.join(", ");
    assert!(truth(&format!("'m39' in [{list}]"), &req));
    assert!(!truth(&format!("'m40' in [{list}]"), &req));
    assert!(!truth(&format!("request.method in [{list}]"), &req));
    assert!(truth("1 in [1.0, 'x'] && !(2 in ['2'])", &req));
    assert!(truth("request.method in {'POST': 1, 'GET': 2}", &req));
}

#[test]
fn values_borrow_from_the_request() {
    let payload = Payload::from_static(br#"{"model":"gpt-4o","messages":[{"role":"user"}]}"#);
    let req = request().extension(payload.clone()).body(()).unwrap();
    let attrs = Attributes::new(&req);
    let expr = Expression::compile("request.body.model").unwrap();
    let value = expr.evaluate(&attrs).unwrap();
    let Value::String(s) = &value else {
        panic!("{value:?}")
    };
    let body_model = payload.json().unwrap()["model"].as_str().unwrap();
    assert!(
        std::ptr::eq(s.as_str(), body_model),
        "the value is a view into the parsed body"
    );
    assert_eq!(expr.result_type(), None);
    assert_eq!(
        Expression::compile("request.path").unwrap().result_type(),
        Some(Type::String)
    );
}

proptest::proptest! {
    /// Whatever the text, compiling returns a result: never a panic, never a hang.
    #[test]
    fn compiling_arbitrary_text_never_panics(source in "[a-z.()\\[\\]{}'\"0-9 !=<>&|?:,+*/%-]{0,40}") {
        let _ = Expression::compile(&source);
    }
}
