//! The request variables rules read, and how each is read from [`Attributes`].
//!
//! | variable | value |
//! |---|---|
//! | `request.method`, `request.path` | strings |
//! | `request.host`, `request.query` | strings, `""` when the request has none |
//! | `request.headers` | map of lower-case header name to value (repeated headers joined with `", "`) |
//! | `request.queryParams` | map of query parameter to its first value, percent-decoded |
//! | `request.body` | the JSON body (absent when the body is not JSON) |
//! | `request.time` | the time the request is decided, a `google.protobuf.Timestamp` (the clock is read only when a rule uses it) |
//! | `jwt` | map of verified JWT claims (empty without a JWT) |
//! | `apiKey` | map of the API key's metadata, with `name` (empty without a key) |
//! | `source.ip`, `source.port` | the client's address (absent when unknown) |
//! | `source.identity` | the verified TLS client identity (`commonName`, `dnsNames`, `uris`, `spiffeId`, `fingerprintSha256`) |
//! | `mcp.method` | the JSON-RPC method of an MCP request |
//! | `mcp.tool.name`, `mcp.tool.target`, `mcp.tool.arguments` | the tool call of a `tools/call` request (arguments `{}` when none were sent) |
//!
//! Reading an absent attribute is an error (which counts against the request); `has()` tests
//! for presence: `has(request.body)`, `has(mcp.tool)`, `has(jwt.role)`.

use std::net::SocketAddr;

use agentgw_core::Attributes;

use super::error::EvalError;
use super::time::Timestamp;
use super::value::{Map, Str, Type, Value};

/// A request attribute, or an object grouping some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attr {
    Request,
    RequestMethod,
    RequestPath,
    RequestHost,
    RequestQuery,
    RequestQueryParams,
    RequestHeaders,
    RequestBody,
    RequestTime,
    Jwt,
    ApiKey,
    Source,
    SourceIp,
    SourcePort,
    SourceIdentity,
    Mcp,
    McpMethod,
    McpTool,
    McpToolName,
    McpToolTarget,
    McpToolArguments,
}

/// The root variables of the request environment.
pub(crate) const ROOTS: [(&str, Attr); 5] = [
    ("request", Attr::Request),
    ("jwt", Attr::Jwt),
    ("apiKey", Attr::ApiKey),
    ("source", Attr::Source),
    ("mcp", Attr::Mcp),
];

