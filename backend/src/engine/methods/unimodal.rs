//! One modality alone, the papers' unimodal rows (audio only, video only): modality m's
//! encoder and head trained on the head's cross-entropy, L = CE(u_m, y). The model passes
//! the head's logits on as the fused output (see [`MultimodalModel::alone`]), so the fused
//! loss is that cross-entropy and every fused score is the modality's own; the other heads
//! are probes of encoders that nothing trains.

use candle_core::Result;

#[cfg(doc)]
use crate::engine::nn::MultimodalModel;

use super::{Balancer, Objective, StepContext};

/// Unimodal training.
pub struct Unimodal;

impl Balancer for Unimodal {
    fn trains_unimodal_heads(&self) -> bool {
        false
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        Ok(Objective {
            loss: step.fused_loss.clone(),
            coefficients: None,
        })
    }
}
