//! The backbone of one modality: input `[batch, ...shape]` to features `[batch, dim]`.

use balancelab_shared::{Downsample, EncoderConfig};
use candle_core::{bail, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear};

use super::batch_norm::BatchNorm2d;
use super::params::{Owner, ParamStore, Role};
use super::resnet::{batch_norm, ResNet18, RESNET18_FEATURES};
use super::transformer::TokenTransformer;
use crate::engine::ops::conv;
use crate::engine::ops::max_pool::Window;

/// A modality's encoder: its input to features z_m.
pub enum Encoder {
    /// Flatten, then two ReLU layers.
    Mlp(Linear, Linear),
    /// Conv-BN-ReLU-max-pool blocks, global average pool, then a ReLU layer.
    Cnn(Vec<(Conv2d, BatchNorm2d)>, Linear),
    /// ResNet18 over images or spectrograms.
    Resnet(ResNet18),
    /// A transformer over a sequence of tokens.
    Transformer(TokenTransformer),
}

/// How an input shape is read by an image encoder: optional time axis, then `[c, h, w]`.
fn image_channels(shape: &[usize]) -> Option<usize> {
    match shape {
        [_, _] => Some(1),
        [c, _, _] | [_, c, _, _] => Some(*c),
        _ => None,
    }
}

impl Encoder {
    /// Whether an encoder of `config` reads inputs of `shape` (without the batch axis); if
    /// not, what it needs, for a person.
    pub fn check_input(config: &EncoderConfig, shape: &[usize]) -> std::result::Result<(), String> {
        let fits = match config {
            EncoderConfig::Mlp(_) => true,
            EncoderConfig::Cnn(_) | EncoderConfig::Resnet18 => image_channels(shape).is_some(),
            EncoderConfig::Transformer(_) => matches!(shape, [_] | [_, _]),
        };
        if fits {
            return Ok(());
        }
        let needs = match config {
            EncoderConfig::Transformer(_) => "[features] or [tokens, dim] input",
            _ => "image-shaped input ([h, w], [c, h, w] or [frames, c, h, w])",
        };
        Err(format!("the {} encoder needs {needs}", config.name()))
    }

    /// Modality `m`'s encoder for inputs of `shape` (without the batch axis).
    // Longer than 80 lines: one arm per encoder kind, each a few layers.
    pub fn new(
        store: &mut ParamStore,
        m: usize,
        config: &EncoderConfig,
        shape: &[usize],
        feature_dim: usize,
    ) -> Result<Self> {
        if let Err(needs) = Self::check_input(config, shape) {
            bail!("{needs}; modality {m} is {shape:?}");
        }
        let owner_role = (Owner::Modality(m), Role::Encoder);
        let name = format!("encoder{m}");
        // Checked above: an image encoder's input has channels.
        let image = || Ok::<_, candle_core::Error>(image_channels(shape).unwrap_or(1));
        Ok(match config {
            EncoderConfig::Mlp(mlp) => {
                let input: usize = shape.iter().product();
                let hidden = mlp.hidden as usize;
                Self::Mlp(
                    store.linear(&format!("{name}.0"), owner_role, input, hidden, true)?,
                    store.linear(&format!("{name}.1"), owner_role, hidden, feature_dim, true)?,
                )
            }
            EncoderConfig::Cnn(cnn) => {
                let mut cin = image()?;
                let mut blocks = Vec::new();
                for i in 0..3 {
                    let cout = (cnn.channels as usize) << i;
                    let stride = match cnn.downsample {
                        Downsample::MaxPool => 1,
                        Downsample::Stride => 2,
                    };
                    let config = Conv2dConfig {
                        padding: 1,
                        stride,
                        ..Conv2dConfig::default()
                    };
                    let conv = store.conv2d(
                        &format!("{name}.conv{i}"),
                        owner_role,
                        (cin, cout),
                        3,
                        config,
                    )?;
                    blocks.push((
                        conv,
                        batch_norm(store, &format!("{name}.bn{i}"), owner_role, cout)?,
                    ));
                    cin = cout;
                }
                Self::Cnn(
                    blocks,
                    store.linear(&format!("{name}.out"), owner_role, cin, feature_dim, true)?,
                )
            }
            EncoderConfig::Resnet18 => {
                Self::Resnet(ResNet18::new(store, &name, owner_role, image()?)?)
            }
            EncoderConfig::Transformer(t) => {
                // A vector is a sequence of scalar tokens; a [t, f] input is t tokens of width f.
                let tokens = match shape {
                    [t, f] => (*t, *f),
                    _ => (shape.iter().product(), 1),
                };
                let arch = (t.layers as usize, t.heads as usize);
                Self::Transformer(TokenTransformer::new(
                    store,
                    &name,
                    owner_role,
                    tokens,
                    feature_dim,
                    arch,
                )?)
            }
        })
    }

