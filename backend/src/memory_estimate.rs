//! How much memory a run will need, from its configuration alone: what the server checks
//! before queueing a run, so that a configuration too large for the worker is refused with
//! the fields to change rather than started and killed.
//!
//! The estimate adds up the dataset held in memory, the parameters with their gradients,
//! optimiser state and checkpoint copy, and the activations a step keeps for its backward
//! pass (and an evaluation batch keeps at once). Parameters are counted exactly (the tests
//! compare with the models Candle builds); activations are counted per layer output, as
//! PyTorch's autograd would keep them, doubled for the backward pass's gradients and the
//! kernels' temporaries. Against the peak resident memory of `balancelab train` (release
//! build, 2 cores): AV digits with CNN encoders at batch 64, 3.28 GiB estimated for 3.30
//! measured; 200,000 synthetic samples of two 2,048-float vectors, 6.43 for 6.23. It is a
//! first line: the child process's hard limit still stops what it misses.

use balancelab_shared::{
    DatasetConfig, Downsample, EncoderConfig, FusionKind, MethodConfig, OptimizerConfig, RunConfig,
};

use crate::data::{self, Footprint};
use crate::engine::evaluation_batch;
use crate::engine::nn::{Encoder, FUSION_WIDTH, RESNET18_FEATURES};

/// Bytes of one float32.
const FLOAT: u64 = 4;
/// What a training process uses before any tensor: the binary, thread stacks, the allocator.
const BASELINE: u64 = 256 << 20;

/// What a run needs, by part, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The samples held in memory (training and test splits), or the batches in flight for
    /// datasets read from disk.
    pub dataset: u64,
    /// Parameters, gradients, optimiser state and the copy a checkpoint takes.
    pub parameters: u64,
    /// What a training step (or an evaluation batch) keeps between forward and backward.
    pub activations: u64,
}

impl MemoryEstimate {
    /// Every part, and the process's own baseline.
    pub fn total(&self) -> u64 {
        (self.dataset.saturating_add(self.parameters))
            .saturating_add(self.activations)
            .saturating_add(BASELINE)
    }

    /// The part that is largest, and the fields that make it so: what to lower first.
    fn largest(&self, config: &RunConfig) -> (&'static str, Vec<&'static str>) {
        let encoder = match config.model.encoder {
            EncoderConfig::Mlp(_) => "model.encoder.hidden",
            EncoderConfig::Cnn(_) => "model.encoder.channels",
            EncoderConfig::Resnet18 => "model.encoder.kind",
            EncoderConfig::Transformer(_) => "model.encoder.layers",
        };
        let parts = [
            (self.dataset, "the dataset"),
            (self.parameters, "the parameters"),
            (self.activations, "the activations"),
        ];
        let (_, part) = parts.into_iter().max_by_key(|(bytes, _)| *bytes).unwrap();
        let mut fields = match part {
            "the dataset" => match &config.dataset {
                DatasetConfig::Synthetic(_) => vec![
                    "dataset.train_samples",
                    "dataset.test_samples",
                    "dataset.features",
                ],
                // Read batch by batch: only the batches in flight count.
                DatasetConfig::CremaD(_) | DatasetConfig::Ave(_) | DatasetConfig::Ucf101(_) => {
                    vec!["batch_size", "dataset.image_size", "dataset.frames"]
                }
                _ => vec!["dataset.kind"],
            },
            "the parameters" => vec![encoder, "model.feature_dim"],
            _ => vec!["batch_size", encoder, "model.feature_dim"],
        };
        match &config.dataset {
            DatasetConfig::CremaD(_) | DatasetConfig::Ave(_) | DatasetConfig::Ucf101(_)
                if part == "the activations" =>
            {
                fields.extend(["dataset.image_size", "dataset.frames"])
            }
            DatasetConfig::Synthetic(_) if part != "the dataset" => fields.push("dataset.features"),
            _ => {}
        }
        (part, fields)
    }

