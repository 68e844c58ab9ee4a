//! Every endpoint of `nst serve` over HTTP, against servers on ephemeral ports with the real
//! engine and weights, at small sizes.

mod common;

use common::{Server, png};
use futures_util::StreamExt;
use nst_web::{JobView, Limits, Options, Status};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

/// A job form: a 64×48 photo and a painting, with extra fields.
fn form(fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new()
        .part("content", Part::bytes(png(64, 48, false)).file_name("photo.png"))
        .part("style", Part::bytes(png(64, 64, true)).file_name("painting.png"));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form
}

async fn submit(server: &Server, form: Form) -> reqwest::Response {
    reqwest::Client::new().post(server.url("/api/jobs")).multipart(form).send().await.unwrap()
}

async fn submitted(server: &Server, fields: &[(&str, &str)]) -> u64 {
    let r = submit(server, form(fields)).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
}

async fn job(server: &Server, id: u64) -> JobView {
    reqwest::get(server.url(&format!("/api/jobs/{id}"))).await.unwrap().json().await.unwrap()
}

/// Reads a job's event stream to its end: every update's job and loss values.
async fn events(server: &Server, id: u64) -> Vec<(JobView, Vec<(usize, f32)>)> {
    let r = reqwest::get(server.url(&format!("/api/jobs/{id}/events"))).await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut stream = r.bytes_stream();
    let (mut text, mut updates) = (String::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if !block.contains("event: job") {
                continue;
            }
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                let v: Value = serde_json::from_str(data).unwrap();
                updates.push((
                    serde_json::from_value(v["job"].clone()).unwrap(),
                    serde_json::from_value(v["losses"].clone()).unwrap(),
                ));
            }
        }
    }
    updates
}

