//! What a training run reports while it runs, and how it is asked to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use balancelab_shared::{EpochMetrics, StepMetrics};
use serde::Serialize;

use super::RunSummary;

/// Progress of a run, in the order it happens: `Started`, then `Step`s and `Epoch`s, then
/// exactly one of `Finished`, `Cancelled` or `Failed`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrainingEvent {
    /// `first_epoch` is above 1 when the run resumed from a checkpoint.
    Started {
        epochs: u32,
        first_epoch: u32,
        steps_per_epoch: u64,
    },
    Step(StepMetrics),
    Epoch(EpochMetrics),
    Finished(RunSummary),
    Cancelled,
    Failed {
        error: String,
    },
}

/// Asks a running training loop to stop; it checks between steps.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
