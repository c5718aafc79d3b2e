//! End-to-end tests: the example gateway with its layers, real clients and real upstreams, all
//! over TCP on 127.0.0.1.

mod auth;
mod common;
mod demo;
mod deploy;
mod edge;
mod escalation;
mod gateway;
mod mcp;
mod parity;
mod prompt_leak;
mod secrets;
mod seed_000;
mod stdio_sandbox;
mod tls;
