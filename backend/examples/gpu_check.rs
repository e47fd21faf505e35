//! GPU check of the `cuda` build, for a machine with an NVIDIA GPU (`scripts/cuda/gpu-check`).
//!
//! 0. Ops: each convolution, pooling and normalisation op the encoders use, output and input
//!    gradients, GPU against CPU to a relative 1e-4 (the convolution as the encoders call it:
//!    `ops::composed_conv` on the GPU, the CPU kernels on the CPU).
//! 1. Parity: every balancing method, on MLP, CNN, ResNet18 and transformer models, takes the
//!    same steps on the GPU and on the CPU from the same initial weights and batches; the
//!    losses, coefficients k, confidences s, gradient norms, the first step's update of every
//!    parameter (its modulated gradient: SGD's first step is -lr g) and the weights after the
//!    steps must agree to a relative 1e-4 (per parameter tensor, in L2 norm), or, for a model
//!    that rounding alone moves further (ResNet18 with batch norm over few values), to within
//!    4x what nudging the CPU's inputs by one float32 ulp does.
//! 2. A whole run through the engine (`train_run`, evaluation and events included) on the GPU
//!    and on the CPU: the same test accuracy.
//! 3. Convolution timing: forward + backward of each of ResNet18's convolution shapes at the
//!    throughput run's batch, Candle's own backward pass against `ops::composed_conv`'s, in
//!    fp32 and tf32: which is faster, layer by layer.
//! 4. Throughput: ResNet18 encoders on CREMA-D-shaped input (a 1x257x188 spectrogram and three
//!    3x224x224 frames, 6 classes), MLB with Adam as in the paper's recipe, in each precision;
//!    prints samples/s. `scripts/reference/resnet18_throughput.py` trains the same model in
//!    PyTorch.
//!
//! Exits with status 1 when an op or parity check fails.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use balancelab::engine::ops::{composed_conv, conv};
use balancelab::engine::{CancelToken, Checkpointing, Pass, Session, TrainingEvent};
use balancelab_shared::{
    AdamConfig, CnnConfig, ComputeDevice, DatasetConfig, EncoderConfig, FusionKind, MethodConfig,
    MethodKind, MlbConfig, MlpConfig, ModelConfig, OptimizerConfig, Precision, RunConfig,
    SyntheticConfig, TransformerConfig,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::loss::cross_entropy;
use clap::Parser;

/// Relative tolerance of every parity comparison.
const TOLERANCE: f64 = 1e-4;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "cuda:0")]
    device: ComputeDevice,
    /// Batch size of the throughput run.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed steps of the throughput run (after 5 warm-up steps)...
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// ...or fewer, if they would take longer than this.
    #[arg(long, default_value_t = 150.0)]
    max_seconds: f64,
    /// Only the parity checks and the whole run.
    #[arg(long)]
    parity_only: bool,
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    let device = balancelab::device::open(args.device).map_err(anyhow::Error::msg)?;
    println!("device: {}", args.device);

    let ops_ok = op_parity(&device)?;
    let parity_ok = parity(&device)?;
    let run_ok = whole_run(args.device)?;
    if !args.parity_only {
        conv_timing(&device, args.batch)?;
        for precision in Precision::ALL {
            throughput(&device, precision, args.batch, args.steps, args.max_seconds)?;
        }
    }
    Ok(if ops_ok && parity_ok && run_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A differentiable function of some tensors, compared between the devices.
type Op = Box<dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>>;

/// The convolution, pooling and normalisation ops the encoders use: outputs and gradients
/// of a random projection of the output, GPU against CPU.
fn op_parity(gpu: &Device) -> Result<bool> {
    // A convolution case: its name from the shapes, the input and kernel, the op.
    let conv = |x: [usize; 4], w: [usize; 4], padding: usize, stride: usize| {
        let [n, c, h, width] = x;
        let name = format!("conv {k}x{k} s{stride}, {n}x{c}x{h}x{width}", k = w[2]);
        let op: Op = Box::new(move |t: &[Tensor]| conv::conv2d(&t[0], &t[1], stride, padding));
        (name, vec![x.to_vec(), w.to_vec()], op)
    };
    let cases: Vec<(String, Vec<Vec<usize>>, Op)> = vec![
        conv([16, 3, 32, 32], [64, 3, 7, 7], 3, 2),
        // Sides of different parity at stride 2, as the 257x188 spectrogram's stem has.
        conv([4, 1, 41, 30], [64, 1, 7, 7], 3, 2),
        conv([16, 64, 9, 8], [128, 64, 3, 3], 1, 2),
        conv([16, 64, 8, 8], [128, 64, 3, 3], 1, 2),
        conv([32, 64, 8, 8], [64, 64, 3, 3], 1, 1),
        conv([16, 64, 8, 8], [128, 64, 1, 1], 0, 2),
        conv([32, 512, 1, 1], [512, 512, 3, 3], 1, 1),
        conv([32, 256, 2, 2], [256, 256, 3, 3], 1, 1),
        (
            "max pool 2x2, 16x8x17x12".into(),
            vec![vec![16, 8, 17, 12]],
            Box::new(|t| t[0].max_pool2d(2)),
        ),
        (
            "strided taps + maximum, 16x8x16x16".into(),
            vec![vec![16, 8, 16, 16]],
            Box::new(|t| {
                let x = t[0].pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
                let tap = |d: usize| {
                    x.narrow(2, d, 16)?
                        .narrow(3, d, 16)?
                        .reshape((16, 8, 8, 2, 8, 2))?
                        .narrow(3, 0, 1)?
                        .narrow(5, 0, 1)?
                        .reshape((16, 8, 8, 8))
                };
                tap(0)?.maximum(&tap(1)?)?.maximum(&tap(2)?)
            }),
        ),
        (
            "batch statistics, 32x64x4x4".into(),
            vec![vec![32, 64, 4, 4]],
            Box::new(|t| {
                let mean = t[0].mean_keepdim((0, 2, 3))?;
                let centred = t[0].broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim((0, 2, 3))?;
                centred.broadcast_div(&(var + 1e-5)?.sqrt()?)
            }),
        ),
    ];
    println!("\nOps: output and input gradients, relative difference (L2)");
    let mut all_ok = true;
    for (name, shapes, op) in cases {
        let inputs = (shapes.iter())
            .map(|s| Tensor::randn(0f32, 1.0, s.as_slice(), &Device::Cpu))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let run = |device: &Device| -> Result<Vec<Vec<f64>>> {
            let vars = (inputs.iter())
                .map(|x| candle_core::Var::from_tensor(&x.to_device(device)?))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            let y = op(&tensors)?;
            // A fixed projection, so the gradient flowing back is not all ones.
            let weights = Tensor::arange(0u32, y.elem_count() as u32, device)?
                .to_dtype(DType::F32)?
                .affine(0.37, 0.0)?
                .sin()?
                .reshape(y.shape())?;
            let grads = (y.mul(&weights)?).sum_all()?.backward()?;
            let mut out = vec![to_f64(&y)?];
            for v in &vars {
                out.push(to_f64(
                    grads
                        .get(v.as_tensor())
                        .expect("every input has a gradient"),
                )?);
            }
            Ok(out)
        };
        let (cpu, gpu_values) = (run(&Device::Cpu)?, run(gpu)?);
        let diffs: Vec<f64> = (cpu.iter().zip(&gpu_values))
            .map(|(a, b)| relative_difference(a, b))
            .collect();
        let ok = diffs.iter().all(|d| *d <= TOLERANCE);
        all_ok &= ok;
        let shown: Vec<String> = diffs.iter().map(|d| format!("{d:.1e}")).collect();
        println!(
            "{name:<32} output, gradients: {:<28} {}",
            shown.join(" "),
            if ok { "ok" } else { "FAILED" }
        );
    }
    Ok(all_ok)
}

/// The models and methods compared, with their per-sample input shapes.
fn parity_cases() -> Vec<(&'static str, ModelConfig, Vec<Vec<usize>>, MethodConfig)> {
    let mlp = ModelConfig {
        encoder: EncoderConfig::Mlp(MlpConfig { hidden: 64 }),
        feature_dim: 32,
        ..ModelConfig::default()
    };
    let vectors = vec![vec![48], vec![24]];
    use MethodKind::*;
    let methods = [Joint, MultiLoss, Mlb, OgmGe, Agm, MmCosine];
    let mut cases: Vec<_> = methods
        .into_iter()
        .map(|kind| (kind.label(), mlp.clone(), vectors.clone(), kind.into()))
        .collect();
    let mlb = || MethodConfig::Mlb(MlbConfig::default());
    cases.push((
        "CNN, gated fusion, MLB",
        ModelConfig {
            encoder: EncoderConfig::Cnn(CnnConfig {
                channels: 8,
                ..CnnConfig::default()
            }),
            fusion: FusionKind::Gated,
            ..ModelConfig::default()
        },
        vec![vec![1, 17, 12], vec![3, 16, 16]],
        mlb(),
    ));
    cases.push((
        "ResNet18 (image + clip), MLB",
        ModelConfig {
            encoder: EncoderConfig::Resnet18,
            ..ModelConfig::default()
        },
        // Sides of different parity, as a 257x188 spectrogram has.
        vec![vec![1, 41, 30], vec![2, 3, 32, 32]],
        mlb(),
    ));
    cases.push((
        "transformer, transformer fusion, MLB",
        ModelConfig {
            encoder: EncoderConfig::Transformer(TransformerConfig::default()),
            fusion: FusionKind::Transformer,
            feature_dim: 32,
        },
        vec![vec![6, 8], vec![12]],
        mlb(),
    ));
    cases
}

/// |a - b| / |a| in L2 norm, so entries near zero do not dominate.
fn relative_difference(a: &[f64], b: &[f64]) -> f64 {
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let diff = norm(&mut a.iter().zip(b).map(|(x, y)| x - y));
    diff / norm(&mut a.iter().copied()).max(f64::MIN_POSITIVE)
}

fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?
        .to_dtype(DType::F64)?
        .to_device(&Device::Cpu)?
        .to_vec1()?)
}

