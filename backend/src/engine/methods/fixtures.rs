//! What the methods' tests share: a small two-modality model, its gradients, and one
//! step's objective on a fixed batch.

use std::collections::HashMap;

use balancelab_shared::ModelConfig;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::loss::cross_entropy;

use super::{Balancer, Objective, StepContext};
use crate::engine::nn::{MultimodalModel, ParamStore, Pass};

pub fn model(store: &mut ParamStore) -> Result<MultimodalModel> {
    let config = ModelConfig {
        feature_dim: 32,
        ..ModelConfig::default()
    };
    MultimodalModel::new(store, &config, &[vec![8], vec![8]], 4, None)
}

pub fn inputs() -> Result<Vec<Tensor>> {
    let x = Tensor::randn(0f32, 1.0, (16, 8), &Device::Cpu)?;
    Ok(vec![x.clone(), (x * 2.0)?])
}

/// A two-modality model, one backward pass of the sum of its outputs, and the gradients.
pub fn gradients() -> Result<(ParamStore, GradStore)> {
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
pub fn by_name(store: &ParamStore, grads: &GradStore) -> HashMap<String, Tensor> {
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

/// Gradients by parameter name.
pub type Named = HashMap<String, Tensor>;

/// The fixture's gradients by name before and after `balancer` modulates them with `k`,
/// and the parameters.
pub fn modulated(balancer: &mut dyn Balancer, k: &[f64]) -> Result<(ParamStore, Named, Named)> {
    let (store, mut grads) = gradients()?;
    let before = by_name(&store, &grads);
    balancer.modulate(&store, &mut grads, Some(k))?;
    let after = by_name(&store, &grads);
    Ok((store, before, after))
}

pub fn ratio(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.flatten_all()?.to_vec1::<f32>()?;
    let b = b.flatten_all()?.to_vec1::<f32>()?;
    let i = b.iter().position(|v| v.abs() > 1e-6).unwrap();
    Ok((a[i] / b[i]) as f64)
}

/// Runs `method`'s objective on one fixed batch.
pub fn objective(
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