    /// Why a run with this estimate cannot be queued under `budget` bytes, naming the
    /// field to lower first (and in the message, the others that also help).
    pub fn refusal(
        &self,
        config: &RunConfig,
        budget: u64,
    ) -> Option<balancelab_shared::FieldError> {
        if self.total() <= budget {
            return None;
        }
        let (part, fields) = self.largest(config);
        let gib = |bytes: u64| format!("{:.1} GiB", bytes as f64 / f64::from(1 << 30));
        let message = format!(
            "the run would need about {} (dataset {}, parameters and optimiser {}, \
             activations {}), more than a run may use on this server ({}, the worker's \
             --memory-budget); most of it is {}: lower {}",
            gib(self.total()),
            gib(self.dataset),
            gib(self.parameters),
            gib(self.activations),
            gib(budget),
            part,
            fields.join(", "),
        );
        Some(balancelab_shared::FieldError::new(fields[0], message))
    }
}

/// Estimates what `config` needs to train (on the CPU; on a GPU the activations and
/// parameters are the GPU's).
pub fn estimate(config: &RunConfig) -> MemoryEstimate {
    let footprint = data::footprint(&config.dataset);
    let feature_dim = config.model.feature_dim as usize;
    let encoder = &config.model.encoder;
    let sample_values: usize = footprint
        .shapes
        .iter()
        .map(|s| s.iter().product::<usize>())
        .sum();
    let dims: Vec<usize> = footprint
        .shapes
        .iter()
        .map(|_| Encoder::output_dim(encoder, feature_dim))
        .collect();

    let samples = footprint.samples_in_memory.unwrap_or(0);
    let in_flight = match footprint.samples_in_memory {
        Some(_) => 0,
        // The batch being trained on, the one the loader prepares, the one it decodes.
        None => 3 * config.batch_size as usize,
    };
    // Loading holds the samples as read and as split (training, validation, test) at once.
    let dataset = (2 * samples + in_flight) as u64 * sample_values as u64 * FLOAT;

    let count = parameter_count(config, &footprint);
    let optimizer_slots = match &config.optimizer {
        OptimizerConfig::Sgd(sgd) if sgd.momentum == 0.0 => 0,
        OptimizerConfig::Sgd(_) => 1,
        OptimizerConfig::Adam(_) | OptimizerConfig::AdamW(_) => 2,
    };
    // The parameters, their gradients, the optimiser's state and a checkpoint's copy.
    let parameters = count as u64 * (3 + optimizer_slots) * FLOAT;

    let per_sample: usize = footprint
        .shapes
        .iter()
        .map(|shape| encoder_activations(encoder, shape, feature_dim))
        .sum::<usize>()
        + 4 * dims.iter().sum::<usize>()
        + 8 * footprint.classes * (dims.len() + 1);
    // A step keeps the forward pass's outputs, and the backward pass makes a gradient of
    // about each. Evaluation batches can be larger; their forward graph is kept as long as
    // its output (Candle records it whenever a parameter takes part), and the kernels'
    // temporaries come on top: measured, about as much again.
    let batch = evaluation_batch(sample_values).max(config.batch_size as usize) as u64;
    let per_sample = (per_sample as u64).saturating_add(sample_values as u64);
    let activations = (2 * FLOAT * batch).saturating_mul(per_sample);

    MemoryEstimate {
        dataset,
        parameters,
        activations,
    }
}

/// Channels and frames of an image-shaped input (`[h, w]`, `[c, h, w]`, `[t, c, h, w]`),
/// then its height and width.
fn image(shape: &[usize]) -> (usize, usize, usize, usize) {
    match *shape {
        [h, w] => (1, 1, h, w),
        [c, h, w] => (1, c, h, w),
        [t, c, h, w] => (t, c, h, w),
        // Not an image: `check_run` refuses the encoder before it estimates.
        _ => (1, 1, shape.iter().product(), 1),
    }
}

