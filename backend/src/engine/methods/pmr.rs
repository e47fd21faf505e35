//! PMR (Fan et al., "PMR: Prototypical Modal Rebalance for Multimodal Learning", CVPR 2023),
//! for two modalities: audio = 0, video = 1.
//!
//! At the start of every epoch each modality's class prototypes c_m^k are the mean features
//! of class k over the training split. Prototype logits are negative Euclidean distances
//! -||z_m - c_m^k||; the score s_m = sum_b softmax(prototype logits)_b[y_b]. With
//! rho = s_a / s_v, the weaker modality's prototype cross-entropy is added with weight alpha:
//! the video's when rho > 1, the audio's when rho < 1 (the authors' code).

use candle_core::{DType, Result, Tensor, D};
use candle_nn::loss::cross_entropy;
use candle_nn::ops::softmax;

use super::{Balancer, Objective, StepContext};

use crate::engine::nn::MultimodalModel;
use crate::engine::train::Split;

/// Class means of each modality's features over `split` in evaluation mode: one
/// `[classes, dim_m]` tensor per modality (a class without samples gets zeros).
pub fn prototypes(model: &MultimodalModel, split: &Split, classes: usize) -> Result<Vec<Tensor>> {
    let device = split.labels.device();
    let mut sums: Option<Vec<Tensor>> = None;
    for batch in split.in_order(split.evaluation_batch()) {
        let (inputs, labels) = batch?;
        // [classes, batch] one-hot, so that one matmul sums every class's features.
        let one_hot = Tensor::arange(0u32, classes as u32, device)?
            .unsqueeze(1)?
            .broadcast_eq(&labels.unsqueeze(0)?)?
            .to_dtype(DType::F32)?;
        let features = model.features(&inputs, false)?;
        let batch_sums = (features.iter())
            .map(|z| one_hot.matmul(&z.detach()))
            .collect::<Result<Vec<_>>>()?;
        sums = Some(match sums {
            None => batch_sums,
            Some(sums) => (sums.iter().zip(&batch_sums))
                .map(|(a, b)| a + b)
                .collect::<Result<_>>()?,
        });
    }
    let labels = split.labels.to_vec1::<u32>()?;
    let mut counts = vec![0f32; classes];
    for y in labels {
        counts[y as usize] += 1.0;
    }
    let counts = Tensor::from_vec(counts, (classes, 1), device)?.clamp(1f32, f32::MAX)?;
    match sums {
        Some(sums) => sums.iter().map(|s| s.broadcast_div(&counts)).collect(),
        None => candle_core::bail!("PMR needs a non-empty training split"),
    }
}

/// -||z_b - c_k|| for every sample b and class k: `[batch, classes]`.
pub fn prototype_logits(features: &Tensor, prototypes: &Tensor) -> Result<Tensor> {
    let diff = features
        .unsqueeze(1)?
        .broadcast_sub(&prototypes.unsqueeze(0)?)?;
    // The epsilon keeps the square root differentiable at a prototype.
    (diff.sqr()?.sum(D::Minus1)? + 1e-12)?.sqrt()?.neg()
}

/// s = sum_b softmax(logits)_b[y_b], with no gradient.
pub fn prototype_score(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let probabilities = softmax(&logits.detach(), D::Minus1)?;
    let on_true = probabilities.gather(&labels.unsqueeze(1)?, 1)?;
    Ok(on_true.sum_all()?.to_scalar::<f32>()? as f64)
}

/// Weights of the prototype cross-entropies `[audio, video]` from the scores `[s_a, s_v]`:
/// alpha for the weaker modality (rho = s_a / s_v; the video's when rho > 1), 0 for the
/// other (the paper's Eq. 9-10 as the authors' code applies them).
///
/// ```
/// use balancelab::engine::methods::pmr::pmr_weights;
///
/// assert_eq!(pmr_weights([8.0, 4.0], 0.5), [0.0, 0.5]);
/// assert_eq!(pmr_weights([4.0, 4.0], 0.5), [0.0, 0.0]);
/// ```
pub fn pmr_weights(scores: [f64; 2], alpha: f64) -> [f64; 2] {
    let rho = scores[0] / scores[1].max(f64::MIN_POSITIVE);
    if rho > 1.0 {
        [0.0, alpha]
    } else if rho < 1.0 {
        [alpha, 0.0]
    } else {
        [0.0, 0.0]
    }
}

/// PMR (see [`pmr_weights`]): the fused loss plus the weaker modality's prototype loss.
pub struct Pmr {
    alpha: f64,
    /// This epoch's class prototypes of each modality.
    prototypes: Vec<Tensor>,
}

impl Pmr {
    /// PMR with prototype-loss weight `alpha`; prototypes come at the first epoch.
    pub fn new(alpha: f64) -> Self {
        Self {
            alpha,
            prototypes: Vec::new(),
        }
    }
}

impl Balancer for Pmr {
    fn trains_unimodal_heads(&self) -> bool {
        false
    }

    fn start_epoch(
        &mut self,
        model: &MultimodalModel,
        train: &Split,
        classes: usize,
    ) -> Result<()> {
        self.prototypes = prototypes(model, train, classes)?;
        Ok(())
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        let logits = (step.outputs.features.iter().zip(&self.prototypes))
            .map(|(z, c)| prototype_logits(z, c))
            .collect::<Result<Vec<_>>>()?;
        let scores = [
            prototype_score(&logits[0], step.labels)?,
            prototype_score(&logits[1], step.labels)?,
        ];
        let weights = pmr_weights(scores, self.alpha);
        let mut loss = step.fused_loss.clone();
        for (logits, w) in logits.iter().zip(weights) {
            if w > 0.0 {
                loss = (loss + (cross_entropy(logits, step.labels)? * w)?)?;
            }
        }
        // Reported as 1 + weight: which modality is being pushed, and how hard.
        Ok(Objective {
            loss,
            coefficients: Some(weights.iter().map(|w| 1.0 + w).collect()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn logits_are_negative_distances_to_the_prototypes() -> Result<()> {
        let dev = Device::Cpu;
        let z = Tensor::new(&[[0f32, 0.0], [3.0, 4.0]], &dev)?;
        let c = Tensor::new(&[[0f32, 0.0], [3.0, 0.0]], &dev)?;
        let logits = prototype_logits(&z, &c)?.to_vec2::<f32>()?;
        // Distances by hand: (0, 3) and (5, 4).
        for (row, expected) in logits.iter().zip([[0.0, -3.0], [-5.0, -4.0]]) {
            for (a, e) in row.iter().zip(expected) {
                assert!((a - e).abs() < 1e-5, "{logits:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn the_weaker_modality_gets_the_prototype_loss() {
        assert_eq!(pmr_weights([8.0, 4.0], 0.5), [0.0, 0.5]);
        assert_eq!(pmr_weights([4.0, 8.0], 0.5), [0.5, 0.0]);
        assert_eq!(pmr_weights([4.0, 4.0], 0.5), [0.0, 0.0]);
    }
}
