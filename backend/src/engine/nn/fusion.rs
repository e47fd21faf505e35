//! Fusion heads: how the modalities' features z_m become multimodal logits f.
//!
//! Each part that reads one modality only is owned by that modality, so balancing methods
//! scale it with the modality's encoder; everything that mixes modalities is shared.

use balancelab_shared::FusionKind;
use candle_core::{Result, Tensor, D};
use candle_nn::ops::sigmoid;
use candle_nn::{Linear, Module};

use super::params::{Owner, ParamStore, Role};
use super::transformer::{layer_norm, LayerNorm, TransformerBlock};
use crate::engine::methods::mmcosine::cosine_logits;

/// Width of the mid, gated and transformer fusions' hidden representation.
pub const WIDTH: usize = 64;
const TRANSFORMER_HEADS: usize = 4;

/// How the modalities' features become multimodal logits (see [`FusionKind`]).
pub enum Fusion {
    /// f = sum_m A_m z_m + b, or with a cosine scale s: f = s sum_m cos(z_m, rows of A_m).
    Late {
        /// A_m, owned by modality m.
        slices: Vec<Tensor>,
        /// b; none for MMCosine.
        bias: Option<Tensor>,
        /// MMCosine's s.
        cosine_scale: Option<f64>,
    },
    /// The projected features summed, then an MLP.
    Mid {
        /// Each modality's projection, owned by it.
        projections: Vec<Linear>,
        /// Hidden layer over the sum.
        hidden: Linear,
        /// Output layer.
        out: Linear,
    },
    /// z_0 gives scale and shift for z_1.
    Film {
        /// z_0 to `[gamma; beta]`.
        condition: Linear,
        /// Output layer over `gamma * z_1 + beta`.
        out: Linear,
    },
    /// sigmoid(gate(z_0)) multiplies value(z_1).
    Gated {
        /// The gate from z_0.
        gate: Linear,
        /// The value from z_1.
        value: Linear,
        /// Output layer.
        out: Linear,
    },
    /// One token per modality plus a class token through a transformer block.
    Transformer {
        /// Each modality's projection to a token, owned by it.
        projections: Vec<Linear>,
        /// Added to each modality's token.
        modality_embeddings: Vec<Tensor>,
        /// The class token, whose output is classified.
        cls: Tensor,
        /// The transformer block.
        block: TransformerBlock,
        /// Layer norm of the class token's output.
        norm: LayerNorm,
        /// Output layer.
        out: Linear,
    },
    /// The unimodal heads' logits summed.
    Decision,
}

/// The fused logits and, for late fusion, each modality's share of them.
pub struct Fused {
    /// f, `[batch, classes]`.
    pub logits: Tensor,
    /// A_m z_m per modality (late fusion only), what OGM scores.
    pub parts: Option<Vec<Tensor>>,
}

impl Fusion {
    /// `dims[m]` is the width of z_m. `cosine_scale` turns late fusion into MMCosine's.
    pub fn new(
        store: &mut ParamStore,
        kind: FusionKind,
        dims: &[usize],
        classes: usize,
        cosine_scale: Option<f64>,
    ) -> Result<Self> {
        let shared = (Owner::Shared, Role::Fusion);
        let owned = |m: usize| (Owner::Modality(m), Role::Fusion);
        Ok(match kind {
            FusionKind::Late => {
                // Initialised with the fan-in of the whole concatenation, as one nn.Linear is.
                let bound = 1.0 / (dims.iter().sum::<usize>() as f32).sqrt();
                let slices = (dims.iter().enumerate())
                    .map(|(m, &d)| {
                        store.uniform(&format!("fusion.slice{m}"), owned(m), &[classes, d], bound)
                    })
                    .collect::<Result<_>>()?;
                let bias = match cosine_scale {
                    Some(_) => None,
                    None => Some(store.uniform("fusion.bias", shared, &[classes], bound)?),
                };
                Self::Late {
                    slices,
                    bias,
                    cosine_scale,
                }
            }
            FusionKind::Mid => Self::Mid {
                projections: (dims.iter().enumerate())
                    .map(|(m, &d)| {
                        store.linear(&format!("fusion.projection{m}"), owned(m), d, WIDTH, true)
                    })
                    .collect::<Result<_>>()?,
                hidden: store.linear("fusion.hidden", shared, WIDTH, WIDTH, true)?,
                out: store.linear("fusion.out", shared, WIDTH, classes, true)?,
            },
            FusionKind::Film => Self::Film {
                condition: store.linear("fusion.film", owned(0), dims[0], 2 * dims[1], true)?,
                out: store.linear("fusion.out", shared, dims[1], classes, true)?,
            },
            FusionKind::Gated => Self::Gated {
                gate: store.linear("fusion.gate", owned(0), dims[0], WIDTH, true)?,
                value: store.linear("fusion.value", owned(1), dims[1], WIDTH, true)?,
                out: store.linear("fusion.out", shared, WIDTH, classes, true)?,
            },
            FusionKind::Transformer => Self::Transformer {
                projections: (dims.iter().enumerate())
                    .map(|(m, &d)| {
                        store.linear(&format!("fusion.projection{m}"), owned(m), d, WIDTH, true)
                    })
                    .collect::<Result<_>>()?,
                modality_embeddings: (0..dims.len())
                    .map(|m| {
                        store.normal(
                            &format!("fusion.embedding{m}"),
                            owned(m),
                            &[1, 1, WIDTH],
                            0.02,
                        )
                    })
                    .collect::<Result<_>>()?,
                cls: store.normal("fusion.cls", shared, &[1, 1, WIDTH], 0.02)?,
                block: TransformerBlock::new(
                    store,
                    "fusion.block",
                    shared,
                    WIDTH,
                    TRANSFORMER_HEADS,
                )?,
                norm: layer_norm(store, "fusion.norm", shared, WIDTH)?,
                out: store.linear("fusion.out", shared, WIDTH, classes, true)?,
            },
            FusionKind::Decision => Self::Decision,
        })
    }

