//! Optimisers as PyTorch defines them: SGD with momentum and L2 weight decay, Adam, AdamW.
//!
//! candle-nn's SGD has no momentum and its AdamW no L2 form; both are how the paper and its
//! baselines train. Each step takes a learning rate per modality, so a method's coefficients
//! can act on the learning rate instead of the gradient (which Adam would normalise away).

use std::collections::HashMap;

use balancelab_shared::OptimizerConfig;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

use crate::engine::nn::{Owner, ParamStore};
use crate::engine::ops::optim_step;

struct Slot {
    name: String,
    owner: Owner,
    var: Var,
    /// SGD's momentum buffer, or Adam's first moment.
    first: Option<Tensor>,
    /// Adam's second moment.
    second: Option<Tensor>,
    steps: u64,
}

/// SGD (with momentum) or Adam / AdamW as PyTorch computes them, with each parameter's state.
pub struct Optimizer {
    config: OptimizerConfig,
    slots: Vec<Slot>,
}

impl Optimizer {
    /// The optimiser `config` names, over every parameter of `params`, with no state yet.
    pub fn new(config: &OptimizerConfig, params: &ParamStore) -> Self {
        let slots = params
            .params()
            .iter()
            .map(|p| Slot {
                name: p.name.clone(),
                owner: p.owner,
                var: p.var.clone(),
                first: None,
                second: None,
                steps: 0,
            })
            .collect();
        Self {
            config: config.clone(),
            slots,
        }
    }

    /// One update with learning rate `lr`, multiplied for modality m's parameters by
    /// `lr_scale[m]` when given. Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64, lr_scale: Option<&[f64]>) -> Result<()> {
        for slot in &mut self.slots {
            // Detached: a gradient can still reference the forward graph, and a state that
            // kept it would keep every step's graph alive.
            let Some(grad) = grads.get(slot.var.as_tensor()).map(Tensor::detach) else {
                continue;
            };
            let lr = match (slot.owner, lr_scale) {
                (Owner::Modality(m), Some(scale)) => lr * scale[m],
                _ => lr,
            };
            slot.steps += 1;
            if slot.var.device().is_cpu() {
                let grad = grad.contiguous()?;
                if slot.step_in_place(&self.config, &grad, lr)? {
                    continue;
                }
            }
            let updated = slot.stepped(&self.config, &grad, lr)?;
            slot.var.set(&updated)?;
        }
        Ok(())
    }

    /// The optimiser's state as named tensors, for checkpoints.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut state = Vec::new();
        for slot in &self.slots {
            // Copies: the CPU kernels update the moments in place.
            if let Some(first) = &slot.first {
                state.push((format!("optimizer.{}.first", slot.name), first.copy()?));
            }
            if let Some(second) = &slot.second {
                state.push((format!("optimizer.{}.second", slot.name), second.copy()?));
            }
            let steps = Tensor::new(&[slot.steps as i64], slot.var.device())?;
            state.push((format!("optimizer.{}.steps", slot.name), steps));
        }
        Ok(state)
    }

    /// Restores what [`Optimizer::state`] saved.
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for slot in &mut self.slots {
            let get = |what: &str| {
                tensors
                    .get(&format!("optimizer.{}.{what}", slot.name))
                    .cloned()
            };
            slot.first = get("first");
            slot.second = get("second");
            if let Some(steps) = get("steps") {
                slot.steps = steps.to_vec1::<i64>()?[0] as u64;
            }
        }
        Ok(())
    }
}

impl Slot {
    /// The updated parameter, from tensor ops (any device).
    fn stepped(&mut self, config: &OptimizerConfig, grad: &Tensor, lr: f64) -> Result<Tensor> {
        let p = self.var.as_tensor();
        Ok(match config {
            OptimizerConfig::Sgd(sgd) => {
                let grad = with_l2(grad, p, sgd.weight_decay)?;
                let direction = if sgd.momentum == 0.0 {
                    grad
                } else {
                    let buf = match self.first.take() {
                        Some(buf) => ((buf * sgd.momentum)? + grad)?,
                        None => grad,
                    };
                    let buf = buf.detach();
                    self.first = Some(buf.clone());
                    buf
                };
                (p - (direction * lr)?)?
            }
            OptimizerConfig::Adam(adam) | OptimizerConfig::AdamW(adam) => {
                let decoupled = matches!(config, OptimizerConfig::AdamW(_));
                let (grad, p) = if decoupled {
                    (grad.clone(), (p * (1.0 - lr * adam.weight_decay))?)
                } else {
                    (with_l2(grad, p, adam.weight_decay)?, p.clone())
                };
                let zeros = || grad.zeros_like();
                let m = self.first.take().map_or_else(zeros, Ok)?;
                let v = self.second.take().map_or_else(zeros, Ok)?;
                let m = ((m * adam.beta1)? + (&grad * (1.0 - adam.beta1))?)?;
                let v = ((v * adam.beta2)? + (grad.sqr()? * (1.0 - adam.beta2))?)?;
                let t = self.steps as i32;
                let m_hat = (&m / (1.0 - adam.beta1.powi(t)))?;
                let v_hat = (&v / (1.0 - adam.beta2.powi(t)))?;
                let update = (m_hat / (v_hat.sqrt()? + adam.eps)?)?;
                self.first = Some(m.detach());
                self.second = Some(v.detach());
                (p - (update * lr)?)?
            }
        })
    }

