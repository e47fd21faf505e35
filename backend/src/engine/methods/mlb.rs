//! The MLB (Multi-Loss Balanced) gradient coefficients.
//!
//! Kontras et al., "Improving Multimodal Learning with Multi-Loss Gradient Modulation",
//! BMVC 2024. From the confidences s_m of the unimodal heads on the true class:
//! r_m = mean_{n != m} s_n / s_m and k_m = 1 + tanh(alpha (r_m - 1)), so the weaker modality
//! (r_m > 1) is accelerated and the stronger one decelerated; k_m -> 1 as the heads converge.
//! The journal version (IJCV 2025) caps the acceleration with beta:
//! k_m = 1 + (beta - 1) tanh(alpha (r_m - 1)) when r_m > 1.

use balancelab_shared::{CoefficientTarget, MlbConfig};
use candle_core::backprop::GradStore;
use candle_core::Result;

use super::{weighted_sum, Balancer, Objective, StepContext};
use crate::engine::nn::ParamStore;

/// Gradient coefficient k_m of every modality from the confidences s_m (each in (0, 1]):
/// k_m = 1 + tanh(alpha (r_m - 1)) with r_m = mean_{n != m} s_n / s_m (the paper's Eq. 4-5),
/// the acceleration (r_m > 1) scaled by beta - 1 when `beta` is given.
///
/// ```
/// use balancelab::engine::methods::mlb::mlb_coefficients;
///
/// // The audio head is twice as confident as the video head: audio slows, video speeds up.
/// let k = mlb_coefficients(&[0.8, 0.4], 0.8, None);
/// assert!((k[0] - (1.0 + (-0.4f64).tanh())).abs() < 1e-12);
/// assert!((k[1] - (1.0 + 0.8f64.tanh())).abs() < 1e-12);
/// // Equally confident heads are left alone.
/// assert_eq!(mlb_coefficients(&[0.6, 0.6], 0.8, None), [1.0, 1.0]);
/// ```
pub fn mlb_coefficients(confidences: &[f64], alpha: f64, beta: Option<f64>) -> Vec<f64> {
    let m = confidences.len();
    let total: f64 = confidences.iter().sum();
    confidences
        .iter()
        .map(|&s| {
            let others = (total - s) / (m - 1) as f64;
            // A head that has collapsed to zero confidence is the weakest possible: saturate.
            let ratio = others / s.max(f64::MIN_POSITIVE);
            let gain = match beta {
                Some(beta) if ratio > 1.0 => beta - 1.0,
                _ => 1.0,
            };
            1.0 + gain * (alpha * (ratio - 1.0)).tanh()
        })
        .collect()
}

/// MLB: multi-loss, every parameter a modality owns (encoder, head, fusion part) scaled by k_m.
pub struct Mlb {
    config: MlbConfig,
    target: CoefficientTarget,
}

impl Mlb {
    /// MLB as configured, its coefficients applied to `target`.
    pub fn new(config: MlbConfig, target: CoefficientTarget) -> Self {
        Self { config, target }
    }
}

impl Balancer for Mlb {
    fn coefficient_target(&self) -> CoefficientTarget {
        self.target
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        let loss = weighted_sum(step.fused_loss.clone(), step.unimodal_losses, |_| 1.0)?;
        let after_end = self.config.end_epoch.is_some_and(|end| step.epoch > end);
        let active = step.epoch >= self.config.start_epoch && !after_end;
        let coefficients =
            active.then(|| mlb_coefficients(step.confidences, self.config.alpha, self.config.beta));
        Ok(Objective { loss, coefficients })
    }

    fn modulate(
        &mut self,
        params: &ParamStore,
        grads: &mut GradStore,
        k: Option<&[f64]>,
    ) -> Result<()> {
        match (k, self.target) {
            (Some(k), CoefficientTarget::Gradients) => params.scale_gradients(grads, k),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancelab_shared::MethodConfig;

    use crate::engine::methods::balancer;
    use crate::engine::methods::fixtures::{modulated, objective, ratio};
    use crate::engine::nn::Owner;

    fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{actual:?} != {expected:?}");
        }
    }