impl Attr {
    pub(crate) fn root(name: &str) -> Option<Attr> {
        ROOTS.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// The fields of an object attribute; empty for a leaf.
    pub(crate) fn children(self) -> &'static [(&'static str, Attr)] {
        match self {
            Attr::Request => &[
                ("method", Attr::RequestMethod),
                ("path", Attr::RequestPath),
                ("host", Attr::RequestHost),
                ("query", Attr::RequestQuery),
                ("queryParams", Attr::RequestQueryParams),
                ("headers", Attr::RequestHeaders),
                ("body", Attr::RequestBody),
                ("time", Attr::RequestTime),
            ],
            Attr::Source => &[
                ("ip", Attr::SourceIp),
                ("port", Attr::SourcePort),
                ("identity", Attr::SourceIdentity),
            ],
            Attr::Mcp => &[("method", Attr::McpMethod), ("tool", Attr::McpTool)],
            Attr::McpTool => &[
                ("name", Attr::McpToolName),
                ("target", Attr::McpToolTarget),
                ("arguments", Attr::McpToolArguments),
            ],
            _ => &[],
        }
    }

    pub(crate) fn child(self, field: &str) -> Option<Attr> {
        self.children()
            .iter()
            .find(|(n, _)| *n == field)
            .map(|(_, a)| *a)
    }

    pub(crate) fn is_object(self) -> bool {
        !self.children().is_empty()
    }

    /// The attribute as written in an expression.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Attr::Request => "request",
            Attr::RequestMethod => "request.method",
            Attr::RequestPath => "request.path",
            Attr::RequestHost => "request.host",
            Attr::RequestQuery => "request.query",
            Attr::RequestQueryParams => "request.queryParams",
            Attr::RequestHeaders => "request.headers",
            Attr::RequestBody => "request.body",
            Attr::RequestTime => "request.time",
            Attr::Jwt => "jwt",
            Attr::ApiKey => "apiKey",
            Attr::Source => "source",
            Attr::SourceIp => "source.ip",
            Attr::SourcePort => "source.port",
            Attr::SourceIdentity => "source.identity",
            Attr::Mcp => "mcp",
            Attr::McpMethod => "mcp.method",
            Attr::McpTool => "mcp.tool",
            Attr::McpToolName => "mcp.tool.name",
            Attr::McpToolTarget => "mcp.tool.target",
            Attr::McpToolArguments => "mcp.tool.arguments",
        }
    }

    /// The type of the attribute's value, when it is always the same.
    pub(crate) fn static_type(self) -> Option<Type> {
        Some(match self {
            Attr::RequestMethod
            | Attr::RequestPath
            | Attr::RequestHost
            | Attr::RequestQuery
            | Attr::SourceIp
            | Attr::McpMethod
            | Attr::McpToolName
            | Attr::McpToolTarget => Type::String,
            Attr::SourcePort => Type::Int,
            Attr::RequestTime => Type::Timestamp,
            Attr::RequestBody => return None,
            _ => Type::Map,
        })
    }

    /// Whether the attribute only exists on an MCP `tools/call` request.
    pub(crate) fn is_tool(self) -> bool {
        matches!(
            self,
            Attr::McpTool | Attr::McpToolName | Attr::McpToolTarget | Attr::McpToolArguments
        )
    }

    /// Whether the attribute only exists on MCP requests.
    pub(crate) fn is_mcp(self) -> bool {
        self == Attr::Mcp || self == Attr::McpMethod || self.is_tool()
    }

    pub(crate) fn refs(self) -> AttrSet {
        let bit = match self {
            Attr::Request => AttrSet::ALL_REQUEST,
            Attr::RequestBody => AttrSet::BODY,
            Attr::RequestTime => AttrSet::TIME,
            Attr::Mcp | Attr::McpMethod => AttrSet::MCP,
            Attr::McpTool | Attr::McpToolName | Attr::McpToolTarget | Attr::McpToolArguments => {
                AttrSet::TOOL
            }
            _ => AttrSet::OTHER,
        };
        AttrSet(bit)
    }

    /// Reads the attribute of a request.
    pub(crate) fn read<'a>(self, vars: &RequestVars<'a>) -> Result<Value<'a>, EvalError> {
        let attrs = &vars.attrs;
        let string = |s: &'a str| Value::String(Str::borrowed(s));
        Ok(match self {
            Attr::Request | Attr::Source | Attr::Mcp | Attr::McpTool => self.object(vars)?,
            Attr::RequestMethod => string(attrs.method()),
            Attr::RequestPath => string(attrs.path()),
            Attr::RequestHost => string(attrs.host().unwrap_or("")),
            Attr::RequestQuery => string(attrs.query().unwrap_or("")),
            Attr::RequestQueryParams => query_params(attrs)?,
            Attr::RequestHeaders => Value::Map(Map::from_headers(attrs.headers())),
            Attr::RequestTime => Value::Timestamp(vars.now.unwrap_or_else(Timestamp::now)),
            Attr::RequestBody => {
                if vars.listing.is_some() {
                    return Err(EvalError::Unknown("request.body"));
                }
                let body = attrs.body().ok_or(EvalError::Missing("request.body"))?;
                if body.is_object() {
                    // Members are parsed as the expression reads them.
                    Value::Map(Map::from_body(body))
                } else {
                    Value::from_json(
                        body.json()
                            .map_err(|_| EvalError::Missing("request.body"))?,
                    )
                }
            }
            Attr::Jwt => Value::Map(
                attrs
                    .jwt()
                    .map_or_else(Map::empty, |c| Map::from_json(c.as_map())),
            ),
            Attr::ApiKey => Value::Map(
                attrs
                    .api_key()
                    .map_or_else(Map::empty, |k| Map::from_json(k.as_map())),
            ),
            Attr::SourceIp => Value::string(source(attrs)?.ip().to_string()),
            Attr::SourcePort => Value::Int(i64::from(source(attrs)?.port())),
            Attr::SourceIdentity => {
                let peer = attrs.peer().ok_or(EvalError::Missing("source.identity"))?;
                Value::from_json(&peer.to_value()).to_static()
            }
            Attr::McpMethod => match vars.listing {
                Some(_) => string(agentgw_core::mcp::methods::TOOLS_CALL),
                None => string(attrs.mcp_method().ok_or(EvalError::Missing("mcp.method"))?),
            },
            Attr::McpToolName => match vars.listing {
                Some(tool) => string(tool),
                None => string(tool_call(attrs)?.name),
            },
            Attr::McpToolTarget => {
                if vars.listing.is_none() {
                    tool_call(attrs)?;
                }
                string(
                    attrs
                        .backend()
                        .ok_or(EvalError::Missing("mcp.tool.target"))?,
                )
            }
            Attr::McpToolArguments => {
                if vars.listing.is_some() {
                    return Err(EvalError::Unknown("mcp.tool.arguments"));
                }
                match tool_call(attrs)?.arguments {
                    Some(arguments) => Value::from_json(arguments),
                    None => Value::Map(Map::empty()),
                }
            }
        })
    }

    /// Whether the attribute is present (`has()`); unknown attributes stay unknown.
    pub(crate) fn present(self, vars: &RequestVars<'_>) -> Result<bool, EvalError> {
        // A tool call is present when there is one, whatever its fields (the arguments of a
        // listed tool are unknown, the call is not).
        if self == Attr::McpTool {
            return Ok(vars.listing.is_some() || vars.attrs.tool_call().is_some());
        }
        match self.read(vars) {
            Ok(_) => Ok(true),
            Err(EvalError::Missing(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// An object attribute as a map of its present fields.
    fn object<'a>(self, vars: &RequestVars<'a>) -> Result<Value<'a>, EvalError> {
        if self == Attr::McpTool && vars.listing.is_none() {
            tool_call(&vars.attrs)?;
        }
        if self == Attr::Mcp && vars.listing.is_none() && vars.attrs.mcp_method().is_none() {
            return Err(EvalError::Missing("mcp"));
        }
        let mut entries = Vec::new();
        for (name, child) in self.children() {
            match child.read(vars) {
                Ok(value) => entries.push((Value::String(Str::borrowed(name)), value)),
                Err(EvalError::Missing(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Map::from_entries(entries).map(Value::Map)
    }
}

fn source(attrs: &Attributes<'_>) -> Result<SocketAddr, EvalError> {
    attrs.source().ok_or(EvalError::Missing("source"))
}

fn tool_call<'a>(attrs: &Attributes<'a>) -> Result<agentgw_core::mcp::ToolCall<'a>, EvalError> {
    attrs.tool_call().ok_or(EvalError::Missing("mcp.tool"))
}

fn query_params<'a>(attrs: &Attributes<'a>) -> Result<Value<'a>, EvalError> {
    let Some(query) = attrs.query() else {
        return Ok(Value::Map(Map::empty()));
    };
    let mut entries: Vec<(Value<'a>, Value<'a>)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decoded(key);
        // The first value of a repeated parameter wins, as in `Attributes::query_param`.
        if entries.iter().any(|(k, _)| k.as_str() == key.as_str()) {
            continue;
        }
        entries.push((key, decoded(value)));
    }
    Map::from_entries(entries).map(Value::Map)
}