    /// The update in place with the CPU kernels; false where they do not apply.
    fn step_in_place(&mut self, config: &OptimizerConfig, grad: &Tensor, lr: f64) -> Result<bool> {
        let p = self.var.as_tensor();
        let lr = lr as f32;
        match config {
            OptimizerConfig::Sgd(sgd) if sgd.momentum == 0.0 => {
                if !optim_step::applies(&[p, grad]) {
                    return Ok(false);
                }
                let l2 = sgd.weight_decay as f32;
                optim_step::SgdStep { lr, l2 }.apply(p, grad)?;
            }
            OptimizerConfig::Sgd(sgd) => {
                let buf = state_or_zeros(&mut self.first, p)?;
                if !optim_step::applies(&[p, grad, &buf]) {
                    return Ok(false);
                }
                let momentum = optim_step::Moment {
                    decay: sgd.momentum as f32,
                    weight: 1.0,
                    squared: false,
                    l2: sgd.weight_decay as f32,
                };
                momentum.update(&buf, grad, p)?;
                optim_step::SgdStep { lr, l2: 0.0 }.apply(p, &buf)?;
            }
            OptimizerConfig::Adam(adam) | OptimizerConfig::AdamW(adam) => {
                let first = state_or_zeros(&mut self.first, p)?;
                let second = state_or_zeros(&mut self.second, p)?;
                if !optim_step::applies(&[p, grad, &first, &second]) {
                    return Ok(false);
                }
                let decoupled = matches!(config, OptimizerConfig::AdamW(_));
                let weight_decay = adam.weight_decay as f32;
                let l2 = if decoupled { 0.0 } else { weight_decay };
                let moment = |beta: f64, squared| optim_step::Moment {
                    decay: beta as f32,
                    weight: (1.0 - beta) as f32,
                    squared,
                    l2,
                };
                moment(adam.beta1, false).update(&first, grad, p)?;
                moment(adam.beta2, true).update(&second, grad, p)?;
                let t = self.steps as i32;
                let step = optim_step::AdamStep {
                    lr,
                    eps: adam.eps as f32,
                    c1: (1.0 - adam.beta1.powi(t)) as f32,
                    c2: (1.0 - adam.beta2.powi(t)) as f32,
                    decay: if decoupled { weight_decay } else { 0.0 },
                };
                step.apply(p, &first, &second)?;
            }
        }
        Ok(true)
    }
}

/// An optimiser state, zeros before the first step.
fn state_or_zeros(state: &mut Option<Tensor>, like: &Tensor) -> Result<Tensor> {
    match state {
        Some(state) => Ok(state.clone()),
        None => Ok(state.insert(like.zeros_like()?).clone()),
    }
}

