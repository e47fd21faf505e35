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
use crate::engine::nn::ParamStore;

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
    /// The epoch of `best_scores`.
    pub best_epoch: u32,
    /// Test scores at `best_epoch`.
    pub test_at_best: Option<SplitScores>,
    /// Epochs since validation accuracy last improved.
    pub stale_epochs: u32,
    /// The balancing method's own state (running means, histories).
    pub balancer: serde_json::Value,
}

impl Progress {
    /// Records a finished epoch's validation and test scores; returns whether validation
    /// improved on the best so far (never without a validation split).
    pub fn record_epoch(
        &mut self,
        epoch: u32,
        validation: Option<&SplitScores>,
        test: &SplitScores,
    ) -> bool {
        self.epoch = epoch;
        let improved = match (validation, &self.best_scores) {
            (Some(v), Some(best)) => v.beats(best),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if improved {
            self.best_scores = validation.cloned();
            self.best_epoch = epoch;
            self.test_at_best = Some(test.clone());
            self.stale_epochs = 0;
        } else {
            self.stale_epochs += 1;
        }
        improved
    }
}

/// Which of a run's two checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoint {
    /// After the last completed epoch, with the optimiser's state: what a run resumes from.
    Last,
    /// At the best validation epoch so far, the model only.
    Best,
}

impl Checkpoint {
    /// The files' stem.
    fn name(self) -> &'static str {
        match self {
            Self::Last => "last",
            Self::Best => "best",
        }
    }

    /// Whether `dir` holds this checkpoint whole (its JSON is written last).
    pub fn exists_in(self, dir: &Path) -> bool {
        paths(dir, self).1.exists()
    }
}

/// The weights and the progress file of checkpoint `which` in `dir`.
pub fn paths(dir: &Path, which: Checkpoint) -> (PathBuf, PathBuf) {
    let name = which.name();
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
    which: Checkpoint,
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
    let (weights, json) = paths(dir, which);
    candle_core::safetensors::save(&tensors, &weights)?;
    let text = serde_json::to_string_pretty(progress).map_err(candle_core::Error::wrap)?;
    fs::write(json, text)?;
    Ok(())
}

/// Loads a checkpoint into `params` (and `optimizer`); every parameter must be present with
/// its shape.
pub fn load(
    dir: &Path,
    which: Checkpoint,
    params: &ParamStore,
    optimizer: Option<&mut Optimizer>,
    device: &Device,
) -> Result<Progress> {
    let (weights, json) = paths(dir, which);
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
