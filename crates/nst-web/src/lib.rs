//! `nst serve`: style transfer in the browser, with a live preview. A page (one file of
//! HTML, CSS and JavaScript, embedded: no build step, no CDN) uploads a photo and styles,
//! starts a job, and watches it form — progress, loss curve and preview by server-sent
//! events — then downloads the result and its report. Jobs wait in a [`Queue`] and run one
//! at a time per device on the `nst-transfer` engine; uploads are bounded ([`Limits`]) and
//! decoded with the engine's checks; files live in a temporary folder of the server's.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use nst_transfer::{Cache, Device, Engine, Precision};
//! let engine = Engine::open(&Cache::locate().unwrap(), Device::Auto, Precision::Fp32, &|m| eprintln!("{m}")).unwrap();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! nst_web::serve(listener, Arc::new(engine), nst_web::Options::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
#![deny(missing_docs)]

mod queue;
mod routes;
mod store;
mod upload;
mod worker;

pub use queue::{Finish, JobId, JobSpec, JobView, MemoryQueue, Progress, Queue, Status};
pub use routes::Sample;
pub use upload::Limits;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The worker thread's stack, in bytes.
const WORKER_STACK: usize = 64 << 20;

/// How a server runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// What uploads may be.
    pub limits: Limits,
    /// Sample images offered as one-click examples (none when they could not be fetched).
    pub samples: Vec<Sample>,
}

/// How long requests still open when the server stops may take to finish.
const OPEN_REQUESTS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves the page and the API on `listener` until `shutdown` completes; then stops taking
/// jobs, cancels the running one (it ends at once, with its best image so far), ends the event
/// streams, gives requests still open 5 s (`OPEN_REQUESTS_GRACE`) to finish (then drops them),
/// and removes the server's files.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<nst_transfer::Engine>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = Arc::new(store::Store::new()?);
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::default());
    let stop = Arc::new(AtomicBool::new(false));
    let worker = worker::Worker {
        engine,
        queue: queue.clone(),
        store: store.clone(),
        max_pixels: options.limits.pixels,
        kept: options.limits.kept,
    };
    let worker = {
        let stop = stop.clone();
        // OpenBLAS (LAPACK inside L-BFGS-B) keeps buffers of over half a megabyte on the
        // stack: the worker gets a main thread's room, not a spawned thread's 2 MiB.
        std::thread::Builder::new()
            .name("nst-worker".into())
            .stack_size(WORKER_STACK)
            .spawn(move || worker.run(&stop))?
    };
    let (stopping, watch_stopping) = tokio::sync::watch::channel(false);
    let mut stopped = watch_stopping.clone();
    let streams = Arc::new(AtomicUsize::new(0));
    let app = routes::App {
        streams: streams.clone(),
        local_only: listener.local_addr()?.ip().is_loopback(),
        queue: queue.clone(),
        store: store.clone(),
        limits: options.limits,
        samples: Arc::new(options.samples),
        stopping: watch_stopping,
        admitting: Arc::new(AtomicUsize::new(0)),
        checking: Arc::new(tokio::sync::Semaphore::new(1)),
    };
    let served = axum::serve(listener, routes::router(app)).with_graceful_shutdown(async move {
        shutdown.await;
        queue.close();
        let _ = stopping.send(true);
        // The pages watching a job hear that the server stopped (a second at most).
        for _ in 0..20 {
            if streams.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    // Requests still open a while after the stop (an upload that stalled) are dropped: a
    // client must not keep the server from stopping.
    let served = tokio::select! {
        served = served.into_future() => served,
        _ = async {
            let _ = stopped.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(OPEN_REQUESTS_GRACE).await;
        } => Ok(()),
    };
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    drop(store);
    served
}

/// The demo's sample images from the cache (fetched and verified on first use), with their
/// roles in the examples: the photos as content, the coffee cup as style.
pub fn samples(cache: &nst_transfer::Cache, log: &dyn Fn(&str)) -> Result<Vec<Sample>, nst_transfer::Error> {
    let set = &nst_transfer::provision::SAMPLES;
    let dir = cache.wheel_files(set, "sample images", log)?;
    Ok(set
        .files
        .iter()
        .map(|f| Sample {
            name: f.name.to_string(),
            role: if f.name == "coffee.png" { "style" } else { "content" },
            path: dir.join(f.name),
        })
        .collect())
}
