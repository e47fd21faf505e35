//! The training loop's small decisions, each a type: when to stop early, and which
//! checkpoints an epoch writes (burn-train's EarlyStoppingStrategy and
//! CheckpointingStrategy are the model).

use std::path::Path;

use candle_core::Result;

use super::checkpoint::{self, Checkpoint, Progress};
use super::session::Session;

/// Stops a run after `patience` epochs without a better validation score; without a
/// patience, never.
#[derive(Clone, Copy, Debug)]
pub struct EarlyStopping {
    patience: Option<u32>,
}

impl EarlyStopping {
    /// Early stopping after `patience` stale epochs, or none.
    pub fn new(patience: Option<u32>) -> Self {
        Self { patience }
    }

    /// Whether the run has waited long enough for an improvement.
    pub fn should_stop(&self, progress: &Progress) -> bool {
        self.patience.is_some_and(|p| progress.stale_epochs >= p)
    }
}

/// Writes [`Checkpoint::Best`] (the model only) when validation improved and
/// [`Checkpoint::Last`] (with the optimiser, to resume from) after every epoch; nothing
/// without a folder.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointPolicy<'a> {
    dir: Option<&'a Path>,
}

impl<'a> CheckpointPolicy<'a> {
    /// Checkpoints in `dir`, or none.
    pub fn new(dir: Option<&'a Path>) -> Self {
        Self { dir }
    }

    /// Saves what the epoch recorded in `progress` calls for.
    pub fn end_epoch(&self, session: &Session, progress: &Progress, improved: bool) -> Result<()> {
        let Some(dir) = self.dir else {
            return Ok(());
        };
        if improved {
            checkpoint::save(dir, Checkpoint::Best, &session.store, None, progress)?;
        }
        checkpoint::save(
            dir,
            Checkpoint::Last,
            &session.store,
            Some(&session.optimizer),
            progress,
        )
    }
}
