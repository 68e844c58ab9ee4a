//! The HTTP interface: the page, the sample images, and the jobs API.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/limits` | what an upload may be |
//! | `GET /api/samples`, `GET /api/samples/{name}` | the sample images (one-click examples) |
//! | `POST /api/jobs` | a new job (multipart form, see [`crate::upload::read`]) → `{"id": …}` |
//! | `GET /api/jobs`, `GET /api/jobs/{id}` | every job (newest first), one job |
//! | `GET /api/jobs/{id}/events` | server-sent events: the job, and its new loss values, as it changes |
//! | `POST /api/jobs/{id}/cancel` | stop a queued or running job |
//! | `GET /api/jobs/{id}/{preview.png,result.png,result.jpg,thumb.png,report.json}` | its files |

use crate::queue::{JobId, JobSpec, JobView, Queue, Status};
use crate::store::Store;
use crate::upload::{Limits, read};
use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Serialize;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// A sample image offered as an example, and its role in one.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// The file name.
    pub name: String,
    /// `content` or `style`.
    pub role: &'static str,
    /// Where it is (not shown to clients).
    #[serde(skip)]
    pub path: PathBuf,
}

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    /// Whether the server listens on loopback only: then it answers only to `localhost`
    /// names, so a page elsewhere cannot reach it by rebinding a domain to 127.0.0.1.
    pub local_only: bool,
    pub queue: Arc<dyn Queue>,
    pub store: Arc<Store>,
    pub limits: Limits,
    pub samples: Arc<Vec<Sample>>,
    /// Turns true when the server stops: event streams say so and end.
    pub stopping: watch::Receiver<bool>,
    /// Event streams open now: the server waits for them to say it stopped.
    pub streams: Arc<AtomicUsize>,
    /// Uploads being read or checked now: each holds a place in the line
    /// ([`Limits::waiting`]) until its job is queued or refused.
    pub admitting: Arc<AtomicUsize>,
    /// One upload's images are decoded to be checked at a time ([`read`]).
    pub checking: Arc<Semaphore>,
}

/// The page: HTML, CSS and JavaScript in one file, no network needed.
const PAGE: &str = include_str!("page.html");

/// The routes.
pub fn router(app: App) -> Router {
    let body = app.limits.body;
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/limits", get(|State(app): State<App>| async move { Json(app.limits) }))
        .route("/api/samples", get(samples))
        .route("/api/samples/{name}", get(sample))
        .route("/api/jobs", post(submit).layer(DefaultBodyLimit::max(body)).get(jobs))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/events", get(events))
        .route("/api/jobs/{id}/cancel", post(cancel))
        .route("/api/jobs/{id}/{file}", get(file))
        .fallback(|| async { Failure(StatusCode::NOT_FOUND, "no such page".into()) })
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Every error as `{"error": …}`: axum's own refusals (a job id that is not a number, a body
/// that is not a form, a method a path does not take) come as plain text or empty.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let reason = if text.is_empty() { status.canonical_reason().unwrap_or("refused").to_lowercase() } else { text };
    let mut json = Failure(status, reason).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        json.headers_mut().insert(header::ALLOW, allow.clone());
    }
    json
}

