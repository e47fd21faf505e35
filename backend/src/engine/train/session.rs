//! One training step: a model with its optimiser and balancing method.

use balancelab_shared::{CoefficientTarget, MethodConfig, Precision, RunConfig, StepMetrics};
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::loss::cross_entropy;
use candle_nn::ops::softmax;

use super::optim::Optimizer;
use crate::engine::methods::{balancer, Balancer, StepContext};
use crate::engine::nn::{MultimodalModel, ParamStore, Pass};

/// A model with its optimiser and balancing method: what one training step needs.
pub struct Session {
    /// Every parameter and buffer of the model.
    pub store: ParamStore,
    /// The model.
    pub model: MultimodalModel,
    /// Its optimiser and the optimiser's state.
    pub optimizer: Optimizer,
    /// The balancing method.
    pub balancer: Box<dyn Balancer>,
    pass: Pass,
    modalities: usize,
}

impl Session {
    /// A freshly initialised model for `config`, its modality m taking samples of shape
    /// `input_shapes[m]`.
    pub fn new(
        config: &RunConfig,
        input_shapes: &[Vec<usize>],
        classes: usize,
        device: &Device,
    ) -> Result<Self> {
        let modalities = input_shapes.len();
        // Candle reads this flag at every float32 GEMM of every CUDA device in the process:
        // a worker training runs of both precisions at once gives them the one set last.
        candle_core::cuda::set_gemm_reduced_precision_f32(config.precision == Precision::Tf32);
        // Independent streams for initial weights, batch order and method noise, from one seed.
        let mut store = ParamStore::new(config.seed ^ 0x5eed_0001, device);
        let cosine_scale = match &config.method {
            MethodConfig::MmCosine(c) => Some(c.scale),
            _ => None,
        };
        let alone = match &config.method {
            MethodConfig::Unimodal(u) => Some(u.modality),
            _ => None,
        };
        let model = MultimodalModel::new(
            &mut store,
            &config.model,
            input_shapes,
            classes,
            cosine_scale,
        )?
        .alone(alone);
        let optimizer = Optimizer::new(&config.optimizer, &store);
        let balancer = balancer(
            &config.method,
            config.coefficients_scale,
            config.seed ^ 0x5eed_0003,
            modalities,
        );
        let pass = Pass {
            train: true,
            probe_heads: !balancer.trains_unimodal_heads(),
        };
        Ok(Self {
            store,
            model,
            optimizer,
            balancer,
            pass,
            modalities,
        })
    }

    /// One optimisation step on a batch at learning rate `lr`.
    pub fn step(
        &mut self,
        epoch: u32,
        step: u64,
        lr: f64,
        inputs: &[Tensor],
        labels: &Tensor,
    ) -> Result<StepMetrics> {
        let outputs = self.model.forward(inputs, self.pass)?;
        let fused_loss = cross_entropy(&outputs.fused, labels)?;
        let unimodal_losses = (outputs.unimodal.iter())
            .map(|logits| cross_entropy(logits, labels))
            .collect::<Result<Vec<_>>>()?;
        // The methods compute their coefficients on the host: one transfer for every s_m.
        let confidences = (outputs.unimodal.iter())
            .map(|logits| true_class_confidence(logits, labels))
            .collect::<Result<Vec<_>>>()?;
        let confidences = read_scalars(&confidences)?;
        let objective = self.balancer.objective(&StepContext {
            epoch,
            step,
            model: &self.model,
            pass: self.pass,
            inputs,
            labels,
            outputs: &outputs,
            fused_loss: &fused_loss,
            unimodal_losses: &unimodal_losses,
            confidences: &confidences,
        })?;

        // Probe heads learn from their own losses, which reach only the heads.
        let mut minimised = objective.loss.clone();
        if self.pass.probe_heads {
            for loss in &unimodal_losses {
                minimised = (minimised + loss)?;
            }
        }
        let mut grads = minimised.backward()?;
        let k = objective.coefficients.as_deref();
        self.balancer.modulate(&self.store, &mut grads, k)?;
        let lr_scale =
            k.filter(|_| self.balancer.coefficient_target() == CoefficientTarget::LearningRate);
        let squared_norms = (self.store).squared_gradient_norms(&grads, self.modalities)?;
        self.optimizer.step(&grads, lr, lr_scale)?;

        // Every other number of the step in one transfer, after the update is queued.
        let mut scalars = vec![objective.loss.clone(), fused_loss];
        scalars.extend(unimodal_losses);
        scalars.extend(squared_norms);
        let values = read_scalars(&scalars)?;
        let (losses, squared_norms) = values.split_at(2 + self.modalities);
        Ok(StepMetrics {
            epoch,
            step,
            loss: losses[0],
            fused_loss: losses[1],
            unimodal_losses: losses[2..].to_vec(),
            coefficients: objective
                .coefficients
                .unwrap_or_else(|| vec![1.0; self.modalities]),
            confidences,
            gradient_norms: squared_norms.iter().map(|n| n.sqrt()).collect(),
            learning_rate: lr,
            // Filled in by the training loop, which owns the clock.
            elapsed_seconds: 0.0,
        })
    }
}

/// s = (1/B) sum_b softmax(logits)_b[y_b]: the head's mean confidence on the true class, a
/// scalar on the device.
fn true_class_confidence(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let probabilities = softmax(&logits.detach(), D::Minus1)?;
    let on_true = probabilities.gather(&labels.unsqueeze(1)?, 1)?;
    on_true.mean_all()
}

/// The values of scalar tensors, read back from their device in one transfer: each read is
/// a wait for everything queued before it, which on a GPU leaves it idle until the host
/// queues more.
fn read_scalars(scalars: &[Tensor]) -> Result<Vec<f64>> {
    if scalars.is_empty() {
        return Ok(Vec::new());
    }
    let flat = (scalars.iter())
        .map(|t| t.to_dtype(DType::F32)?.reshape(1))
        .collect::<Result<Vec<_>>>()?;
    let values = Tensor::cat(&flat, 0)?.to_vec1::<f32>()?;
    Ok(values.into_iter().map(f64::from).collect())
}
