//! Integration tests of agentgw-auth: real sockets on 127.0.0.1, keys generated at test time.

mod common;

mod api_keys;
mod audit;
mod backend;
#[cfg(feature = "remote-jwks")]
mod jwks_remote;
mod jwt_attacks;
mod jwt_modes;
