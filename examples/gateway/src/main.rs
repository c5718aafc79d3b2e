//! The `agentgw` binary: `--config FILE`, `--demo`, `--check-config FILE`, or
//! `pin --config FILE [--output PATH]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use agentgw_gateway::{Config, demo, server};
use clap::{Parser, Subcommand, ValueEnum};

// glibc's allocator showed up at ~8% of the proxy's CPU under load; mimalloc roughly halves that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// agentgw: secure LLM and MCP traffic with composable tower layers.
#[derive(Debug, Parser)]
#[command(name = "agentgw", version, about)]
struct Args {
    /// Run with this YAML configuration file (re-read on SIGHUP).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["demo", "check_config"])]
    config: Option<PathBuf>,
    /// Run the embedded demo configuration with built-in mock upstreams (offline).
    #[arg(long)]
    demo: bool,
    /// Validate a configuration file and exit (non-zero with every error and its path).
    #[arg(long, value_name = "FILE", conflicts_with = "demo")]
    check_config: Option<PathBuf>,
    /// Override the proxy listen address.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Proxy worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    worker_threads: Option<usize>,
    /// How proxy connections are served: `per-core` threads that each accept, check and forward
    /// on their own runtime (no cross-thread wake-ups), or one work-stealing `multi-thread`
    /// runtime.
    #[arg(long, value_enum, default_value_t = RuntimeKind::PerCore)]
    runtime: RuntimeKind,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the tool pin file (`toolSecurity.pinning.file`) from the live upstreams: lists
    /// the tools of every `kind: mcp` route and prints what changed against the file there.
    /// Review the diff, then deploy the file to every replica.
    Pin {
        /// The gateway configuration (its MCP routes, their backends and credentials).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Where to write the pins (default: the one `pinning.file` the configuration names).
        #[arg(long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    PerCore,
    MultiThread,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    if let Some(Command::Pin { config, output }) = &args.command {
        return pin(config, output.as_deref());
    }
    if let Some(path) = &args.check_config {
        return check_config(path);
    }
    let threads = args
        .worker_threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    let mut builder = match args.runtime {
        // The main thread's runtime only runs health, metrics, signals and layer background
        // work; the per-core workers get their own threads.
        RuntimeKind::PerCore => tokio::runtime::Builder::new_current_thread(),
        RuntimeKind::MultiThread => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let workers = match (args.runtime, std::num::NonZeroUsize::new(threads)) {
        (RuntimeKind::PerCore, Some(n)) => server::Workers::PerCore(n),
        _ => server::Workers::Current,
    };
    runtime.block_on(run(args, workers))
}

async fn run(args: Args, workers: server::Workers) -> ExitCode {
    let (config, path, demo) = if args.demo {
        match demo::prepare(args.listen, false).await {
            Ok(demo) => (demo.config.clone(), None, Some(demo)),
            Err(err) => {
                eprintln!("{err}");
                return ExitCode::FAILURE;
            }
        }
    } else if let Some(path) = args.config {
        match Config::load(&path) {
            Ok(mut config) => {
                if let Some(listen) = args.listen {
                    config.listen = listen;
                }
                (config, Some(path), None)
            }
            Err(errors) => {
                eprintln!("{}: invalid configuration", path.display());
                for error in &errors.0 {
                    eprintln!("  {error}");
                }
                return ExitCode::from(2);
            }
        }
    } else {
        eprintln!(
            "nothing to run: pass --demo, --config FILE, --check-config FILE or `pin --config FILE` (see --help)"
        );
        return ExitCode::from(2);
    };

    if config.metrics.is_some() {
        server::prometheus();
    }
    check_open_files_limit(&config);
    let gateway = match server::start_with(config, path, workers).await {
        Ok(gateway) => gateway,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    if demo.is_some() {
        println!(
            "agentgw demo listening on http://{}\n\n{}",
            gateway.addr(),
            demo::curl_examples(
                gateway.addr(),
                gateway.metrics_addr(),
                gateway.health_addr()
            )
        );
    }
    wait_for_signals(&gateway).await;
    tracing::info!("shutting down");
    gateway.shutdown().await;
    drop(demo);
    ExitCode::SUCCESS
}

/// `agentgw pin`: exit 0 with the changes printed, 1 when an upstream cannot be listed or the
/// file cannot be written, 2 for an invalid configuration.
fn pin(path: &std::path::Path, output: Option<&std::path::Path>) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{}: invalid configuration", path.display());
            for error in &errors.0 {
                eprintln!("  {error}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(agentgw_gateway::pin::pin(&config, output)) {
        Ok(report) => {
            if let Some(reason) = &report.previous_unreadable {
                eprintln!(
                    "warning: the previous pin file could not be read ({reason}): every tool is listed as new"
                );
            }
            for change in &report.changes {
                println!("{change}");
            }
            let tools: usize = report
                .pins
                .upstreams()
                .map(|upstream| report.pins.tools(upstream).count())
                .sum();
            println!(
                "wrote {} ({tools} tools, {} changes)",
                report.path.display(),
                report.changes.len()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("agentgw pin: {err}; no file written");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit of open files to the hard limit (every client and every upstream
/// connection takes a descriptor, and a soft limit of 1,024 is what a slow-client attack
/// exhausts first), and warns when `server.maxConnections` client connections, each with an
/// upstream connection, would still not fit.
fn check_open_files_limit(config: &Config) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open files limit");
            return;
        }
    };
    let Some(max) = config.server.max_connections else {
        return;
    };
    // Two descriptors per client connection (its own and an upstream's), plus a reserve for
    // listeners, metrics, health, files and the JWKS/ext_authz clients.
    let needed = (max as u64).saturating_mul(2).saturating_add(256);
    if needed > limit {
        tracing::warn!(
            open_files_limit = limit,
            max_connections = max,
            "the open files limit is below what server.maxConnections needs (two per \
             connection plus 256): raise it (ulimit -n, LimitNOFILE=) or lower \
             server.maxConnections; accept errors back off meanwhile"
        );
    }
}

#[cfg(unix)]
async fn wait_for_signals(gateway: &agentgw_gateway::RunningGateway) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                match gateway.reload() {
                    Ok(()) => tracing::info!("reloaded configuration on SIGHUP"),
                    Err(errors) => tracing::error!(%errors, "reload failed; keeping the running configuration"),
                }
            }
            _ = term.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_gateway: &agentgw_gateway::RunningGateway) {
    let _ = tokio::signal::ctrl_c().await;
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `--check-config`: parse, validate, and build every layer (regexes, CEL, keys), reporting every
/// error with its path, and every warning (a field that loads but applies differently than it
/// reads) on stderr.
fn check_config(path: &std::path::Path) -> ExitCode {
    let checked = Config::load(path).and_then(|config| {
        // Some layers start background work (JWKS refresh) when built: give them a runtime.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                agentgw_gateway::config::ConfigError::new(
                    "",
                    format!("cannot start a runtime: {e}"),
                )
            })?;
        runtime.block_on(async {
            agentgw_gateway::stack::Stack::build(&config).map(|stack| stack.warnings().to_vec())
        })
    });
    match checked {
        Ok(warnings) => {
            for warning in &warnings {
                eprintln!("  warning: {warning}");
            }
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}: invalid configuration", path.display());
            for error in &errors.0 {
                eprintln!("  {error}");
            }
            ExitCode::from(2)
        }
    }
}
