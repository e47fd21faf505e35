//! Multi-loss training: L = w_f CE(f(x), y) + sum_m w_m CE(u_m(x_m), y), the fused head's
//! loss plus every unimodal head's, so each encoder also learns on its own (the MLB paper's
//! "multi-loss" row; weights default to 1).

use balancelab_shared::MultiLossConfig;
use candle_core::Result;

use super::{weighted_sum, Balancer, Objective, StepContext};

/// Multi-loss training with the configured weights.
pub struct MultiLoss(pub MultiLossConfig);

impl Balancer for MultiLoss {
    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        let fused = (step.fused_loss * self.0.fused_weight)?;
        Ok(Objective {
            loss: weighted_sum(fused, step.unimodal_losses, |m| self.0.unimodal_weight(m))?,
            coefficients: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use balancelab_shared::{CoefficientTarget, MethodConfig};

    use super::*;
    use crate::engine::methods::balancer;
    use crate::engine::methods::fixtures::objective;

    #[test]
    fn multi_loss_weights_its_terms() -> Result<()> {
        let config = MultiLossConfig {
            fused_weight: 2.0,
            unimodal_weights: vec![0.0, 0.0],
        };
        let mut ml = balancer(
            &MethodConfig::MultiLoss(config),
            CoefficientTarget::Gradients,
            0,
            2,
        );
        let (objective, fused_loss) = objective(ml.as_mut(), 1, &[0.5, 0.5])?;
        let (loss, fused) = (
            objective.loss.to_scalar::<f32>()?,
            fused_loss.to_scalar::<f32>()?,
        );
        assert!((loss - 2.0 * fused).abs() < 1e-5);
        Ok(())
    }
}