    #[test]
    fn two_modalities_match_hand_computed_values() {
        // s = (0.8, 0.4), alpha = 0.8:
        // r_0 = 0.4/0.8 = 0.5 -> k_0 = 1 + tanh(-0.4) = 1 - 0.379948962255225 = 0.620051037744775
        // r_1 = 0.8/0.4 = 2.0 -> k_1 = 1 + tanh(0.8)  = 1 + 0.664036770267849 = 1.664036770267849
        let k = mlb_coefficients(&[0.8, 0.4], 0.8, None);
        assert_close(&k, &[0.620051037744775, 1.664036770267849]);
    }

    #[test]
    fn three_modalities_compare_with_the_mean_of_the_others() {
        // s = (0.9, 0.6, 0.3), alpha = 2:
        // r_0 = 0.45/0.9 = 0.5  -> 1 + tanh(-1)   = 0.238405844044235
        // r_1 = 0.6/0.6  = 1    -> 1
        // r_2 = 0.75/0.3 = 2.5  -> 1 + tanh(3)    = 1.99505475368673
        let k = mlb_coefficients(&[0.9, 0.6, 0.3], 2.0, None);
        assert_close(&k, &[0.238405844044235, 1.0, 1.99505475368673]);
    }

    #[test]
    fn beta_scales_only_the_acceleration() {
        // s = (0.8, 0.4), alpha = 0.5, beta = 10:
        // r_0 = 0.5 -> 1 + tanh(-0.25)    = 1 - 0.244918662403709 = 0.755081337596291
        // r_1 = 2.0 -> 1 + 9 tanh(0.5)    = 1 + 9 * 0.462117157260010 = 5.15905441534009
        let k = mlb_coefficients(&[0.8, 0.4], 0.5, Some(10.0));
        assert_close(&k, &[0.755081337596291, 5.15905441534009]);
    }

    #[test]
    fn balanced_modalities_are_left_alone() {
        assert_close(&mlb_coefficients(&[0.7, 0.7], 5.0, None), &[1.0, 1.0]);
    }

    #[test]
    fn a_collapsed_head_saturates_instead_of_dividing_by_zero() {
        let k = mlb_coefficients(&[0.5, 0.0], 0.8, None);
        assert!((k[1] - 2.0).abs() < 1e-12 && (k[0] - (1.0 + (-0.8f64).tanh())).abs() < 1e-12);
    }

    #[test]
    fn mlb_scales_exactly_what_each_modality_owns() -> Result<()> {
        let mut mlb = Mlb {
            config: MlbConfig::default(),
            target: CoefficientTarget::Gradients,
        };
        let (store, before, after) = modulated(&mut mlb, &[0.5, 2.0])?;
        for param in store.params() {
            let expected = match param.owner {
                Owner::Modality(0) => 0.5,
                Owner::Modality(_) => 2.0,
                Owner::Shared => 1.0,
            };
            let r = ratio(&after[&param.name], &before[&param.name])?;
            assert!((r - expected).abs() < 1e-6, "{}: {r}", param.name);
        }
        // As a learning-rate multiplier, the gradients are left alone.
        let mut mlb = Mlb {
            config: MlbConfig::default(),
            target: CoefficientTarget::LearningRate,
        };
        let (_, before, after) = modulated(&mut mlb, &[0.5, 2.0])?;
        assert_eq!(ratio(&after["head0.weight"], &before["head0.weight"])?, 1.0);
        Ok(())
    }

    #[test]
    fn mlb_balances_only_inside_its_epoch_window() -> Result<()> {
        let mut mlb = balancer(
            &MethodConfig::Mlb(MlbConfig {
                start_epoch: 2,
                end_epoch: Some(3),
                ..MlbConfig::default()
            }),
            CoefficientTarget::Gradients,
            0,
            2,
        );
        let mut windows = Vec::new();
        for epoch in 1..=4 {
            windows.push(
                objective(mlb.as_mut(), epoch, &[0.8, 0.4])?
                    .0
                    .coefficients
                    .is_some(),
            );
        }
        assert_eq!(windows, [false, true, true, false]);
        Ok(())
    }
}
