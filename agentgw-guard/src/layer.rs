//! [`PromptGuardLayer`]: the compiled guards and the layer's settings.

use std::fmt;
use std::sync::Arc;

use agentgw_core::audit::AuditSink;
use agentgw_core::body::BodyLimit;
use agentgw_core::config::ConfigWarning;
use agentgw_core::llm::Direction;
use agentgw_core::sse::DEFAULT_MAX_EVENT_BYTES;
use tower_layer::Layer;

use crate::config::PromptGuardConfig;
use crate::error::Error;
use crate::guard::Guards;
use crate::service::PromptGuardService;

/// Applies prompt guards to the requests and responses of the inner service.
///
/// Request guards run on the buffered request body (its LLM text segments, or every string of
/// other JSON, or the raw text): a `Reject` match answers with the guard's rejection (403 by
/// default, an OpenAI-style error on LLM routes, a JSON-RPC error on MCP routes, rendered by
/// [`Rejection`](agentgw_core::Rejection)) without calling the inner service; `Mask` matches
/// are replaced and the rewritten body is forwarded. Response guards mask (or cut) JSON and
/// text responses, and event streams event by event. See the [crate docs](crate) for
/// examples.
///
/// Cheap to clone: the compiled guards are shared.
#[derive(Clone)]
pub struct PromptGuardLayer {
    pub(crate) shared: Arc<Shared>,
    warnings: Arc<[ConfigWarning]>,
}

/// What every service of one layer shares.
pub(crate) struct Shared {
    pub(crate) request: Guards,
    pub(crate) response: Arc<Guards>,
    pub(crate) limit: BodyLimit,
    pub(crate) max_event_bytes: usize,
    pub(crate) audit: Option<Arc<dyn AuditSink>>,
}

impl PromptGuardLayer {
    /// Validates and compiles `config`.
    ///
    /// # Errors
    ///
    /// An [`Error`] naming the field at fault relative to the `promptGuard` block, e.g.
    /// `request[0].regex.matches[2].pattern: invalid regex: ...`.
    pub fn from_config(config: &PromptGuardConfig) -> Result<Self, Error> {
        let limit = config.max_body_bytes.map_or(BodyLimit::DEFAULT, |bytes| {
            BodyLimit::new(usize::try_from(bytes).unwrap_or(usize::MAX))
        });
        let request = Guards::compile(&config.request, Direction::Request)?;
        let response = Guards::compile(&config.response, Direction::Response)?;
        let warnings: Arc<[ConfigWarning]> = response
            .guards
            .iter()
            .flat_map(|guard| {
                let hold_back = guard.set.stream_hold_back();
                guard.set.unbounded_patterns().iter().map(move |path| {
                    ConfigWarning::new(
                        path.clone(),
                        format!(
                            "can match text of unbounded length: buffered responses are masked \
                             with the full pattern, streamed ones hold back at most {hold_back} \
                             bytes of a potential match, so a longer match may be released \
                             partly unmasked (set repetitionLimit to bound the pattern)"
                        ),
                    )
                })
            })
            .collect();
        for warning in warnings.iter() {
            tracing::warn!(field = %warning.path, "promptGuard: {}", warning.message);
        }
        Ok(PromptGuardLayer {
            shared: Arc::new(Shared {
                request,
                response: Arc::new(response),
                limit,
                max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
                audit: None,
            }),
            warnings,
        })
    }

    /// The fields of the configuration that load but do not do exactly what they seem to say,
    /// each with its path relative to the `promptGuard` block: a response pattern of unbounded
    /// length (`\w+@\w+`), which masks buffered responses with the full pattern but holds back
    /// at most [`DEFAULT_STREAM_HOLD_BACK`](crate::pattern_set::DEFAULT_STREAM_HOLD_BACK)
    /// bytes of a streamed one (see [`stream`](crate::stream)). Each is also logged with
    /// `tracing::warn!` when the layer is built.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// Records a `prompt_guard` event in `sink` for every request or response a guard rejects
    /// or masks: the rule names and how often each matched, the direction, never the matched
    /// text. A stream is one event, when it ends or is cut. See [`agentgw_core::audit`] for
    /// the schema.
    #[must_use]
    ///
    /// Escalations of `Escalate` guards with an `escalation` block are recorded there too
    /// (`"event": "escalation"`, see [`agentgw_core::escalation`]).
    pub fn audit_sink(self, sink: Arc<dyn AuditSink>) -> Self {
        self.with(|shared| {
            let (request, response) = if shared.request.escalates() || shared.response.escalates() {
                (
                    shared.request.with_audit_sink(&sink),
                    Arc::new(shared.response.with_audit_sink(&sink)),
                )
            } else {
                (shared.request, shared.response)
            };
            Shared {
                request,
                response,
                audit: Some(sink),
                ..shared
            }
        })
    }

    /// Sets the largest event of a response stream (an SSE event, or a line of a JSON-lines
    /// stream), in bytes (default 1 MiB); a larger one ends the stream with an error.
    #[must_use]
    pub fn max_event_bytes(self, bytes: usize) -> Self {
        self.with(|shared| Shared {
            max_event_bytes: bytes,
            ..shared
        })
    }

    /// Sets the largest request or non-streamed response body inspected (default: the
    /// configuration's `maxBodyBytes`, else 16 MiB). A larger request is answered 413; a
    /// larger response fails closed (502).
    #[must_use]
    pub fn body_limit(self, limit: BodyLimit) -> Self {
        self.with(|shared| Shared { limit, ..shared })
    }

    fn with(self, f: impl FnOnce(Shared) -> Shared) -> Self {
        let shared = Arc::try_unwrap(self.shared).unwrap_or_else(|shared| Shared {
            request: shared.request.clone(),
            response: Arc::clone(&shared.response),
            limit: shared.limit,
            max_event_bytes: shared.max_event_bytes,
            audit: shared.audit.clone(),
        });
        PromptGuardLayer {
            shared: Arc::new(f(shared)),
            warnings: self.warnings,
        }
    }
}

impl fmt::Debug for PromptGuardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptGuardLayer")
            .field("request_guards", &self.shared.request.guards.len())
            .field("response_guards", &self.shared.response.guards.len())
            .field("limit", &self.shared.limit)
            .field("audit", &self.shared.audit.is_some())
            .finish()
    }
}

impl<S> Layer<S> for PromptGuardLayer {
    type Service = PromptGuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PromptGuardService::new(inner, Arc::clone(&self.shared))
    }
}
