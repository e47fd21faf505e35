//! MSLR's per-modality learning-rate multipliers (Yao & Mihalcea, "Modality-specific
//! Learning Rates for Effective Multimodal Additive Late-fusion", Findings of ACL 2022).
//!
//! After every epoch, k_m = initial_m * acc_m / mean(last K validation accuracies of m),
//! this epoch's included: a modality improving faster than its recent average speeds up.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MslrState {
    pub initial: Vec<f64>,
    pub window: usize,
    /// Validation accuracy of every unimodal head after each epoch so far.
    pub history: Vec<Vec<f64>>,
    pub coefficients: Vec<f64>,
}

impl MslrState {
    pub fn new(initial: Vec<f64>, window: usize) -> Self {
        Self {
            coefficients: initial.clone(),
            initial,
            window,
            history: Vec::new(),
        }
    }

    /// Records an epoch's unimodal validation accuracies and updates k.
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