/// Refuses what another site's page could send: a request that changes something (not GET)
/// must come from this server's own page (`Origin` absent, or the same as `Host`); and on
/// loopback the `Host` must be a local name.
async fn guard(State(app): State<App>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if app.local_only && !local_name(host) {
        return Failure(StatusCode::FORBIDDEN, format!("this server answers on localhost only, not {host:?}"))
            .into_response();
    }
    let changes = !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    if changes
        && let Some(origin) = headers.get(header::ORIGIN)
        && origin.to_str().ok() != Some(format!("http://{host}").as_str())
    {
        return Failure(StatusCode::FORBIDDEN, "requests from another site's page are refused".into()).into_response();
    }
    next.run(request).await
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn local_name(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An error as the page shows it: a status and `{"error": "…"}`.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn not_found(what: &str) -> Failure {
    Failure(StatusCode::NOT_FOUND, format!("no such {what}"))
}

async fn samples(State(app): State<App>) -> Json<Vec<Sample>> {
    Json(app.samples.as_ref().clone())
}

async fn sample(State(app): State<App>, Path(name): Path<String>) -> Result<Response, Failure> {
    let sample = app.samples.iter().find(|s| s.name == name).ok_or_else(|| not_found("sample"))?;
    let bytes = tokio::fs::read(&sample.path).await.map_err(|_| not_found("sample"))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response())
}

async fn submit(State(app): State<App>, form: Result<Multipart, MultipartRejection>) -> Result<Response, Failure> {
    if *app.stopping.borrow() {
        return Err(Failure(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping".into()));
    }
    let form = form.map_err(|e| {
        Failure(e.status(), format!("send the job as a multipart/form-data form, as the page does ({e})"))
    })?;
    // A place in the line is taken before the upload is read: uploads read at the same time
    // count each other.
    let place = Place::take(&app.admitting);
    let queued = app.queue.jobs().iter().filter(|j| matches!(j.status, Status::Queued | Status::Running)).count();
    let waiting = queued + place.others();
    if waiting >= app.limits.waiting {
        return Err(Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the line is full (jobs queued, running or being sent: {waiting}, the most this server takes): try again when one ends"
            ),
        ));
    }
    let upload = read(form, &app.limits, &app.checking).await.map_err(|r| Failure(r.status, r.message))?;
    // The uploads are stored before the job is queued, so a worker always finds them.
    let id = tokio::task::spawn_blocking(move || -> std::io::Result<Option<JobId>> {
        let mut spec = upload.spec;
        spec.files = app.store.create()?;
        app.store.put(&spec.files, "content", &upload.content)?;
        for (i, bytes) in upload.styles.iter().enumerate() {
            app.store.put(&spec.files, &format!("style-{i}"), bytes)?;
        }
        for (name, bytes) in &upload.masks {
            app.store.put(&spec.files, name, bytes)?;
        }
        Ok(app.queue.submit(spec))
    })
    .await
    .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot store the upload: {e}")))?
    .ok_or_else(|| Failure(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping".into()))?;
    drop(place);
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response())
}

/// An upload's place in the line while it is read and checked, given back when dropped.
struct Place(Arc<AtomicUsize>);

impl Place {
    fn take(admitting: &Arc<AtomicUsize>) -> Self {
        admitting.fetch_add(1, Ordering::SeqCst);
        Place(admitting.clone())
    }

    /// The other uploads holding a place now.
    fn others(&self) -> usize {
        self.0.load(Ordering::SeqCst) - 1
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn jobs(State(app): State<App>) -> Json<Vec<JobView>> {
    Json(app.queue.jobs())
}

async fn job(State(app): State<App>, Path(id): Path<JobId>) -> Result<Json<JobView>, Failure> {
    app.queue.job(id).map(Json).ok_or_else(|| not_found("job"))
}

async fn cancel(State(app): State<App>, Path(id): Path<JobId>) -> Result<Json<serde_json::Value>, Failure> {
    app.queue.job(id).ok_or_else(|| not_found("job"))?;
    let cancelled = app.queue.cancel(id);
    // A job cancelled in line never runs: its uploads go now, and the finished jobs beyond
    // those kept go too (the worker only looks between jobs).
    let never_ran = app.queue.job(id).filter(|j| j.status == Status::Cancelled && !j.result && j.preview == 0);
    let (queue, store, kept) = (app.queue.clone(), app.store.clone(), app.limits.kept);
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(job) = never_ran {
            let _ = store.remove(&job.spec.files);
        }
        crate::worker::forget_finished(queue.as_ref(), &store, kept);
    })
    .await;
    Ok(Json(serde_json::json!({ "cancelled": cancelled })))
}

async fn file(State(app): State<App>, Path((id, name)): Path<(JobId, String)>) -> Result<Response, Failure> {
    let (kind, download) = match name.as_str() {
        "preview.png" | "thumb.png" => ("image/png", false),
        "result.png" => ("image/png", true),
        "result.jpg" => ("image/jpeg", true),
        "report.json" => ("application/json", true),
        _ => return Err(not_found("file")),
    };
    let job = app.queue.job(id).ok_or_else(|| not_found("job"))?;
    let download_as = download_disposition(&job.spec, job.submitted, &name);
    let files = job.spec.files;
    let store = app.store.clone();
    let bytes = tokio::task::spawn_blocking(move || store.get(&files, &name).map(|b| (b, name)))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .ok_or_else(|| not_found("file"))?;
    let (bytes, _) = bytes;
    let disposition = if download { download_as } else { "inline".to_string() };
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        bytes,
    )
        .into_response())
}

