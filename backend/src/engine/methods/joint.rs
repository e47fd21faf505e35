//! Joint training: the fused head's cross-entropy alone, L = CE(f(x), y), as the papers'
//! baseline. The unimodal heads are linear probes: they learn from their own losses, which
//! reach only the heads, so their accuracy measures what each encoder learned without
//! changing it. MMCosine trains this way too (its difference is in the fusion layer, see
//! [`super::mmcosine`]).

use candle_core::Result;

use super::{Balancer, Objective, StepContext};

/// Joint training (and MMCosine's objective).
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