fn with_l2(grad: &Tensor, p: &Tensor, weight_decay: f64) -> Result<Tensor> {
    if weight_decay == 0.0 {
        Ok(grad.clone())
    } else {
        grad + (p * weight_decay)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nn::Role;
    use crate::engine::ops::cpu_storage::relative;
    use balancelab_shared::{AdamConfig, SgdConfig};
    use candle_core::Device;

    /// Minimises sum(w^2) from w = 1 for two steps with lr 0.1; returns w after each.
    fn descend(config: OptimizerConfig, lr_scale: Option<&[f64]>) -> Result<Vec<f32>> {
        let mut store = ParamStore::new(0, &Device::Cpu);
        let w = store.constant("w", (Owner::Modality(0), Role::Encoder), &[1], 1.0)?;
        let mut opt = Optimizer::new(&config, &store);
        let mut seen = Vec::new();
        for _ in 0..2 {
            let grads = w.sqr()?.sum_all()?.backward()?;
            opt.step(&grads, 0.1, lr_scale)?;
            seen.push(w.to_vec1::<f32>()?[0]);
        }
        Ok(seen)
    }

    fn close(seen: &[f32], expected: &[f32]) -> bool {
        seen.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6)
    }

    /// The CPU kernels against the tensor ops other devices use, over a few steps of random
    /// gradients, for every optimiser with and without weight decay.
    #[test]
    fn in_place_kernels_match_the_tensor_ops() -> Result<()> {
        let dev = Device::Cpu;
        let adam = |weight_decay| AdamConfig {
            weight_decay,
            ..AdamConfig::default()
        };
        let sgd = |momentum, weight_decay| {
            OptimizerConfig::Sgd(SgdConfig {
                momentum,
                weight_decay,
            })
        };
        for config in [
            sgd(0.0, 0.0),
            sgd(0.0, 1e-2),
            sgd(0.9, 1e-2),
            OptimizerConfig::Adam(adam(0.0)),
            OptimizerConfig::Adam(adam(1e-2)),
            OptimizerConfig::AdamW(adam(1e-2)),
        ] {
            let start = Tensor::randn(0f32, 1.0, (3, 50_000), &dev)?;
            let slot = |var| Slot {
                name: "w".into(),
                owner: Owner::Shared,
                var,
                first: None,
                second: None,
                steps: 0,
            };
            let mut kernels = slot(Var::from_tensor(&start)?);
            let mut ops = slot(Var::from_tensor(&start)?);
            for _ in 0..3 {
                let grad = Tensor::randn(0f32, 1.0, start.shape(), &dev)?;
                kernels.steps += 1;
                ops.steps += 1;
                assert!(kernels.step_in_place(&config, &grad, 0.05)?);
                let updated = ops.stepped(&config, &grad, 0.05)?;
                ops.var.set(&updated)?;
            }
            let error = relative(kernels.var.as_tensor(), ops.var.as_tensor())?;
            assert!(error < 1e-6, "{config:?}: {error}");
            // The same state: none for SGD without momentum.
            assert_eq!(kernels.first.is_some(), ops.first.is_some(), "{config:?}");
            assert_eq!(kernels.second.is_some(), ops.second.is_some(), "{config:?}");
            assert_ne!(relative(kernels.var.as_tensor(), &start)?, 0.0);
        }
        Ok(())
    }

    #[test]
    fn sgd_matches_torch() -> Result<()> {
        // torch.optim.SGD(momentum=0.9): w = 0.8 (buf 2.0), then 0.46 (buf 0.9*2 + 1.6).
        let sgd = |weight_decay| {
            OptimizerConfig::Sgd(SgdConfig {
                momentum: 0.9,
                weight_decay,
            })
        };
        let seen = descend(sgd(0.0), None)?;
        assert!(close(&seen, &[0.8, 0.46]), "{seen:?}");
        // weight_decay 0.5 adds 0.5 w: buf 2.5, w = 0.75; buf 2.25 + 1.875 = 4.125, w = 0.3375.
        let seen = descend(sgd(0.5), None)?;
        assert!(close(&seen, &[0.75, 0.3375]), "{seen:?}");
        // A learning-rate multiplier of 2 for modality 0: w = 0.6, then 0.6 - 0.2*(1.8+1.2).
        let seen = descend(sgd(0.0), Some(&[2.0]))?;
        assert!(close(&seen, &[0.6, 0.0]), "{seen:?}");
        Ok(())
    }

    #[test]
    fn adam_and_adamw_match_torch() -> Result<()> {
        // torch.optim.Adam(lr=0.1): step 1 moves by lr exactly (0.9); step 2: m = 0.36,
        // v = 0.007236, bias-corrected 1.894737 / sqrt(3.619810) -> w = 0.8004122.
        let seen = descend(OptimizerConfig::Adam(AdamConfig::default()), None)?;
        assert!(close(&seen, &[0.9, 0.800_412_2]), "{seen:?}");
        // AdamW(weight_decay=0.1): w = 1 * (1 - 0.01) - 0.1 = 0.89 after step 1.
        let adamw = AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::default()
        };
        let seen = descend(OptimizerConfig::AdamW(adamw.clone()), None)?;
        assert!((seen[0] - 0.89).abs() < 1e-6, "{seen:?}");
        // Adam's L2 form changes the gradient, not the first step's size: 0.9.
        let seen = descend(OptimizerConfig::Adam(adamw), None)?;
        assert!((seen[0] - 0.9).abs() < 1e-6, "{seen:?}");
        Ok(())
    }
}