/// How a job's file `name` downloads: named after the photo's and the paintings' names and
/// the time the job was `submitted` (seconds since 1970, shown in UTC),
/// `chelsea-starry_night-20261207-153224.png`, its report `…-report.json`; unique across
/// the server's restarts, which start the page's numbers again. In letters and digits of
/// any script (`filename*`, RFC 6266), and of ASCII for clients that read only `filename`;
/// any run of other characters but `-` becomes `_`, each name is cut to 32 characters, and
/// a name with no letter or digit is `image`.
fn download_disposition(spec: &JobSpec, submitted: u64, name: &str) -> String {
    let ascii = download_name(spec, submitted, name, |c| c.is_ascii_alphanumeric());
    let any = download_name(spec, submitted, name, char::is_alphanumeric);
    let encoded = percent_encoding::utf8_percent_encode(&any, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// [`download_disposition`]'s name, with the characters `letter` keeps.
fn download_name(spec: &JobSpec, submitted: u64, name: &str, letter: fn(char) -> bool) -> String {
    let part = |shown: &str| -> String {
        let stem = shown.rsplit_once('.').map_or(shown, |(stem, _)| stem);
        if !stem.chars().any(letter) {
            return "image".into();
        }
        let mut kept = String::new();
        for c in stem.chars().map(|c| if letter(c) || c == '-' { c } else { '_' }) {
            if !(c == '_' && kept.ends_with('_')) {
                kept.push(c);
            }
        }
        kept.trim_matches('_').chars().take(32).collect()
    };
    let styles: Vec<String> = spec.styles.iter().map(|(shown, _)| part(shown)).collect();
    let when = time::OffsetDateTime::from_unix_timestamp(submitted as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        when.year(),
        u8::from(when.month()),
        when.day(),
        when.hour(),
        when.minute(),
        when.second()
    );
    let suffix = match name.rsplit_once('.') {
        Some(("result", extension)) => format!(".{extension}"),
        _ => format!("-{name}"),
    };
    format!("{}-{}-{stamp}{suffix}", part(&spec.content_name), styles.join("+"))
}

/// One open event stream, counted in [`App::streams`] while it lives.
struct Watching(Arc<AtomicUsize>);

impl Watching {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What an event carries: the job, and the loss values since the last event.
#[derive(Serialize)]
struct Update {
    job: JobView,
    losses: Vec<(usize, f32)>,
}

/// At most this many events a second per stream.
const EVENT_GAP: Duration = Duration::from_millis(200);

async fn events(
    State(app): State<App>,
    Path(id): Path<JobId>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Failure> {
    app.queue.job(id).ok_or_else(|| not_found("job"))?;
    let changes = app.queue.changes();
    let watching = Watching::new(&app.streams);
    let stream = futures_util::stream::unfold(
        (app, changes, 0usize, None::<String>, false, watching),
        move |(app, mut changes, cursor, last, done, watching)| async move {
            if done {
                return None;
            }
            let mut stopping = app.stopping.clone();
            if last.is_some() {
                // At most one event per gap, unless the server stops.
                tokio::select! {
                    _ = tokio::time::sleep(EVENT_GAP) => {}
                    _ = stopping.changed() => {}
                }
            }
            loop {
                if *app.stopping.borrow() {
                    let event = Event::default().event("stopped").data("the server stopped");
                    return Some((Ok(event), (app, changes, cursor, last, true, watching)));
                }
                let job = app.queue.job(id)?;
                let losses = app.queue.losses(id, cursor);
                // What the page shows of a job, to send an event only when it changed.
                let key = format!(
                    "{:?} {:?} {} {} {} {} {:?}",
                    job.status,
                    job.position,
                    job.progress.evaluation,
                    job.losses,
                    job.preview,
                    job.result,
                    job.progress.stage
                );
                if last.as_deref() != Some(key.as_str()) || !losses.is_empty() {
                    let done = job.status.is_final();
                    let next = cursor + losses.len();
                    let data = serde_json::to_string(&Update { job, losses }).unwrap_or_default();
                    let event = Event::default().event("job").data(data);
                    return Some((Ok(event), (app, changes, next, Some(key), done, watching)));
                }
                tokio::select! {
                    changed = changes.changed() => { if changed.is_err() { return None; } }
                    _ = stopping.changed() => {}
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::download_disposition;
    use crate::queue::JobSpec;

    /// The two names of a `Content-Disposition`: `filename`'s, and `filename*`'s decoded.
    fn names(disposition: &str) -> (String, String) {
        let rest = disposition.strip_prefix("attachment; filename=\"").unwrap();
        let (ascii, encoded) = rest.split_once("\"; filename*=UTF-8''").unwrap();
        (ascii.into(), percent_encoding::percent_decode_str(encoded).decode_utf8().unwrap().into_owned())
    }

    #[test]
    fn downloads_are_named_after_the_images_and_the_time_they_were_submitted() {
        let mut spec = JobSpec {
            files: "j1".into(),
            settings: Default::default(),
            content_name: "Chelsea the cat.png".into(),
            styles: vec![("starry_night.jpg".into(), 1.0)],
            masks: Default::default(),
            notes: vec![],
        };
        // 2026-12-07 15:32:24 UTC.
        let when = 1_796_657_544;
        let plain = "Chelsea_the_cat-starry_night-20261207-153224";
        for (file, suffix) in [("result.png", ".png"), ("result.jpg", ".jpg"), ("report.json", "-report.json")] {
            let name = format!("{plain}{suffix}");
            assert_eq!(names(&download_disposition(&spec, when, file)), (name.clone(), name));
        }
        // Quotes and controls do not reach the header; a name without a letter or digit is
        // "image"; a long one is cut to 32 characters; letters of other scripts are kept in
        // `filename*` alone.
        spec.content_name = "\"quoted\" café—1.png".into();
        spec.styles = vec![("---.jpg".into(), 1.0), (format!("{}.jpg", "m".repeat(50)), 2.0), ("夜.jpg".into(), 1.0)];
        let m = "m".repeat(32);
        assert_eq!(
            names(&download_disposition(&spec, 0, "result.png")),
            (
                format!("quoted_caf_1-image+{m}+image-19700101-000000.png"),
                format!("quoted_café_1-image+{m}+夜-19700101-000000.png")
            )
        );
    }
}
