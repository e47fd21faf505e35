//! Balancing methods behind one trait.
//!
//! Each step the method builds the objective from the step's outputs (computing its
//! per-modality coefficients k_m on the way), then may transform the gradients between
//! backward and the optimiser step. Which parameters it touches is decided from their
//! recorded [`Owner`] and [`Role`], never from their names.

use balancelab_shared::{
    AgmConfig, CoefficientTarget, MethodConfig, MlbConfig, MultiLossConfig, OgmConfig, SplitScores,
};
use candle_core::backprop::GradStore;
use candle_core::{bail, Result, Tensor};
use candle_nn::loss::cross_entropy;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::agm::AgmState;
use super::dataset::Split;
use super::mlb::mlb_coefficients;
use super::model::{MultimodalModel, Outputs, Pass};
use super::mslr::MslrState;
use super::ogm::{ogm_coefficients, ogm_score};
use super::params::{Owner, ParamStore, Role};
use super::pmr::{pmr_weights, prototype_logits, prototype_score, prototypes};

/// What a method sees of one training step.
pub struct StepContext<'a> {
    /// Epoch of the step, from 1.
    pub epoch: u32,
    /// Global step index, from 0.
    pub step: u64,
    pub model: &'a MultimodalModel,
    pub pass: Pass,
    pub inputs: &'a [Tensor],
    pub labels: &'a Tensor,
    pub outputs: &'a Outputs,
    /// Cross-entropy of the fused output and of each unimodal head.
    pub fused_loss: &'a Tensor,
    pub unimodal_losses: &'a [Tensor],
    /// s_m of every unimodal head.
    pub confidences: &'a [f64],
}

/// The loss a method minimises this step and the coefficients it applies.
pub struct Objective {
    pub loss: Tensor,
    pub coefficients: Option<Vec<f64>>,
}

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
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

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
        MethodConfig::Joint | MethodConfig::MmCosine(_) => Box::new(FusedOnly),
        MethodConfig::MultiLoss(config) => Box::new(MultiLoss(config.clone())),
        MethodConfig::Mlb(config) => Box::new(Mlb {
            config: config.clone(),
            target,
        }),
        MethodConfig::Ogm(config) => Box::new(Ogm {
            config: config.clone(),
            seed,
            noise_seed: seed,
        }),
        MethodConfig::Agm(config) => Box::new(Agm {
            config: config.clone(),
            state: AgmState::default(),
        }),
        MethodConfig::Pmr(config) => Box::new(Pmr {
            alpha: config.alpha,
            prototypes: Vec::new(),
        }),
        MethodConfig::Mslr(config) => {
            let initial = (0..modalities)
                .map(|m| config.initial_multiplier(m))
                .collect();
            Box::new(Mslr(MslrState::new(initial, config.window as usize)))
        }
    }
}

/// sum_m weights[m] * losses[m], plus `first`.
fn weighted_sum(first: Tensor, losses: &[Tensor], weight: impl Fn(usize) -> f64) -> Result<Tensor> {
    let mut total = first;
    for (m, loss) in losses.iter().enumerate() {
        let w = weight(m);
        if w != 0.0 {
            total = (total + (loss * w)?)?;
        }
    }
    Ok(total)
}

/// Joint training and MMCosine (whose difference is in the fusion layer): the fused loss
/// alone, unimodal heads as probes.
struct FusedOnly;

impl Balancer for FusedOnly {
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

struct MultiLoss(MultiLossConfig);

impl Balancer for MultiLoss {
    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        let fused = (step.fused_loss * self.0.fused_weight)?;
        Ok(Objective {
            loss: weighted_sum(fused, step.unimodal_losses, |m| self.0.unimodal_weight(m))?,
            coefficients: None,
        })
    }
}

/// MLB: multi-loss, every parameter a modality owns (encoder, head, fusion part) scaled by k_m.
struct Mlb {
    config: MlbConfig,
    target: CoefficientTarget,
}

