//! Checkpoints: model parameters, batch-norm statistics and optimiser state in one
//! safetensors file, and the loop's own progress beside it as JSON, so that a resumed run
//! continues the same curves.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use balancelab_shared::SplitScores;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::optim::Optimizer;
use super::params::ParamStore;

/// Where the training loop is, saved after every epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Last completed epoch.
    pub epoch: u32,
    /// Steps taken so far.
    pub step: u64,
    /// Best validation scores so far (by fused accuracy, then loss), their epoch and the
    /// test scores then.
    pub best_scores: Option<SplitScores>,
    pub best_epoch: u32,
    pub test_at_best: Option<SplitScores>,
    /// Epochs since validation accuracy last improved.
    pub stale_epochs: u32,
    /// The balancing method's own state (running means, histories).
    pub balancer: serde_json::Value,
}

/// The files of a checkpoint named `name` (such as "last") in `dir`.
pub fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.safetensors")),
        dir.join(format!("{name}.json")),
    )
}

fn model_tensors(params: &ParamStore) -> Vec<(String, Tensor)> {
    let mut tensors: Vec<(String, Tensor)> = (params.params().iter())
        .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
        .collect();
    tensors.extend(
        (params.buffers().iter()).map(|(name, var)| (name.clone(), var.as_tensor().clone())),
    );
    tensors
}

/// Writes the checkpoint; the JSON is written last, so a checkpoint with its JSON is whole.
pub fn save(
    dir: &Path,
    name: &str,
    params: &ParamStore,
    optimizer: Option<&Optimizer>,
    progress: &Progress,
) -> Result<()> {
    fs::create_dir_all(dir)?;
    let mut tensors = model_tensors(params);
    if let Some(optimizer) = optimizer {
        tensors.extend(optimizer.state()?);
    }
    let tensors: HashMap<String, Tensor> = tensors.into_iter().collect();
    let (weights, json) = paths(dir, name);
    candle_core::safetensors::save(&tensors, &weights)?;
    let text = serde_json::to_string_pretty(progress).map_err(candle_core::Error::wrap)?;
    fs::write(json, text)?;
    Ok(())
}

/// Loads a checkpoint into `params` (and `optimizer`); every parameter must be present with
/// its shape.
pub fn load(
    dir: &Path,
    name: &str,
    params: &ParamStore,
    optimizer: Option<&mut Optimizer>,
    device: &Device,
) -> Result<Progress> {
    let (weights, json) = paths(dir, name);
    let text = fs::read_to_string(&json)
        .map_err(|e| candle_core::Error::Msg(format!("reading {}: {e}", json.display())))?;
    let progress: Progress = serde_json::from_str(&text).map_err(candle_core::Error::wrap)?;
    let tensors = candle_core::safetensors::load(&weights, device)?;
    let vars = (params.params().iter())
        .map(|p| (&p.name, &p.var))
        .chain(params.buffers().iter().map(|(name, var)| (name, var)));
    for (name, var) in vars {
        let Some(saved) = tensors.get(name) else {
            candle_core::bail!(
                "{} has no tensor {name}: not a checkpoint of this model",
                weights.display()
            );
        };
        if saved.dims() != var.dims() {
            candle_core::bail!(
                "{}: {name} is {:?}, the model needs {:?}",
                weights.display(),
                saved.dims(),
                var.dims()
            );
        }
        var.set(saved)?;
    }
    if let Some(optimizer) = optimizer {
        optimizer.restore(&tensors)?;
    }
    Ok(progress)
}
