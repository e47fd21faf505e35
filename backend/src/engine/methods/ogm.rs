//! OGM's coefficients (Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient
//! Modulation", CVPR 2022), for two modalities: audio = 0, video = 1 as in the paper.
//!
//! With the late-fusion layer split into per-modality parts o_m = A_m z_m + b/2, the score
//! of a modality is s_m = sum_b softmax(o_m)_b[y_b] and rho = s_video / s_audio. The dominant
//! modality (rho > 1: video) is slowed down by k = 1 - tanh(alpha relu(x)) and the other keeps
//! k = 1, where x = rho in the authors' public code and x = rho - 1 in a reading of the
//! paper's equation ([`OgmRatio`]).

use balancelab_shared::{OgmConfig, OgmRatio};
use candle_core::backprop::GradStore;
use candle_core::{bail, Result, Tensor, D};
use candle_nn::ops::softmax;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::{Balancer, Objective, StepContext};
use crate::engine::nn::{Owner, ParamStore, Role};

/// s_m = sum_b softmax(part + bias/2)_b[y_b], with no gradient.
pub fn ogm_score(part: &Tensor, fusion_bias: &Tensor, labels: &Tensor) -> Result<f64> {
    let logits = part
        .detach()
        .broadcast_add(&(fusion_bias.detach() * 0.5)?)?;
    let probabilities = softmax(&logits, D::Minus1)?;
    let on_true = probabilities.gather(&labels.unsqueeze(1)?, 1)?;
    Ok(on_true.sum_all()?.to_scalar::<f32>()? as f64)
}

/// `[k_audio, k_video]` from the scores `[s_audio, s_video]`: with rho the dominant
/// modality's score over the other's, the dominant one gets k = 1 - tanh(alpha relu(x))
/// (the paper's Eq. 10; x = rho in the public code, rho - 1 in the paper's reading) and
/// the other k = 1.
///
/// ```
/// use balancelab::engine::methods::ogm::ogm_coefficients;
/// use balancelab_shared::OgmRatio;
///
/// // Video scores twice as high as audio: video is slowed, audio left alone.
/// let k = ogm_coefficients([30.0, 60.0], 0.8, OgmRatio::Paper);
/// assert_eq!(k[0], 1.0);
/// assert!((k[1] - (1.0 - 0.8f64.tanh())).abs() < 1e-12);
/// ```
pub fn ogm_coefficients(scores: [f64; 2], alpha: f64, ratio: OgmRatio) -> [f64; 2] {
    let slow = |rho: f64| {
        let x = match ratio {
            OgmRatio::PublicCode => rho,
            OgmRatio::Paper => rho - 1.0,
        };
        1.0 - (alpha * x.max(0.0)).tanh()
    };
    let rho_video = scores[1] / scores[0].max(f64::MIN_POSITIVE);
    if rho_video > 1.0 {
        [1.0, slow(rho_video)]
    } else {
        [slow(1.0 / rho_video.max(f64::MIN_POSITIVE)), 1.0]
    }
}

/// OGM / OGM-GE: trained on the fused loss; the encoders' weight gradients are scaled, and
/// with GE get Gaussian noise, as the public code does for its conv weights.
pub struct Ogm {
    config: OgmConfig,
    seed: u64,
    /// Seed of this step's GE noise, derived from the step index so that a resumed run
    /// draws the same noise.
    noise_seed: u64,
}

impl Ogm {
    /// OGM as configured; `seed` drives OGM-GE's noise.
    pub fn new(config: OgmConfig, seed: u64) -> Self {
        Self {
            config,
            seed,
            noise_seed: seed,
        }
    }
}

impl Balancer for Ogm {
    fn trains_unimodal_heads(&self) -> bool {
        false
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        self.noise_seed = self.seed ^ step.step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let loss = step.fused_loss.clone();
        if self.config.end_epoch.is_some_and(|end| step.epoch > end) {
            return Ok(Objective {
                loss,
                coefficients: None,
            });
        }
        let (Some(parts), Some(bias)) = (&step.outputs.fusion_parts, step.model.fusion_bias())
        else {
            bail!("OGM needs a late fusion layer with a bias");
        };
        let scores = [
            ogm_score(&parts[0], bias, step.labels)?,
            ogm_score(&parts[1], bias, step.labels)?,
        ];
        let k = ogm_coefficients(scores, self.config.alpha, self.config.ratio);
        Ok(Objective {
            loss,
            coefficients: Some(k.to_vec()),
        })
    }

    fn modulate(
        &mut self,
        params: &ParamStore,
        grads: &mut GradStore,
        k: Option<&[f64]>,
    ) -> Result<()> {
        let Some(k) = k else {
            return Ok(());
        };
        // One normal sample per encoder weight per step: a fast generator matters here.
        let mut rng = SmallRng::seed_from_u64(self.noise_seed);
        for param in params.params() {
            let (Owner::Modality(m), Role::Encoder) = (param.owner, param.role) else {
                continue;
            };
            let tensor = param.var.as_tensor();
            if tensor.rank() < 2 {
                continue;
            }
            let Some(grad) = grads.remove(tensor) else {
                continue;
            };
            let mut modulated = (&grad * k[m])?;
            if self.config.generalization_enhancement {
                let std = unbiased_std(&grad)? + 1e-8;
                let noise: Vec<f32> = (0..grad.elem_count())
                    .map(|_| std as f32 * rng.sample::<f32, _>(StandardNormal))
                    .collect();
                modulated = (modulated + Tensor::from_vec(noise, grad.shape(), grad.device())?)?;
            }
            grads.insert(tensor, modulated);
        }
        Ok(())
    }
}