/// A transformer encoder's tokens and their width, for a `[features]` or `[t, f]` input.
fn tokens(shape: &[usize]) -> (usize, usize) {
    match *shape {
        [t, f] => (t, f),
        _ => (shape.iter().product(), 1),
    }
}

/// Parameters of a linear layer with bias.
fn linear(inputs: usize, outputs: usize) -> usize {
    inputs * outputs + outputs
}

/// Parameters of one pre-norm transformer block of width `d`: two layer norms, the
/// attention's qkv and output projections, a 2x feed-forward layer.
fn transformer_block(d: usize) -> usize {
    2 * d + linear(d, 3 * d) + linear(d, d) + 2 * d + linear(d, 2 * d) + linear(2 * d, d)
}

/// Trainable parameters of `config`'s model on `footprint`'s inputs, as Candle builds it.
fn parameter_count(config: &RunConfig, footprint: &Footprint) -> usize {
    let d = config.model.feature_dim as usize;
    let encoder = &config.model.encoder;
    let classes = footprint.classes;
    let dims: Vec<usize> = footprint
        .shapes
        .iter()
        .map(|_| Encoder::output_dim(encoder, d))
        .collect();
    let encoders: usize = footprint
        .shapes
        .iter()
        .map(|shape| encoder_parameters(encoder, shape, d))
        .sum();
    let heads: usize = dims.iter().map(|&dim| linear(dim, classes)).sum();
    let w = FUSION_WIDTH;
    let fusion = match config.model.fusion {
        FusionKind::Late => {
            let bias = match config.method {
                MethodConfig::MmCosine(_) => 0,
                _ => classes,
            };
            dims.iter().map(|&dim| classes * dim).sum::<usize>() + bias
        }
        FusionKind::Mid => {
            dims.iter().map(|&dim| linear(dim, w)).sum::<usize>()
                + linear(w, w)
                + linear(w, classes)
        }
        FusionKind::Film => linear(dims[0], 2 * dims[1]) + linear(dims[1], classes),
        FusionKind::Gated => linear(dims[0], w) + linear(dims[1], w) + linear(w, classes),
        FusionKind::Transformer => {
            dims.iter().map(|&dim| linear(dim, w) + w).sum::<usize>()
                + w
                + transformer_block(w)
                + 2 * w
                + linear(w, classes)
        }
        FusionKind::Decision => 0,
    };
    encoders + heads + fusion
}

/// Parameters of one modality's encoder for inputs of `shape`.
fn encoder_parameters(encoder: &EncoderConfig, shape: &[usize], d: usize) -> usize {
    match encoder {
        EncoderConfig::Mlp(mlp) => {
            let hidden = mlp.hidden as usize;
            linear(shape.iter().product(), hidden) + linear(hidden, d)
        }
        EncoderConfig::Cnn(cnn) => {
            let (_, mut cin, _, _) = image(shape);
            let mut count = 0;
            for i in 0..3 {
                let cout = (cnn.channels as usize) << i;
                // A 3x3 convolution without bias, then batch norm's scale and shift.
                count += cin * cout * 9 + 2 * cout;
                cin = cout;
            }
            count + linear(cin, d)
        }
        EncoderConfig::Resnet18 => {
            // torchvision's 11,176,512 without the classifier, for 3 input channels; the
            // stem's 7x7 convolution has 64 * 49 weights per input channel.
            let (_, channels, _, _) = image(shape);
            11_176_512 - 3 * 64 * 49 + channels * 64 * 49
        }
        EncoderConfig::Transformer(t) => {
            let (count, width) = tokens(shape);
            linear(width, d) + count * d + d + t.layers as usize * transformer_block(d) + 2 * d
        }
    }
}