impl Balancer for Mlb {
    fn coefficient_target(&self) -> CoefficientTarget {
        self.target
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        let loss = weighted_sum(step.fused_loss.clone(), step.unimodal_losses, |_| 1.0)?;
        let after_end = self.config.end_epoch.is_some_and(|end| step.epoch > end);
        let active = step.epoch >= self.config.start_epoch && !after_end;
        let coefficients =
            active.then(|| mlb_coefficients(step.confidences, self.config.alpha, self.config.beta));
        Ok(Objective { loss, coefficients })
    }

    fn modulate(
        &mut self,
        params: &ParamStore,
        grads: &mut GradStore,
        k: Option<&[f64]>,
    ) -> Result<()> {
        match (k, self.target) {
            (Some(k), CoefficientTarget::Gradients) => params.scale_gradients(grads, k),
            _ => Ok(()),
        }
    }
}

/// OGM / OGM-GE: trained on the fused loss; the encoders' weight gradients are scaled, and
/// with GE get Gaussian noise, as the public code does for its conv weights.
struct Ogm {
    config: OgmConfig,
    seed: u64,
    /// Seed of this step's GE noise, derived from the step index so that a resumed run
    /// draws the same noise.
    noise_seed: u64,
}

impl Balancer for Ogm {
    fn trains_unimodal_heads(&self) -> bool {
        false
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        self.noise_seed = self.seed ^ step.step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let loss = step.fused_loss.clone();
        if self.config.end_epoch.is_some_and(|end| step.epoch > end) {
            return Ok(Objective {
                loss,
                coefficients: None,
            });
        }
        let (Some(parts), Some(bias)) = (&step.outputs.fusion_parts, step.model.fusion_bias())
        else {
            bail!("OGM needs a late fusion layer with a bias");
        };
        let scores = [
            ogm_score(&parts[0], bias, step.labels)?,
            ogm_score(&parts[1], bias, step.labels)?,
        ];
        let k = ogm_coefficients(scores, self.config.alpha, self.config.ratio);
        Ok(Objective {
            loss,
            coefficients: Some(k.to_vec()),
        })
    }

    fn modulate(
        &mut self,
        params: &ParamStore,
        grads: &mut GradStore,
        k: Option<&[f64]>,
    ) -> Result<()> {
        let Some(k) = k else {
            return Ok(());
        };
        // One normal sample per encoder weight per step: a fast generator matters here.
        let mut rng = SmallRng::seed_from_u64(self.noise_seed);
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
                    .map(|_| std as f32 * rng.sample::<f32, _>(StandardNormal))
                    .collect();
                modulated = (modulated + Tensor::from_vec(noise, grad.shape(), grad.device())?)?;
            }
            grads.insert(tensor, modulated);
        }
        Ok(())
    }
}

/// AGM (see [`AgmState`]): the fused loss on modulated Shapley outputs, then gradient clipping.
struct Agm {
    config: AgmConfig,
    state: AgmState,
}

impl Balancer for Agm {
    fn trains_unimodal_heads(&self) -> bool {
        false
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        let zeroed = |m: usize| -> Result<Tensor> {
            let mut inputs = step.inputs.to_vec();
            inputs[m] = inputs[m].zeros_like()?;
            Ok(step.model.forward(&inputs, step.pass)?.fused)
        };
        let f = &step.outputs.fused;
        let (without_a, without_v) = (zeroed(0)?, zeroed(1)?);
        let m_a = ((f - &without_a)? + &without_v)?.affine(0.5, 0.0)?;
        let m_v = ((f - &without_v)? + &without_a)?.affine(0.5, 0.0)?;
        let score = |m: &Tensor| -> Result<f64> {
            Ok(cross_entropy(&m.detach(), step.labels)?.to_scalar::<f32>()? as f64)
        };
        let k = self
            .state
            .coefficients([score(&m_a)?, score(&m_v)?], self.config.alpha);
        // Forward value m_a + m_v = f; gradient through m_m scaled by k_m.
        let scaled =
            |m: &Tensor, k: f64| -> Result<Tensor> { (m * k)? - (m.detach() * (k - 1.0))? };
        let modulated = (scaled(&m_a, k[0])? + scaled(&m_v, k[1])?)?;
        Ok(Objective {
            loss: cross_entropy(&modulated, step.labels)?,
            coefficients: Some(k.to_vec()),
        })
    }

