//! The page in a real headless Chromium, driven through ChromeDriver (Debian's `chromium` and
//! `chromium-driver`, which `scripts/setup.sh` installs): upload two images, start a small
//! job, see the preview change, download the result. Screenshots of the page while the job
//! runs and when it is done are left in the test's temporary folder (printed).

mod common;

use common::{Server, png};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// ChromeDriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn chromedriver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian: apt-get install chromium chromium-driver; scripts/setup.sh does)");
    Driver { child, port }
}

async fn browser(driver: &Driver, downloads: &Path, profile: &Path) -> Client {
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-quic", "--window-size=1400,1000", format!("--user-data-dir={}", profile.display())],
            "prefs": { "download.default_directory": downloads, "download.prompt_for_download": false },
        }
    });
    let capabilities = capabilities.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{}", driver.port);
    let start = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
            Ok(client) => return client,
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start Chromium through ChromeDriver: {e}"),
        }
    }
}

async fn attribute(client: &Client, css: &str, name: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.unwrap().attr(name).await.unwrap()
}

async fn screenshot(client: &Client, path: &Path) {
    std::fs::write(path, client.screenshot().await.unwrap()).unwrap();
    eprintln!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_stylizes_a_photo_in_the_browser() {
    let server = Server::start(nst_web::Options::default()).await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nst-web-browser");
    let (downloads, profile) = (dir.join("downloads"), tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap());
    let _ = std::fs::remove_dir_all(&downloads);
    std::fs::create_dir_all(&downloads).unwrap();
    let (photo, painting) = (dir.join("photo.png"), dir.join("painting.png"));
    std::fs::write(&photo, png(160, 120, false)).unwrap();
    std::fs::write(&painting, png(128, 128, true)).unwrap();

    let driver = chromedriver();
    let client = browser(&driver, &downloads, profile.path()).await;
    client.goto(&server.url("/")).await.unwrap();
    assert_eq!(client.title().await.unwrap(), "nst — style transfer");

    // Pick the two images, a small size and budget, and start.
    client.find(Locator::Css("#content-file")).await.unwrap().send_keys(&photo.display().to_string()).await.unwrap();
    client.find(Locator::Css("#style-files")).await.unwrap().send_keys(&painting.display().to_string()).await.unwrap();
    // A method brings its own budget, unless one was typed.
    let budget = || async { client.find(Locator::Css("#iterations")).await.unwrap().prop("value").await.unwrap() };
    let choose = |method: &'static str| {
        let client = &client;
        async move {
            client.find(Locator::Css(&format!("#method option[value={method}]"))).await.unwrap().click().await.unwrap();
        }
    };
    let type_in = |id: &'static str, value: &'static str| {
        let client = &client;
        async move {
            let input = client.find(Locator::Css(id)).await.unwrap();
            input.clear().await.unwrap();
            input.send_keys(value).await.unwrap();
        }
    };
    choose("swap").await;
    assert_eq!(budget().await.as_deref(), Some("100"));
    // Typed, even when it is the method's own default.
    type_in("#iterations", "100").await;
    choose("gatys").await;
    assert_eq!(budget().await.as_deref(), Some("100"), "a typed budget stays, even swap's default");
    type_in("#size", "96").await;
    type_in("#iterations", "60").await;
    choose("analogy").await;
    choose("gatys").await;
    assert_eq!(budget().await.as_deref(), Some("60"), "the typed budget stays");
    assert_eq!(client.find(Locator::Css("#content-label")).await.unwrap().text().await.unwrap(), "photo.png");
    assert_eq!(client.find_all(Locator::Css("#styles .style")).await.unwrap().len(), 1);
    client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();

    // The preview changes as the job runs, then the result and its downloads appear.
    let mut previews: Vec<String> = Vec::new();
    let start = Instant::now();
    let mut shot = false;
    loop {
        let src = attribute(&client, "#preview", "src").await.unwrap_or_default();
        if src.contains("preview.png") && previews.last() != Some(&src) {
            previews.push(src.clone());
            if !shot && previews.len() >= 2 {
                screenshot(&client, &dir.join("running.png")).await;
                shot = true;
            }
        }
        let shown = client.find(Locator::Css("#downloads")).await.unwrap().attr("class").await.unwrap();
        if shown.is_some_and(|c| !c.contains("hidden")) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "the job never finished; previews {previews:?}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(previews.len() >= 2, "the preview changed {} time(s): {previews:?}", previews.len());
    assert!(attribute(&client, "#preview", "src").await.unwrap().ends_with("/result.png"));
    assert_eq!(client.find(Locator::Css("#status")).await.unwrap().text().await.unwrap(), "Done");
    screenshot(&client, &dir.join("done.png")).await;

    client.find(Locator::Css("#download-png")).await.unwrap().click().await.unwrap();
    // Named after the two images and the time it was submitted: photo-painting-YYYYMMDD-HHMMSS.png.
    let downloaded = || {
        std::fs::read_dir(&downloads).unwrap().flatten().map(|e| e.path()).find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("photo-painting-") && name.ends_with(".png") && name.len() == "photo-painting-".len() + 19
        })
    };
    let start = Instant::now();
    while downloaded().is_none() && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let file = downloaded().expect("the result downloaded as photo-painting-<date>-<time>.png");
    let img = image::open(&file).expect("the downloaded result");
    assert_eq!((img.width(), img.height()), (96, 72));

    // The finished job is listed with its thumbnail.
    client.refresh().await.unwrap();
    let start = Instant::now();
    while client.find_all(Locator::Css("#jobs li img")).await.unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "no thumbnail in the job list");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.close().await.unwrap();
    drop(driver);
    server.stop().await;
}