/// Every parameter of a session, on the host.
fn weights(session: &Session) -> Result<Vec<Vec<f64>>> {
    (session.store.params().iter())
        .map(|p| to_f64(p.var.as_tensor()))
        .collect()
}

/// Worst relative difference between matching tensors of two lists.
fn worst_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(a, b)| relative_difference(a, b))
        .fold(0.0, f64::max)
}

/// What each parameter moved by, from `before` to `after`.
fn updates(before: &[Vec<f64>], after: &[Vec<f64>]) -> Vec<Vec<f64>> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| b.iter().zip(a).map(|(b, a)| b - a).collect())
        .collect()
}

/// The compared quantities of one session's steps.
struct Trace {
    /// Per step: losses, k, s and gradient norms.
    steps: Vec<[Vec<f64>; 4]>,
    /// Every parameter's first update (its modulated gradient times the learning rate).
    first_update: Vec<Vec<f64>>,
    weights: Vec<Vec<f64>>,
}

/// Worst relative difference of each compared quantity between two traces.
fn trace_difference(a: &Trace, b: &Trace) -> [f64; 6] {
    let mut worst = [0f64; 6];
    for (x, y) in a.steps.iter().zip(&b.steps) {
        for (i, (x, y)) in x.iter().zip(y).enumerate() {
            worst[i] = worst[i].max(relative_difference(x, y));
        }
    }
    worst[4] = worst_difference(&a.first_update, &b.first_update);
    worst[5] = worst_difference(&a.weights, &b.weights);
    worst
}

