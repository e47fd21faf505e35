//! The run as a whole: [`RunConfig`] and its defaults.

use serde::{Deserialize, Serialize};

use super::{DatasetConfig, MethodConfig};
use crate::device::{ComputeDevice, Precision};
use crate::model::ModelConfig;
use crate::optim::{CoefficientTarget, OptimizerConfig, ScheduleConfig};

/// A complete, reproducible description of one training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// The data the run trains and is tested on.
    pub dataset: DatasetConfig,
    /// How the modalities are trained together (the balancing method).
    pub method: MethodConfig,
    /// Encoders and fusion head.
    pub model: ModelConfig,
    /// The optimiser and its settings.
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes over the epochs.
    pub schedule: ScheduleConfig,
    /// What the method's coefficients k_m multiply.
    pub coefficients_scale: CoefficientTarget,
    /// Epochs to train (fewer if early stopping ends the run).
    pub epochs: u32,
    /// Training samples per optimisation step.
    pub batch_size: u32,
    /// Base learning rate of the optimiser, before the schedule.
    pub learning_rate: f64,
    /// Fraction of every class of the training split held out for validation (0: none).
    /// Early stopping, MSLR and the imbalance measure need it.
    pub validation_fraction: f64,
    /// Stop when validation accuracy has not improved for this many epochs.
    pub early_stopping_patience: Option<u32>,
    /// Seed of the weight initialisation, the batch order and any noise the method draws.
    pub seed: u64,
    /// Where the run executes; `cuda:N` needs a build with the `cuda` feature and a GPU.
    pub device: ComputeDevice,
    /// The arithmetic of matrix products and convolutions; `tf32` needs a CUDA device.
    pub precision: Precision,
    /// What a step whose loss is not finite (NaN or infinite) does to the run.
    pub on_divergence: OnDivergence,
}

/// What a run does when its loss stops being a finite number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnDivergence {
    /// Fail at once, saying at which step: every later step would be NaN too.
    #[default]
    Fail,
    /// Go on training (and recording NaN), for those studying the divergence itself.
    Continue,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetConfig::default(),
            method: MethodConfig::default(),
            model: ModelConfig::default(),
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
            coefficients_scale: CoefficientTarget::default(),
            epochs: 20,
            batch_size: 64,
            learning_rate: 0.01,
            validation_fraction: 0.1,
            early_stopping_patience: None,
            seed: 0,
            device: ComputeDevice::Cpu,
            precision: Precision::Fp32,
            on_divergence: OnDivergence::Fail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_is_the_default_config() {
        let config: RunConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, RunConfig::default());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        for json in [
            r#"{"epoch": 3}"#,
            r#"{"method": {"kind": "mlb", "epoch": 3}}"#,
            r#"{"dataset": {"kind": "synthetic", "epoch": 3}}"#,
        ] {
            let err = serde_json::from_str::<RunConfig>(json).unwrap_err();
            assert!(err.to_string().contains("unknown field `epoch`"), "{err}");
        }
    }
}
