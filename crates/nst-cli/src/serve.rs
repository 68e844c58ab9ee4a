//! `nst serve`: the web app (see `nst-web`) from the same binary.

use crate::progress::say;
use anyhow::{Context, Result};
use clap::Parser;
use nst_transfer::{Cache, Device, Engine, Precision};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Style transfer in the browser: a page to upload a photo and paintings, watch the picture
/// form, and download it.
#[derive(Parser, Debug)]
#[command(name = "nst serve", version)]
pub struct ServeArgs {
    /// The port.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// The address to listen on: this machine only by default. Anything else lets whoever
    /// can reach the machine use it (nst says so when it starts).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,

    /// Where the network runs: auto (CUDA when present, else CPU), cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: Device,

    /// Arithmetic: fp32; bf16 (CPU only: about twice as fast on CPUs with bf16 units,
    /// AVX512-BF16 or AMX, through OpenVINO, fetched on first use; others run fp32 and say
    /// so); or fp16 (CUDA only: the network in half precision; `auto` without a GPU runs fp32).
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
}

/// Serves until Ctrl-C or SIGTERM, then cancels the running job and stops.
pub fn run(args: ServeArgs) -> Result<i32> {
    let log = |m: &str| say(&format!("nst: {m}"));
    let cache = Cache::locate()?;
    cache.create().context("nst's cache (set NST_CACHE_DIR to a folder of yours)")?;
    let engine = Arc::new(Engine::open(&cache, args.device, args.precision, &log)?);
    let samples = nst_web::samples(&cache, &log).unwrap_or_else(|e| {
        log(&format!("the examples are unavailable ({e})"));
        Vec::new()
    });
    if !args.bind.is_loopback() {
        log(&format!(
            "warning: listening on {}: anyone who can reach this machine can use the app and see its jobs",
            args.bind
        ));
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the server's runtime")?;
    runtime.block_on(async {
        let address = SocketAddr::new(args.bind, args.port);
        let listener =
            tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
        let address = listener.local_addr()?;
        let shown =
            if address.ip().is_unspecified() { format!("localhost:{}", address.port()) } else { address.to_string() };
        log(&format!("serving on http://{shown}/ (Ctrl-C to stop)"));
        let options = nst_web::Options { samples, ..nst_web::Options::default() };
        nst_web::serve(listener, engine, options, stop_signal()).await.context("the server failed")?;
        log("stopped: jobs cancelled, files removed");
        Ok(0)
    })
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    say("nst: stopping: no new jobs; the running one stops now, keeping its best image");
}