/// Percent-decodes a query component with core's decoder; borrowed when nothing is encoded.
fn decoded(input: &str) -> Value<'_> {
    match agentgw_core::percent::decode_query_component(input) {
        std::borrow::Cow::Borrowed(text) => Value::String(Str::borrowed(text)),
        std::borrow::Cow::Owned(text) => Value::string(text),
    }
}

/// The set of attributes an expression reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AttrSet(u8);

impl AttrSet {
    const BODY: u8 = 1;
    const MCP: u8 = 2;
    const TOOL: u8 = 4;
    const OTHER: u8 = 8;
    const TIME: u8 = 16;
    const ALL_REQUEST: u8 = Self::BODY | Self::OTHER | Self::TIME;

    pub(crate) fn union(self, other: AttrSet) -> AttrSet {
        AttrSet(self.0 | other.0)
    }

    /// Whether evaluating needs the buffered body (`request.body` or any `mcp.*`).
    pub(crate) fn needs_body(self) -> bool {
        self.0 & (Self::BODY | Self::MCP | Self::TOOL) != 0
    }

    /// Whether the expression reads `mcp.tool.*` or `mcp.method`.
    pub(crate) fn reads_mcp(self) -> bool {
        self.0 & (Self::MCP | Self::TOOL) != 0
    }

    /// Whether the expression reads `request.time` (the clock is read only then).
    pub(crate) fn reads_time(self) -> bool {
        self.0 & Self::TIME != 0
    }
}

/// What the request environment evaluates against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestVars<'a> {
    pub(crate) attrs: Attributes<'a>,
    /// When deciding whether a listed tool is callable: the tool's name. The call's
    /// arguments and body are then unknown.
    pub(crate) listing: Option<&'a str>,
    /// `request.time`: set when the expression reads it, so that the clock is read once per
    /// decision and only by policies that use it (read on demand otherwise).
    pub(crate) now: Option<Timestamp>,
}
