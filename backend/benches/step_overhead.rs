//! Time of one training step under each balancing method, relative to joint training.
//!
//! `cargo bench -p balancelab --bench step_overhead` prints a table per model. Methods are
//! timed in interleaved rounds and each method's fastest round counts (as Python's timeit
//! advises: slower rounds measure the machine's other load, not the method), so background
//! load affects every method alike; compare the ratios, not the milliseconds.

use std::time::Instant;

use balancelab::engine::Session;
use balancelab_shared::{
    CnnConfig, EncoderConfig, MethodConfig, MethodKind, MlpConfig, ModelConfig, RunConfig,
};
use candle_core::{Device, Result, Tensor};

const CLASSES: usize = 10;
const BATCH: usize = 64;

fn methods() -> Vec<(&'static str, MethodConfig)> {
    use MethodKind::*;
    [Joint, MultiLoss, Mlb, OgmGe, Agm]
        .map(|kind| (kind.label(), kind.into()))
        .into()
}

fn fastest(values: Vec<f64>) -> f64 {
    values.into_iter().fold(f64::INFINITY, f64::min)
}

/// `rounds` timed rounds of `steps` steps of every method.
fn bench(
    title: &str,
    model: ModelConfig,
    shapes: &[Vec<usize>],
    (rounds, steps): (usize, usize),
) -> Result<()> {
    let device = Device::Cpu;
    let inputs = shapes
        .iter()
        .map(|shape| {
            let mut dims = vec![BATCH];
            dims.extend_from_slice(shape);
            Tensor::randn(0f32, 1.0, dims, &device)
        })
        .collect::<Result<Vec<_>>>()?;
    let labels = Tensor::arange(0u32, BATCH as u32, &device)?
        .to_dtype(candle_core::DType::F32)?
        .affine(1.0 / (BATCH / CLASSES + 1) as f64, 0.0)?
        .floor()?
        .to_dtype(candle_core::DType::U32)?;
    let mut sessions = methods()
        .into_iter()
        .map(|(name, method)| {
            let config = RunConfig {
                method,
                model: model.clone(),
                ..RunConfig::default()
            };
            Ok((
                name,
                Session::new(&config, shapes, CLASSES, &device)?,
                Vec::new(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut step = 0;
    let count = sessions.len();
    for round in 0..=rounds {
        // Rotating the order spreads periodic background load over every method.
        for i in 0..count {
            let (_, session, times) = &mut sessions[(i + round) % count];
            let start = Instant::now();
            for _ in 0..steps {
                session.step(1, step, 1e-3, &inputs, &labels)?;
                step += 1;
            }
            // Round 0 warms caches and allocators up.
            if round > 0 {
                times.push(start.elapsed().as_secs_f64() * 1e3 / steps as f64);
            }
        }
    }
    let fastest_times: Vec<(&str, f64)> = sessions
        .into_iter()
        .map(|(name, _, times)| (name, fastest(times)))
        .collect();
    let joint = fastest_times[0].1;
    let multi_loss = fastest_times[1].1;
    println!("\n{title} (batch {BATCH}, fastest of {rounds} rounds of {steps} steps)");
    println!(
        "{:<12} {:>10} {:>10} {:>14}",
        "method", "ms/step", "vs joint", "vs multi-loss"
    );
    for (name, ms) in &fastest_times {
        println!(
            "{name:<12} {ms:>10.2} {:>9.1}% {:>13.1}%",
            (ms / joint - 1.0) * 100.0,
            (ms / multi_loss - 1.0) * 100.0
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    // Candle's CPU kernels read this on every call. Two threads on a 2-core machine make
    // these small steps slower and far noisier, hiding differences of a few percent.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    println!(
        "threads: {} (set RAYON_NUM_THREADS to change)",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default()
    );
    let mlp = ModelConfig {
        encoder: EncoderConfig::Mlp(MlpConfig { hidden: 256 }),
        feature_dim: 128,
        ..ModelConfig::default()
    };
    let vectors = [vec![512], vec![512]];
    bench("MLP encoders, 2 x 512 features", mlp, &vectors, (40, 10))?;
    let cnn = ModelConfig {
        encoder: EncoderConfig::Cnn(CnnConfig {
            channels: 16,
            ..CnnConfig::default()
        }),
        ..ModelConfig::default()
    };
    let images = [vec![1, 16, 16], vec![1, 16, 16]];
    bench("CNN encoders, 2 x 1x16x16 images", cnn, &images, (9, 3))
}
