//! [`ResponseFuture`] and the response side: streams masked as they flow, other bodies read
//! (bounded) and guarded whole, what cannot be inspected refused.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use agentgw_core::body::RequestBody;
use agentgw_core::llm::Direction;
use agentgw_core::llm::{self as llm_view, DeltaKey, Format};
use agentgw_core::{BoxError, Payload, Rejection, ResponseShape, content};
use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use serde_json::Value;
use tower_service::Service;

use agentgw_core::escalation::{self, EscalationEvent, VerdictFuture};

use crate::audit::{self, Audit, Tally};
use crate::body::{GuardBody, GuardStream};
use crate::escalate::{Approval, Origin, with_approved};
use crate::guard::{Denial, GuardId, LAYER, rewrite_strings};
use crate::layer::Shared;
use crate::leak::LeakCheck;
use crate::service::{Pending, Verdict, guard_request};

type Buffering<B> = agentgw_core::body::BufferFuture<B>;

pin_project! {
    /// The response future of [`PromptGuardService`](crate::PromptGuardService); `ResBody`
    /// is the inner service's response body.
    ///
    /// A state machine: a denial is answered without calling the inner service; the request
    /// body is read first when request guards need it; a response that is not a stream is
    /// read (bounded) and guarded before its head is sent.
    pub struct ResponseFuture<S, B, ResBody>
    where
        S: Service<Request<RequestBody<B>>>,
    {
        #[pin]
        state: State<S, B, ResBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, ResBody>
    where
        S: Service<Request<RequestBody<B>>>,
    {
        // Denied without calling the inner service.
        Denied {
            response: Option<Response<Full<Bytes>>>,
        },
        // Reading the request body, then guarding it.
        Buffering {
            buffering: Buffering<B>,
            inner: Option<S>,
            shared: Arc<Shared>,
            shape: Option<ResponseShape>,
        },
        // Waiting for the decision about an escalated request rule (`blockPending`).
        Escalating {
            pending: Option<Box<Pending<B>>>,
            inner: Option<S>,
            shared: Arc<Shared>,
        },
        // Waiting for the inner service.
        Calling {
            #[pin]
            fut: S::Future,
            shared: Arc<Shared>,
            shape: Option<ResponseShape>,
            audit: Option<Audit>,
            leak: Option<Box<LeakCheck>>,
            origin: Option<Origin>,
        },
        // Reading a JSON or text response whole, to guard it before its status is sent.
        Collecting {
            #[pin]
            body: ResBody,
            parts: Option<http::response::Parts>,
            collected: BytesMut,
            json: bool,
            shared: Arc<Shared>,
            shape: ResponseShape,
            audit: Option<Audit>,
            leak: Option<Box<LeakCheck>>,
            origin: Option<Origin>,
        },
        // Holding a buffered response until the decision about an escalated response rule.
        Deciding {
            pending: Option<Box<PendingResponse>>,
            shared: Arc<Shared>,
            shape: ResponseShape,
            audit: Option<Audit>,
            leak: Option<Box<LeakCheck>>,
            origin: Option<Origin>,
        },
    }
}

impl<S, B, ResBody> ResponseFuture<S, B, ResBody>
where
    S: Service<Request<RequestBody<B>>>,
{
    pub(crate) fn denied(response: Response<Full<Bytes>>) -> Self {
        ResponseFuture {
            state: State::Denied {
                response: Some(response),
            },
        }
    }

    pub(crate) fn calling(
        fut: S::Future,
        shared: Arc<Shared>,
        shape: ResponseShape,
        audit: Option<Audit>,
        leak: Option<Box<LeakCheck>>,
        origin: Option<Origin>,
    ) -> Self {
        ResponseFuture {
            state: State::Calling {
                fut,
                shared,
                shape: Some(shape),
                audit,
                leak,
                origin,
            },
        }
    }

    pub(crate) fn buffering(
        buffering: Buffering<B>,
        inner: S,
        shared: Arc<Shared>,
        shape: ResponseShape,
    ) -> Self {
        ResponseFuture {
            state: State::Buffering {
                buffering,
                inner: Some(inner),
                shared,
                shape: Some(shape),
            },
        }
    }
}

const POLLED_AFTER_COMPLETION: &str = "ResponseFuture polled after completion";

/// The state after the request guards decided: calling the inner service (with `inner`,
/// taken), waiting for a decision, or answering with the denial.
fn after_request<S, B, ResBody>(
    verdict: Verdict<B>,
    inner: &mut Option<S>,
    shared: &Arc<Shared>,
) -> State<S, B, ResBody>
where
    S: Service<Request<RequestBody<B>>>,
{
    match verdict {
        Verdict::Deny(denied) => State::Denied {
            response: Some(denied),
        },
        Verdict::Escalate(pending) => State::Escalating {
            pending: Some(pending),
            inner: inner.take(),
            shared: Arc::clone(shared),
        },
        Verdict::Forward(req) => {
            let shape = ResponseShape::for_request(&req);
            // The system prompt the upstream gets (after request masks).
            let leak = shared.response.leak.as_ref().and_then(|guard| {
                let payload = req.extensions().get::<Payload>()?;
                guard.check(payload, req.uri().path())
            });
            let inspected = !shared.response.is_empty() || leak.is_some();
            let audit = Audit::of_response(shared.audit.as_ref(), inspected, &req);
            let origin = shared.response.escalates().then(|| Origin::of(&req));
            let mut inner = inner.take().expect(POLLED_AFTER_COMPLETION);
            State::Calling {
                fut: inner.call(req),
                shared: Arc::clone(shared),
                shape: Some(shape),
                audit,
                leak,
                origin,
            }
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B, ResBody>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<GuardBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Denied { response } => {
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok(response.map(GuardBody::from)));
                }
                StateProj::Buffering {
                    buffering,
                    inner,
                    shared,
                    shape,
                } => {
                    let req = match ready!(buffering.as_mut().poll(cx)) {
                        Ok(req) => req,
                        Err(rejection) => {
                            let shape = shape.take().unwrap_or_default();
                            return Poll::Ready(Ok(rejection
                                .respond_in(&shape)
                                .map(GuardBody::from)));
                        }
                    };
                    after_request(guard_request(shared, req, Vec::new()), inner, shared)
                }
                StateProj::Escalating {
                    pending,
                    inner,
                    shared,
                } => {
                    let decision = &mut pending.as_mut().expect(POLLED_AFTER_COMPLETION).decision;
                    let verdict = ready!(decision.as_mut().poll(cx));
                    let pending = pending.take().expect(POLLED_AFTER_COMPLETION);
                    after_request(pending.decided(shared, verdict), inner, shared)
                }
                StateProj::Calling {
                    fut,
                    shared,
                    shape,
                    audit,
                    leak,
                    origin,
                } => {
                    let response = ready!(fut.poll(cx))?;
                    let shape = shape.take().expect(POLLED_AFTER_COMPLETION);
                    let origin = origin.take();
                    match guard_response(
                        shared,
                        &shape,
                        response,
                        audit.take(),
                        leak.take(),
                        origin.clone(),
                    ) {
                        Guarded::Ready(response) => return Poll::Ready(Ok(response)),
                        Guarded::Collect {
                            parts,
                            body,
                            json,
                            audit,
                            leak,
                        } => State::Collecting {
                            body,
                            parts: Some(parts),
                            collected: BytesMut::new(),
                            json,
                            shared: Arc::clone(shared),
                            shape,
                            audit,
                            leak,
                            origin,
                        },
                    }
                }
                StateProj::Collecting {
                    mut body,
                    parts,
                    collected,
                    json,
                    shared,
                    shape,
                    audit,
                    leak,
                    origin,
                } => loop {
                    match ready!(body.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) if collected.len() + data.len() > shared.limit.bytes() => {
                                return Poll::Ready(Ok(fail(shape, "response_unreadable")));
                            }
                            Ok(data) => collected.extend_from_slice(&data),
                            // Trailers of a body read whole are not forwarded.
                            Err(_) => {}
                        },
                        Some(Err(_)) => {
                            return Poll::Ready(Ok(fail(shape, "response_unreadable")));
                        }
                        None => {
                            let parts = parts.take().expect(POLLED_AFTER_COMPLETION);
                            let bytes = collected.split().freeze();
                            let collected = Collected {
                                parts,
                                bytes,
                                json: *json,
                                approved: Vec::new(),
                            };
                            match guard_collected(
                                shared,
                                shape,
                                collected,
                                audit.as_ref(),
                                leak.as_deref_mut(),
                                origin.as_ref(),
                            ) {
                                Checked::Done(response) => return Poll::Ready(Ok(response)),
                                Checked::Escalate(pending) => {
                                    break State::Deciding {
                                        pending: Some(pending),
                                        shared: Arc::clone(shared),
                                        shape: shape.clone(),
                                        audit: audit.take(),
                                        leak: leak.take(),
                                        origin: origin.take(),
                                    };
                                }
                            }
                        }
                    }
                },
                StateProj::Deciding {
                    pending,
                    shared,
                    shape,
                    audit,
                    leak,
                    origin,
                } => {
                    let decision = &mut pending.as_mut().expect(POLLED_AFTER_COMPLETION).decision;
                    let verdict = ready!(decision.as_mut().poll(cx));
                    let PendingResponse {
                        mut collected,
                        denial,
                        tally,
                        ..
                    } = *pending.take().expect(POLLED_AFTER_COMPLETION);
                    if verdict == escalation::Verdict::Deny {
                        return Poll::Ready(Ok(reject_response(
                            shared,
                            shape,
                            audit.as_ref(),
                            &denial,
                            &tally,
                        )));
                    }
                    collected.approved.push((denial.guard, denial.rule));
                    // An approved leak guard is not asked again.
                    let leak = match collected.approved.iter().any(|(g, _)| *g == GuardId::Leak) {
                        true => None,
                        false => leak.as_deref_mut(),
                    };
                    match guard_collected(
                        shared,
                        shape,
                        collected,
                        audit.as_ref(),
                        leak,
                        origin.as_ref(),
                    ) {
                        Checked::Done(response) => return Poll::Ready(Ok(response)),
                        Checked::Escalate(next) => {
                            *pending = Some(next);
                            continue;
                        }
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

impl<S, B, ResBody> fmt::Debug for ResponseFuture<S, B, ResBody>
where
    S: Service<Request<RequestBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Denied { .. } => "denied",
            State::Buffering { .. } => "buffering",
            State::Escalating { .. } => "escalating",
            State::Calling { .. } => "calling",
            State::Collecting { .. } => "collecting",
            State::Deciding { .. } => "deciding",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// What to do with the inner service's response.
// Moved once per response, never stored: boxing a variant would cost an allocation instead.
#[allow(clippy::large_enum_variant)]
enum Guarded<B> {
    /// Send it as it is, its body possibly guarded as it streams.
    Ready(Response<GuardBody<B>>),
    /// Read its body whole (at most the body limit) and guard it first.
    Collect {
        parts: http::response::Parts,
        body: B,
        /// Read it as JSON (else as text).
        json: bool,
        audit: Option<Audit>,
        leak: Option<Box<LeakCheck>>,
    },
}

/// What kind of body a response carries, from its headers.
enum Kind {
    EventStream,
    /// Line-delimited JSON: masked line by line, as a stream.
    JsonLines,
    Json,
    Text,
    Other,
}

fn kind(headers: &http::HeaderMap) -> Kind {
    match content::media_type(headers) {
        content::MediaType::EventStream => Kind::EventStream,
        content::MediaType::NdJson => Kind::JsonLines,
        content::MediaType::Json | content::MediaType::JsonSuffix => Kind::Json,
        content::MediaType::Text | content::MediaType::Missing => Kind::Text,
        // A type two parsers could read differently is not inspected as either.
        _ => Kind::Other,
    }
}

/// The 502 that replaces a response the guards cannot inspect.
fn fail<B>(shape: &ResponseShape, reason: &'static str) -> Response<GuardBody<B>> {
    tracing::debug!(reason, "prompt guard failed closed on a response");
    Rejection::new(StatusCode::BAD_GATEWAY, LAYER, reason)
        .with_message("The response could not be inspected by the prompt guard")
        .respond_in(shape)
        .map(GuardBody::from)
}

/// Wraps the inner response: streams are guarded as they flow, JSON and text are read whole
/// first, anything else (encoded, binary, ambiguous) fails closed.
fn guard_response<B>(
    shared: &Shared,
    shape: &ResponseShape,
    res: Response<B>,
    audit: Option<Audit>,
    leak: Option<Box<LeakCheck>>,
    origin: Option<Origin>,
) -> Guarded<B>
where
    B: Body<Data = Bytes>,
{
    if shared.response.is_empty() && leak.is_none() {
        return Guarded::Ready(res.map(GuardBody::inner));
    }
    let (mut parts, body) = res.into_parts();
    let no_body = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
        || body.is_end_stream();
    if no_body {
        return Guarded::Ready(Response::from_parts(parts, GuardBody::inner(body)));
    }
    // Every `Content-Encoding` field counts: `identity` in the first and `gzip` in a second
    // is still gzip to the client.
    if content::is_encoded(&parts.headers) {
        return Guarded::Ready(fail(shape, "response_encoded"));
    }
    let json = match kind(&parts.headers) {
        Kind::EventStream => {
            parts.headers.remove(CONTENT_LENGTH);
            let stream = GuardStream::sse(body, shared, audit, leak, origin);
            return Guarded::Ready(Response::from_parts(parts, GuardBody::transformed(stream)));
        }
        Kind::JsonLines => {
            parts.headers.remove(CONTENT_LENGTH);
            let stream = GuardStream::json_lines(body, shared, audit, leak, origin);
            return Guarded::Ready(Response::from_parts(parts, GuardBody::transformed(stream)));
        }
        Kind::Other => return Guarded::Ready(fail(shape, "response_not_text")),
        Kind::Json => true,
        Kind::Text => false,
    };
    if body.size_hint().lower() > shared.limit.bytes() as u64 {
        return Guarded::Ready(fail(shape, "response_unreadable"));
    }
    Guarded::Collect {
        parts,
        body,
        json,
        audit,
        leak,
    }
}

/// A response read whole, and the rules decisions allowed for it.
pub(crate) struct Collected {
    parts: http::response::Parts,
    bytes: Bytes,
    /// Read it as JSON (else as text).
    json: bool,
    approved: Vec<Approval>,
}

/// A buffered response held until the decision about an escalated rule (`blockPending`).
pub(crate) struct PendingResponse {
    collected: Collected,
    decision: VerdictFuture,
    denial: Denial,
    tally: Tally,
}

/// What guarding a buffered response decided.
// Returned once per response, never stored: boxing the response would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Checked<B> {
    /// The answer: the response (possibly masked), its rejection, or a 502.
    Done(Response<GuardBody<B>>),
    /// Wait for the decision about an escalated rule.
    Escalate(Box<PendingResponse>),
}

/// Why a buffered response is not sent as guarded.
enum Stop {
    /// It cannot be inspected (the reason, for the 502).
    Unreadable(&'static str),
    /// A guard rejected it (the matches of the work, for the audit).
    Denied(Denial, Tally),
}

/// The rejection of a response a response guard denied, audited.
fn reject_response<B>(
    shared: &Shared,
    shape: &ResponseShape,
    audit: Option<&Audit>,
    denial: &Denial,
    tally: &Tally,
) -> Response<GuardBody<B>> {
    if let Some(audit) = audit {
        audit.rejected(Direction::Response, &denial.rule, tally);
    }
    shared
        .response
        .rejection(denial)
        .respond_in(shape)
        .map(GuardBody::from)
}

/// Guards a response read whole; an escalated rule notifies its destination, or (with
/// `blockPending`) holds the response for the decision.
fn guard_collected<B>(
    shared: &Shared,
    shape: &ResponseShape,
    collected: Collected,
    audit: Option<&Audit>,
    leak: Option<&mut LeakCheck>,
    origin: Option<&Origin>,
) -> Checked<B> {
    let checked = with_approved(&collected.approved, || {
        check_collected(shared, &collected.bytes, collected.json, audit, leak)
    });
    match checked {
        Ok(bytes) => {
            let mut parts = collected.parts;
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            Checked::Done(Response::from_parts(parts, GuardBody::full(bytes)))
        }
        Err(Stop::Unreadable(reason)) => Checked::Done(fail(shape, reason)),
        Err(Stop::Denied(denial, tally)) => {
            if let Some((label, escalation)) = shared.response.escalation(&denial) {
                let event = match origin {
                    Some(origin) => origin.event(label, &denial.rule, Direction::Response),
                    None => EscalationEvent::new(
                        LAYER,
                        denial.rule.clone(),
                        escalation::Direction::Response,
                    )
                    .with_guard(label),
                };
                if escalation.blocks_pending() {
                    return Checked::Escalate(Box::new(PendingResponse {
                        decision: escalation.decide(event),
                        collected,
                        denial,
                        tally,
                    }));
                }
                escalation.notify(event);
            }
            Checked::Done(reject_response(shared, shape, audit, &denial, &tally))
        }
    }
}

/// Guards the bytes of a response read whole: the body to send (masked, or as it came).
fn check_collected(
    shared: &Shared,
    bytes: &Bytes,
    json: bool,
    audit: Option<&Audit>,
    leak: Option<&mut LeakCheck>,
) -> Result<Bytes, Stop> {
    let bytes = bytes.clone();
    // Clients parse JSON without looking at the type (`response.json()`): a text body that
    // opens like JSON is read as JSON, or an escaped secret would pass a text scan.
    let json = json || content::starts_like_json(&bytes);
    let on = audit.is_some();
    // A JSON body is parsed at most once: the leak guard and the regex guards share the tree.
    let mut tree: Option<Value> = None;
    // The leak guard reads the model's text first, before other guards mask it.
    let (bytes, leaked, mut tally) = match leak {
        None => (bytes, false, Tally::default()),
        Some(leak) if json => {
            let Ok(mut parsed) = agentgw_core::json::parse_unique_keys(&bytes) else {
                return Err(Stop::Unreadable("response_invalid_json"));
            };
            match audit::collect(on, || check_leak_json(leak, &mut parsed)) {
                (Ok(changed), tally) => {
                    tree = Some(parsed);
                    (bytes, changed, tally)
                }
                (Err(denial), tally) => return Err(Stop::Denied(denial, tally)),
            }
        }
        Some(leak) => match audit::collect(on, || check_leak_text(leak, &bytes)) {
            (Ok(None), tally) => (bytes, false, tally),
            (Ok(Some(masked)), tally) => (masked, true, tally),
            (Err(LeakOutcome::Unreadable(reason)), _) => return Err(Stop::Unreadable(reason)),
            (Err(LeakOutcome::Denied(denial)), tally) => return Err(Stop::Denied(denial, tally)),
        },
    };
    let (outcome, regex_tally) = if shared.response.is_empty() {
        (Ok(None), Tally::default())
    } else if json && !leaked && crate::guard::lexical::unchanged(&bytes, &shared.response) {
        // Nothing any guard matches, in a document whose bytes are what a parser reads: the
        // tree, the walk and the rewrite would change nothing.
        (Ok(None), Default::default())
    } else if json {
        let parsed = match tree.take() {
            Some(parsed) => parsed,
            None => match agentgw_core::json::parse_unique_keys(&bytes) {
                Ok(parsed) => parsed,
                Err(_) => return Err(Stop::Unreadable("response_invalid_json")),
            },
        };
        let outcome = audit::collect(on, || {
            shared
                .response
                .apply_json(&parsed, None, Direction::Response)
        });
        // Unchanged by the regex guards: the leak guard's tree, if it masked, is the answer.
        if let (Ok(None), _) = outcome
            && leaked
        {
            tree = Some(parsed);
        }
        (outcome.0.map(|json| json.or(tree.take())), outcome.1)
    } else {
        match std::str::from_utf8(&bytes) {
            Ok(text) => audit::collect(on, || {
                shared
                    .response
                    .apply(None, text)
                    .map(|text| text.map(Value::String))
            }),
            Err(_) => return Err(Stop::Unreadable("response_invalid_utf8")),
        }
    };
    tally.merge(regex_tally);
    let mut masked = leaked;
    let bytes = match outcome {
        Ok(None) => match tree {
            // Masked by the leak guard only (a JSON body whose regex guards had nothing to do).
            Some(json) if leaked => match serde_json::to_vec(&json) {
                Ok(out) => Bytes::from(out),
                Err(_) => return Err(Stop::Unreadable("response_invalid_json")),
            },
            _ => bytes,
        },
        Ok(Some(rewritten)) => {
            masked = true;
            match rewritten {
                // Text guards rewrite the text itself.
                Value::String(text) if !json => Bytes::from(text),
                json => match serde_json::to_vec(&json) {
                    Ok(out) => Bytes::from(out),
                    Err(_) => return Err(Stop::Unreadable("response_invalid_json")),
                },
            }
        }
        Err(denial) => return Err(Stop::Denied(denial, tally)),
    };
    if masked && let Some(audit) = audit {
        audit.masked(Direction::Response, &tally);
    }
    Ok(bytes)
}

/// Why the leak check of a buffered response did not let it through.
enum LeakOutcome {
    Denied(Denial),
    /// The body could not be read (the reason, for the 502).
    Unreadable(&'static str),
}

/// Checks a buffered text (not JSON) response for a leak of the system prompt; the masked body
/// when a mask changed it.
fn check_leak_text(leak: &mut LeakCheck, bytes: &Bytes) -> Result<Option<Bytes>, LeakOutcome> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| LeakOutcome::Unreadable("response_invalid_utf8"))?;
    Ok(leak
        .text(text)
        .map_err(LeakOutcome::Denied)?
        .map(Bytes::from))
}

/// Checks a parsed JSON response for a leak of the system prompt: the text segments of an LLM
/// response (and its logprob tokens, per position), or every string of other JSON. Masks in
/// place; whether a mask changed it.
fn check_leak_json(leak: &mut LeakCheck, json: &mut Value) -> Result<bool, Denial> {
    let mut denial = None;
    let mut step = |text: &str| {
        if denial.is_some() {
            return None;
        }
        leak.text(text).unwrap_or_else(|d| {
            denial = Some(d);
            None
        })
    };
    let format = Format::detect(json, Direction::Response).filter(|format| {
        let mut any = false;
        llm_view::for_each_segment(json, *format, Direction::Response, |_| any = true);
        any
    });
    let mut changed = match format {
        Some(format) => {
            llm_view::rewrite_segments(json, format, Direction::Response, |_, text| step(text)) > 0
        }
        None => rewrite_strings(json, &mut step),
    };
    if let Some(denial) = denial {
        return Err(denial);
    }
    // Logprob tokens spell the answer again, a token at a time: one scanner per position.
    let mut remaining: Vec<(DeltaKey, usize)> = Vec::new();
    llm_view::for_each_logprob_token(json, |token| {
        match remaining.iter_mut().find(|(key, _)| *key == token.key) {
            Some((_, n)) => *n += 1,
            None => remaining.push((token.key, 1)),
        }
    });
    if !remaining.is_empty() {
        let mut scanners: Vec<(DeltaKey, crate::leak::LeakScanner)> = Vec::new();
        let mut denial = None;
        let rewritten = llm_view::rewrite_logprob_tokens(json, |key, text| {
            if denial.is_some() {
                return None;
            }
            let index = match scanners.iter().position(|(k, _)| *k == key) {
                Some(index) => index,
                None => {
                    scanners.push((key, leak.scanner()));
                    scanners.len() - 1
                }
            };
            let left = remaining.iter_mut().find(|(k, _)| *k == key).map(|(_, n)| {
                *n = n.saturating_sub(1);
                *n
            });
            match leak.feed(&mut scanners[index].1, text, left == Some(0)) {
                Ok(out) => (out != text).then_some(out),
                Err(d) => {
                    denial = Some(d);
                    None
                }
            }
        });
        if let Some(denial) = denial {
            return Err(denial);
        }
        changed |= rewritten > 0;
    }
    Ok(changed)
}
