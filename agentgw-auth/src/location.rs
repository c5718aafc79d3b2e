//! Where a credential travels in a request: how it is found and how it is removed before the
//! request goes upstream.

use std::borrow::Cow;

use agentgw_core::percent::{decode_query_component, query_pairs};
use http::header::{AUTHORIZATION, COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use serde::Deserialize;

use crate::error::Error;

/// A header that carries a credential, optionally after a scheme prefix such as `Bearer `.
///
/// The prefix is matched ASCII case-insensitively (`bearer x` and `Bearer x` are the same
/// credential); whitespace around the credential is ignored. `Default` has no name (reported
/// as `header.name` when a layer is built).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct CredentialHeader {
    /// Header name, e.g. `authorization` or `x-api-key`.
    pub name: String,
    /// Text before the credential, e.g. `"Bearer "`; none when the whole value is the credential.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl CredentialHeader {
    /// The whole value of header `name` is the credential.
    pub fn new(name: impl Into<String>) -> Self {
        CredentialHeader {
            name: name.into(),
            prefix: None,
        }
    }

    /// Sets the header name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The credential follows `prefix` (e.g. `"Bearer "`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// `Authorization: Bearer <credential>` (OpenAI and most OAuth 2.0 resource servers).
    pub fn bearer() -> Self {
        CredentialHeader::new("authorization").prefix("Bearer ")
    }

    /// `x-api-key: <credential>` (Anthropic).
    pub fn x_api_key() -> Self {
        CredentialHeader::new("x-api-key")
    }
}

/// Where an authentication layer reads the client's credential.
///
/// In YAML: `{header: {name: authorization, prefix: "Bearer "}}`, `{cookie: session}` or
/// `{queryParameter: access_token}`. Query parameter names and values are decoded by the one
/// rule of [`agentgw_core::percent`], as the application behind the gateway decodes them: `%XX`
/// is a byte and `+` is a space (a literal `+` in a token travels as `%2B`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum TokenLocation {
    /// A request header.
    Header(CredentialHeader),
    /// A cookie with this name.
    Cookie(String),
    /// A query parameter with this name.
    QueryParameter(String),
}

impl TokenLocation {
    /// `Authorization: Bearer <token>`, the default of the JWT layer.
    pub fn bearer() -> Self {
        TokenLocation::Header(CredentialHeader::bearer())
    }

    /// `x-api-key: <key>`, the default of the API key layer.
    pub fn x_api_key() -> Self {
        TokenLocation::Header(CredentialHeader::x_api_key())
    }
}

/// What a [`Locator`] found in a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found<'a> {
    /// No credential in the configured place.
    Absent,
    /// Exactly one credential.
    One(Cow<'a, str>),
    /// More than one credential: ambiguous, so never accepted.
    Many,
    /// Something is there but it is not a usable credential (empty, not text).
    Malformed,
}

/// A [`TokenLocation`] checked and compiled once.
#[derive(Debug, Clone)]
pub(crate) enum Locator {
    Header {
        name: HeaderName,
        prefix: Option<Box<str>>,
    },
    Cookie(Box<str>),
    Query(Box<str>),
}

impl Locator {
    /// Compiles `location`; `field` is its path for error messages.
    pub(crate) fn new(location: &TokenLocation, field: &str) -> Result<Self, Error> {
        match location {
            TokenLocation::Header(header) => Ok(Locator::Header {
                name: header_name(&header.name, &format!("{field}.header.name"))?,
                prefix: match &header.prefix {
                    Some(prefix) if prefix.trim().is_empty() => None,
                    Some(prefix) if !prefix.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => {
                        return Err(Error::invalid(
                            format!("{field}.header.prefix"),
                            "must be printable ASCII",
                        ));
                    }
                    Some(prefix) => Some(prefix.as_str().into()),
                    None => None,
                },
            }),
            TokenLocation::Cookie(name) => {
                if name.is_empty() || !name.bytes().all(is_token_char) {
                    return Err(Error::invalid(
                        format!("{field}.cookie"),
                        format!("{name:?} is not a valid cookie name"),
                    ));
                }
                Ok(Locator::Cookie(name.as_str().into()))
            }
            TokenLocation::QueryParameter(name) => {
                if name.is_empty() {
                    return Err(Error::invalid(
                        format!("{field}.queryParameter"),
                        "must not be empty",
                    ));
                }
                Ok(Locator::Query(name.as_str().into()))
            }
        }
    }

