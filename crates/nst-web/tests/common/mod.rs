//! What the web tests share: one engine (ONNX Runtime loads once a process), servers on
//! ephemeral ports, and small generated images.

use nst_transfer::{Cache, Device, Engine};
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            nst_transfer::prepare_process();
            let cache = Cache::locate().expect("a cache folder");
            Arc::new(
                Engine::open(&cache, Device::Cpu, nst_transfer::Precision::Fp32, &|m| eprintln!("{m}"))
                    .expect("the engine opens"),
            )
        })
        .clone()
}

/// A server on an ephemeral port; stops (and removes its files) when `stop` is called.
pub struct Server {
    pub address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(options: nst_web::Options) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(nst_web::serve(listener, engine(), options, async {
            let _ = stopped.await;
        }));
        Self { address, stop: Some(stop), task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A PNG of `w × h`: a lit disc on a gradient (a "photo") or diagonal strokes (a "painting").
pub fn png(w: u32, h: u32, painting: bool) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        if painting {
            [image::Rgb([230, 180, 30]), image::Rgb([20, 40, 160]), image::Rgb([240, 240, 220])]
                [((x + 2 * y) / 6 % 3) as usize]
        } else {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let d = ((fx - 0.5).powi(2) + (fy - 0.45).powi(2)).sqrt();
            let disc = if d < 0.25 { 1.0 - d * 2.0 } else { 0.2 };
            image::Rgb([(255.0 * disc) as u8, (200.0 * fy) as u8, (255.0 * (1.0 - fx) * 0.8) as u8])
        }
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
