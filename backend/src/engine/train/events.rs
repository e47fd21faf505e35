//! What a training run reports while it runs, and how it is asked to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use balancelab_shared::{EpochMetrics, StepMetrics};
use serde::{Deserialize, Serialize};

use super::RunSummary;

/// Progress of a run, in the order it happens: `Started`, then `Step`s and `Epoch`s, then
/// exactly one of `Finished`, `Cancelled` or `Failed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrainingEvent {
    /// `first_epoch` is above 1 when the run resumed from a checkpoint.
    Started {
        /// Epochs the run is configured for.
        epochs: u32,
        /// The epoch training starts at.
        first_epoch: u32,
        /// Optimisation steps in one epoch.
        steps_per_epoch: u64,
    },
    /// One optimisation step.
    Step(StepMetrics),
    /// One epoch, with its evaluation.
    Epoch(EpochMetrics),
    /// The run trained to its end (or stopped early).
    Finished(RunSummary),
    /// The run was cancelled.
    Cancelled,
    /// The run could not go on.
    Failed {
        /// Why.
        error: String,
    },
}

/// Asks a running training loop to stop; it checks between steps.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// Asks the loop to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