    /// Whether the credential travels in `Authorization`, so a 401 should carry a `Bearer`
    /// challenge.
    pub(crate) fn is_authorization(&self) -> bool {
        matches!(self, Locator::Header { name, .. } if name == AUTHORIZATION)
    }

    /// Finds the credential in a request's headers and URI.
    pub(crate) fn find<'a>(&self, headers: &'a HeaderMap, uri: &'a Uri) -> Found<'a> {
        match self {
            Locator::Header { name, prefix } => {
                let mut found = Found::Absent;
                for value in headers.get_all(name) {
                    let Ok(text) = value.to_str() else {
                        return Found::Malformed;
                    };
                    let credential = match prefix {
                        None => text.trim(),
                        Some(prefix) => match strip_prefix_ignore_case(text, prefix) {
                            Some(rest) => rest.trim(),
                            // "Bearer" alone: the client meant to send a token.
                            None if text.trim().eq_ignore_ascii_case(prefix.trim()) => "",
                            // Another scheme (e.g. Basic): not ours.
                            None => continue,
                        },
                    };
                    found = push(found, credential);
                }
                found
            }
            Locator::Cookie(name) => {
                let mut found = Found::Absent;
                for value in headers.get_all(COOKIE) {
                    let Ok(text) = value.to_str() else { continue };
                    for (cookie, value) in cookie_pairs(text) {
                        if cookie == &**name {
                            found = push(found, unquote(value));
                        }
                    }
                }
                found
            }
            Locator::Query(name) => {
                let mut found = Found::Absent;
                for (key, value) in query_pairs(uri.query().unwrap_or("")) {
                    if key != **name {
                        continue;
                    }
                    found = match found {
                        Found::Absent if is_usable_query_value(&value) => Found::One(value),
                        Found::Absent | Found::Malformed => Found::Malformed,
                        Found::One(_) | Found::Many => Found::Many,
                    };
                }
                found
            }
        }
    }

    /// Removes the credential from `req` so it does not travel upstream.
    pub(crate) fn remove_from<B>(&self, req: &mut http::Request<B>) {
        let mut uri = std::mem::take(req.uri_mut());
        self.remove(req.headers_mut(), &mut uri);
        *req.uri_mut() = uri;
    }

    /// Removes the credential from `headers` or `uri`.
    pub(crate) fn remove(&self, headers: &mut HeaderMap, uri: &mut Uri) {
        match self {
            Locator::Header { name, prefix: None } => {
                headers.remove(name);
            }
            Locator::Header {
                name,
                prefix: Some(prefix),
            } => {
                let kept: Vec<HeaderValue> = headers
                    .get_all(name)
                    .iter()
                    .filter(|value| {
                        value.to_str().is_ok_and(|text| {
                            strip_prefix_ignore_case(text, prefix).is_none()
                                && !text.trim().eq_ignore_ascii_case(prefix.trim())
                        })
                    })
                    .cloned()
                    .collect();
                headers.remove(name);
                for value in kept {
                    headers.append(name, value);
                }
            }
            Locator::Cookie(name) => {
                let mut kept = Vec::new();
                for value in headers.get_all(COOKIE) {
                    let Ok(text) = value.to_str() else {
                        kept.push(value.clone());
                        continue;
                    };
                    let rest: Vec<String> = cookie_pairs(text)
                        .filter(|(cookie, _)| *cookie != &**name)
                        .map(|(cookie, value)| format!("{cookie}={value}"))
                        .collect();
                    if !rest.is_empty()
                        && let Ok(value) = HeaderValue::from_str(&rest.join("; "))
                    {
                        kept.push(value);
                    }
                }
                headers.remove(COOKIE);
                for value in kept {
                    headers.append(COOKIE, value);
                }
            }
            Locator::Query(name) => {
                let Some(query) = uri.query() else { return };
                // The other parameters stay byte for byte, empty ones included.
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let key = pair.split_once('=').map_or(*pair, |(key, _)| key);
                        decode_query_component(key) != **name
                    })
                    .collect();
                let path = uri.path();
                let new = if kept.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}?{}", kept.join("&"))
                };
                let mut parts = uri.clone().into_parts();
                if let Ok(path_and_query) = PathAndQuery::try_from(new) {
                    parts.path_and_query = Some(path_and_query);
                    if let Ok(rebuilt) = Uri::from_parts(parts) {
                        *uri = rebuilt;
                    }
                }
            }
        }
    }
}

