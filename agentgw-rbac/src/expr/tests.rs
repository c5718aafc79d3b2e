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
    assert_eq!(
        expr.evaluate_listing(&attrs, "x", None),
        Ok(Value::Bool(true))
    );
    let expr = Expression::compile("mcp.tool.arguments.force == true").unwrap();
    assert_eq!(
        expr.evaluate_listing(&attrs, "x", None),
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
            "unknown attribute `request.pth` at line 1, column 8; request has: method, path, host, query, queryParams, headers, body, time",
        ),
        ("mcp.tool.nme == 'x'", "unknown attribute `mcp.tool.nme`"),
        (
            "request.path.lowercase()",
            "unknown function `lowercase` at line 1, column 23",
        ),
        (
            "request.path.charAt(0) == '/'",
            "unsupported CEL at line 1, column 20: function `charAt`",
        ),
        (
            "request.time.getHours('Mars/Base') > 9",
            "invalid call of `getHours` at line 1, column 23: time zone \"Mars/Base\": unknown time zone",
        ),
        (
            "request.time.getHours(1) > 9",
            "the time zone must be a string",
        ),
        (
            "request.path.getHours() > 9",
            "invalid call of `getHours` at line 1, column 22: it applies to a timestamp or a duration, not to string",
        ),
        (
            "duration('1h').getDayOfWeek() > 0",
            "it applies to a timestamp, not to google.protobuf.Duration",
        ),
        (
            "duration('1h').getHours('UTC') > 0",
            "a duration has no time zone",
        ),
        ("timestamp() == request.time", "invalid call of `timestamp`"),
        (
            "request.time > timestamp('2030-02-30T00:00:00Z')",
            "invalid call of `timestamp` at line 1, column 26: invalid argument to `timestamp`: invalid RFC 3339 timestamp",
        ),
        (
            "request.time > timestamp(-62135596801)",
            "range error in `timestamp`: timestamp out of range",
        ),
        (
            "request.time - duration('1d') > timestamp(0)",
            "unknown unit in duration",
        ),
        (
            "duration('1h') < timestamp(0)",
            "invalid call of `<` at line 1, column 16: no overload for google.protobuf.Duration < google.protobuf.Timestamp",
        ),
        (
            "request.time + request.time",
            "no overload for google.protobuf.Timestamp + google.protobuf.Timestamp",
        ),
        (
            "request.time - 1 > request.time",
            "no overload for google.protobuf.Timestamp - int",
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
    // A view into the member the payload parsed (alone: the body is plain), not a copy.
    let body_model = payload.field("model").unwrap().unwrap().as_str().unwrap();
    assert!(
        std::ptr::eq(s.as_str(), body_model),
        "the value is a view into the parsed member"
    );
    // Expressions that need every member see the whole body.
    let attrs = Attributes::new(&req);
    for (expr, expected) in [
        ("size(request.body) == 2", true),
        (
            "'messages' in request.body && !('tools' in request.body)",
            true,
        ),
        ("has(request.body.model) && !has(request.body.tools)", true),
        ("request.body.messages[0].role == 'user'", true),
        (
            "request.body == {'model': 'gpt-4o', 'messages': [{'role': 'user'}]}",
            true,
        ),
        ("request.body.all(k, k in ['model', 'messages'])", true),
    ] {
        let value = Expression::compile(expr).unwrap().evaluate(&attrs).unwrap();
        assert_eq!(value, Value::Bool(expected), "{expr}");
    }
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

fn at(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn truth_at(source: &str, req: &Request<()>, now: &str) -> bool {
    let expr = Expression::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    match expr.evaluate_at(&Attributes::new(req), at(now)) {
        Ok(Value::Bool(b)) => b,
        other => panic!("{source} at {now}: {other:?}"),
    }
}

#[test]
fn business_hours_follow_the_zone_and_its_daylight_saving_time() {
    let req = request().body(()).unwrap();
    let rule = r#"request.time.getHours("Europe/Berlin") >= 9 && request.time.getHours("Europe/Berlin") < 17"#;
    // Winter: Berlin is UTC+1.
    assert!(truth_at(rule, &req, "2025-01-15T08:00:00Z"));
    assert!(!truth_at(rule, &req, "2025-01-15T07:59:59.999Z"));
    assert!(!truth_at(rule, &req, "2025-01-15T16:00:00Z"));
    // Summer: UTC+2, the same UTC hour is an hour later in Berlin.
    assert!(truth_at(rule, &req, "2025-07-15T07:00:00Z"));
    assert!(!truth_at(rule, &req, "2025-07-15T15:00:00Z"));
    // Weekdays only: Saturday (6) and Sunday (0) are out.
    let weekdays = r#"request.time.getDayOfWeek("America/Los_Angeles") in [1, 2, 3, 4, 5]"#;
    assert!(truth_at(weekdays, &req, "2025-01-17T20:00:00Z")); // Friday noon in LA
    assert!(!truth_at(weekdays, &req, "2025-01-18T20:00:00Z")); // Saturday
    // Friday 20:00 in LA is already Saturday in UTC.
    assert!(truth_at(weekdays, &req, "2025-01-18T04:00:00Z"));
    // Fixed offsets.
    assert!(truth_at(
        r#"request.time.getHours("+05:30") == 14 && request.time.getMinutes("+05:30") == 0"#,
        &req,
        "2025-01-15T08:30:00Z"
    ));
}

#[test]
fn expiry_rules_compare_timestamps() {
    let req = request().body(()).unwrap();
    let rule = r#"request.time < timestamp("2030-01-01T00:00:00Z")"#;
    assert!(truth_at(rule, &req, "2029-12-31T23:59:59.999999999Z"));
    assert!(!truth_at(rule, &req, "2030-01-01T00:00:00Z"));
    // An expiry carried by the token, in seconds since the epoch.
    let exp = request()
        .extension(claims(json!({"exp": 1_900_000_000})))
        .body(())
        .unwrap();
    let from_claim = "request.time < timestamp(jwt.exp)";
    assert!(truth_at(from_claim, &exp, "2030-03-17T17:46:39Z"));
    assert!(!truth_at(from_claim, &exp, "2030-03-17T17:46:40Z"));
    // A grace period.
    let grace = "request.time - timestamp(jwt.exp) < duration('5m')";
    assert!(truth_at(grace, &exp, "2030-03-17T17:51:39Z"));
    assert!(!truth_at(grace, &exp, "2030-03-17T17:51:40Z"));
}

#[test]
fn request_time_is_a_timestamp_read_only_when_used() {
    let req = request().body(()).unwrap();
    let time = Expression::compile("request.time").unwrap();
    assert_eq!(time.result_type(), Some(Type::Timestamp));
    assert!(time.reads_time());
    assert!(
        !Expression::compile("request.path == '/'")
            .unwrap()
            .reads_time()
    );
    assert!(
        !Expression::compile("timestamp(0) < timestamp(1)")
            .unwrap()
            .reads_time()
    );
    assert_eq!(
        Expression::compile("request.time - timestamp(0)")
            .unwrap()
            .result_type(),
        Some(Type::Duration)
    );
    assert_eq!(
        Expression::compile("request.time + duration('1h')")
            .unwrap()
            .result_type(),
        Some(Type::Timestamp)
    );
    // The system clock, when no instant is given.
    assert!(truth(
        "request.time > timestamp('2025-01-01T00:00:00Z') && type(request.time) == google.protobuf.Timestamp",
        &req
    ));
    assert!(truth("has(request.time)", &req));
    assert!(truth("request.time == request.time", &req));
    assert_eq!(
        time.evaluate_at(&Attributes::new(&req), at("2009-02-13T23:31:30Z")),
        Ok(Value::Timestamp(at("2009-02-13T23:31:30Z")))
    );
}

#[test]
fn timestamp_and_duration_functions() {
    let req = request()
        .extension(claims(
            json!({"tz": "Asia/Tokyo", "bad_tz": "Mars/Base", "iat": "2009-02-13T23:31:30Z", "bad_date": "2009-02-13", "late": 253_402_300_800_i64, "day": "1d", "ten_thousand_years": "320000000000s", "ratio": 1.5}),
        ))
        .body(())
        .unwrap();
    let values: &[(&str, Value<'static>)] = &[
        (
            "int(timestamp('2009-02-13T23:31:30Z'))",
            Value::Int(1_234_567_890),
        ),
        ("int(timestamp('1969-12-31T23:59:59.5Z'))", Value::Int(-1)),
        (
            "string(timestamp(1234567890))",
            Value::from("2009-02-13T23:31:30Z"),
        ),
        (
            "string(timestamp('2009-02-14T00:31:30.5+01:00'))",
            Value::from("2009-02-13T23:31:30.5Z"),
        ),
        ("string(duration('1h30m'))", Value::from("5400s")),
        ("string(duration('-1.5s'))", Value::from("-1.5s")),
        (
            "string(duration('100ms') + duration('1us') + duration('1ns'))",
            Value::from("0.100001001s"),
        ),
        ("duration('1h30m').getMinutes()", Value::Int(90)),
        ("duration('-90m').getHours()", Value::Int(-1)),
        ("duration('1.5s').getMilliseconds()", Value::Int(1500)),
        ("timestamp(jwt.iat).getHours(jwt.tz)", Value::Int(8)),
        ("timestamp(jwt.iat).getDate(jwt.tz)", Value::Int(14)),
        // The night Berlin moves its clocks forward: 02:00 does not exist.
        (
            "timestamp('2025-03-30T00:59:59Z').getHours('Europe/Berlin')",
            Value::Int(1),
        ),
        (
            "timestamp('2025-03-30T01:00:00Z').getHours('Europe/Berlin')",
            Value::Int(3),
        ),
        (
            "timestamp('2009-02-13T23:31:30Z') - timestamp('2009-02-13T23:29:00Z') == duration('150s')",
            Value::Bool(true),
        ),
        (
            "duration('1m') + timestamp(0) == timestamp(60)",
            Value::Bool(true),
        ),
        (
            "timestamp(60) - duration('1m') == timestamp(0)",
            Value::Bool(true),
        ),
        (
            "duration('1m') - duration('1h') < duration('0')",
            Value::Bool(true),
        ),
        ("timestamp(0) == duration('0')", Value::Bool(false)),
        (
            "timestamp(0) in [timestamp(1), timestamp(0)]",
            Value::Bool(true),
        ),
        (
            "type(duration('1s')) == google.protobuf.Duration",
            Value::Bool(true),
        ),
    ];
    for (source, want) in values {
        let got = eval(source, &req).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert_eq!(got.type_of(), want.type_of(), "{source}");
        assert_eq!(&got, want, "{source}");
    }
    let errors: &[(&str, &str)] = &[
        (
            "timestamp(jwt.bad_date)",
            "invalid argument to `timestamp`: invalid RFC 3339 timestamp",
        ),
        (
            "timestamp(jwt.late)",
            "range error in `timestamp`: timestamp out of range",
        ),
        ("timestamp(jwt.iat + 'Z')", "invalid RFC 3339 timestamp"),
        (
            "duration(jwt.day)",
            "invalid argument to `duration`: unknown unit in duration",
        ),
        (
            "duration(jwt.ten_thousand_years)",
            "range error in `duration`: duration out of range",
        ),
        (
            "timestamp('9999-12-31T23:59:59Z') + duration('1s')",
            "range error in `+`: timestamp out of range",
        ),
        (
            "timestamp('0001-01-01T00:00:00Z') - duration('1ns')",
            "range error in `-`: timestamp out of range",
        ),
        (
            "timestamp('9999-12-31T23:59:59Z') - timestamp('0001-01-01T00:00:00Z')",
            "range error in `-`: duration out of range",
        ),
        (
            "duration('2562047h') + duration('1h')",
            "range error in `+`: duration out of range",
        ),
        (
            "dyn(duration('1h')) < timestamp(0)",
            "no matching overload for `<`",
        ),
        (
            "dyn(timestamp(0)) + timestamp(0)",
            "no matching overload for `+`",
        ),
        ("-duration('1s')", "no matching overload for `-`"),
        (
            "timestamp(jwt.ratio)",
            "no matching overload for `timestamp` applied to (double)",
        ),
        (
            "timestamp(jwt.iat).getHours(jwt.bad_tz)",
            "invalid argument to `getHours`: unknown time zone",
        ),
        (
            "dyn(duration('1h')).getDate()",
            "no matching overload for `getDate` applied to (google.protobuf.Duration)",
        ),
        (
            "dyn(duration('1h')).getHours(jwt.tz)",
            "no matching overload for `getHours`",
        ),
    ];
    for (source, want) in errors {
        let err = eval(source, &req).expect_err(source).to_string();
        assert!(err.contains(want), "{source}: {err}");
    }
}

#[test]
fn every_accessor_reads_timestamps_and_rejects_other_values() {
    let req = request().body(()).unwrap();
    // 2009-02-14T00:31:30.123 at +01:00, a Saturday, the 45th day of the year.
    for (accessor, want) in [
        ("getFullYear", 2009),
        ("getMonth", 1),
        ("getDayOfYear", 44),
        ("getDayOfMonth", 13),
        ("getDate", 14),
        ("getDayOfWeek", 6),
        ("getHours", 0),
        ("getMinutes", 31),
        ("getSeconds", 30),
        ("getMilliseconds", 123),
    ] {
        let source = format!("timestamp('2009-02-13T23:31:30.123Z').{accessor}('+01:00')");
        assert_eq!(eval(&source, &req), Ok(Value::Int(want)), "{source}");
        let source = format!("dyn('2009-02-13T23:31:30Z').{accessor}()");
        let err = eval(&source, &req).expect_err(&source);
        assert!(
            matches!(err, EvalError::NoOverload { function, .. } if function == accessor),
            "{source}: {err}"
        );
    }
}