fn parity(gpu: &Device) -> Result<bool> {
    const CLASSES: usize = 4;
    const BATCH: usize = 16;
    const LEARNING_RATE: f64 = 0.01;
    const STEPS: u64 = 3;
    // Rounding noise: the CPU again, with every input changed by about one float32 ulp.
    const NUDGE: f64 = 1.0 + f32::EPSILON as f64;
    println!(
        "\nParity with the CPU after {STEPS} steps (batch {BATCH}, SGD lr {LEARNING_RATE}), \
         relative difference (L2). Floor: the CPU against itself with inputs nudged by one \
         float32 ulp, i.e. how far rounding alone moves this model; a quantity passes within \
         max({TOLERANCE:.0e}, 4 x its floor)."
    );
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  result",
        "case", "loss", "k", "s", "grad norm", "gradient", "weights", "floor"
    );
    let mut all_ok = true;
    for (name, model, shapes, method) in parity_cases() {
        let config = RunConfig {
            model,
            method,
            ..RunConfig::default()
        };
        let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % CLASSES as u32).collect();
        let labels = Tensor::new(labels.as_slice(), &Device::Cpu)?;
        let batches = (0..STEPS)
            .map(|_| {
                (shapes.iter())
                    .map(|shape| {
                        let mut dims = vec![BATCH];
                        dims.extend_from_slice(shape);
                        Tensor::randn(0f32, 1.0, dims, &Device::Cpu)
                    })
                    .collect::<candle_core::Result<Vec<_>>>()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let trace = |device: &Device, scale: f64| -> Result<Trace> {
            let mut session = Session::new(&config, &shapes, CLASSES, device)?;
            let initial = weights(&session)?;
            let mut trace = Trace {
                steps: Vec::new(),
                first_update: Vec::new(),
                weights: Vec::new(),
            };
            for (step, batch) in batches.iter().enumerate() {
                let inputs = (batch.iter())
                    .map(|x| x.affine(scale, 0.0)?.to_device(device))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let labels = labels.to_device(device)?;
                let m = session.step(1, step as u64, LEARNING_RATE, &inputs, &labels)?;
                let mut losses = vec![m.loss, m.fused_loss];
                losses.extend(&m.unimodal_losses);
                trace
                    .steps
                    .push([losses, m.coefficients, m.confidences, m.gradient_norms]);
                if step == 0 {
                    trace.first_update = updates(&initial, &weights(&session)?);
                }
            }
            trace.weights = weights(&session)?;
            Ok(trace)
        };
        let cpu = trace(&Device::Cpu, 1.0)?;
        let gpu_diff = trace_difference(&cpu, &trace(gpu, 1.0)?);
        let floor = trace_difference(&cpu, &trace(&Device::Cpu, NUDGE)?);
        let ok = (gpu_diff.iter().zip(&floor)).all(|(d, f)| *d <= TOLERANCE.max(4.0 * f));
        all_ok &= ok;
        let shown: Vec<String> = gpu_diff.iter().map(|d| format!("{d:>9.1e}")).collect();
        println!(
            "{name:<40} {} {:>9.1e}  {}",
            shown.join(" "),
            floor.iter().copied().fold(0.0, f64::max),
            if ok { "ok" } else { "FAILED" }
        );
    }
    Ok(all_ok)
}