/// Standard deviation with Bessel's correction, as `torch.Tensor.std()`.
fn unbiased_std(t: &Tensor) -> Result<f64> {
    let n = t.elem_count() as f64;
    let centered = t.broadcast_sub(&t.mean_all()?)?;
    let sum_sq = centered.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    Ok((sum_sq / (n - 1.0).max(1.0)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::engine::methods::fixtures::{modulated, ratio};
    use candle_core::Device;

    fn assert_close(actual: [f64; 2], expected: [f64; 2]) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{actual:?} != {expected:?}");
        }
    }

    #[test]
    fn the_dominant_modality_is_slowed() {
        // s = (30, 60), alpha = 0.8: rho_video = 2.
        // public code: 1 - tanh(1.6) = 1 - 0.921668554406471 = 0.078331445593529
        // paper:       1 - tanh(0.8) = 1 - 0.664036770267849 = 0.335963229732151
        let public = ogm_coefficients([30.0, 60.0], 0.8, OgmRatio::PublicCode);
        assert_close(public, [1.0, 0.078331445593529]);
        let paper = ogm_coefficients([30.0, 60.0], 0.8, OgmRatio::Paper);
        assert_close(paper, [1.0, 0.335963229732151]);
        // Swapped scores: audio dominates (rho_audio = 2) and is the one slowed.
        let swapped = ogm_coefficients([60.0, 30.0], 0.8, OgmRatio::PublicCode);
        assert_close(swapped, [0.078331445593529, 1.0]);
    }

    #[test]
    fn equal_scores_slow_audio_only_in_the_public_code_reading() {
        // rho = 1 is not > 1, so audio counts as dominant: public code 1 - tanh(0.8).
        assert_close(
            ogm_coefficients([5.0, 5.0], 0.8, OgmRatio::PublicCode),
            [0.335963229732151, 1.0],
        );
        assert_close(
            ogm_coefficients([5.0, 5.0], 0.8, OgmRatio::Paper),
            [1.0, 1.0],
        );
    }

    #[test]
    fn score_sums_the_true_class_probability_with_half_the_bias() -> Result<()> {
        // part = [[0, 0], [ln 3, 0]], bias = [0, 0]: softmax rows (0.5, 0.5) and (0.75, 0.25).
        // Labels (0, 0): s = 0.5 + 0.75 = 1.25.
        let dev = Device::Cpu;
        let part = Tensor::new(&[[0f32, 0.0], [3f32.ln(), 0.0]], &dev)?;
        let bias = Tensor::new(&[0f32, 0.0], &dev)?;
        let labels = Tensor::new(&[0u32, 0], &dev)?;
        assert!((ogm_score(&part, &bias, &labels)? - 1.25).abs() < 1e-6);
        // A bias of (2 ln 3, 0) adds ln 3 to class 0's logit: rows (0.75, 0.25), (0.9, 0.1).
        let bias = Tensor::new(&[2.0 * 3f32.ln(), 0.0], &dev)?;
        assert!((ogm_score(&part, &bias, &labels)? - 1.65).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn ogm_scales_encoder_weights_only() -> Result<()> {
        let mut ogm = Ogm {
            config: OgmConfig {
                generalization_enhancement: false,
                ..OgmConfig::default()
            },
            seed: 0,
            noise_seed: 0,
        };
        let (_, before, after) = modulated(&mut ogm, &[0.25, 1.0])?;
        for (name, expected) in [
            ("encoder0.0.weight", 0.25),
            ("encoder0.1.weight", 0.25),
            ("encoder0.0.bias", 1.0),
            ("head0.weight", 1.0),
            ("fusion.slice0", 1.0),
            ("encoder1.0.weight", 1.0),
        ] {
            let r = ratio(&after[name], &before[name])?;
            assert!((r - expected).abs() < 1e-6, "{name}: {r}");
        }
        Ok(())
    }

    #[test]
    fn ogm_ge_adds_noise_with_the_gradients_std() -> Result<()> {
        let mut ogm = Ogm {
            config: OgmConfig::default(),
            seed: 0,
            noise_seed: 0,
        };
        let (_, before, after) = modulated(&mut ogm, &[0.5, 1.0])?;
        // encoder1.1.weight is 32 x 64: the added noise has the gradient's std, within 10%.
        let g = &before["encoder1.1.weight"];
        let noise = (&after["encoder1.1.weight"] - g)?;
        let (expected, seen) = (unbiased_std(g)?, unbiased_std(&noise)?);
        assert!((seen / expected - 1.0).abs() < 0.1, "{seen} vs {expected}");
        let unchanged = (&after["head1.weight"] - &before["head1.weight"])?;
        assert_eq!(unchanged.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }
}
