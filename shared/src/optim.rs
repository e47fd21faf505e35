//! Optimiser and learning-rate schedule of a run.

use serde::{Deserialize, Serialize};

/// The optimiser; its learning rate is the run's `learning_rate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`: L2 weight decay added to the gradient, momentum without dampening.
    Sgd(SgdConfig),
    /// `torch.optim.Adam`: L2 weight decay added to the gradient.
    Adam(AdamConfig),
    /// `torch.optim.AdamW`: decoupled weight decay.
    AdamW(AdamConfig),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::Sgd(SgdConfig::default())
    }
}

impl OptimizerConfig {
    /// The `kind` tag, as in the JSON and TOML forms (`adam_w`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd(_) => "sgd",
            Self::Adam(_) => "adam",
            Self::AdamW(_) => "adam_w",
        }
    }

    /// The weight decay, whichever the optimiser.
    pub fn weight_decay(&self) -> f64 {
        match self {
            Self::Sgd(sgd) => sgd.weight_decay,
            Self::Adam(adam) | Self::AdamW(adam) => adam.weight_decay,
        }
    }
}

/// Settings of SGD.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Momentum factor (0: plain SGD).
    pub momentum: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.9,
            weight_decay: 0.0,
        }
    }
}

/// Settings of Adam and AdamW, named as in PyTorch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    /// L2 penalty (Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    /// Decay of the running mean of the gradient.
    pub beta1: f64,
    /// Decay of the running mean of the squared gradient.
    pub beta2: f64,
    /// Added to the denominator for numerical stability.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// How the learning rate changes over epochs (stepped once per epoch, as the papers do).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// The base learning rate throughout.
    #[default]
    Constant,
    /// `torch.optim.lr_scheduler.StepLR`: lr * gamma^floor((epoch - 1) / step_size).
    Step {
        /// Epochs between two decays.
        step_size: u32,
        /// Factor of each decay.
        gamma: f64,
    },
    /// Constant until `start_epoch`, then `CosineAnnealingWarmRestarts(t_0, t_mult, eta_min)`,
    /// as the MLB authors train.
    CosineWarmRestarts {
        /// First epoch (from 1) of the cosine schedule.
        start_epoch: u32,
        /// Epochs in the first cycle.
        t_0: u32,
        /// Each cycle is this many times longer than the one before.
        t_mult: u32,
        /// The learning rate at the bottom of each cycle.
        eta_min: f64,
    },
}

impl ScheduleConfig {
    /// The learning rate of `epoch` (from 1) for a base rate `lr`.
    pub fn learning_rate(&self, lr: f64, epoch: u32) -> f64 {
        match *self {
            Self::Constant => lr,
            Self::Step { step_size, gamma } => {
                lr * gamma.powi(((epoch.max(1) - 1) / step_size.max(1)) as i32)
            }
            Self::CosineWarmRestarts {
                start_epoch,
                t_0,
                t_mult,
                eta_min,
            } => {
                if epoch < start_epoch {
                    return lr;
                }
                // Epochs since the schedule began, then position inside the current cycle.
                let (mut t, mut period) = (epoch - start_epoch, t_0.max(1));
                while t >= period {
                    t -= period;
                    period *= t_mult.max(1);
                }
                let cos = (std::f64::consts::PI * t as f64 / period as f64).cos();
                eta_min + (lr - eta_min) * (1.0 + cos) / 2.0
            }
        }
    }
}

/// What MLB's per-modality coefficients k_m multiply. (MSLR's are learning-rate multipliers
/// by definition; OGM's and AGM's act on gradients by definition.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CoefficientTarget {
    /// The gradients of the modality's parameters, between backward and the optimiser step
    /// (the papers' form; largely cancelled by Adam's per-parameter normalisation).
    #[default]
    Gradients,
    /// The learning rate of the modality's parameters, which survives Adam.
    LearningRate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lr_matches_torch() {
        // StepLR(step_size=2, gamma=0.1) from lr 1: epochs 1,2 -> 1; 3,4 -> 0.1; 5 -> 0.01.
        let s = ScheduleConfig::Step {
            step_size: 2,
            gamma: 0.1,
        };
        let lrs: Vec<f64> = (1..=5).map(|e| s.learning_rate(1.0, e)).collect();
        let expected = [1.0, 1.0, 0.1, 0.1, 0.01];
        assert!(
            lrs.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12),
            "{lrs:?}"
        );
    }

    #[test]
    fn cosine_warm_restarts_matches_torch() {
        // CosineAnnealingWarmRestarts(T_0=2, T_mult=2, eta_min=0) from lr 1, stepped per
        // epoch: 1, 0.5, 1, 0.8536, 0.5, 0.1464, 1 (torch 2.x), after 2 constant epochs.
        let s = ScheduleConfig::CosineWarmRestarts {
            start_epoch: 3,
            t_0: 2,
            t_mult: 2,
            eta_min: 0.0,
        };
        let lrs: Vec<f64> = (1..=9).map(|e| s.learning_rate(1.0, e)).collect();
        let expected = [1.0, 1.0, 1.0, 0.5, 1.0, 0.853553, 0.5, 0.146447, 1.0];
        assert!(
            lrs.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "{lrs:?}"
        );
    }
}