/// Test accuracy of a short synthetic run on `device`.
fn run_accuracy(device: ComputeDevice) -> Result<(f64, f64)> {
    let config = RunConfig {
        dataset: DatasetConfig::Synthetic(SyntheticConfig {
            train_samples: 2000,
            test_samples: 500,
            ..SyntheticConfig::default()
        }),
        epochs: 3,
        device,
        ..RunConfig::default()
    };
    let started = Instant::now();
    let mut outcome = None;
    balancelab::train_run(
        &config,
        None,
        Checkpointing::default(),
        &CancelToken::default(),
        &mut |event| match event {
            TrainingEvent::Finished(summary) => outcome = Some(Ok(summary.test.fused)),
            TrainingEvent::Failed { error } => outcome = Some(Err(error)),
            _ => {}
        },
    );
    match outcome {
        Some(Ok(accuracy)) => Ok((accuracy, started.elapsed().as_secs_f64())),
        Some(Err(error)) => bail!("run on {device} failed: {error}"),
        None => bail!("run on {device} ended without a terminal event"),
    }
}

fn whole_run(device: ComputeDevice) -> Result<bool> {
    let (gpu, gpu_seconds) = run_accuracy(device)?;
    let (cpu, cpu_seconds) = run_accuracy(ComputeDevice::Cpu)?;
    // Float summation order differs, so a prediction on a class boundary may flip.
    let ok = (gpu - cpu).abs() <= 0.01;
    println!(
        "\nWhole run (synthetic, MLP, MLB, 3 epochs): test accuracy {device} {gpu:.4} in \
         {gpu_seconds:.1} s, cpu {cpu:.4} in {cpu_seconds:.1} s  {}",
        if ok { "ok" } else { "FAILED" }
    );
    Ok(ok)
}