    fn modulate(
        &mut self,
        params: &ParamStore,
        grads: &mut GradStore,
        _: Option<&[f64]>,
    ) -> Result<()> {
        params.clip_gradient_norm(grads, self.config.clip_norm)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(&self.state).unwrap_or_default()
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(state.clone()).map_err(candle_core::Error::wrap)?;
        Ok(())
    }
}

/// PMR (see [`pmr_weights`]): the fused loss plus the weaker modality's prototype loss.
struct Pmr {
    alpha: f64,
    /// This epoch's class prototypes of each modality.
    prototypes: Vec<Tensor>,
}

impl Balancer for Pmr {
    fn trains_unimodal_heads(&self) -> bool {
        false
    }

    fn start_epoch(
        &mut self,
        model: &MultimodalModel,
        train: &Split,
        classes: usize,
    ) -> Result<()> {
        self.prototypes = prototypes(model, train, classes)?;
        Ok(())
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        let logits = (step.outputs.features.iter().zip(&self.prototypes))
            .map(|(z, c)| prototype_logits(z, c))
            .collect::<Result<Vec<_>>>()?;
        let scores = [
            prototype_score(&logits[0], step.labels)?,
            prototype_score(&logits[1], step.labels)?,
        ];
        let weights = pmr_weights(scores, self.alpha);
        let mut loss = step.fused_loss.clone();
        for (logits, w) in logits.iter().zip(weights) {
            if w > 0.0 {
                loss = (loss + (cross_entropy(logits, step.labels)? * w)?)?;
            }
        }
        // Reported as 1 + weight: which modality is being pushed, and how hard.
        Ok(Objective {
            loss,
            coefficients: Some(weights.iter().map(|w| 1.0 + w).collect()),
        })
    }
}

/// MSLR: the multi-loss with per-modality learning-rate multipliers set from validation.
struct Mslr(MslrState);

impl Balancer for Mslr {
    fn coefficient_target(&self) -> CoefficientTarget {
        CoefficientTarget::LearningRate
    }

    fn objective(&mut self, step: &StepContext) -> Result<Objective> {
        Ok(Objective {
            loss: weighted_sum(step.fused_loss.clone(), step.unimodal_losses, |_| 1.0)?,
            coefficients: Some(self.0.coefficients.clone()),
        })
    }

    fn end_epoch(&mut self, validation: Option<&SplitScores>) {
        if let Some(validation) = validation {
            self.0.end_epoch(&validation.unimodal);
        }
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).unwrap_or_default()
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        self.0 = serde_json::from_value(state.clone()).map_err(candle_core::Error::wrap)?;
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
    use balancelab_shared::{ModelConfig, OgmRatio};
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    fn model(store: &mut ParamStore) -> Result<MultimodalModel> {
        let config = ModelConfig {
            feature_dim: 32,
            ..ModelConfig::default()
        };
        MultimodalModel::new(store, &config, &[vec![8], vec![8]], 4, None)
    }

    fn inputs() -> Result<Vec<Tensor>> {
        let x = Tensor::randn(0f32, 1.0, (16, 8), &Device::Cpu)?;
        Ok(vec![x.clone(), (x * 2.0)?])
    }

