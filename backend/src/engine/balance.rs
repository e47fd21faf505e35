//! Balancing methods behind one trait.
//!
//! Each step the trainer asks the method for per-modality coefficients k_m from the step's
//! outputs, then lets it transform the gradients between backward and the optimiser step.
//! Which parameters a method touches is decided from their recorded [`Owner`] and [`Role`].

use balancelab_shared::{MethodConfig, MlbConfig, OgmConfig};
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::mlb::mlb_coefficients;
use super::model::Outputs;
use super::ogm::{ogm_coefficients, ogm_score};
use super::params::{Owner, ParamStore, Role};

/// What a method sees of one training step.
pub struct StepOutputs<'a> {
    /// Epoch of the step, from 1.
    pub epoch: u32,
    pub labels: &'a Tensor,
    pub outputs: &'a Outputs,
    pub fusion_bias: &'a Tensor,
    /// s_m of every unimodal head (the trainer computes them for its metrics anyway).
    pub confidences: &'a [f64],
}

pub trait Balancer: Send {
    /// Whether the unimodal heads' losses train the encoders; if not, the heads are probes.
    fn trains_unimodal_heads(&self) -> bool {
        true
    }

    /// k_m of every modality for this step, or `None` when the method leaves the step alone.
    fn coefficients(&mut self, step: &StepOutputs) -> Result<Option<Vec<f64>>>;

    /// Applies the step's coefficients to the gradients.
    fn modulate(&mut self, params: &ParamStore, grads: &mut GradStore, k: &[f64]) -> Result<()>;
}

/// The balancing method a run configuration names; `seed` drives any randomness it has.
pub fn balancer(method: &MethodConfig, seed: u64) -> Box<dyn Balancer> {
    match method {
        MethodConfig::Joint => Box::new(Unbalanced { heads_train: false }),
        MethodConfig::MultiLoss => Box::new(Unbalanced { heads_train: true }),
        MethodConfig::Mlb(config) => Box::new(Mlb(config.clone())),
        MethodConfig::Ogm(config) => Box::new(Ogm {
            config: config.clone(),
            rng: StdRng::seed_from_u64(seed),
        }),
    }
}

/// Joint training (heads are probes) and plain multi-loss: no modulation.
struct Unbalanced {
    heads_train: bool,
}

impl Balancer for Unbalanced {
    fn trains_unimodal_heads(&self) -> bool {
        self.heads_train
    }

    fn coefficients(&mut self, _: &StepOutputs) -> Result<Option<Vec<f64>>> {
        Ok(None)
    }

    fn modulate(&mut self, _: &ParamStore, _: &mut GradStore, _: &[f64]) -> Result<()> {
        Ok(())
    }
}

/// MLB: multi-loss, every parameter a modality owns (encoder, head, fusion slice) scaled by k_m.
struct Mlb(MlbConfig);

impl Balancer for Mlb {
    fn coefficients(&mut self, step: &StepOutputs) -> Result<Option<Vec<f64>>> {
        let after_end = self.0.end_epoch.is_some_and(|end| step.epoch > end);
        if step.epoch < self.0.start_epoch || after_end {
            return Ok(None);
        }
        Ok(Some(mlb_coefficients(
            step.confidences,
            self.0.alpha,
            self.0.beta,
        )))
    }

    fn modulate(&mut self, params: &ParamStore, grads: &mut GradStore, k: &[f64]) -> Result<()> {
        params.scale_gradients(grads, k)
    }
}

/// OGM / OGM-GE: trained on the fused loss; the encoders' weight gradients are scaled, and
/// with GE get Gaussian noise, as the public code does for its conv weights.
struct Ogm {
    config: OgmConfig,
    rng: StdRng,
}

impl Balancer for Ogm {
    fn trains_unimodal_heads(&self) -> bool {
        false
    }

    fn coefficients(&mut self, step: &StepOutputs) -> Result<Option<Vec<f64>>> {
        if self.config.end_epoch.is_some_and(|end| step.epoch > end) {
            return Ok(None);
        }
        let parts = &step.outputs.fusion_parts;
        let scores = [
            ogm_score(&parts[0], step.fusion_bias, step.labels)?,
            ogm_score(&parts[1], step.fusion_bias, step.labels)?,
        ];
        let k = ogm_coefficients(scores, self.config.alpha, self.config.ratio);
        Ok(Some(k.to_vec()))
    }

    fn modulate(&mut self, params: &ParamStore, grads: &mut GradStore, k: &[f64]) -> Result<()> {
        for param in params.params() {
            let (Owner::Modality(m), Role::Encoder) = (param.owner, param.role) else {
                continue;
            };
            let tensor = param.var.as_tensor();
            if tensor.rank() < 2 {
                continue;
            }
            let Some(grad) = grads.remove(tensor) else {
                continue;
            };
            let mut modulated = (&grad * k[m])?;
            if self.config.generalization_enhancement {
                let std = unbiased_std(&grad)? + 1e-8;
                let noise: Vec<f32> = (0..grad.elem_count())
                    .map(|_| std as f32 * self.rng.sample::<f32, _>(StandardNormal))
                    .collect();
                modulated = (modulated + Tensor::from_vec(noise, grad.shape(), grad.device())?)?;
            }
            grads.insert(tensor, modulated);
        }
        Ok(())
    }
}

