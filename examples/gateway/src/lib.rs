//! `agentgw`, the example gateway: YAML configuration in, the agentgw layers stacked per route,
//! upstreams out (reqwest).
//!
//! The binary stays thin: all policy logic lives in the library crates. This library holds what
//! the binary and the end-to-end tests share: [`config`], the per-route [`stack`], the
//! [`proxy`] to upstreams, the tool pin file writer ([`pin`]), the [`server`] (listeners, health, metrics, reload, shutdown) and the
//! offline [`demo`] (in front of the mock upstreams of `agentgw-test-support`).

pub mod config;
pub mod demo;
pub mod pin;
pub mod proxy;
pub mod server;
pub mod stack;

pub use config::Config;
pub use server::{RunningGateway, StartError, Workers, start, start_with};

/// The request body every route service receives (boxed, `Send + Sync` so it can be sent upstream from any thread).
pub type ReqBody = http_body_util::combinators::BoxBody<bytes::Bytes, agentgw_core::BoxError>;

/// The response body every route service returns.
pub type ResBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, agentgw_core::BoxError>;
