//! SGD with momentum, as PyTorch's `torch.optim.SGD` (no dampening, no Nesterov).
//!
//! candle-nn's `SGD` has no momentum, and momentum is how the paper's baselines train.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

pub struct SgdMomentum {
    params: Vec<(Var, Option<Tensor>)>,
    lr: f64,
    momentum: f64,
}

impl SgdMomentum {
    pub fn new(vars: Vec<Var>, lr: f64, momentum: f64) -> Self {
        Self {
            params: vars.into_iter().map(|v| (v, None)).collect(),
            lr,
            momentum,
        }
    }

    /// buf <- momentum * buf + grad (buf <- grad on the first step); p <- p - lr * buf.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (var, buffer) in &mut self.params {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let update = match buffer.take() {
                Some(buf) => ((buf * self.momentum)? + grad)?,
                None => grad.clone(),
            };
            var.set(&(var.as_tensor() - (&update * self.lr)?)?)?;
            *buffer = Some(update);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_torch_sgd_with_momentum() -> Result<()> {
        // Minimising sum(w^2) from w = 1 with lr 0.1, momentum 0.9; torch.optim.SGD gives
        // w = 0.8 after step 1 (buf = 2.0) and 0.46 after step 2 (buf = 0.9*2 + 1.6 = 3.4).
        let w = Var::new(&[1.0f32], &Device::Cpu)?;
        let mut opt = SgdMomentum::new(vec![w.clone()], 0.1, 0.9);
        let mut seen = Vec::new();
        for _ in 0..2 {
            let grads = w.as_tensor().sqr()?.sum_all()?.backward()?;
            opt.step(&grads)?;
            seen.push(w.as_tensor().to_vec1::<f32>()?[0]);
        }
        assert!(
            (seen[0] - 0.8).abs() < 1e-6 && (seen[1] - 0.46).abs() < 1e-6,
            "{seen:?}"
        );
        Ok(())
    }
}