/// Standard deviation with Bessel's correction, as `torch.Tensor.std()`.
fn unbiased_std(t: &Tensor) -> Result<f64> {
    let n = t.elem_count() as f64;
    let centered = t.broadcast_sub(&t.mean_all()?)?;
    let sum_sq = centered.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    Ok((sum_sq / (n - 1.0).max(1.0)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::LateFusionMlp;
    use balancelab_shared::OgmRatio;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    /// A two-modality model, one backward pass of the sum of its outputs, and the gradients.
    fn gradients() -> Result<(ParamStore, GradStore)> {
        let dev = Device::Cpu;
        let mut store = ParamStore::new(0, &dev);
        let model = LateFusionMlp::new(&mut store, &[8, 8], 32, 4)?;
        let x = Tensor::randn(0f32, 1.0, (16, 8), &dev)?;
        let out = model.forward(&[x.clone(), (x * 2.0)?], false)?;
        let mut loss = out.fused.sum_all()?;
        for u in &out.unimodal {
            loss = (loss + u.sqr()?.sum_all()?)?;
        }
        let grads = loss.backward()?;
        Ok((store, grads))
    }

    /// Every parameter's gradient by name.
    fn by_name(store: &ParamStore, grads: &GradStore) -> HashMap<String, Tensor> {
        store
            .params()
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    grads.get(p.var.as_tensor()).unwrap().clone(),
                )
            })
            .collect()
    }

    fn ratio(a: &Tensor, b: &Tensor) -> Result<f64> {
        let a = a.flatten_all()?.to_vec1::<f32>()?;
        let b = b.flatten_all()?.to_vec1::<f32>()?;
        let i = b.iter().position(|v| v.abs() > 1e-6).unwrap();
        Ok((a[i] / b[i]) as f64)
    }

    #[test]
    fn ogm_scales_encoder_weights_only() -> Result<()> {
        let (store, mut grads) = gradients()?;
        let before = by_name(&store, &grads);
        let mut ogm = Ogm {
            config: OgmConfig {
                generalization_enhancement: false,
                ..OgmConfig::default()
            },
            rng: StdRng::seed_from_u64(0),
        };
        ogm.modulate(&store, &mut grads, &[0.25, 1.0])?;
        let after = by_name(&store, &grads);
        for (name, expected) in [
            ("encoder0.0.weight", 0.25),
            ("encoder0.1.weight", 0.25),
            ("encoder0.0.bias", 1.0),
            ("head0.weight", 1.0),
            ("fusion.slice0", 1.0),
            ("encoder1.0.weight", 1.0),
        ] {
            let r = ratio(&after[name], &before[name])?;
            assert!((r - expected).abs() < 1e-6, "{name}: {r}");
        }
        Ok(())
    }

    #[test]
    fn ogm_ge_adds_noise_with_the_gradients_std() -> Result<()> {
        let (store, mut grads) = gradients()?;
        let before = by_name(&store, &grads);
        let mut ogm = Ogm {
            config: OgmConfig::default(),
            rng: StdRng::seed_from_u64(0),
        };
        ogm.modulate(&store, &mut grads, &[0.5, 1.0])?;
        let after = by_name(&store, &grads);
        // encoder1.1.weight is 32 x 32: the added noise has the gradient's std, within 10%.
        let g = &before["encoder1.1.weight"];
        let noise = (&after["encoder1.1.weight"] - g)?;
        let (expected, seen) = (unbiased_std(g)?, unbiased_std(&noise)?);
        assert!((seen / expected - 1.0).abs() < 0.1, "{seen} vs {expected}");
        let unchanged = (&after["head1.weight"] - &before["head1.weight"])?;
        assert_eq!(unchanged.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    #[test]
    fn mlb_balances_only_inside_its_epoch_window() -> Result<()> {
        let dev = Device::Cpu;
        let labels = Tensor::zeros(1, DType::U32, &dev)?;
        let bias = Tensor::zeros(2, DType::F32, &dev)?;
        let outputs = Outputs {
            unimodal: Vec::new(),
            fused: bias.clone(),
            fusion_parts: Vec::new(),
        };
        let mut mlb = balancer(
            &MethodConfig::Mlb(MlbConfig {
                start_epoch: 2,
                end_epoch: Some(3),
                ..MlbConfig::default()
            }),
            0,
        );
        let active = |epoch| {
            let step = StepOutputs {
                epoch,
                labels: &labels,
                outputs: &outputs,
                fusion_bias: &bias,
                confidences: &[0.8, 0.4],
            };
            mlb.coefficients(&step).map(|k| k.is_some())
        };
        let windows: Vec<bool> = (1..=4).map(active).collect::<Result<_>>()?;
        assert_eq!(windows, [false, true, true, false]);
        Ok(())
    }

    #[test]
    fn methods_say_whether_heads_train_the_encoders() {
        let heads = |method: MethodConfig| balancer(&method, 0).trains_unimodal_heads();
        assert!(!heads(MethodConfig::Joint));
        assert!(heads(MethodConfig::MultiLoss));
        assert!(heads(MethodConfig::Mlb(MlbConfig::default())));
        let ogm = OgmConfig {
            ratio: OgmRatio::Paper,
            ..OgmConfig::default()
        };
        assert!(!heads(MethodConfig::Ogm(ogm)));
    }
}