    /// A two-modality model, one backward pass of the sum of its outputs, and the gradients.
    fn gradients() -> Result<(ParamStore, GradStore)> {
        let mut store = ParamStore::new(0, &Device::Cpu);
        let model = model(&mut store)?;
        let pass = Pass {
            train: true,
            probe_heads: false,
        };
        let out = model.forward(&inputs()?, pass)?;
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
    fn mlb_scales_exactly_what_each_modality_owns() -> Result<()> {
        let (store, mut grads) = gradients()?;
        let before = by_name(&store, &grads);
        let mut mlb = Mlb {
            config: MlbConfig::default(),
            target: CoefficientTarget::Gradients,
        };
        mlb.modulate(&store, &mut grads, Some(&[0.5, 2.0]))?;
        let after = by_name(&store, &grads);
        for param in store.params() {
            let expected = match param.owner {
                Owner::Modality(0) => 0.5,
                Owner::Modality(_) => 2.0,
                Owner::Shared => 1.0,
            };
            let r = ratio(&after[&param.name], &before[&param.name])?;
            assert!((r - expected).abs() < 1e-6, "{}: {r}", param.name);
        }
        // As a learning-rate multiplier, the gradients are left alone.
        let (store, mut grads) = gradients()?;
        let before = by_name(&store, &grads);
        let mut mlb = Mlb {
            config: MlbConfig::default(),
            target: CoefficientTarget::LearningRate,
        };
        mlb.modulate(&store, &mut grads, Some(&[0.5, 2.0]))?;
        assert_eq!(
            ratio(
                &by_name(&store, &grads)["head0.weight"],
                &before["head0.weight"]
            )?,
            1.0
        );
        Ok(())
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
            seed: 0,
            noise_seed: 0,
        };
        ogm.modulate(&store, &mut grads, Some(&[0.25, 1.0]))?;
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
            seed: 0,
            noise_seed: 0,
        };
        ogm.modulate(&store, &mut grads, Some(&[0.5, 1.0]))?;
        let after = by_name(&store, &grads);
        // encoder1.1.weight is 32 x 64: the added noise has the gradient's std, within 10%.
        let g = &before["encoder1.1.weight"];
        let noise = (&after["encoder1.1.weight"] - g)?;
        let (expected, seen) = (unbiased_std(g)?, unbiased_std(&noise)?);
        assert!((seen / expected - 1.0).abs() < 0.1, "{seen} vs {expected}");
        let unchanged = (&after["head1.weight"] - &before["head1.weight"])?;
        assert_eq!(unchanged.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    /// Runs `method`'s objective on one fixed batch.
    fn objective(
        method: &mut dyn Balancer,
        epoch: u32,
        confidences: &[f64],
    ) -> Result<(Objective, Tensor)> {
        let mut store = ParamStore::new(0, &Device::Cpu);
        let model = model(&mut store)?;
        let pass = Pass {
            train: true,
            probe_heads: !method.trains_unimodal_heads(),
        };
        let inputs = inputs()?;
        let labels = Tensor::arange(0u32, 16, &Device::Cpu)?.affine(1.0, 0.0)?;
        let labels = (labels.to_dtype(DType::F32)? / 4.0)?
            .floor()?
            .to_dtype(DType::U32)?;
        let outputs = model.forward(&inputs, pass)?;
        let fused_loss = cross_entropy(&outputs.fused, &labels)?;
        let unimodal_losses = (outputs.unimodal.iter())
            .map(|u| cross_entropy(u, &labels))
            .collect::<Result<Vec<_>>>()?;
        let step = StepContext {
            epoch,
            step: 0,
            model: &model,
            pass,
            inputs: &inputs,
            labels: &labels,
            outputs: &outputs,
            fused_loss: &fused_loss,
            unimodal_losses: &unimodal_losses,
            confidences,
        };
        Ok((method.objective(&step)?, fused_loss))
    }

    #[test]
    fn mlb_balances_only_inside_its_epoch_window() -> Result<()> {
        let mut mlb = balancer(
            &MethodConfig::Mlb(MlbConfig {
                start_epoch: 2,
                end_epoch: Some(3),
                ..MlbConfig::default()
            }),
            CoefficientTarget::Gradients,
            0,
            2,
        );
        let mut windows = Vec::new();
        for epoch in 1..=4 {
            windows.push(
                objective(mlb.as_mut(), epoch, &[0.8, 0.4])?
                    .0
                    .coefficients
                    .is_some(),
            );
        }
        assert_eq!(windows, [false, true, true, false]);
        Ok(())
    }

    #[test]
    fn agm_keeps_the_fused_loss_value_and_reports_its_coefficients() -> Result<()> {
        let mut agm = balancer(
            &MethodConfig::Agm(AgmConfig::default()),
            CoefficientTarget::Gradients,
            0,
            2,
        );
        let (objective, fused_loss) = objective(agm.as_mut(), 1, &[0.5, 0.5])?;
        let (loss, fused) = (
            objective.loss.to_scalar::<f32>()?,
            fused_loss.to_scalar::<f32>()?,
        );
        assert!((loss - fused).abs() < 1e-5, "{loss} vs {fused}");
        // The first step is its own running mean: k = 1.
        assert_eq!(objective.coefficients, Some(vec![1.0, 1.0]));
        Ok(())
    }

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
