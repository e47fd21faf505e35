//! MSLR's per-modality learning-rate multipliers (Yao & Mihalcea, "Modality-specific
//! Learning Rates for Effective Multimodal Additive Late-fusion", Findings of ACL 2022).
//!
//! After every epoch, k_m = initial_m * acc_m / mean(last K validation accuracies of m),
//! this epoch's included: a modality improving faster than its recent average speeds up.

use balancelab_shared::{CoefficientTarget, MslrConfig, SplitScores};
use candle_core::Result;
use serde::{Deserialize, Serialize};

use super::{weighted_sum, Balancer, Objective, StepContext};

/// The multipliers and the validation history they come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MslrState {
    /// initial_m, the multipliers before any epoch.
    pub initial: Vec<f64>,
    /// K: how many recent epochs the mean covers.
    pub window: usize,
    /// Validation accuracy of every unimodal head after each epoch so far.
    pub history: Vec<Vec<f64>>,
    /// This epoch's k_m.
    pub coefficients: Vec<f64>,
}

impl MslrState {
    /// No epochs yet: k = `initial`.
    pub fn new(initial: Vec<f64>, window: usize) -> Self {
        Self {
            coefficients: initial.clone(),
            initial,
            window,
            history: Vec::new(),
        }
    }

    /// Records an epoch's unimodal validation accuracies and updates k:
    /// k_m = initial_m acc_m / mean(last K accuracies of m).
    ///
    /// ```
    /// use balancelab::engine::methods::mslr::MslrState;
    ///
    /// let mut state = MslrState::new(vec![1.0, 1.0], 2);
    /// state.end_epoch(&[0.5, 0.4]);
    /// // Audio improved from 0.5 to 0.7 (mean 0.6), video stayed: audio's rate rises.
    /// state.end_epoch(&[0.7, 0.4]);
    /// assert!((state.coefficients[0] - 0.7 / 0.6).abs() < 1e-12);
    /// assert_eq!(state.coefficients[1], 1.0);
    /// ```
    pub fn end_epoch(&mut self, accuracies: &[f64]) {
        self.history.push(accuracies.to_vec());
        let recent = &self.history[self.history.len().saturating_sub(self.window)..];
        for (m, k) in self.coefficients.iter_mut().enumerate() {
            let mean = recent.iter().map(|acc| acc[m]).sum::<f64>() / recent.len() as f64;
            *k = if mean > 0.0 {
                self.initial[m] * accuracies[m] / mean
            } else {
                self.initial[m]
            };
        }
    }
}

/// MSLR: the multi-loss with per-modality learning-rate multipliers set from validation.
pub struct Mslr(MslrState);

impl Mslr {
    /// MSLR as configured for `modalities` modalities, before any epoch.
    pub fn new(config: &MslrConfig, modalities: usize) -> Self {
        let initial = (0..modalities)
            .map(|m| config.initial_multiplier(m))
            .collect();
        Self(MslrState::new(initial, config.window as usize))
    }
}

impl Balancer for Mslr {
    fn coefficient_target(&self) -> CoefficientTarget {
        CoefficientTarget::LearningRate
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        Ok(Objective {
            loss: weighted_sum(step.fused_loss.clone(), step.unimodal_losses, |_| 1.0)?,
            coefficients: Some(self.0.coefficients.clone()),
        })
    }

    fn end_epoch(&mut self, validation: Option<&SplitScores>) {
        if let Some(validation) = validation {
            self.0.end_epoch(&validation.unimodal);
        }
    }

    fn state(&self) -> Result<serde_json::Value> {
        serde_json::to_value(&self.0).map_err(candle_core::Error::wrap)
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        self.0 = serde_json::from_value(state.clone()).map_err(candle_core::Error::wrap)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_track_accuracy_against_the_recent_mean() {
        let mut state = MslrState::new(vec![0.9, 1.1], 2);
        assert_eq!(state.coefficients, [0.9, 1.1]);
        // One epoch: each accuracy is its own mean, k = initial.
        state.end_epoch(&[0.5, 0.4]);
        assert_eq!(state.coefficients, [0.9, 1.1]);
        // Window 2: k_0 = 0.9 * 0.7 / 0.6 = 1.05; k_1 = 1.1 * 0.4 / 0.4 = 1.1.
        state.end_epoch(&[0.7, 0.4]);
        assert!((state.coefficients[0] - 1.05).abs() < 1e-12);
        assert!((state.coefficients[1] - 1.1).abs() < 1e-12);
        // The first epoch left the window: k_0 = 0.9 * 0.7 / 0.7.
        state.end_epoch(&[0.7, 0.2]);
        assert!((state.coefficients[0] - 0.9).abs() < 1e-12);
        assert!((state.coefficients[1] - 1.1 * 0.2 / 0.3).abs() < 1e-12);
    }
}