/// Forward + backward milliseconds of each of ResNet18's convolutions on the throughput run's
/// input, with Candle's backward pass and with `composed_conv`'s, in each precision.
fn conv_timing(device: &Device, batch: usize) -> Result<()> {
    const REPEATS: usize = 10;
    // (what, input [n, c, h, w], output channels, kernel, stride, padding); three frames
    // per sample for the visual encoder. Candle's backward pass fails on sides of mixed
    // parity at stride 2, so the spectrogram's layers are timed on even sides (256x188 for
    // 257x188, 64x48 for 65x47).
    let frames = 3 * batch;
    let layers = [
        ("audio stem 7x7/2", [batch, 1, 256, 188], 64, 7, 2, 3),
        ("audio 3x3, 64", [batch, 64, 64, 48], 64, 3, 1, 1),
        ("audio 3x3/2, 128", [batch, 64, 64, 48], 128, 3, 2, 1),
        ("audio 3x3, 512", [batch, 512, 8, 6], 512, 3, 1, 1),
        ("video stem 7x7/2", [frames, 3, 224, 224], 64, 7, 2, 3),
        ("video 3x3, 64", [frames, 64, 56, 56], 64, 3, 1, 1),
        ("video 3x3/2, 128", [frames, 64, 56, 56], 128, 3, 2, 1),
        ("video 1x1/2, 128", [frames, 64, 56, 56], 128, 1, 2, 0),
        ("video 3x3, 128", [frames, 128, 28, 28], 128, 3, 1, 1),
        ("video 3x3, 256", [frames, 256, 14, 14], 256, 3, 1, 1),
        ("video 3x3, 512", [frames, 512, 7, 7], 512, 3, 1, 1),
    ];
    type Conv = fn(&Tensor, &Tensor, usize, usize) -> candle_core::Result<Tensor>;
    let candle: Conv = |x, w, stride, padding| x.conv2d(w, padding, stride, 1, 1);
    let composed: Conv = composed_conv::conv2d;
    let time = |f: Conv, x: &Tensor, w: &candle_core::Var, (stride, padding)| -> Result<f64> {
        let run = || -> Result<()> {
            f(x, w, stride, padding)?.sum_all()?.backward()?;
            Ok(())
        };
        run()?;
        device.synchronize()?;
        let started = Instant::now();
        for _ in 0..REPEATS {
            run()?;
        }
        device.synchronize()?;
        Ok(started.elapsed().as_secs_f64() * 1e3 / REPEATS as f64)
    };
    println!("\nConvolutions, forward + backward (ms): Candle's backward | composed | speed-up");
    for precision in Precision::ALL {
        candle_core::cuda::set_gemm_reduced_precision_f32(precision == Precision::Tf32);
        println!("{}:", precision.name());
        for (name, x, c_out, k, stride, padding) in layers {
            // The stems' input is data (no input gradient), as in the encoders.
            let data = x[1] <= 3;
            let input = Tensor::randn(0f32, 1.0, x.as_slice(), device)?;
            let input = if data {
                input
            } else {
                candle_core::Var::from_tensor(&input)?.as_tensor().clone()
            };
            let w = candle_core::Var::randn(0f32, 0.05, (c_out, x[1], k, k), device)?;
            let theirs = time(candle, &input, &w, (stride, padding))?;
            let ours = time(composed, &input, &w, (stride, padding))?;
            println!(
                "  {name:<20} {theirs:>8.2} {ours:>8.2} {:>6.2}x",
                theirs / ours
            );
        }
    }
    candle_core::cuda::set_gemm_reduced_precision_f32(false);
    Ok(())
}