    /// Width of the features an encoder of `config` produces.
    pub fn output_dim(config: &EncoderConfig, feature_dim: usize) -> usize {
        match config {
            EncoderConfig::Resnet18 => RESNET18_FEATURES,
            _ => feature_dim,
        }
    }

    /// Features of a batch; `train` selects batch statistics in batch norm.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Self::Mlp(hidden, output) => x
                .flatten_from(1)?
                .apply(hidden)?
                .relu()?
                .apply(output)?
                .relu(),
            Self::Cnn(..) | Self::Resnet(_) => self.forward_frames(x, train),
            Self::Transformer(t) => match x.rank() {
                2 => t.forward(&x.unsqueeze(2)?),
                _ => t.forward(x),
            },
        }
    }

    /// Images, or clips encoded frame by frame and averaged over time as the paper does.
    fn forward_frames(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match x.rank() {
            3 => self.forward_images(&x.unsqueeze(1)?, train),
            5 => {
                let (b, t, c, h, w) = x.dims5()?;
                let z = self.forward_images(&x.reshape((b * t, c, h, w))?, train)?;
                z.reshape((b, t, ()))?.mean(1)
            }
            _ => self.forward_images(x, train),
        }
    }

    fn forward_images(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Self::Resnet(resnet) => resnet.forward(x, train),
            Self::Cnn(blocks, out) => {
                let mut x = x.clone();
                for (conv, bn) in blocks {
                    let z = conv::apply(&x, conv)?;
                    x = if conv.config().stride == 1 {
                        let (_, _, h, w) = z.dims4()?;
                        bn.forward_relu_pool(&z, train, Window::tiles((h.min(2), w.min(2))))?
                    } else {
                        bn.forward(&z, train, true)?
                    };
                }
                x.mean((2, 3))?.apply(out)?.relu()
            }
            _ => unreachable!("only image encoders take images"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancelab_shared::{CnnConfig, MlpConfig, TransformerConfig};
    use candle_core::{DType, Device};

    #[test]
    fn every_encoder_maps_its_input_to_features() -> Result<()> {
        let dev = Device::Cpu;
        let cases: [(EncoderConfig, &[usize], usize); 5] = [
            (EncoderConfig::Mlp(MlpConfig::default()), &[6], 16),
            (
                EncoderConfig::Cnn(CnnConfig {
                    channels: 4,
                    ..CnnConfig::default()
                }),
                &[1, 8, 4],
                16,
            ),
            (
                EncoderConfig::Cnn(CnnConfig {
                    channels: 4,
                    ..CnnConfig::default()
                }),
                &[3, 3, 8, 8],
                16,
            ),
            (EncoderConfig::Resnet18, &[3, 16, 16], 512),
            (
                EncoderConfig::Transformer(TransformerConfig {
                    layers: 1,
                    heads: 2,
                }),
                &[5],
                16,
            ),
        ];
        for (config, shape, expected) in cases {
            let mut store = ParamStore::new(0, &dev);
            let encoder = Encoder::new(&mut store, 0, &config, shape, 16)?;
            let mut dims = vec![2];
            dims.extend_from_slice(shape);
            let z = encoder.forward(&Tensor::ones(dims, DType::F32, &dev)?, true)?;
            assert_eq!(z.dims(), [2, expected], "{config:?}");
            assert_eq!(Encoder::output_dim(&config, 16), expected);
            assert!(store
                .params()
                .iter()
                .all(|p| p.owner == Owner::Modality(0) && p.role == Role::Encoder));
        }
        Ok(())
    }

    #[test]
    fn image_encoders_refuse_vectors() {
        let mut store = ParamStore::new(0, &Device::Cpu);
        let err = Encoder::new(&mut store, 1, &EncoderConfig::Resnet18, &[76], 16)
            .err()
            .unwrap();
        assert!(err.to_string().contains("modality 1 is [76]"), "{err}");
    }
}
