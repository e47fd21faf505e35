//! Balancing methods behind one trait, one file per method with its maths and its
//! [`Balancer`] together.
//!
//! Each step the method builds the objective from the step's outputs (computing its
//! per-modality coefficients k_m on the way), then may transform the gradients between
//! backward and the optimiser step. Which parameters it touches is decided from their
//! recorded [`Owner`] and [`Role`], never from their names.
//!
//! - [`joint`]: the fused loss alone, the unimodal heads as probes (the baseline); also a
//!   unimodal run's, whose model gives one head's output as the fused one.
//! - [`multi_loss`]: the fused loss plus every unimodal head's.
//! - [`mlb`]: multi-loss with the coefficients k_m of Kontras et al. (BMVC 2024).
//! - [`ogm`]: OGM / OGM-GE (Peng et al., CVPR 2022).
//! - [`agm`]: AGM (Li et al., ICCV 2023).
//! - [`mslr`]: modality-specific learning rates (Yao & Mihalcea, 2022).
//! - [`mmcosine`]: MMCosine's cosine fusion (Xu et al., ICASSP 2023).
//! - [`pmr`]: prototypical modal rebalance (Fan et al., CVPR 2023).
//!
//! The coefficient functions are public, so the methods can be used without the trainer.

pub mod agm;
pub mod joint;
pub mod mlb;
pub mod mmcosine;
pub mod mslr;
pub mod multi_loss;
pub mod ogm;
pub mod pmr;

#[cfg(test)]
mod fixtures;

use balancelab_shared::{CoefficientTarget, MethodConfig, SplitScores};
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};

use crate::engine::nn::{MultimodalModel, Outputs, ParamStore, Pass};
#[cfg(doc)]
use crate::engine::nn::{Owner, Role};
use crate::engine::train::Split;

/// What a method sees of one training step.
pub struct StepContext<'a> {
    /// Epoch of the step, from 1.
    pub epoch: u32,
    /// Global step index, from 0.
    pub step: u64,
    /// The model being trained.
    pub model: &'a MultimodalModel,
    /// How the step's forward pass was run.
    pub pass: Pass,
    /// The batch: one input per modality, and the labels.
    pub inputs: &'a [Tensor],
    /// Class index of every sample of the batch.
    pub labels: &'a Tensor,
    /// The forward pass's outputs.
    pub outputs: &'a Outputs,
    /// Cross-entropy of the fused output.
    pub fused_loss: &'a Tensor,
    /// Cross-entropy of each unimodal head.
    pub unimodal_losses: &'a [Tensor],
    /// s_m of every unimodal head.
    pub confidences: &'a [f64],
}

/// The loss a method minimises this step and the coefficients it applies.
pub struct Objective {
    /// What backward runs on.
    pub loss: Tensor,
    /// k_m per modality, when the method computed them this step.
    pub coefficients: Option<Vec<f64>>,
}

/// A balancing method as the trainer drives it.
pub trait Balancer: Send {
    /// Whether the unimodal heads' losses train the encoders; if not, the heads are probes.
    fn trains_unimodal_heads(&self) -> bool {
        true
    }

    /// What the coefficients multiply; the trainer hands learning-rate multipliers to the
    /// optimiser, gradient coefficients are applied by [`Balancer::modulate`].
    fn coefficient_target(&self) -> CoefficientTarget {
        CoefficientTarget::Gradients
    }

    /// The loss to minimise this step and the coefficients k_m applied to it.
    fn objective(&mut self, step: &StepContext) -> Result<Objective>;

    /// Transforms the gradients between backward and the optimiser step.
    fn modulate(&mut self, _: &ParamStore, _: &mut GradStore, _: Option<&[f64]>) -> Result<()> {
        Ok(())
    }

    /// Called before every epoch with the model and the training split.
    fn start_epoch(
        &mut self,
        _model: &MultimodalModel,
        _train: &Split,
        _classes: usize,
    ) -> Result<()> {
        Ok(())
    }

    /// Called after every epoch with the validation scores, when there is a validation split.
    fn end_epoch(&mut self, _validation: Option<&SplitScores>) {}

    /// State that must survive a checkpoint.
    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }

    /// Takes back what [`Balancer::state`] saved.
    fn restore(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// The balancing method a run configuration names; `seed` drives any randomness it has.
pub fn balancer(
    method: &MethodConfig,
    target: CoefficientTarget,
    seed: u64,
    modalities: usize,
) -> Box<dyn Balancer> {
    match method {
        // A unimodal run differs in its model: one head's output is the fused one.
        MethodConfig::Unimodal(_) | MethodConfig::Joint | MethodConfig::MmCosine(_) => {
            Box::new(joint::Joint)
        }
        MethodConfig::MultiLoss(config) => Box::new(multi_loss::MultiLoss(config.clone())),
        MethodConfig::Mlb(config) => Box::new(mlb::Mlb::new(config.clone(), target)),
        MethodConfig::Ogm(config) => Box::new(ogm::Ogm::new(config.clone(), seed)),
        MethodConfig::Agm(config) => Box::new(agm::Agm::new(config.clone())),
        MethodConfig::Pmr(config) => Box::new(pmr::Pmr::new(config.alpha)),
        MethodConfig::Mslr(config) => Box::new(mslr::Mslr::new(config, modalities)),
    }
}

/// sum_m weights[m] * losses[m], plus `first`.
pub(crate) fn weighted_sum(
    first: Tensor,
    losses: &[Tensor],
    weight: impl Fn(usize) -> f64,
) -> Result<Tensor> {
    let mut total = first;
    for (m, loss) in losses.iter().enumerate() {
        let w = weight(m);
        if w != 0.0 {
            total = (total + (loss * w)?)?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancelab_shared::{AgmConfig, MlbConfig, MultiLossConfig, OgmConfig, OgmRatio};

    #[test]
    fn methods_say_whether_heads_train_the_encoders() {
        let heads = |method: MethodConfig| {
            balancer(&method, CoefficientTarget::Gradients, 0, 2).trains_unimodal_heads()
        };
        assert!(!heads(MethodConfig::Joint));
        assert!(heads(MethodConfig::MultiLoss(MultiLossConfig::default())));
        assert!(heads(MethodConfig::Mlb(MlbConfig::default())));
        let ogm = OgmConfig {
            ratio: OgmRatio::Paper,
            ..OgmConfig::default()
        };
        assert!(!heads(MethodConfig::Ogm(ogm)));
        assert!(!heads(MethodConfig::Agm(AgmConfig::default())));
        assert!(heads(MethodConfig::Mslr(Default::default())));
        assert!(!heads(MethodConfig::MmCosine(Default::default())));
        assert!(!heads(MethodConfig::Pmr(Default::default())));
    }
}
