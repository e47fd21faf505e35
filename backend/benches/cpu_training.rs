//! CPU training throughput against PyTorch: the same two-branch model (audio-like 1x128x128
//! and frame-like 3x112x112 inputs, 6 classes), MLB's objective and coefficients every step,
//! Adam, batch 32, trained in BalanceLab and in scripts/reference/cpu_training.py, in
//! alternating rounds of one invocation. Each side's best round counts.
//!
//! `scripts/bench-cpu` installs PyTorch into target/torch-venv and runs this with
//! `BALANCELAB_TORCH_PYTHON` set; without it only BalanceLab's figures are printed.
//! `BENCH_MODELS=cnn_pool,cnn_stride,resnet18` picks models, `BENCH_ROUNDS` the rounds.

use std::process::Command;
use std::time::Instant;

use balancelab::engine::Session;
use balancelab_shared::{
    CnnConfig, Downsample, EncoderConfig, MethodConfig, MlbConfig, ModelConfig, OptimizerConfig,
    RunConfig,
};
use candle_core::{Device, Result, Tensor};

const CLASSES: usize = 6;
const BATCH: usize = 32;

fn config(model: &str) -> RunConfig {
    let encoder = match model {
        "cnn_pool" => EncoderConfig::Cnn(CnnConfig::default()),
        "cnn_stride" => EncoderConfig::Cnn(CnnConfig {
            downsample: Downsample::Stride,
            ..CnnConfig::default()
        }),
        _ => EncoderConfig::Resnet18,
    };
    RunConfig {
        method: MethodConfig::Mlb(MlbConfig::default()),
        model: ModelConfig {
            encoder,
            feature_dim: 64,
            ..ModelConfig::default()
        },
        optimizer: OptimizerConfig::Adam(Default::default()),
        ..RunConfig::default()
    }
}

/// Samples per second of `steps` BalanceLab steps.
fn balancelab(
    session: &mut Session,
    inputs: &[Tensor],
    labels: &Tensor,
    steps: usize,
) -> Result<f64> {
    let started = Instant::now();
    for step in 0..steps {
        session.step(1, step as u64, 1e-3, inputs, labels)?;
    }
    Ok((BATCH * steps) as f64 / started.elapsed().as_secs_f64())
}

/// Samples per second reported by the PyTorch script.
fn pytorch(python: &str, model: &str, steps: usize, threads: usize) -> Option<f64> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/reference/cpu_training.py"
    );
    let out = Command::new(python)
        .arg(script)
        .args(["--model", model, "--batch", &BATCH.to_string()])
        .args([
            "--steps",
            &steps.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("PyTorch failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    line["samples_per_second"].as_f64()
}

fn main() -> Result<()> {
    balancelab::cpu_threads::limit_candle_spinning();
    balancelab::allocator::keep_freed_memory();
    let python = std::env::var("BALANCELAB_TORCH_PYTHON").ok();
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let models = std::env::var("BENCH_MODELS").unwrap_or("cnn_pool,cnn_stride,resnet18".into());
    let threads = rayon::current_num_threads();
    let device = Device::Cpu;
    let shapes = [vec![1, 128, 128], vec![3, 112, 112]];
    let inputs = shapes
        .iter()
        .map(|s| Tensor::randn(0f32, 1.0, [&[BATCH][..], s].concat(), &device))
        .collect::<Result<Vec<_>>>()?;
    let labels: Vec<u32> = (0..BATCH).map(|i| (i % CLASSES) as u32).collect();
    let labels = Tensor::from_vec(labels, BATCH, &device)?;
    println!("batch {BATCH}, MLB + Adam, inputs 1x128x128 + 3x112x112, {threads} threads; best of {rounds} alternating rounds");
    println!(
        "{:<12} {:>16} {:>16} {:>8}",
        "model", "BalanceLab /s", "PyTorch /s", "ratio"
    );
    for model in models.split(',') {
        let steps = if model == "resnet18" { 4 } else { 10 };
        let mut session = Session::new(&config(model), &shapes, CLASSES, &device)?;
        balancelab(&mut session, &inputs, &labels, 2)?; // warm-up
        let (mut ours, mut theirs) = (0f64, None::<f64>);
        for _ in 0..rounds {
            ours = ours.max(balancelab(&mut session, &inputs, &labels, steps)?);
            if let Some(python) = &python {
                if let Some(rate) = pytorch(python, model, steps, threads) {
                    theirs = Some(theirs.map_or(rate, |t| t.max(rate)));
                }
            }
        }
        match theirs {
            Some(t) => println!("{model:<12} {ours:>16.1} {t:>16.1} {:>8.2}", ours / t),
            None => println!("{model:<12} {ours:>16.1} {:>16} {:>8}", "-", "-"),
        }
    }
    Ok(())
}
