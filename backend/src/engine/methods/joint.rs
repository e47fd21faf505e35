//! Joint training: the fused head's cross-entropy alone, L = CE(f(x), y), as the papers'
//! baseline. The unimodal heads are linear probes: they learn from their own losses, which
//! reach only the heads, so their accuracy measures what each encoder learned without
//! changing it. MMCosine trains this way too (its difference is in the fusion layer, see
//! [`super::mmcosine`]), and so does a unimodal run: its model passes one head's logits on
//! as the fused output ([`MultimodalModel::alone`]), so the fused loss is that head's, L =
//! CE(u_m, y), and the other heads probe encoders that nothing trains.

use candle_core::Result;

use super::{Balancer, Objective, StepContext};
#[cfg(doc)]
use crate::engine::nn::MultimodalModel;

/// Joint training (and MMCosine's and a unimodal run's objective).
pub struct Joint;

impl Balancer for Joint {
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
