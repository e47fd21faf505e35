//! AGM's coefficients (Li et al., "Boosting Multi-modal Model Performance with Adaptive
//! Gradient Modulation", ICCV 2023), for two modalities: audio = 0, video = 1.
//!
//! Unimodal outputs come from zeroing the other input (a two-player Shapley value):
//! m_a = (f(a, v) - f(0, v) + f(a, 0)) / 2 and m_v = (f(a, v) - f(a, 0) + f(0, v)) / 2, so
//! m_a + m_v = f(a, v). Their scores are cross-entropies s_m; r_a = exp(s_v - s_a), and the
//! target ratio r_hat_a = exp(mean s_v - mean s_a) uses running means over all steps so far
//! (this one included). k_a = exp(alpha min(r_hat_a - r_a, 10)); symmetric for v. The
//! fused loss is taken on k_a m_a + k_v m_v with the forward value of m_a + m_v, so k scales
//! exactly the gradient that flows through each unimodal output.

use balancelab_shared::AgmConfig;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use candle_nn::loss::cross_entropy;
use serde::{Deserialize, Serialize};

use super::{Balancer, Objective, StepContext};
use crate::engine::nn::ParamStore;

/// Running means of the two scores.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgmState {
    /// Steps seen so far.
    pub steps: u64,
    /// Running means of the scores `[s_a, s_v]`.
    pub mean_scores: [f64; 2],
}

impl AgmState {
    /// Adds the step's scores `[s_a, s_v]` and returns `[k_a, k_v]`:
    /// k_a = exp(alpha min(r_hat_a - r_a, 10)), symmetric for v (the paper's Eq. 11-12).
    ///
    /// ```
    /// use balancelab::engine::methods::agm::AgmState;
    ///
    /// let mut state = AgmState::default();
    /// // The first step is its own running mean: k = 1 for both.
    /// assert_eq!(state.coefficients([1.0, 2.0], 1.5), [1.0, 1.0]);
    /// // Audio's loss then rises above its mean: audio is pushed (k_a > 1), video held back.
    /// let [k_a, k_v] = state.coefficients([2.0, 2.0], 1.5);
    /// assert!(k_a > 1.0 && k_v < 1.0);
    /// ```
    pub fn coefficients(&mut self, scores: [f64; 2], alpha: f64) -> [f64; 2] {
        let n = self.steps as f64;
        for (mean, s) in self.mean_scores.iter_mut().zip(scores) {
            *mean = (*mean * n + s) / (n + 1.0);
        }
        self.steps += 1;
        let [s_a, s_v] = scores;
        let [mean_a, mean_v] = self.mean_scores;
        let k = |current: f64, target: f64| (alpha * (target - current).min(10.0)).exp();
        [
            k((s_v - s_a).exp(), (mean_v - mean_a).exp()),
            k((s_a - s_v).exp(), (mean_a - mean_v).exp()),
        ]
    }
}

/// AGM (see [`AgmState`]): the fused loss on modulated Shapley outputs, then gradient clipping.
pub struct Agm {
    config: AgmConfig,
    state: AgmState,
}

impl Agm {
    /// AGM as configured, from no steps.
    pub fn new(config: AgmConfig) -> Self {
        Self {
            config,
            state: AgmState::default(),
        }
    }
}

impl Balancer for Agm {
    fn trains_unimodal_heads(&self) -> bool {
        false
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        let zeroed = |m: usize| -> Result<Tensor> {
            let mut inputs = step.inputs.to_vec();
            inputs[m] = inputs[m].zeros_like()?;
            Ok(step.model.forward(&inputs, step.pass)?.fused)
        };
        let f = &step.outputs.fused;
        let (without_a, without_v) = (zeroed(0)?, zeroed(1)?);
        let m_a = ((f - &without_a)? + &without_v)?.affine(0.5, 0.0)?;
        let m_v = ((f - &without_v)? + &without_a)?.affine(0.5, 0.0)?;
        let score = |m: &Tensor| -> Result<f64> {
            Ok(cross_entropy(&m.detach(), step.labels)?.to_scalar::<f32>()? as f64)
        };
        let k = self
            .state
            .coefficients([score(&m_a)?, score(&m_v)?], self.config.alpha);
        // Forward value m_a + m_v = f; gradient through m_m scaled by k_m.
        let scaled =
            |m: &Tensor, k: f64| -> Result<Tensor> { (m * k)? - (m.detach() * (k - 1.0))? };
        let modulated = (scaled(&m_a, k[0])? + scaled(&m_v, k[1])?)?;
        Ok(Objective {
            loss: cross_entropy(&modulated, step.labels)?,
            coefficients: Some(k.to_vec()),
        })
    }

    fn modulate(
        &mut self,
        params: &ParamStore,
        grads: &mut GradStore,
        _: Option<&[f64]>,
    ) -> Result<()> {
        params.clip_gradient_norm(grads, self.config.clip_norm)
    }

    fn state(&self) -> Result<serde_json::Value> {
        serde_json::to_value(&self.state).map_err(candle_core::Error::wrap)
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(state.clone()).map_err(candle_core::Error::wrap)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancelab_shared::{CoefficientTarget, MethodConfig};

    use crate::engine::methods::balancer;
    use crate::engine::methods::fixtures::objective;

    #[test]
    fn coefficients_follow_the_running_means() {
        let mut state = AgmState::default();
        // The first step is its own mean: r_hat = r, so k = 1 for both.
        assert_eq!(state.coefficients([1.0, 2.0], 1.5), [1.0, 1.0]);
        // Step 2, scores (2.0, 2.0): means (1.5, 2.0). r_a = exp(0) = 1, r_hat_a = exp(0.5)
        // = 1.648721, k_a = exp(1.5 * 0.648721) = 2.646087; r_v = 1, r_hat_v = exp(-0.5) =
        // 0.606531, k_v = exp(1.5 * -0.393469) = 0.554214 (by hand).
        let [k_a, k_v] = state.coefficients([2.0, 2.0], 1.5);
        assert!((k_a - 2.646_087).abs() < 1e-5, "{k_a}");
        assert!((k_v - 0.554_214).abs() < 1e-5, "{k_v}");
        assert_eq!(state.mean_scores, [1.5, 2.0]);
    }

    #[test]
    fn the_exponent_is_capped_at_ten() {
        let mut state = AgmState {
            steps: 1_000_000,
            mean_scores: [0.0, 20.0],
        };
        let [k_a, _] = state.coefficients([0.0, 0.0], 1.0);
        assert!((k_a - 10f64.exp()).abs() < 1e-6 * 10f64.exp(), "{k_a}");
    }

    #[test]
    fn agm_keeps_the_fused_loss_value_and_reports_its_coefficients() -> Result<()> {
        let mut agm = balancer(
            &MethodConfig::Agm(AgmConfig::default()),
            CoefficientTarget::Gradients,
            0,
            2,
        );
        let (objective, fused_loss) = objective(agm.as_mut(), 1, &[0.5, 0.5])?;
        let (loss, fused) = (
            objective.loss.to_scalar::<f32>()?,
            fused_loss.to_scalar::<f32>()?,
        );
        assert!((loss - fused).abs() < 1e-5, "{loss} vs {fused}");
        // The first step is its own running mean: k = 1.
        assert_eq!(objective.coefficients, Some(vec![1.0, 1.0]));
        Ok(())
    }
}
