//! What the HTTP senders of this crate (the audit webhook sink, the escalation webhook) share:
//! the checked destination URL with its client, and checked extra headers.

use std::time::Duration;

use http::{HeaderName, HeaderValue};

/// `url` checked to be an absolute `http` or `https` URL, and a client whose requests are each
/// bounded by `timeout`.
pub(crate) fn client(
    url: &str,
    timeout: Duration,
) -> Result<(reqwest::Url, reqwest::Client), String> {
    let url = reqwest::Url::parse(url).map_err(|e| format!("invalid URL `{url}`: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the URL scheme must be http or https, not `{}`",
            url.scheme()
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    Ok((url, client))
}

/// A header to send with every request; an invalid name or value is an error naming the
/// header, never its value (which is marked sensitive: tokens stay out of logs).
pub(crate) fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name =
        HeaderName::try_from(name).map_err(|e| format!("invalid header name `{name}`: {e}"))?;
    let mut value =
        HeaderValue::try_from(value).map_err(|_| format!("invalid value of header `{name}`"))?;
    value.set_sensitive(true);
    Ok((name, value))
}