/// A person splits two paintings by masks and keeps part of the photo, from the page's
/// mask controls; the result's kept square is the photo's pixels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_splits_two_paintings_with_masks_in_the_browser() {
    let server = Server::start(nst_web::Options::default()).await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nst-web-browser-masks");
    let (downloads, profile) = (dir.join("downloads"), tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap());
    std::fs::create_dir_all(&downloads).unwrap();
    let (w, h) = (96, 72);
    let kept = |x: u32, y: u32| (30..60).contains(&x) && (20..50).contains(&y);
    let grey = |name: &str, white: &dyn Fn(u32, u32) -> bool| {
        let p = dir.join(name);
        image::GrayImage::from_fn(w, h, |x, y| image::Luma([if white(x, y) { 255 } else { 0 }])).save(&p).unwrap();
        p.display().to_string()
    };
    let (left, right, keep) =
        (grey("left.png", &|x, _| x < w / 2), grey("right.png", &|x, _| x >= w / 2), grey("keep.png", &kept));
    let (photo, first, second) = (dir.join("photo.png"), dir.join("first.png"), dir.join("second.png"));
    std::fs::write(&photo, png(w, h, false)).unwrap();
    std::fs::write(&first, png(64, 64, true)).unwrap();
    std::fs::write(&second, png(64, 64, false)).unwrap();

    let driver = chromedriver();
    let client = browser(&driver, &downloads, profile.path()).await;
    client.goto(&server.url("/")).await.unwrap();
    let find = |css: &'static str| {
        let client = client.clone();
        async move { client.find(Locator::Css(css)).await.unwrap() }
    };
    find("#content-file").await.send_keys(&photo.display().to_string()).await.unwrap();
    for p in [&first, &second] {
        find("#style-files").await.send_keys(&p.display().to_string()).await.unwrap();
    }
    find("#masks summary").await.click().await.unwrap();
    // Each style's mask button, then the file.
    for (i, mask) in [&left, &right].into_iter().enumerate() {
        client.find_all(Locator::Css("#styles .style button.mask")).await.unwrap()[i].click().await.unwrap();
        find("#style-mask-file").await.send_keys(mask).await.unwrap();
    }
    find("#keep-file").await.send_keys(&keep).await.unwrap();
    for (id, value) in [("#size", "96"), ("#iterations", "20"), ("#feather", "2")] {
        let input = client.find(Locator::Css(id)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    let labels: Vec<String> = futures_util::future::join_all(
        client
            .find_all(Locator::Css("#styles .style button.mask, #keep-button"))
            .await
            .unwrap()
            .into_iter()
            .map(|b| async move { b.text().await.unwrap() }),
    )
    .await;
    assert_eq!(labels, ["left.png", "right.png", "keep.png"]);
    screenshot(&client, &dir.join("masks.png")).await;
    find("#start").await.click().await.unwrap();
    let start = Instant::now();
    loop {
        let shown = find("#downloads").await.attr("class").await.unwrap();
        if shown.is_some_and(|c| !c.contains("hidden")) {
            break;
        }
        let error = find("#error").await.text().await.unwrap();
        assert!(error.is_empty(), "the page says: {error}");
        assert!(start.elapsed() < Duration::from_secs(300), "the job never finished");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    screenshot(&client, &dir.join("masks-done.png")).await;
    let jobs: serde_json::Value = reqwest::get(server.url("/api/jobs")).await.unwrap().json().await.unwrap();
    let id = jobs[0]["id"].as_u64().expect("the job listed");
    let bytes = reqwest::get(server.url(&format!("/api/jobs/{id}/result.png"))).await.unwrap().bytes().await.unwrap();
    let result = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let original = image::load_from_memory(&png(w, h, false)).unwrap().to_rgb8();
    for (x, y, p) in result.enumerate_pixels() {
        if kept(x, y) {
            assert_eq!(p, original.get_pixel(x, y), "kept pixel ({x}, {y})");
        }
    }
    client.close().await.unwrap();
    drop(driver);
    server.stop().await;
}
