//! Checkpoints: model parameters, batch-norm statistics and optimiser state in one
//! safetensors file, with the loop's own progress in its metadata, so that a resumed run
//! continues the same curves.
//!
//! A checkpoint is one file so that it is replaced in one step: written under a temporary
//! name, flushed to disk, then renamed over the previous one. A kill at any moment leaves the
//! previous checkpoint or the new one, never weights of one epoch with the progress of
//! another. The progress is also written beside it as JSON, for people and scripts.

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

    /// Whether `dir` holds this checkpoint (its file appears whole, by a rename).
    pub fn exists_in(self, dir: &Path) -> bool {
        paths(dir, self).0.exists()
    }

    /// Its files in `dir`: the weights, then the progress as JSON.
    pub fn files_in(self, dir: &Path) -> [PathBuf; 2] {
        let (weights, progress) = paths(dir, self);
        [weights, progress]
    }
}

/// The weights (with the progress in their metadata) and the progress as JSON of
/// checkpoint `which` in `dir`.
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

/// The key of the progress in the safetensors metadata.
const PROGRESS_KEY: &str = "balancelab.progress";

/// Writes the checkpoint, replacing the previous one in one rename.
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
    let (weights, json) = paths(dir, which);
    let text = serde_json::to_string_pretty(progress).map_err(candle_core::Error::wrap)?;
    let metadata = HashMap::from([(PROGRESS_KEY.to_owned(), text.clone())]);
    replace(&weights, |temporary| {
        safetensors::serialize_to_file(tensors, Some(metadata), temporary)
            .map_err(candle_core::Error::wrap)
    })?;
    crate::failpoint::hit("checkpoint-between-files");
    replace(&json, |temporary| Ok(fs::write(temporary, &text)?))?;
    // The renames themselves reach the disk with the folder.
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes `path` whole or not at all: `write` fills a temporary file beside it, which is
/// flushed to disk and renamed over `path`.
fn replace(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    write(&temporary)?;
    fs::File::open(&temporary)?.sync_all()?;
    crate::failpoint::hit("checkpoint-before-rename");
    fs::rename(&temporary, path)?;
    Ok(())
}

/// The progress in the metadata of the safetensors file `weights`: its header is a
/// little-endian length, then that many bytes of JSON. `None` for checkpoints written before
/// the progress moved there (their JSON file holds it).
fn embedded_progress(weights: &Path) -> Result<Option<Progress>> {
    use std::io::Read;
    let mut file = fs::File::open(weights)?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length)?;
    let length = u64::from_le_bytes(length);
    if length > 100_000_000 {
        candle_core::bail!("{}: not a safetensors file", weights.display());
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(candle_core::Error::wrap)?;
    match header["__metadata__"][PROGRESS_KEY].as_str() {
        Some(text) => Ok(Some(
            serde_json::from_str(text).map_err(candle_core::Error::wrap)?,
        )),
        None => Ok(None),
    }
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
    let progress = match embedded_progress(&weights)? {
        Some(progress) => progress,
        None => {
            let text = fs::read_to_string(&json)
                .map_err(|e| candle_core::Error::Msg(format!("reading {}: {e}", json.display())))?;
            serde_json::from_str(&text).map_err(candle_core::Error::wrap)?
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nn::{Owner, Role};

    fn store(value: f32) -> Result<ParamStore> {
        let mut params = ParamStore::new(0, &Device::Cpu);
        let owner = (Owner::Shared, Role::Fusion);
        params.constant("w", owner, &[3], value)?;
        Ok(params)
    }

    fn at_epoch(epoch: u32) -> Progress {
        Progress {
            epoch,
            step: u64::from(epoch) * 10,
            ..Progress::default()
        }
    }

    /// Killed after the weights of epoch 2 and before their JSON: the JSON of epoch 1 is
    /// beside weights of epoch 2, and what loads is epoch 2 whole.
    #[test]
    fn weights_and_progress_are_replaced_together() -> Result<()> {
        let dir = tempfile::tempdir()?;
        save(
            dir.path(),
            Checkpoint::Last,
            &store(1.0)?,
            None,
            &at_epoch(1),
        )?;
        let (_, json) = paths(dir.path(), Checkpoint::Last);
        let stale = fs::read_to_string(&json)?;
        save(
            dir.path(),
            Checkpoint::Last,
            &store(2.0)?,
            None,
            &at_epoch(2),
        )?;
        fs::write(&json, stale)?;
        // And a write that was cut short, never renamed.
        fs::write(dir.path().join("last.safetensors.tmp"), b"partial")?;

        let loaded = store(0.0)?;
        let progress = load(dir.path(), Checkpoint::Last, &loaded, None, &Device::Cpu)?;
        assert_eq!(progress, at_epoch(2));
        let w = loaded.params()[0].var.as_tensor().to_vec1::<f32>()?;
        assert_eq!(w, [2.0; 3]);
        Ok(())
    }

    /// Checkpoints written before the progress moved into the weights file still load.
    #[test]
    fn older_checkpoints_read_their_progress_from_the_json() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (weights, json) = paths(dir.path(), Checkpoint::Last);
        let tensors = HashMap::from([("w".to_owned(), Tensor::new(&[3f32; 3], &Device::Cpu)?)]);
        candle_core::safetensors::save(&tensors, &weights)?;
        fs::write(&json, serde_json::to_string(&at_epoch(4)).unwrap())?;
        let loaded = store(0.0)?;
        let progress = load(dir.path(), Checkpoint::Last, &loaded, None, &Device::Cpu)?;
        assert_eq!(progress.epoch, 4);
        Ok(())
    }
}
