//! [`PromptGuardService`] and the request side: read the body once, guard it, forward it.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::body::{RequestBody, buffer_request_boxed, replace_payload};
use agentgw_core::llm::{Direction, Format};
use agentgw_core::path::canonicalize_request;
use agentgw_core::rejection::RouteKind;
use agentgw_core::{BoxError, Payload, ResponseShape};
use bytes::Bytes;
use http::header::ACCEPT_ENCODING;
use http::{Extensions, HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;

use agentgw_core::escalation::{self, EscalationEvent, VerdictFuture};

use crate::audit::{self, Audit, Tally};
use crate::body::GuardBody;
use crate::escalate::{Approval, Origin, with_approved};
use crate::future::ResponseFuture;
use crate::guard::{Denial, LAYER};
use crate::layer::Shared;

/// The service of [`PromptGuardLayer`](crate::PromptGuardLayer). See the
/// [crate docs](crate) for examples.
#[derive(Clone)]
pub struct PromptGuardService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> PromptGuardService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        PromptGuardService { inner, shared }
    }
}

impl<S: fmt::Debug> fmt::Debug for PromptGuardService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptGuardService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for PromptGuardService<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Clone,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        // The path picks the LLM format the body is read in: read it as the upstream will.
        if let Err(error) = canonicalize_request(&mut req) {
            return ResponseFuture::denied(error.into_rejection(LAYER).respond_to(&req));
        }
        // A leak guard reads the request's system prompt: the body is read then too.
        if shared.request.is_empty() && shared.response.leak.is_none() {
            let mut req = req.map(RequestBody::streaming);
            prefer_identity_encoding(&shared, &mut req);
            let shape = ResponseShape::for_request(&req);
            let audit =
                Audit::of_response(shared.audit.as_ref(), !shared.response.is_empty(), &req);
            let origin = shared.response.escalates().then(|| Origin::of(&req));
            let fut = self.inner.call(req);
            return ResponseFuture::calling(fut, shared, shape, audit, None, origin);
        }
        // The body is read asynchronously first: use the instance that was polled ready and
        // leave a fresh clone in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        // A rejection of the body itself (too large, not JSON) is shaped without its payload.
        let mut extensions = Extensions::new();
        if let Some(kind) = req.extensions().get::<RouteKind>() {
            extensions.insert(*kind);
        }
        let shape = ResponseShape::from_parts(req.uri().path(), &extensions);
        let buffering = buffer_request_boxed(req, shared.limit);
        ResponseFuture::buffering(buffering, inner, shared, shape)
    }
}

/// What the request guards decided.
pub(crate) enum Verdict<B> {
    /// Forward this request (its body possibly masked).
    Forward(Request<RequestBody<B>>),
    /// Answer with this denial.
    Deny(Response<Full<Bytes>>),
    /// Wait for the decision about an escalated rule (`blockPending`).
    Escalate(Box<Pending<B>>),
}

/// A request waiting for the decision about an escalated rule.
pub(crate) struct Pending<B> {
    pub(crate) req: Request<RequestBody<B>>,
    pub(crate) decision: VerdictFuture,
    pub(crate) denial: Denial,
    pub(crate) tally: Tally,
    /// The rules allowed by earlier decisions about this request.
    pub(crate) approved: Vec<Approval>,
}

impl<B> Pending<B> {
    /// Guards the request again once its decision is in: allowed, the rule is approved and
    /// the guards run again as if it had not matched; denied (or failed), the request is
    /// rejected as by `Reject`.
    pub(crate) fn decided(self, shared: &Shared, verdict: escalation::Verdict) -> Verdict<B> {
        let Pending {
            req,
            denial,
            tally,
            mut approved,
            ..
        } = self;
        match verdict {
            escalation::Verdict::Allow => {
                approved.push((denial.guard, denial.rule));
                guard_request(shared, req, approved)
            }
            escalation::Verdict::Deny => Verdict::Deny(deny_request(shared, &req, &denial, &tally)),
        }
    }
}

/// The rejection of a request the request guards denied, audited.
fn deny_request<B>(
    shared: &Shared,
    req: &Request<B>,
    denial: &Denial,
    tally: &Tally,
) -> Response<Full<Bytes>> {
    if let Some(sink) = &shared.audit {
        Audit::of(sink, req).rejected(Direction::Request, &denial.rule, tally);
    }
    shared.request.rejection(denial).respond_to(req)
}

/// Guards a buffered request, skipping the `approved` rules.
pub(crate) fn guard_request<B>(
    shared: &Shared,
    mut req: Request<RequestBody<B>>,
    approved: Vec<Approval>,
) -> Verdict<B> {
    prefer_identity_encoding(shared, &mut req);
    if shared.request.is_empty() {
        return Verdict::Forward(req);
    }
    let Some(payload) = req.extensions().get::<Payload>().cloned() else {
        return Verdict::Forward(req);
    };
    let format = Format::from_path(req.uri().path());
    let (outcome, tally) = audit::collect(shared.audit.is_some(), || {
        with_approved(&approved, || guard_payload(shared, &payload, format))
    });
    match outcome {
        Ok(None) => Verdict::Forward(req),
        Ok(Some(payload)) => {
            if let Some(sink) = &shared.audit {
                Audit::of(sink, &req).masked(Direction::Request, &tally);
            }
            replace_payload(&mut req, payload);
            Verdict::Forward(req)
        }
        Err(denial) => {
            if let Some((label, escalation)) = shared.request.escalation(&denial) {
                let event = EscalationEvent::new(
                    LAYER,
                    denial.rule.clone(),
                    escalation::Direction::Request,
                )
                .with_guard(label)
                .with_request(&req);
                if escalation.blocks_pending() {
                    return Verdict::Escalate(Box::new(Pending {
                        decision: escalation.decide(event),
                        req,
                        denial,
                        tally,
                        approved,
                    }));
                }
                escalation.notify(event);
            }
            Verdict::Deny(deny_request(shared, &req, &denial, &tally))
        }
    }
}

/// Applies the request guards to a payload: its rewritten version when a mask changed it.
fn guard_payload(
    shared: &Shared,
    payload: &Payload,
    format: Option<Format>,
) -> Result<Option<Payload>, Denial> {
    // Nothing any guard matches, in a plain document the strict parser accepts as written:
    // the walk would change and refuse nothing, and the body need not be parsed (see
    // `guard::lexical`). Classifier guards score the text segments: they take the walk.
    if shared.request.classifiers.is_empty()
        && crate::guard::lexical::request_unchanged(payload.bytes(), &shared.request)
    {
        return Ok(None);
    }
    match payload.json() {
        Ok(json) => shared
            .request
            .apply_json(json, format, Direction::Request)
            .map(|json| json.map(Payload::from_json)),
        Err(_) => match payload.text() {
            Ok(text) => shared
                .request
                .apply(None, text)
                .map(|text| text.map(|t| Payload::new(Bytes::from(t)))),
            // Binary bodies are checked for rejections but never rewritten.
            Err(_) => shared
                .request
                .apply(None, &String::from_utf8_lossy(payload.bytes()))
                .map(|_| None),
        },
    }
}

/// Response guards cannot read compressed bodies: ask the upstream for none.
fn prefer_identity_encoding<B>(shared: &Shared, req: &mut Request<B>) {
    if !shared.response.is_empty() || shared.response.leak.is_some() {
        req.headers_mut()
            .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
}