fn throughput(
    device: &Device,
    precision: Precision,
    batch: usize,
    steps: usize,
    max_seconds: f64,
) -> Result<()> {
    const CLASSES: usize = 6;
    const WARM_UP: usize = 5;
    const PHASE_STEPS: usize = 10;
    let config = RunConfig {
        model: ModelConfig {
            encoder: EncoderConfig::Resnet18,
            ..ModelConfig::default()
        },
        method: MethodConfig::Mlb(MlbConfig::default()),
        optimizer: OptimizerConfig::Adam(AdamConfig {
            weight_decay: 1e-4,
            ..AdamConfig::default()
        }),
        precision,
        ..RunConfig::default()
    };
    let shapes = [vec![1, 257, 188], vec![3, 3, 224, 224]];
    let mut session = Session::new(&config, &shapes, CLASSES, device)?;
    let inputs = (shapes.iter())
        .map(|shape| {
            let mut dims = vec![batch];
            dims.extend_from_slice(shape);
            Tensor::randn(0f32, 1.0, dims, device)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % CLASSES as u32).collect();
    let labels = Tensor::new(labels.as_slice(), device)?;
    for step in 0..WARM_UP {
        session.step(1, step as u64, 1e-3, &inputs, &labels)?;
    }
    // Where a step's time goes: the forward pass alone, then with the backward pass.
    let pass = Pass {
        train: true,
        probe_heads: false,
    };
    let forward = || -> Result<Tensor> {
        let outputs = session.model.forward(&inputs, pass)?;
        let mut loss = cross_entropy(&outputs.fused, &labels)?;
        for logits in &outputs.unimodal {
            loss = (loss + cross_entropy(logits, &labels)?)?;
        }
        Ok(loss)
    };
    let time = |run: &dyn Fn() -> Result<()>| -> Result<f64> {
        device.synchronize()?;
        let started = Instant::now();
        for _ in 0..PHASE_STEPS {
            run()?;
        }
        device.synchronize()?;
        Ok(started.elapsed().as_secs_f64() * 1e3 / PHASE_STEPS as f64)
    };
    let forward_ms = time(&|| forward().map(drop))?;
    let backward_ms = time(&|| forward()?.backward().map(drop).map_err(Into::into))? - forward_ms;
    device.synchronize()?;
    let started = Instant::now();
    let mut done = 0;
    while done < steps && started.elapsed().as_secs_f64() < max_seconds {
        session.step(1, (WARM_UP + done) as u64, 1e-3, &inputs, &labels)?;
        done += 1;
    }
    device.synchronize()?;
    let seconds = started.elapsed().as_secs_f64();
    let step_ms = seconds * 1e3 / done as f64;
    println!(
        "\nThroughput, ResNet18 x2 (1x257x188 + 3x3x224x224), MLB, Adam, batch {batch}, {}: \
         {:.1} samples/s, {step_ms:.1} ms/step over {done} steps \
         (forward {forward_ms:.1} ms, backward {backward_ms:.1} ms, \
         balancing + optimiser {:.1} ms)",
        precision.name(),
        (done * batch) as f64 / seconds,
        step_ms - forward_ms - backward_ms
    );
    Ok(())
}
