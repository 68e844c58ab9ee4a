//! End-to-end tests of the `nst` binary with the real VGG16 weights at small sizes.

mod util;

use std::process::Command;
use util::{Dir, dims, error_of, nst};

#[test]
fn stylizes_a_photo_and_the_loss_falls_by_95_percent() {
    let d = Dir::new();
    let (c, s) = (d.content("photo.png", 160, 120), d.style("painting.png", 100, 140));
    let (out, report) = (d.path("out.png"), d.path("report.json"));
    let r = nst(&[&c, &s, &"-o", &out, &"--size", &"96", &"--iterations", &"100", &"--report", &report]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(dims(&out), (96, 72));
    let rep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let evals = rep["evaluations"].as_array().unwrap();
    assert_eq!(evals.len(), 100);
    let (first, last) = (rep["initial_loss"].as_f64().unwrap(), rep["final_loss"].as_f64().unwrap());
    assert!(last <= 0.05 * first, "loss {first} → {last}");
    assert!(evals[0]["terms"]["style_relu3_1"].as_f64().unwrap() > 0.0);
    assert_eq!(rep["settings"]["loss"]["style"]["relu1_1"].as_f64(), Some(100.0));
    assert!(rep["timings"]["ms_per_evaluation"].as_f64().unwrap() > 0.0);
}

#[test]
fn same_seed_gives_the_same_image_and_jpeg_output_works() {
    let d = Dir::new();
    let (c, s) = (d.content("photo.png", 64, 64), d.style("painting.png", 64, 64));
    let run = |name: &str| {
        let out = d.path(name);
        let r = nst(&[
            &c,
            &s,
            &"-o",
            &out,
            &"--size",
            &"48",
            &"--iterations",
            &"20",
            &"--init",
            &"random",
            &"--seed",
            &"3",
            &"-q",
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(r.stderr.is_empty(), "quiet prints nothing: {}", String::from_utf8_lossy(&r.stderr));
        image::open(out).unwrap().to_rgb8()
    };
    assert_eq!(run("a.png"), run("b.png"));
    let jpeg = run("c.jpg");
    assert_eq!(jpeg.dimensions(), (48, 48));
}

#[test]
fn several_styles_blend_and_intermediate_saves_appear() {
    let d = Dir::new();
    let c = d.content("photo.png", 80, 60);
    let (s1, s2) = (d.style("s1.png", 60, 60), d.content("s2.png", 40, 70));
    let out = d.path("blend.png");
    let r = nst(&[
        &c,
        &s1,
        &s2,
        &"-o",
        &out,
        &"--size",
        &"64",
        &"--iterations",
        &"12",
        &"--style-blend",
        &"0.7,0.3",
        &"--save-every",
        &"5",
        &"--style-scale",
        &"0.5",
        &"--preset",
        &"seed",
        &"--pool",
        &"avg",
        &"-q",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(dims(&out), (64, 48));
    assert!(d.path("blend_0005.png").exists() || d.path("blend_0006.png").exists());
}

#[test]
fn ctrl_c_stops_and_writes_the_best_image_so_far() {
    let d = Dir::new();
    let (c, s) = (d.content("photo.png", 96, 96), d.style("painting.png", 96, 96));
    let out = d.path("out.png");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nst"))
        .args([c.as_os_str(), s.as_os_str(), "-o".as_ref(), out.as_os_str(), "--size".as_ref(), "96".as_ref()])
        .args(["--iterations", "100000"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the optimizer runs, then interrupt.
    let start = std::time::Instant::now();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("evaluations on") && start.elapsed().as_secs() < 120 {
        let n = std::io::Read::read(&mut stderr, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(dims(&out), (96, 96));
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let d = Dir::new();
    let (c, s) = (d.content("photo.png", 64, 48), d.style("painting.png", 64, 64));
    let (out, xyz) = (d.path("out.png"), d.path("out.xyz"));
    let cases: Vec<(Vec<&dyn AsRef<std::ffi::OsStr>>, &str)> = vec![
        (vec![&"missing.png", &s, &"-o", &out], "cannot read missing.png"),
        (vec![&c, &s, &"-o", &"/nonexistent-dir/out.png"], "cannot write to /nonexistent-dir"),
        (vec![&c, &s, &"-o", &c], "refusing to overwrite the input"),
        (vec![&c, &s, &"-o", &xyz], "cannot tell the output format"),
        (vec![&c, &s, &"-o", &out, &"--style-layers", &"relu9_1"], "unknown layer \"relu9_1\""),
        (vec![&c, &s, &"-o", &out, &"--content-layers", &"relu4_2:-2"], "must be a finite number ≥ 0"),
        (vec![&c, &s, &"-o", &out, &"--style-weight=-1"], "--style-weight must be a finite number ≥ 0"),
        (vec![&c, &s, &"-o", &out, &"--content-weight", &"nan"], "--content-weight must be a finite number ≥ 0"),
        (vec![&c, &s, &"-o", &out, &"--tv-weight", &"inf"], "--tv-weight must be a finite number ≥ 0"),
        (vec![&c, &s, &"-o", &out, &"--style-blend", &"1,2"], "--style-blend has 2 weights for 1 style images"),
        (vec![&c, &s, &"-o", &out, &"--preset", &"picasso"], "unknown preset"),
        (vec![&c, &s, &"-o", &out, &"--init", &"nowhere.png"], "cannot read nowhere.png"),
    ];
    for (args, expected) in cases {
        let e = error_of(&nst(&args));
        assert!(e.starts_with("nst: error: ") && e.contains(expected), "{expected:?} not in {e:?}");
    }
    assert!(!out.exists(), "no output after a refused run");
    let e = error_of(&nst(&[&c, &s, &"-o", &out, &"--device", &"cuda"]));
    assert!(e.contains("CUDA is not available") && e.contains("--device cpu"), "{e}");
    let broken = std::process::Command::new(env!("CARGO_BIN_EXE_nst"))
        .args([c.as_os_str(), s.as_os_str(), "-o".as_ref(), out.as_os_str(), "--device".as_ref(), "cpu".as_ref()])
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    let e = error_of(&broken);
    assert!(e.contains("cannot load ONNX Runtime from /nonexistent/libonnxruntime.so"), "{e}");
    assert!(!out.exists());
}

#[test]
fn broken_images_give_one_line_errors() {
    let d = Dir::new();
    let s = d.style("painting.png", 64, 64);
    let out = d.path("out.png");
    let mut png = Vec::new();
    image::RgbImage::from_pixel(64, 64, image::Rgb([9, 9, 9]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    // A 100000 × 100000 header on a tiny file (a decompression bomb): the IHDR size and CRC patched.
    let mut bomb = png.clone();
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let cases = [
        (d.write("text.png", b"this is not an image"), "not an image format"),
        (d.write("truncated.png", &png[..png.len() / 2]), "corrupt or truncated"),
        (d.write("bomb.png", &bomb), "larger than the 100 megapixel limit"),
        (d.write("empty.png", b""), "not an image format"),
        (d.content("sliver.png", 200, 10), "too small"),
    ];
    for (path, expected) in cases {
        let e = error_of(&nst(&[&path, &s, &"-o", &out, &"--size", &"64"]));
        assert!(e.contains(expected), "{}: {expected:?} not in {e:?}", path.display());
    }
    assert!(!out.exists());
}

#[test]
fn unusual_but_valid_images_work() {
    let d = Dir::new();
    let s = d.style("painting.png", 48, 48);
    let gray = d.path("gray.png");
    image::GrayImage::from_fn(40, 30, |x, _| image::Luma([(x * 6) as u8])).save(&gray).unwrap();
    let rgba = d.path("rgba.png");
    image::RgbaImage::from_fn(40, 30, |x, y| image::Rgba([200, (y * 8) as u8, 50, (x * 6) as u8])).save(&rgba).unwrap();
    let deep = d.path("deep.png");
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(40, 30, |x, y| {
        image::Rgb([x as u16 * 1600, y as u16 * 2000, 30000])
    })
    .save(&deep)
    .unwrap();
    // A 40×30 JPEG whose EXIF says "rotate 90° clockwise": it must come out 30 wide, 40 tall.
    let rotated = d.path("rotated.jpg");
    {
        use image::ImageEncoder;
        let exif: Vec<u8> = [
            b"II*\0".as_slice(),
            &8u32.to_le_bytes(),
            &1u16.to_le_bytes(),
            &0x0112u16.to_le_bytes(),
            &3u16.to_le_bytes(),
            &1u32.to_le_bytes(),
            &6u16.to_le_bytes(),
            &[0, 0],
            &0u32.to_le_bytes(),
        ]
        .concat();
        let img = image::RgbImage::from_fn(40, 30, |x, _| image::Rgb([(x * 6) as u8, 100, 100]));
        let mut f = std::fs::File::create(&rotated).unwrap();
        let mut enc = image::codecs::jpeg::JpegEncoder::new(&mut f);
        enc.set_exif_metadata(exif).unwrap();
        enc.write_image(img.as_raw(), 40, 30, image::ExtendedColorType::Rgb8).unwrap();
    }
    let cmyk = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/cmyk.jpg"));
    for (input, expect) in
        [(&gray, (32, 24)), (&rgba, (32, 24)), (&deep, (32, 24)), (&rotated, (24, 32)), (&cmyk, (32, 24))]
    {
        let out = d.path("out.png");
        let r = nst(&[input, &s, &"-o", &out, &"--size", &"32", &"--iterations", &"2", &"-q", &"--preset", &"seed"]);
        assert!(r.status.success(), "{}: {}", input.display(), String::from_utf8_lossy(&r.stderr));
        assert_eq!(dims(&out), expect, "{}", input.display());
    }
    // One evaluation leaves the content image: the CMYK file's orange-to-navy gradient, not its inverse.
    let out = d.path("cmyk.png");
    let r = nst(&[&cmyk, &s, &"-o", &out, &"--size", &"32", &"--iterations", &"1", &"-q", &"--preset", &"seed"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let img = image::open(&out).unwrap().to_rgb8();
    let (top, bottom) = (img.get_pixel(16, 0).0, img.get_pixel(16, 23).0);
    assert!(top[0] > 200 && top[2] < 80, "orange at the top, got {top:?}");
    assert!(bottom[2] > 60 && bottom[0] < 60, "navy at the bottom, got {bottom:?}");
}

#[test]
fn first_use_without_pip_says_how_to_fix_it() {
    let d = Dir::new();
    let (c, s) = (d.content("photo.png", 64, 48), d.style("painting.png", 64, 64));
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_nst"))
        .args([c.as_os_str(), s.as_os_str(), "-o".as_ref(), d.path("out.png").as_os_str()])
        .env("NST_CACHE_DIR", d.path("empty-cache"))
        .env("NST_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    let e = error_of(&r);
    assert!(
        e.contains("`/nonexistent/python3 -m pip` is not available") && e.contains("apt-get install python3-pip"),
        "{e}"
    );
}

#[test]
fn style_swap_reconstructs_in_few_evaluations() {
    let d = Dir::new();
    let (c, s) = (d.content("photo.png", 96, 72), d.style("painting.png", 80, 80));
    let (out, report) = (d.path("swap.png"), d.path("swap.json"));
    let r = nst(&[
        &c,
        &s,
        &"-o",
        &out,
        &"--size",
        &"96",
        &"--method",
        &"swap",
        &"--swaps",
        &"2",
        &"--iterations",
        &"30",
        &"--report",
        &report,
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(dims(&out), (96, 72));
    let rep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(rep["evaluations"].as_array().unwrap().len(), 30);
    let (first, last) = (rep["initial_loss"].as_f64().unwrap(), rep["final_loss"].as_f64().unwrap());
    assert!(last < 0.5 * first, "the last round's reconstruction loss {first} → {last}");
    assert!(rep["evaluations"][0]["terms"]["content_relu3_1"].as_f64().unwrap() > 0.0);
    for (args, expected) in [
        (vec!["--patch-size", "3", "--patch-stride", "4"], "--patch-stride 4 is larger than --patch-size 3"),
        (vec!["--swap-layer", "relu9_9"], "unknown layer \"relu9_9\""),
        (vec!["--swaps", "5", "--iterations", "3"], "less than one evaluation per swap"),
    ] {
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&c, &s, &"-o", &out, &"--method", &"swap"];
        all.extend(args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        let e = error_of(&nst(&all));
        assert!(e.contains(expected), "{expected:?} not in {e:?}");
    }
}

/// BT.601 (Y, Cb, Cr) of an 8-bit pixel, in 0–255 units.
fn ycbcr(p: [u8; 3]) -> [f64; 3] {
    let [r, g, b] = p.map(f64::from);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    [y, (b - y) / 1.772, (r - y) / 1.402]
}

#[test]
fn original_colors_keep_the_content_chroma_and_color_transfer_runs() {
    let d = Dir::new();
    let (c, s) = (d.content("photo.png", 64, 48), d.style("painting.png", 64, 64));
    let out = d.path("kept.png");
    let r = nst(&[&c, &s, &"-o", &out, &"--size", &"64", &"--iterations", &"30", &"--original-colors", &"-q"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (o, p) = (image::open(&out).unwrap().to_rgb8(), image::open(&c).unwrap().to_rgb8());
    let (mut chroma, mut luma) = (0.0, 0.0);
    for (a, b) in o.pixels().zip(p.pixels()) {
        let (a, b) = (ycbcr(a.0), ycbcr(b.0));
        chroma += (a[1] - b[1]).abs() + (a[2] - b[2]).abs();
        luma += (a[0] - b[0]).abs();
    }
    let n = f64::from(o.width() * o.height());
    assert!(chroma / n < 1.0, "mean chroma difference {} (0–255 units)", chroma / n);
    assert!(luma / n > 5.0, "the luminance must change, mean |ΔY| {}", luma / n);
    let r = nst(&[
        &c,
        &s,
        &"-o",
        &d.path("matched.png"),
        &"--size",
        &"64",
        &"--iterations",
        &"5",
        &"--color-transfer",
        &"-q",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn coarse_to_fine_stages_end_at_the_requested_size() {
    let d = Dir::new();
    let (c, s) = (d.content("photo.png", 120, 90), d.style("painting.png", 80, 80));
    let (out, report) = (d.path("ms.png"), d.path("ms.json"));
    let r = nst(&[
        &c,
        &s,
        &"-o",
        &out,
        &"--size",
        &"96",
        &"--multiscale-start",
        &"48",
        &"--iterations",
        &"20",
        &"--report",
        &report,
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("10 at 48 px, 10 at 96 px"));
    assert_eq!(dims(&out), (96, 72));
    let rep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(rep["evaluations"].as_array().unwrap().len(), 20);
    assert_eq!(rep["settings"]["stages"], serde_json::json!([[48, 10], [96, 10]]));
    let single = nst(&[
        &c,
        &s,
        &"-o",
        &out,
        &"--size",
        &"96",
        &"--multiscale-start",
        &"48",
        &"--iterations",
        &"4",
        &"--no-multiscale",
    ]);
    assert!(String::from_utf8_lossy(&single.stderr).contains("(4 at 96 px)"));
}

#[test]
fn tiles_give_the_same_loss_and_the_memory_budget_is_kept() {
    let d = Dir::new();
    let (c, s) = (d.content("photo.png", 120, 90), d.style("painting.png", 80, 80));
    let out = d.path("out.png");
    let run = |name: &str, extra: &[&dyn AsRef<std::ffi::OsStr>]| -> (serde_json::Value, String) {
        let report = d.path(&format!("{name}.json"));
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&c, &s, &"-o", &out, &"--size", &"96", &"--iterations", &"3", &"--report", &report];
        args.extend_from_slice(extra);
        let r = nst(&args);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let rep = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        (rep, String::from_utf8_lossy(&r.stderr).into_owned())
    };
    let (whole, _) = run("whole", &[&"--no-multiscale"]);
    let (tiled, log) = run("tiled", &[&"--no-multiscale", &"--tile", &"32"]);
    assert!(log.contains("9 tiles of 32 px"), "{log}");
    assert_eq!(whole["stages"][0]["tile"], serde_json::Value::Null);
    assert_eq!((tiled["stages"][0]["tile"].as_u64(), tiled["stages"][0]["tiles"].as_u64()), (Some(32), Some(9)));
    let (a, b) = (whole["initial_loss"].as_f64().unwrap(), tiled["initial_loss"].as_f64().unwrap());
    assert!(((a - b) / a).abs() < 1e-4, "initial loss {b} tiled vs {a}");
    assert_eq!(tiled["evaluations"].as_array().unwrap().len(), 3);

    let (staged, _) = run("staged", &[&"--multiscale-start", &"48", &"--stage-iterations", &"3,2"]);
    assert_eq!(staged["settings"]["stages"], serde_json::json!([[48, 3], [96, 2]]));
    assert_eq!(staged["evaluations"].as_array().unwrap().len(), 5);
    assert_eq!(staged["stages"][1]["evaluations"].as_u64(), Some(2));
    let _ = std::fs::remove_file(&out);

    let cases: Vec<(Vec<&dyn AsRef<std::ffi::OsStr>>, &str)> = vec![
        (vec![&c, &s, &"-o", &out, &"--size", &"16384", &"--max-memory", &"2"], "a 16384×12288 output needs about "),
        (vec![&c, &s, &"-o", &out, &"--max-memory", &"0"], "--max-memory must be a number of GB > 0"),
        (
            vec![&c, &s, &"-o", &out, &"--size", &"96", &"--multiscale-start", &"48", &"--stage-iterations", &"1,2,3"],
            "--stage-iterations has 3 numbers for 2 stages (48, 96 px)",
        ),
        (
            vec![&c, &s, &"-o", &out, &"--stage-iterations", &"0,5"],
            "--stage-iterations: \"0\" is not a whole number > 0",
        ),
    ];
    for (args, expected) in cases {
        let e = error_of(&nst(&args));
        assert!(e.contains(expected), "{expected:?} not in {e:?}");
    }
    let e = error_of(&nst(&[&c, &s, &"-o", &out, &"--size", &"16384", &"--max-memory", &"2"]));
    assert!(
        e.ends_with("more than the 2.0 GB allowed (raise --max-memory if the machine has it, or lower --size)"),
        "{e}"
    );
    assert!(!out.exists(), "no output after a refused run");
}
