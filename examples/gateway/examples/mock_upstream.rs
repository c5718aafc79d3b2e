//! The OpenAI-compatible mock of `agentgw-test-support` as a process of its own, so that a load
//! test can put the gateway in front of it and measure the gateway's memory and CPU without the
//! upstream's (`agentgw --demo` runs the mocks inside the gateway's process).
//!
//! ```sh
//! cargo run --release -p agentgw-gateway --example mock_upstream -- --listen 127.0.0.1:4000
//! ```
//!
//! Prints `listening on http://ADDR` once bound and serves until Ctrl-C or SIGTERM. The mock's
//! answers are steered per request with its `x-mock-*` headers (see the `agentgw-test-support`
//! crate docs): `x-mock-chunks: N` and `x-mock-chunk-delay-ms: MS` make a stream of `N` content
//! events, one every `MS` milliseconds, and `x-mock-pii: 1` puts personal data in the answer for
//! the gateway's response guard to mask. bench/soak.sh uses it as the upstream of 10,000 streams.

use std::net::SocketAddr;

use clap::Parser;

/// Serve the OpenAI-compatible mock upstream.
#[derive(Debug, Parser)]
#[command(name = "mock_upstream")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let server = agentgw_test_support::openai(args.listen).await?;
    println!("listening on {}", server.url());

    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;

    println!("served {} requests", server.request_count());
    // Open streams are not waited for: the process is going away.
    drop(server);
    Ok(())
}