/// Floats one sample's pass through an encoder keeps for the backward pass: every layer's
/// output (convolution, normalisation, activation, pooling each count).
fn encoder_activations(encoder: &EncoderConfig, shape: &[usize], d: usize) -> usize {
    match encoder {
        EncoderConfig::Mlp(mlp) => 3 * mlp.hidden as usize + 3 * d,
        EncoderConfig::Cnn(cnn) => {
            let (frames, _, mut h, mut w) = image(shape);
            let mut values = 0;
            for i in 0..3 {
                let c = (cnn.channels as usize) << i;
                match cnn.downsample {
                    Downsample::MaxPool => {
                        values += 3 * c * h * w;
                        (h, w) = (h / 2, w / 2);
                        values += c * h * w;
                    }
                    Downsample::Stride => {
                        (h, w) = (h.div_ceil(2), w.div_ceil(2));
                        values += 3 * c * h * w;
                    }
                }
            }
            frames * values + 3 * d
        }
        EncoderConfig::Resnet18 => {
            let (frames, _, h, w) = image(shape);
            let half = |(h, w): (usize, usize)| (h.div_ceil(2), w.div_ceil(2));
            // The stem: convolution, batch norm, ReLU at half resolution, then max pool.
            let stem = half((h, w));
            let mut size = half(stem);
            let mut values = 3 * 64 * stem.0 * stem.1 + 64 * size.0 * size.1;
            for (stage, channels) in [64, 128, 256, 512].into_iter().enumerate() {
                if stage > 0 {
                    size = half(size);
                }
                let area = size.0 * size.1;
                // Two blocks of conv, BN, ReLU, conv, BN, add, ReLU; a projection after the first.
                let projection = if stage > 0 { 2 } else { 0 };
                values += (14 + projection) * channels * area;
            }
            frames * values + 3 * RESNET18_FEATURES
        }
        EncoderConfig::Transformer(t) => {
            let (count, _) = tokens(shape);
            let sequence = count + 1;
            // Per block: norms, qkv, attention output, projection, residuals, feed-forward
            // (about 14 values per token and width) and two scores per head and token pair.
            let block = 14 * sequence * d + 2 * t.heads as usize * sequence * sequence;
            2 * count * d + t.layers as usize * block + 2 * d
        }
    }
}

#[cfg(test)]
mod tests {
    use balancelab_shared::{
        CnnConfig, CremaDConfig, MlpConfig, MmCosineConfig, ModelConfig, SyntheticConfig,
        TransformerConfig,
    };
    use candle_core::Device;

    use super::*;
    use crate::engine::nn::{MultimodalModel, ParamStore};

    const GIB: u64 = 1 << 30;

    fn synthetic(features: u32, train_samples: u32) -> RunConfig {
        RunConfig {
            dataset: DatasetConfig::Synthetic(SyntheticConfig {
                features,
                train_samples,
                ..SyntheticConfig::default()
            }),
            ..RunConfig::default()
        }
    }

