//! Metric records a training run produces.

use serde::{Deserialize, Serialize};

/// Metrics of one optimisation step. Vectors hold one value per modality, in model order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub epoch: u32,
    /// Global step index, starting at 0.
    pub step: u64,
    /// Total training loss of the step (fused plus unimodal terms, as the method defines it).
    pub loss: f64,
    /// Gradient coefficient k_m applied to each modality's parameters (1 when not balancing).
    pub coefficients: Vec<f64>,
    /// Mean confidence s_m of each unimodal head on the true class.
    pub confidences: Vec<f64>,
}

/// Accuracy of the fused output and of each unimodal head on one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitAccuracy {
    pub fused: f64,
    pub unimodal: Vec<f64>,
}

/// Metrics of one finished epoch (epochs count from 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: u32,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Mean k_m over the epoch's steps.
    pub coefficients: Vec<f64>,
    /// Mean s_m over the epoch's steps.
    pub confidences: Vec<f64>,
    pub test: SplitAccuracy,
    /// Wall time since the run started.
    pub elapsed_seconds: f64,
}