    /// The shared bias b of a late fusion (OGM splits it evenly between the modalities).
    pub fn late_bias(&self) -> Option<&Tensor> {
        match self {
            Self::Late { bias, .. } => bias.as_ref(),
            _ => None,
        }
    }

    /// `features[m]` is z_m, `unimodal[m]` is u_m (decision fusion sums them).
    pub fn forward(&self, features: &[Tensor], unimodal: &[Tensor]) -> Result<Fused> {
        let logits = match self {
            Self::Late {
                slices,
                bias,
                cosine_scale,
            } => {
                let parts = (features.iter().zip(slices))
                    .map(|(z, a)| match cosine_scale {
                        Some(s) => cosine_logits(z, a, *s),
                        None => z.matmul(&a.t()?),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let mut logits = sum(&parts)?;
                if let Some(b) = bias {
                    logits = logits.broadcast_add(b)?;
                }
                return Ok(Fused {
                    logits,
                    parts: Some(parts),
                });
            }
            Self::Mid {
                projections,
                hidden,
                out,
            } => {
                let projected = (features.iter().zip(projections))
                    .map(|(z, p)| p.forward(z))
                    .collect::<Result<Vec<_>>>()?;
                sum(&projected)?.relu()?.apply(hidden)?.relu()?.apply(out)?
            }
            Self::Film { condition, out } => {
                let dim = features[1].dim(1)?;
                let film = condition.forward(&features[0])?;
                let (gamma, beta) = (
                    film.narrow(D::Minus1, 0, dim)?,
                    film.narrow(D::Minus1, dim, dim)?,
                );
                ((gamma * &features[1])? + beta)?.apply(out)?
            }
            Self::Gated { gate, value, out } => {
                let gate = sigmoid(&gate.forward(&features[0])?)?;
                (gate * value.forward(&features[1])?)?.apply(out)?
            }
            Self::Transformer {
                projections,
                modality_embeddings,
                cls,
                block,
                norm,
                out,
            } => {
                let b = features[0].dim(0)?;
                let mut tokens = vec![cls.broadcast_as((b, 1, WIDTH))?];
                for ((z, p), e) in features.iter().zip(projections).zip(modality_embeddings) {
                    tokens.push(p.forward(z)?.unsqueeze(1)?.broadcast_add(e)?);
                }
                let h = block.forward(&Tensor::cat(&tokens, 1)?)?;
                h.narrow(1, 0, 1)?.squeeze(1)?.apply(norm)?.apply(out)?
            }
            Self::Decision => sum(unimodal)?,
        };
        Ok(Fused {
            logits,
            parts: None,
        })
    }
}

fn sum(tensors: &[Tensor]) -> Result<Tensor> {
    let mut total = tensors[0].clone();
    for t in &tensors[1..] {
        total = (total + t)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn mm_cosine_logits_are_scaled_cosines() -> Result<()> {
        let dev = Device::Cpu;
        let mut store = ParamStore::new(0, &dev);
        let fusion = Fusion::new(&mut store, FusionKind::Late, &[2, 2], 2, Some(10.0))?;
        assert!(fusion.late_bias().is_none(), "MMCosine has no bias");
        // Set A_0 = [[1, 0], [0, 1]] and A_1 = [[3, 4], [0, 2]].
        let slices = [[[1f32, 0.0], [0.0, 1.0]], [[3.0, 4.0], [0.0, 2.0]]];
        for (param, values) in store.params().iter().zip(slices) {
            param.var.set(&Tensor::new(&values, &dev)?)?;
        }
        let z0 = Tensor::new(&[[2f32, 0.0]], &dev)?;
        let z1 = Tensor::new(&[[1f32, 1.0]], &dev)?;
        let fused = fusion.forward(&[z0, z1], &[])?;
        // By hand: cos(z0, rows of A_0) = (1, 0); cos(z1, (3, 4)) = 7 / (5 sqrt 2) = 0.989949,
        // cos(z1, (0, 2)) = 1 / sqrt 2 = 0.707107. Logits: 10 * (1.989949, 0.707107).
        let logits = fused.logits.to_vec2::<f32>()?;
        assert!((logits[0][0] - 19.899_49).abs() < 1e-4, "{logits:?}");
        assert!((logits[0][1] - 7.071_068).abs() < 1e-4, "{logits:?}");
        Ok(())
    }
}
