//! Reading the answer to one JSON-RPC request out of an HTTP response.

use bytes::Bytes;
use http::Response;
use http_body::Body;
use http_body_util::BodyExt;
use serde_json::Value;

use super::{
    Envelope, ErrorObject, Id, McpError, Message, ResponseKind, parse, parse_sse_data,
    response_kind,
};
use crate::BoxError;
use crate::body::{BodyError, BodyLimit, collect};
use crate::sse::{Decoder, Frame, SseError};

/// Why the answer to a request could not be read from a response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The body failed while it was read.
    #[error("the answer could not be read: {0}")]
    Read(#[source] BoxError),
    /// The body, or the part of an event stream read before the answer, exceeds the limit.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A JSON body that is not JSON-RPC.
    #[error("the answer is not JSON-RPC: {0}")]
    NotJsonRpc(#[source] McpError),
    /// An event stream that does not decode.
    #[error("the event stream is malformed: {0}")]
    MalformedStream(#[source] SseError),
    /// Neither a JSON body nor an event stream.
    #[error("the answer is neither JSON nor an event stream")]
    Uninspectable,
}

/// The answer to request `id` in `response`, a JSON body or an MCP event stream (read until
/// the answer, at most `limit` bytes): its result, or the JSON-RPC error it carries; `None`
/// when the response ends without it. The status is not looked at.
pub async fn read_answer<B>(
    response: Response<B>,
    id: &Id,
    limit: BodyLimit,
) -> Result<Option<Result<Value, ErrorObject>>, AnswerError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match response_kind(response.headers()) {
        ResponseKind::Json => {
            let bytes =
                collect(response.into_body(), limit)
                    .await
                    .map_err(|error| match error {
                        BodyError::TooLarge { limit } => AnswerError::TooLarge { limit },
                        BodyError::Read(error) => AnswerError::Read(error),
                    })?;
            let envelope = parse(&bytes).map_err(AnswerError::NotJsonRpc)?;
            Ok(answer_in(envelope, id))
        }
        ResponseKind::EventStream => {
            let mut body = std::pin::pin!(response.into_body());
            let mut decoder = Decoder::new(limit.bytes());
            let mut frames = Vec::new();
            let mut read = 0usize;
            while let Some(frame) = body.as_mut().frame().await {
                let frame = frame.map_err(|error| AnswerError::Read(error.into()))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                read += data.len();
                if read > limit.bytes() {
                    return Err(AnswerError::TooLarge {
                        limit: limit.bytes(),
                    });
                }
                decoder
                    .decode(&data, &mut frames)
                    .map_err(AnswerError::MalformedStream)?;
                for frame in frames.drain(..) {
                    let Frame::Event(event) = frame else {
                        continue;
                    };
                    if let Ok(Some(envelope)) = parse_sse_data(&event.data)
                        && let Some(answer) = answer_in(envelope, id)
                    {
                        return Ok(Some(answer));
                    }
                }
            }
            Ok(None)
        }
        ResponseKind::Untyped | ResponseKind::Unsupported => Err(AnswerError::Uninspectable),
    }
}

/// The result of, or the error answering, request `id` among the messages of `envelope`.
fn answer_in(envelope: Envelope, id: &Id) -> Option<Result<Value, ErrorObject>> {
    envelope
        .into_messages()
        .into_iter()
        .find_map(|message| match message {
            Message::Response {
                id: answered,
                result,
            } if answered == *id => Some(Ok(result)),
            Message::Error {
                id: answered,
                error,
            } if answered == *id => Some(Err(error)),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;
    use serde_json::json;

    use super::*;

    fn response(content_type: &str, body: &str) -> Response<Full<Bytes>> {
        Response::builder()
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    }

    async fn read(
        content_type: &str,
        body: &str,
    ) -> Result<Option<Result<Value, ErrorObject>>, AnswerError> {
        read_answer(
            response(content_type, body),
            &Id::Number(7.into()),
            BodyLimit::new(1024),
        )
        .await
    }

    #[tokio::test]
    async fn the_answer_to_the_id_is_found_in_json_and_in_event_streams() {
        let json_body = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}"#;
        let answer = read("application/json", json_body).await.unwrap();
        assert_eq!(answer.unwrap().unwrap(), json!({"tools": []}));
        // In a stream, after a notification and another request's answer.
        let stream = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
                      data: {\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{}}\n\n\
                      data: {\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32601,\"message\":\"nope\"}}\n\n";
        let error = read("text/event-stream", stream)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!((error.code, error.message.as_str()), (-32601, "nope"));
    }

    #[tokio::test]
    async fn no_answer_and_unreadable_answers_are_told_apart() {
        let other = r#"{"jsonrpc":"2.0","id":8,"result":{}}"#;
        assert!(read("application/json", other).await.unwrap().is_none());
        assert!(matches!(
            read("application/json", "{not json").await,
            Err(AnswerError::NotJsonRpc(_))
        ));
        assert!(matches!(
            read("text/html", "<p>hi</p>").await,
            Err(AnswerError::Uninspectable)
        ));
        let large = format!(
            r#"{{"jsonrpc":"2.0","id":7,"result":"{}"}}"#,
            "x".repeat(2000)
        );
        assert!(matches!(
            read("application/json", &large).await,
            Err(AnswerError::TooLarge { limit: 1024 })
        ));
    }
}
