//! `agentgw-example-custom-gateway`: see the crate's README.

use agentgw_auth::SecretRef;
use agentgw_example_custom_gateway::{Options, run};
use clap::Parser;

/// The smallest useful gateway built from agentgw layers.
#[derive(Debug, Parser)]
struct Args {
    /// The port to listen on, on 127.0.0.1.
    #[arg(long, env = "PORT", default_value_t = 3002)]
    port: u16,
    /// The upstream's OpenAI-compatible base URL (default: the axum example).
    #[arg(long, default_value = "http://127.0.0.1:3000/v1")]
    upstream: String,
    /// The clients' keys (YAML `keys: [{name, key}]`, re-read when it changes).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/keys.yaml"))]
    keys: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), agentgw_core::BoxError> {
    let args = Args::parse();
    // The upstream's key is read from the environment, never from the command line.
    let upstream_key =
        std::env::var_os("UPSTREAM_API_KEY").map(|_| SecretRef::Env("UPSTREAM_API_KEY".to_owned()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    println!("http://{addr}/v1/chat/completions -> {}", args.upstream);
    let (upstream, keys) = (args.upstream, args.keys);
    run(
        listener,
        Options {
            upstream,
            keys,
            upstream_key,
        },
    )
    .await
}