pub(crate) fn header_name(name: &str, field: &str) -> Result<HeaderName, Error> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::invalid(field, format!("{name:?} is not a valid header name")))
}

fn push<'a>(found: Found<'a>, credential: &'a str) -> Found<'a> {
    match found {
        Found::Absent if credential.is_empty() => Found::Malformed,
        Found::Absent => Found::One(Cow::Borrowed(credential)),
        Found::Malformed => Found::Malformed,
        Found::One(_) | Found::Many => Found::Many,
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.as_bytes().get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix.as_bytes()) {
        // `prefix` is ASCII, so its length is a char boundary of `text`.
        text.get(prefix.len()..)
    } else {
        None
    }
}

fn cookie_pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        Some((name.trim(), value.trim()))
    })
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether a decoded query value can be a credential: not empty, and not made of bytes that are
/// not UTF-8 (which decoding turns into U+FFFD, so that two different byte strings would read as
/// the same credential).
fn is_usable_query_value(value: &str) -> bool {
    !value.is_empty() && !value.contains(char::REPLACEMENT_CHARACTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ConfigError as _;

    fn locator(location: TokenLocation) -> Locator {
        Locator::new(&location, "location").unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_prefix_is_case_insensitive_and_trimmed() {
        let bearer = locator(TokenLocation::bearer());
        let uri = Uri::from_static("/");
        for value in ["Bearer abc", "bearer abc", "BEARER   abc  "] {
            let map = headers(&[("authorization", value)]);
            assert_eq!(bearer.find(&map, &uri), Found::One("abc".into()), "{value}");
        }
        let basic = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert_eq!(bearer.find(&basic, &uri), Found::Absent);
        let empty = headers(&[("authorization", "Bearer")]);
        assert_eq!(bearer.find(&empty, &uri), Found::Malformed);
        let two = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(bearer.find(&two, &uri), Found::Many);
    }

    #[test]
    fn header_removal_keeps_other_schemes() {
        let bearer = locator(TokenLocation::bearer());
        let mut map = headers(&[
            ("authorization", "Bearer abc"),
            ("authorization", "Basic xyz"),
            ("x-other", "1"),
        ]);
        let mut uri = Uri::from_static("/");
        bearer.remove(&mut map, &mut uri);
        let left: Vec<_> = map.get_all("authorization").iter().collect();
        assert_eq!(left, vec!["Basic xyz"]);
        assert_eq!(map["x-other"], "1");

        let plain = locator(TokenLocation::Header(CredentialHeader::new("X-API-Key")));
        let mut map = headers(&[("x-api-key", "k1")]);
        assert_eq!(plain.find(&map, &uri), Found::One("k1".into()));
        plain.remove(&mut map, &mut uri);
        assert!(map.get("x-api-key").is_none());
    }

    #[test]
    fn cookie_found_and_removed() {
        let cookie = locator(TokenLocation::Cookie("session".into()));
        let mut map = headers(&[("cookie", "theme=dark; session=\"tok\"; lang=en")]);
        let mut uri = Uri::from_static("/");
        assert_eq!(cookie.find(&map, &uri), Found::One("tok".into()));
        cookie.remove(&mut map, &mut uri);
        assert_eq!(map["cookie"], "theme=dark; lang=en");

        let mut only = headers(&[("cookie", "session=tok")]);
        cookie.remove(&mut only, &mut uri);
        assert!(only.get("cookie").is_none());
        assert_eq!(cookie.find(&only, &uri), Found::Absent);
    }

    #[test]
    fn query_parameter_found_decoded_and_removed() {
        let query = locator(TokenLocation::QueryParameter("access_token".into()));
        let map = HeaderMap::new();
        let mut uri = Uri::from_static("/v1/chat?model=x&access_token=a%2Eb.c&stream=true");
        assert_eq!(query.find(&map, &uri), Found::One("a.b.c".into()));
        let mut headers = map.clone();
        query.remove(&mut headers, &mut uri);
        assert_eq!(uri, "/v1/chat?model=x&stream=true");

        let mut alone = Uri::from_static("/p?access_token=t");
        query.remove(&mut headers, &mut alone);
        assert_eq!(alone, "/p");
        let twice = Uri::from_static("/p?access_token=a&access_token=b");
        assert_eq!(query.find(&map, &twice), Found::Many);
        let empty = Uri::from_static("/p?access_token=");
        assert_eq!(query.find(&map, &empty), Found::Malformed);
    }

    #[test]
    fn invalid_locations_name_the_field() {
        let err = Locator::new(
            &TokenLocation::Header(CredentialHeader::new("bad header")),
            "location",
        )
        .unwrap_err();
        assert_eq!(err.path(), "location.header.name");
        let err = Locator::new(&TokenLocation::Cookie("a;b".into()), "location").unwrap_err();
        assert_eq!(err.path(), "location.cookie");
    }

    #[test]
    fn yaml_shapes() {
        let loc: TokenLocation =
            serde_saphyr::from_str("header: {name: authorization, prefix: \"Bearer \"}").unwrap();
        assert_eq!(loc, TokenLocation::bearer());
        let loc: TokenLocation = serde_saphyr::from_str("cookie: session").unwrap();
        assert_eq!(loc, TokenLocation::Cookie("session".into()));
        let loc: TokenLocation = serde_saphyr::from_str("queryParameter: token").unwrap();
        assert_eq!(loc, TokenLocation::QueryParameter("token".into()));
        assert!(serde_saphyr::from_str::<TokenLocation>("header: {name: a, colour: b}").is_err());
    }

    #[test]
    fn query_tokens_are_decoded_as_forms_are() {
        let query = locator(TokenLocation::QueryParameter("access_token".into()));
        let map = HeaderMap::new();
        let find = |uri: &'static str| match query.find(&map, &Uri::from_static(uri)) {
            Found::One(token) => Found::One(Cow::Owned(token.into_owned())),
            Found::Absent => Found::Absent,
            Found::Many => Found::Many,
            Found::Malformed => Found::Malformed,
        };
        // `+` is a space and `%2B` a plus sign, as the application behind the gateway reads them.
        assert_eq!(find("/p?access_token=a+b"), Found::One("a b".into()));
        assert_eq!(find("/p?access_token=a%2Bb"), Found::One("a+b".into()));
        assert_eq!(find("/p?access_token=a%20b"), Found::One("a b".into()));
        assert_eq!(find("/p?access_token=100%"), Found::One("100%".into()));
        assert_eq!(find("/p?access_token=%zz"), Found::One("%zz".into()));
        // An encoded name is the same parameter.
        assert_eq!(find("/p?access%5Ftoken=t"), Found::One("t".into()));
        // Bytes that are not UTF-8 are no credential.
        assert_eq!(find("/p?access_token=%ff"), Found::Malformed);

        let mut headers = HeaderMap::new();
        let mut uri = Uri::from_static("/p?a=1&&access%5Ftoken=t&b=x+y");
        query.remove(&mut headers, &mut uri);
        assert_eq!(uri, "/p?a=1&&b=x+y", "other parameters stay as they were");
    }
}