async fn until(server: &Server, id: u64, done: impl Fn(&JobView) -> bool) -> JobView {
    for _ in 0..600 {
        let j = job(server, id).await;
        if done(&j) {
            return j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("job {id} never got there: {:?}", job(server, id).await.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_streams_its_progress_and_gives_its_files() {
    let server = Server::start(Options::default()).await;
    let page = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<title>nst — style transfer</title>"));
    assert_eq!(
        reqwest::get(server.url("/api/samples")).await.unwrap().json::<Value>().await.unwrap(),
        Value::Array(vec![])
    );
    let limits: Value = reqwest::get(server.url("/api/limits")).await.unwrap().json().await.unwrap();
    assert_eq!((limits["size"].as_u64(), limits["styles"].as_u64()), (Some(2048), Some(4)));

    let id = submitted(&server, &[("size", "48"), ("iterations", "12"), ("style_weight", "50")]).await;
    // Two clients watch the same job; each sees it through to the end.
    let (a, b) = tokio::join!(events(&server, id), events(&server, id));
    for updates in [&a, &b] {
        let (last, _) = updates.last().unwrap();
        assert_eq!((last.status, last.result), (Status::Done, true));
        let losses: Vec<(usize, f32)> = updates.iter().flat_map(|(_, l)| l.clone()).collect();
        assert_eq!(
            losses.iter().map(|l| l.0).collect::<Vec<_>>(),
            (1..=12).collect::<Vec<_>>(),
            "every loss once, in order"
        );
        let evals: Vec<usize> = updates.iter().map(|(j, _)| j.progress.evaluation).collect();
        assert!(evals.windows(2).all(|w| w[0] <= w[1]), "progress never goes back: {evals:?}");
    }
    let done = job(&server, id).await;
    assert_eq!(done.spec.settings.loss.style["relu1_1"], 50.0);
    assert!(done.progress.loss > 0.0 && done.progress.stage.is_some());

    let get = |name: &str| reqwest::get(server.url(&format!("/api/jobs/{id}/{name}")));
    let result = get("result.png").await.unwrap();
    // Named after the images and the time the job was submitted (the unit test checks the time).
    let disposition = result.headers()["content-disposition"].to_str().unwrap().to_string();
    let name = disposition.strip_prefix("attachment; filename=\"photo-painting-").unwrap();
    let (stamp, _) = name.split_once(".png\"; filename*=UTF-8''photo").unwrap();
    assert!(stamp.len() == 15 && stamp.chars().all(|c| c.is_ascii_digit() || c == '-'), "{disposition}");
    let img = image::load_from_memory(&result.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (48, 36));
    let jpg = get("result.jpg").await.unwrap().bytes().await.unwrap();
    assert_eq!(image::guess_format(&jpg).unwrap(), image::ImageFormat::Jpeg);
    let thumb = image::load_from_memory(&get("thumb.png").await.unwrap().bytes().await.unwrap()).unwrap();
    assert!(thumb.width() <= 48 && thumb.height() <= 36, "a thumbnail no larger than the result");
    let report: Value = get("report.json").await.unwrap().json().await.unwrap();
    assert_eq!(report["report"]["evaluations"].as_array().unwrap().len(), 12);
    assert_eq!(report["content"], "photo.png");
    assert_eq!(get("../../etc/passwd").await.unwrap().status(), 404);
    assert_eq!(get("nothing.png").await.unwrap().status(), 404);
    assert_eq!(reqwest::get(server.url("/api/jobs/999")).await.unwrap().status(), 404);
    assert_eq!(reqwest::get(server.url("/api/jobs/999/events")).await.unwrap().status(), 404);
    server.stop().await;
}

/// A greyscale PNG of `w × h`, white where `white(x, y)`.
fn grey(w: u32, h: u32, white: impl Fn(u32, u32) -> bool) -> Vec<u8> {
    let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([if white(x, y) { 255 } else { 0 }]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// The left half of the 64×48 photo.
fn mask_part() -> Part {
    Part::bytes(grey(64, 48, |x, _| x < 32)).file_name("left.png")
}

/// Two styles split by their masks and a kept square: the job runs, and the square is the
/// photo's pixels in the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masks_split_the_styles_and_keep_the_photo() {
    let server = Server::start(Options::default()).await;
    let kept = |x: u32, y: u32| (20..40).contains(&x) && (10..30).contains(&y);
    let form = form(&[("size", "64"), ("iterations", "10"), ("mask_mode", "inside"), ("feather", "2")])
        .part("style", Part::bytes(png(48, 48, false)).file_name("second.png"))
        .part("style_mask", mask_part())
        .part("style_mask", Part::bytes(grey(64, 48, |x, _| x >= 32)).file_name("right.png"))
        .part("keep", Part::bytes(grey(64, 48, kept)).file_name("square.png"));
    let r = submit(&server, form).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let done = until(&server, id, |j| j.status != Status::Queued && j.status != Status::Running).await;
    assert_eq!(done.status, Status::Done, "{:?}", done.error);
    assert_eq!(done.spec.masks.styles, ["left.png", "right.png"]);
    assert_eq!((done.spec.masks.keep.as_deref(), done.spec.masks.feather), (Some("square.png"), 2));
    let bytes = reqwest::get(server.url(&format!("/api/jobs/{id}/result.png"))).await.unwrap().bytes().await.unwrap();
    let result = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let photo = image::load_from_memory(&png(64, 48, false)).unwrap().to_rgb8();
    for (x, y, p) in result.enumerate_pixels() {
        if kept(x, y) {
            assert_eq!(p, photo.get_pixel(x, y), "kept pixel ({x}, {y})");
        }
    }
    server.stop().await;
}

/// A photo with a Display P3 profile is converted, and its job says so; an untagged one's says
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pictures_colour_profile_is_noted_on_its_job() {
    use image::ImageEncoder;
    let server = Server::start(Options::default()).await;
    let photo = image::load_from_memory(&png(64, 48, false)).unwrap().to_rgb8();
    let mut p3 = std::io::Cursor::new(Vec::new());
    let mut encoder = image::codecs::png::PngEncoder::new(&mut p3);
    encoder.set_icc_profile(moxcms::ColorProfile::new_display_p3().encode().unwrap()).unwrap();
    encoder.write_image(photo.as_raw(), 64, 48, image::ExtendedColorType::Rgb8).unwrap();
    let tagged = Form::new()
        .part("content", Part::bytes(p3.into_inner()).file_name("phone.png"))
        .part("style", Part::bytes(png(64, 64, true)).file_name("painting.png"))
        .text("size", "32")
        .text("iterations", "1");
    let r = submit(&server, tagged).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    assert_eq!(
        job(&server, id).await.spec.notes,
        ["phone.png: colours converted to sRGB from its profile (Display P3)"]
    );
    let plain = submitted(&server, &[("size", "32"), ("iterations", "1")]).await;
    assert!(job(&server, plain).await.spec.notes.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_wait_in_line_and_can_be_cancelled() {
    let server = Server::start(Options::default()).await;
    let long = submitted(&server, &[("size", "64"), ("iterations", "2000")]).await;
    let (second, third) = (
        submitted(&server, &[("size", "48"), ("iterations", "3")]).await,
        submitted(&server, &[("size", "48"), ("iterations", "3"), ("method", "swap")]).await,
    );
    until(&server, long, |j| j.status == Status::Running && j.progress.evaluation > 0).await;
    assert_eq!([job(&server, second).await.position, job(&server, third).await.position], [Some(1), Some(2)]);
    let list: Vec<JobView> = reqwest::get(server.url("/api/jobs")).await.unwrap().json().await.unwrap();
    assert_eq!(list.iter().map(|j| j.id).collect::<Vec<_>>(), vec![third, second, long], "newest first");

    // Cancelling a queued job takes it out of the line; a running one stops with its best image.
    let cancel = |id: u64| reqwest::Client::new().post(server.url(&format!("/api/jobs/{id}/cancel"))).send();
    assert_eq!(cancel(second).await.unwrap().json::<Value>().await.unwrap()["cancelled"], true);
    assert_eq!(job(&server, second).await.status, Status::Cancelled);
    assert_eq!(job(&server, third).await.position, Some(1));
    cancel(long).await.unwrap();
    let long_job = until(&server, long, |j| j.status.is_final()).await;
    assert_eq!((long_job.status, long_job.result), (Status::Cancelled, true));
    assert!(long_job.progress.evaluation < 2000);
    let third_job = until(&server, third, |j| j.status.is_final()).await;
    assert_eq!(third_job.status, Status::Done, "{:?}", third_job.error);
    assert_eq!(cancel(third).await.unwrap().json::<Value>().await.unwrap()["cancelled"], false);
    // Stopping the server cancels a running job and waits for it (it stops at once, with
    // its best image), and tells the pages watching it.
    let last = submitted(&server, &[("size", "64"), ("iterations", "2000")]).await;
    until(&server, last, |j| j.progress.evaluation > 0).await;
    let watching = reqwest::get(server.url(&format!("/api/jobs/{last}/events"))).await.unwrap();
    let stream = tokio::spawn(async move { watching.text().await.unwrap() });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tokio::time::timeout(std::time::Duration::from_secs(60), server.stop()).await.expect("the server stops promptly");
    let seen = stream.await.unwrap();
    assert!(seen.contains("event: stopped\ndata: the server stopped"), "{seen}");
}

/// Past the jobs a server takes at once, a job is refused in words until one ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_line_refuses_new_jobs_until_one_ends() {
    let server = Server::start(Options { limits: Limits { waiting: 1, ..Limits::default() }, samples: vec![] }).await;
    let long = submitted(&server, &[("size", "64"), ("iterations", "2000")]).await;
    let refused = submit(&server, form(&[("size", "48"), ("iterations", "3")])).await;
    assert_eq!(refused.status(), 503);
    let message = refused.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
    assert!(
        message.contains("the line is full (jobs queued, running or being sent: 1, the most this server takes)"),
        "{message}"
    );
    reqwest::Client::new().post(server.url(&format!("/api/jobs/{long}/cancel"))).send().await.unwrap();
    until(&server, long, |j| j.status.is_final()).await;
    submitted(&server, &[("size", "48"), ("iterations", "3")]).await;
    server.stop().await;
}

/// Past the finished jobs a server keeps, the oldest is forgotten with its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_beyond_those_kept_are_forgotten() {
    let server = Server::start(Options { limits: Limits { kept: 1, ..Limits::default() }, samples: vec![] }).await;
    let first = submitted(&server, &[("size", "48"), ("iterations", "3")]).await;
    until(&server, first, |j| j.status == Status::Done).await;
    let result = |id: u64| reqwest::get(server.url(&format!("/api/jobs/{id}/result.png")));
    assert_eq!(result(first).await.unwrap().status(), 200);
    let second = submitted(&server, &[("size", "48"), ("iterations", "3")]).await;
    until(&server, second, |j| j.status == Status::Done).await;
    let listed = || async {
        let jobs: Vec<JobView> = reqwest::get(server.url("/api/jobs")).await.unwrap().json().await.unwrap();
        jobs.iter().map(|j| j.id).collect::<Vec<_>>()
    };
    // The worker forgets as soon as the job it ran has ended, just after it says so.
    for _ in 0..50 {
        if listed().await == [second] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(listed().await, [second]);
    assert_eq!(result(first).await.unwrap().status(), 404);
    assert_eq!(result(second).await.unwrap().status(), 200);
    assert_eq!(job(&server, second).await.number, 2, "numbers go on from the forgotten job's");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_in_words() {
    let limits = Limits { body: 1 << 20, file: 200_000, ..Limits::default() };
    let server = Server::start(Options { limits, samples: vec![] }).await;
    let error = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string())
    };
    // A tiny PNG whose header claims 100000 × 100000 pixels: refused before it is decoded.
    let mut bomb = png(8, 8, false);
    bomb[16..24].copy_from_slice(&[0, 1, 134, 160, 0, 1, 134, 160]);
    let crc = {
        let mut c = 0xffff_ffffu32;
        for &b in &bomb[12..29] {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    };
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let style = || Part::bytes(png(64, 64, true)).file_name("painting.png");
    let cases: Vec<(Form, u16, &str)> = vec![
        (
            Form::new()
                .part("content", Part::bytes(b"not an image".to_vec()).file_name("notes.png"))
                .part("style", style()),
            400,
            "notes.png: not an image format",
        ),
        (
            Form::new().part("content", Part::bytes(bomb).file_name("bomb.png")).part("style", style()),
            400,
            "bomb.png: 100000×100000 is larger than the 40 megapixel limit",
        ),
        (
            Form::new().part("content", Part::bytes(vec![0; 300_000]).file_name("big.png")).part("style", style()),
            413,
            "big.png is larger than 196 KiB",
        ),
        (Form::new().part("style", style()), 400, "choose a content photo"),
        (
            Form::new().part("content", Part::bytes(png(64, 48, false)).file_name("p.png")),
            400,
            "choose at least one style image",
        ),
        (form(&[("size", "99999")]), 400, "the size must be a whole number from 16 to 2048 px"),
        (form(&[("size", "16")]), 400, "too small for the chosen layers"),
        (form(&[("method", "picasso")]), 400, "unknown method \"picasso\""),
        (
            form(&[("method", "analogy"), ("iterations", "4")]),
            400,
            "must be at least one per feature deconvolution (8), got 4",
        ),
        (form(&[("method", "analogy")]).part("style", style()), 400, "analogy takes one style image, got 2"),
        (form(&[("iterations", "abc")]), 400, "the evaluations: \"abc\" is not a number"),
        (form(&[("style_weight", "-1")]), 400, "the style weight must be a finite number ≥ 0"),
        (form(&[("weight", "0")]), 400, "the style weights must not all be 0"),
        (form(&[("style_weight", "0")]), 400, "the style weight must be more than 0"),
        (form(&[("weight", "1"), ("weight", "2")]), 400, "2 weights for 1 style image"),
        (form(&[("size", "64"), ("size", "128")]), 400, "the form gives \"size\" twice"),
        (form(&[]).part("content", style()), 400, "the form gives \"content\" twice"),
        (
            form(&[("weight", "1e39")]),
            400,
            "a style weight must be a finite number ≥ 0 (at most 3.4e38, float32's largest), got 1e39",
        ),
        (
            form(&[]).part("keep", Part::bytes(grey(48, 48, |_, _| true)).file_name("square.png")),
            400,
            "the keep mask: the mask is 48×48 but its image is 64×48",
        ),
        (
            form(&[]).part("style_mask", mask_part()).part("style", style()),
            400,
            "the style masks: 1 mask for 2 style images",
        ),
        (form(&[("mask_mode", "hard")]), 400, "unknown mask mode \"hard\" (soft or inside)"),
        (form(&[("feather", "-2")]), 400, "the feather must be a whole number of pixels from 0 to 256"),
        (form(&[("feather", "3")]), 400, "blends kept regions: give a keep mask"),
        // A misspelt field would leave its setting at the default without a word.
        (form(&[("evaluations", "20")]), 400, "the form has no field \"evaluations\" (it takes content, style,"),
        (form(&[("original_colors", "maybe")]), 400, "original_colors is on or off"),
        // A value is quoted in part: an error does not echo a long one back.
        (form(&[("size", &"a".repeat(5000))]), 400, "the size: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"… is not"),
    ];
    for (form, status, expected) in cases {
        let (got, message) = error(submit(&server, form).await).await;
        assert!(got == status && message.contains(expected), "{status} {expected:?}: got {got} {message:?}");
        assert!(message.len() < 300, "{message}");
    }
    // A body beyond the limit is cut off while it is read.
    // A body beyond the limit is cut off while it is read: a 413, or the connection closed.
    let huge = Form::new().part("content", Part::bytes(vec![7; 2 << 20]).file_name("huge.png"));
    let r = reqwest::Client::new().post(server.url("/api/jobs")).multipart(huge).send().await;
    assert!(r.as_ref().map_or(true, |r| r.status() == 413), "{r:?}");
    // Another site's page may not submit or cancel, nor reach the server by a rebound name.
    let from_elsewhere = reqwest::Client::new()
        .post(server.url("/api/jobs"))
        .header("origin", "http://evil.example")
        .multipart(form(&[]))
        .send()
        .await
        .unwrap();
    let (status, message) = error(from_elsewhere).await;
    assert_eq!((status, message.as_str()), (403, "requests from another site's page are refused"));
    let rebound =
        reqwest::Client::new().get(server.url("/api/jobs")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(rebound.status(), 403);
    let same_site = format!("http://{}", server.address);
    let ok = reqwest::Client::new().get(server.url("/api/jobs")).header("origin", same_site).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // axum's own refusals are JSON too: an id that is not a number, a body that is not a
    // form, a method a path does not take, a path that is not there.
    let client = reqwest::Client::new();
    let refusals = [
        (client.get(server.url("/api/jobs/abc")), 400, "Cannot parse `abc`"),
        (client.post(server.url("/api/jobs")).body("a=b"), 400, "multipart"),
        (client.delete(server.url("/api/jobs/1")), 405, "method not allowed"),
        (client.get(server.url("/favicon.ico")), 404, "no such page"),
    ];
    for (request, status, expected) in refusals {
        let (got, message) = error(request.send().await.unwrap()).await;
        assert!(got == status && message.contains(expected), "{status} {expected:?}: got {got} {message:?}");
    }
    let list: Vec<JobView> = reqwest::get(server.url("/api/jobs")).await.unwrap().json().await.unwrap();
    assert!(list.is_empty(), "a refused upload made a job");
    server.stop().await;
}

/// Opens an upload of `length` bytes that sends its headers and the start of the form, then
/// nothing: a client that stalled.
async fn stalled_upload(server: &Server) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(server.address).await.unwrap();
    let head = format!(
        "POST /api/jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary=XX\r\n\
         Content-Length: 100000\r\n\r\n--XX\r\nContent-Disposition: form-data; name=\"content\"; \
         filename=\"a.png\"\r\n\r\nabc",
        server.address
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
}

/// Uploads being sent hold their places in the line: sent at once, they cannot get past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_being_sent_hold_their_places_in_line() {
    let server = Server::start(Options { limits: Limits { waiting: 2, ..Limits::default() }, samples: vec![] }).await;
    let sending = [stalled_upload(&server).await, stalled_upload(&server).await];
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let refused = submit(&server, form(&[("size", "48"), ("iterations", "3")])).await;
    assert_eq!(refused.status(), 503);
    let message = refused.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
    assert!(message.contains("being sent: 2"), "{message}");
    // Closed, they give their places back.
    drop(sending);
    let mut accepted = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = submit(&server, form(&[("size", "48"), ("iterations", "3")])).await;
        if r.status() == 201 {
            accepted = true;
            break;
        }
    }
    assert!(accepted, "the places of closed uploads were not given back");
    server.stop().await;
}

/// The answer to an upload on `socket`, within 30 s.
async fn answer(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), socket.read(&mut answer)).await;
    let n = read.expect("an answer within 30 s").unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// An upload that stops sending is refused once it has sent nothing for the idle time; one
/// that trickles, once it has taken the longest an upload may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_trickling_upload_is_refused() {
    use futures_util::FutureExt;
    use tokio::io::AsyncWriteExt;
    let limits = Limits { idle_s: 1, upload_s: 3, ..Limits::default() };
    let server = Server::start(Options { limits, samples: vec![] }).await;
    let mut socket = stalled_upload(&server).await;
    let stalled = answer(&mut socket).await;
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    assert!(stalled.contains("the upload stalled: nothing came for 1 s"), "{stalled}");
    let mut socket = stalled_upload(&server).await;
    let trickle = tokio::spawn(async move {
        // A byte every 0.3 s, within the idle time, until the server answers.
        while socket.write_all(b"x").await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            if socket.peek(&mut [0]).now_or_never().is_some() {
                break;
            }
        }
        socket
    });
    let mut socket = trickle.await.unwrap();
    let slow = answer(&mut socket).await;
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    assert!(slow.contains("the upload took longer than 3 s"), "{slow}");
    server.stop().await;
}

/// A refusal that comes before the whole form was read (a field given twice) reaches a
/// client that is still sending the rest: the server reads it to the end first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_reaches_a_client_still_sending() {
    let server = Server::start(Options { limits: Limits::default(), samples: vec![] }).await;
    for _ in 0..3 {
        let big = Part::bytes(vec![7; 8 << 20]).file_name("big.png");
        let twice =
            form(&[]).part("content", Part::bytes(png(64, 48, false)).file_name("again.png")).part("style", big);
        let r = submit(&server, twice).await;
        assert_eq!(r.status(), 400);
        let message = r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
        assert_eq!(message, "the form gives \"content\" twice");
    }
    server.stop().await;
}
