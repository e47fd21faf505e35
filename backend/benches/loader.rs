//! Loader throughput on a CREMA-D-shaped tree written here (16 kHz wavs of 2.5 s, 480x360
//! JPEG frames, as the release has them): samples per second read one at a time on one
//! thread, through the parallel prefetching pipeline, with the spectrogram cache warm, and
//! while a training step of fixed length runs.
//!
//! `cargo bench -p balancelab --bench loader` prints the table. Each row's best of three
//! rounds counts; compare the ratios to the one-thread row, measured in the same run.

use std::path::Path;
use std::time::{Duration, Instant};

use balancelab::data::crema_d::{self, EMOTIONS};
use balancelab::engine::Dataset;
use balancelab_shared::{CremaDConfig, CremaDSplit};
use candle_core::Device;
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};

const CLIPS: usize = 96;
const BATCH: usize = 16;

fn write_tree(root: &Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut rows = String::new();
    for i in 0..CLIPS {
        let emotion = EMOTIONS[i % 6];
        let clip = format!("{}_DFA_{emotion}_XX", 1001 + i / 6);
        let wav = root.join("AudioWAV").join(format!("{clip}.wav"));
        let noise = (0..40_000).map(|_| rng.random_range(-8000i16..8000));
        balancelab::data::audio::write_wav(&wav, 16_000, noise).unwrap();
        let frames = root.join("Image-01-FPS").join(&clip);
        std::fs::create_dir_all(&frames).unwrap();
        for f in 1..=3u32 {
            let image = RgbImage::from_fn(480, 360, |x, y| {
                Rgb([
                    (x + f * 40) as u8,
                    (y * 2) as u8,
                    ((x ^ y) + i as u32) as u8,
                ])
            });
            image.save(frames.join(format!("frame{f:06}.jpg"))).unwrap();
        }
        rows.push_str(&format!("{clip},{emotion}\n"));
    }
    std::fs::write(root.join("train.csv"), &rows).unwrap();
    std::fs::write(root.join("test.csv"), &rows).unwrap();
}

fn load(data: &Path, cache: Option<&Path>) -> Dataset {
    let config = CremaDConfig {
        split: CremaDSplit::Csv,
        frames: 1,
        image_size: 224,
        ..CremaDConfig::default()
    };
    crema_d::load_crema_d(data, &config, cache.map(Path::to_owned), &Device::Cpu).unwrap()
}

/// Seconds for one pass over the training split in batches, with `step` of work after each.
fn epoch(data: &Dataset, step: Duration) -> f64 {
    let order: Vec<u32> = (0..data.train.len() as u32).collect();
    let started = Instant::now();
    for batch in data.train.batches(&order, BATCH, Some(1)) {
        batch.unwrap();
        std::thread::sleep(step);
    }
    started.elapsed().as_secs_f64()
}

fn best_of_three(mut round: impl FnMut() -> f64) -> f64 {
    (0..3).map(|_| round()).fold(f64::INFINITY, f64::min)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_tree(&dir.path().join("CREMA-D"));
    let uncached = load(dir.path(), None);
    let cached = load(dir.path(), Some(cache.path()));
    epoch(&cached, Duration::ZERO); // fills the cache

    // One thread, one sample at a time: the reader without the pipeline.
    let reader_only = best_of_three(|| {
        let started = Instant::now();
        for batch in uncached.train.in_order(1) {
            batch.unwrap();
        }
        started.elapsed().as_secs_f64()
    });
    let threads = rayon::current_num_threads();
    let pipeline = best_of_three(|| epoch(&uncached, Duration::ZERO));
    let warm = best_of_three(|| epoch(&cached, Duration::ZERO));
    // A step as long as loading a batch takes: overlapped, an epoch takes about the steps'
    // time alone, not the sum.
    let step = Duration::from_secs_f64(pipeline / (CLIPS / BATCH) as f64);
    let steps_alone = step.as_secs_f64() * (CLIPS / BATCH) as f64;
    let overlapped = best_of_three(|| epoch(&uncached, step));

    println!("CREMA-D-shaped samples (audio 257x188 from 16 kHz, one 224x224 frame), {CLIPS} clips, batch {BATCH}, {threads} threads");
    println!("{:<48} {:>10} {:>8}", "", "samples/s", "ratio");
    let row = |name: &str, seconds: f64| {
        println!(
            "{name:<48} {:>10.1} {:>8.2}",
            CLIPS as f64 / seconds,
            reader_only / seconds
        );
    };
    row("one thread, one sample at a time, no cache", reader_only);
    row("pipeline (parallel decode, prefetch), no cache", pipeline);
    row("pipeline, spectrograms cached", warm);
    println!(
        "with a {:.0} ms step after each batch: epoch {:.2} s; steps alone {:.2} s, steps + loading {:.2} s",
        step.as_secs_f64() * 1000.0,
        overlapped,
        steps_alone,
        steps_alone + pipeline
    );
}