    #[test]
    fn parameters_are_counted_as_the_models_are_built() -> candle_core::Result<()> {
        let encoders = [
            EncoderConfig::Mlp(MlpConfig { hidden: 7 }),
            EncoderConfig::Cnn(CnnConfig {
                channels: 3,
                ..CnnConfig::default()
            }),
            EncoderConfig::Resnet18,
            EncoderConfig::Transformer(TransformerConfig {
                layers: 2,
                heads: 2,
            }),
        ];
        let shapes = |encoder: &EncoderConfig| match encoder {
            EncoderConfig::Mlp(_) | EncoderConfig::Transformer(_) => vec![vec![5], vec![3, 4]],
            _ => vec![vec![1, 8, 6], vec![2, 3, 8, 8]],
        };
        let methods = [
            MethodConfig::Joint,
            MethodConfig::MmCosine(MmCosineConfig::default()),
        ];
        for encoder in &encoders {
            for fusion in FusionKind::ALL {
                for method in &methods {
                    let config = RunConfig {
                        model: ModelConfig {
                            encoder: encoder.clone(),
                            fusion,
                            feature_dim: 6,
                        },
                        method: method.clone(),
                        ..RunConfig::default()
                    };
                    let footprint = Footprint {
                        shapes: shapes(encoder),
                        classes: 4,
                        samples_in_memory: Some(10),
                    };
                    let mut store = ParamStore::new(0, &Device::Cpu);
                    let cosine = matches!(method, MethodConfig::MmCosine(_)).then_some(10.0);
                    MultimodalModel::new(&mut store, &config.model, &footprint.shapes, 4, cosine)?;
                    assert_eq!(
                        parameter_count(&config, &footprint),
                        store.parameter_count(),
                        "{encoder:?} {fusion:?} {method:?}"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_defaults_need_little() {
        let estimate = estimate(&RunConfig::default());
        assert!(estimate.total() < 300 << 20, "{estimate:?}");
        // 5,000 samples of two 16-float vectors, as read and as split.
        assert_eq!(estimate.dataset, 2 * 5_000 * 32 * 4);
    }

    #[test]
    fn a_huge_synthetic_dataset_is_refused_naming_its_sizes() {
        // 1,000,000 samples of two 4,096-float vectors: 32 GB.
        let config = synthetic(4096, 1_000_000);
        let needs = estimate(&config);
        assert!(needs.total() > 30 * GIB, "{needs:?}");
        let error = needs.refusal(&config, 16 * GIB).unwrap();
        assert_eq!(error.field, "dataset.train_samples");
        let message = &error.message;
        assert!(message.contains("most of it is the dataset"), "{message}");
        assert!(message.contains("16.0 GiB, the worker's --memory-budget"));
        let small = synthetic(16, 4000);
        assert_eq!(estimate(&small).refusal(&small, 16 * GIB), None);
    }

    #[test]
    fn attention_over_thousands_of_tokens_is_refused_naming_the_batch() {
        let mut config = synthetic(4096, 4000);
        config.model.encoder = EncoderConfig::Transformer(TransformerConfig {
            layers: 4,
            heads: 8,
        });
        config.batch_size = 256;
        let error = estimate(&config).refusal(&config, 16 * GIB).unwrap();
        assert_eq!(error.field, "batch_size");
        assert!(
            error.message.contains("the activations"),
            "{}",
            error.message
        );
    }

    #[test]
    fn the_largest_valid_sizes_are_refused_without_overflowing() {
        let config = RunConfig {
            dataset: DatasetConfig::CremaD(CremaDConfig {
                frames: 64,
                image_size: 1024,
                ..CremaDConfig::default()
            }),
            model: ModelConfig {
                encoder: EncoderConfig::Cnn(CnnConfig {
                    channels: 256,
                    ..CnnConfig::default()
                }),
                feature_dim: 4096,
                ..ModelConfig::default()
            },
            batch_size: 65_536,
            ..RunConfig::default()
        };
        let needs = estimate(&config);
        assert!(needs.total() > 1 << 50, "{needs:?}");
        assert_eq!(
            needs.refusal(&config, 16 * GIB).unwrap().field,
            "batch_size"
        );
    }

    #[test]
    fn the_papers_crema_d_recipe_fits_a_workstation() {
        // ResNet18 on a spectrogram and one frame, batch 64: the MLB paper's setting.
        let config = RunConfig {
            dataset: DatasetConfig::CremaD(CremaDConfig::default()),
            model: ModelConfig {
                encoder: EncoderConfig::Resnet18,
                ..ModelConfig::default()
            },
            batch_size: 64,
            ..RunConfig::default()
        };
        let estimate = estimate(&config);
        assert!(estimate.total() < 16 * GIB, "{estimate:?}");
        assert!(estimate.total() > 2 * GIB, "{estimate:?}");
        let error = estimate.refusal(&config, GIB).unwrap();
        assert_eq!(error.field, "batch_size");
        assert!(
            error.message.contains("dataset.image_size"),
            "{}",
            error.message
        );
    }
}
