//! Training: the loop that takes one run from its configuration to its last epoch, the
//! step ([`Session`]), evaluation, the loop's strategies (early stopping, checkpoints),
//! optimisers, checkpoints, the datasets' batches, and the events a run reports.

mod checkpoint;
mod dataset;
mod evaluation;
mod events;
mod optim;
mod session;
mod strategy;

use std::path::Path;
use std::time::Instant;

use balancelab_shared::{EpochMetrics, OnDivergence, RunConfig, SplitScores, StepMetrics};
use candle_core::{Device, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

pub use checkpoint::Checkpoint;
pub use dataset::{evaluation_batch, Dataset, SampleReader, Split};
pub use events::{CancelToken, TrainingEvent};
pub use session::Session;

use checkpoint::Progress;
use evaluation::{evaluate, solo_accuracy};
use strategy::{CheckpointPolicy, EarlyStopping};

/// The validation split is drawn with a fixed seed, so runs with different seeds share it.
const VALIDATION_SEED: u64 = 0x7a11_da7e;

/// Where a run writes its checkpoints, and the folder whose last checkpoint it continues from.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checkpointing<'a> {
    /// The folder checkpoints are written to; none: no checkpoints.
    pub dir: Option<&'a Path>,
    /// The folder of the last checkpoint to continue from (often `dir`); none: from scratch.
    pub resume_from: Option<&'a Path>,
}

/// The outcome of a completed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Epochs trained (fewer than configured when early stopping ended the run).
    pub epochs: u32,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Trainable parameters of the model.
    pub parameters: usize,
    /// Test scores after the last epoch.
    pub test: SplitScores,
    /// Epoch with the best validation accuracy of the fused output, and the test scores
    /// then: what the papers report. Without a validation split, the last epoch.
    pub best_epoch: u32,
    /// Fused validation accuracy at `best_epoch`; none without a validation split.
    pub best_validation_accuracy: Option<f64>,
    /// Test scores at `best_epoch`.
    pub test_at_best: SplitScores,
    /// Wall time of this process's part of the run.
    pub elapsed_seconds: f64,
}

/// Trains `config` on `data`, reporting to `emit`. The last event is always exactly one of
/// `Finished`, `Cancelled` or `Failed`.
pub fn train(
    config: &RunConfig,
    data: &Dataset,
    checkpoints: Checkpointing,
    cancel: &CancelToken,
    emit: &mut dyn FnMut(TrainingEvent),
) {
    let last = match config.validate() {
        Err(errors) => TrainingEvent::Failed {
            error: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        },
        Ok(()) => match run(config, data, checkpoints, cancel, emit) {
            Ok(Some(summary)) => TrainingEvent::Finished(summary),
            Ok(None) => TrainingEvent::Cancelled,
            Err(e) => TrainingEvent::Failed {
                error: e.to_string(),
            },
        },
    };
    emit(last);
}

/// Which of a step's losses is not a finite number, if any.
fn divergence(step: &StepMetrics) -> Option<String> {
    let losses = [("the loss", step.loss), ("the fused loss", step.fused_loss)];
    let unimodal = (step.unimodal_losses.iter().enumerate())
        .map(|(m, &loss)| (format!("the loss of modality {m}'s head"), loss));
    (losses
        .into_iter()
        .map(|(name, loss)| (name.to_owned(), loss)))
    .chain(unimodal)
    .find(|(_, loss)| !loss.is_finite())
    .map(|(name, loss)| format!("{name} is {loss}"))
}

/// Batch order of `epoch`: a pure function of the seed and the epoch, so a resumed run sees
/// the batches the uninterrupted one would have.
fn epoch_order(n: usize, seed: u64, epoch: u32) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_0002 ^ (u64::from(epoch) << 32));
    order.shuffle(&mut rng);
    order
}

/// `Ok(None)` when cancelled.
fn run(
    config: &RunConfig,
    data: &Dataset,
    checkpoints: Checkpointing,
    cancel: &CancelToken,
    emit: &mut dyn FnMut(TrainingEvent),
) -> Result<Option<RunSummary>> {
    let started = Instant::now();
    let device = data.train.labels.device().clone();
    let mut data = data.clone();
    data.hold_out_validation(config.validation_fraction, VALIDATION_SEED)?;

    let mut session = Session::new(config, &data.input_shapes, data.classes, &device)?;
    let mut progress = match checkpoints.resume_from {
        Some(dir) => resume(dir, &mut session, &device)?,
        None => Progress::default(),
    };
    let n = data.train.len();
    let batch = (config.batch_size as usize).min(n);
    let run = RunContext {
        config,
        data: &data,
        batch,
        steps_per_epoch: n.div_ceil(batch) as u64,
        started,
        cancel,
    };
    emit(TrainingEvent::Started {
        epochs: config.epochs,
        first_epoch: progress.epoch + 1,
        steps_per_epoch: run.steps_per_epoch,
    });

    let early_stopping = EarlyStopping::new(config.early_stopping_patience);
    let checkpoint_policy = CheckpointPolicy::new(checkpoints.dir);
    let mut last_test = None;
    // A run that stopped early stays stopped when resumed (raise the patience to go on).
    let mut stopped_early = early_stopping.should_stop(&progress);
    let first_epoch = if stopped_early {
        config.epochs + 1
    } else {
        progress.epoch + 1
    };
    for epoch in first_epoch..=config.epochs {
        let lr = config.schedule.learning_rate(config.learning_rate, epoch);
        let Some(sums) = run.train_steps(&mut session, epoch, lr, &mut progress, emit)? else {
            return Ok(None);
        };
        let scores = EpochScores::measure(&session, &data)?;
        session.balancer.end_epoch(scores.validation.as_ref());
        emit(TrainingEvent::Epoch(run.epoch_metrics(
            (epoch, lr),
            &sums,
            &scores,
            progress.step,
        )));

        let improved = progress.record_epoch(epoch, scores.validation.as_ref(), &scores.test);
        progress.balancer = session.balancer.state()?;
        checkpoint_policy.end_epoch(&session, &progress, improved)?;
        last_test = Some(scores.test);
        if early_stopping.should_stop(&progress) {
            stopped_early = epoch < config.epochs;
            break;
        }
    }
    run.summary(&session, &progress, last_test, stopped_early)
        .map(Some)
}

/// Loads the last checkpoint in `dir` into the session; where the loop stood then.
fn resume(dir: &Path, session: &mut Session, device: &Device) -> Result<Progress> {
    let progress = checkpoint::load(
        dir,
        Checkpoint::Last,
        &session.store,
        Some(&mut session.optimizer),
        device,
    )?;
    session.balancer.restore(&progress.balancer)?;
    Ok(progress)
}

/// What every epoch of a run shares.
struct RunContext<'a> {
    config: &'a RunConfig,
    /// The data, with its validation split held out.
    data: &'a Dataset,
    /// Samples per step.
    batch: usize,
    steps_per_epoch: u64,
    started: Instant,
    cancel: &'a CancelToken,
}

impl RunContext<'_> {
    /// Trains one epoch's steps at learning rate `lr`, reporting each; `Ok(None)` when
    /// cancelled.
    fn train_steps(
        &self,
        session: &mut Session,
        epoch: u32,
        lr: f64,
        progress: &mut Progress,
        emit: &mut dyn FnMut(TrainingEvent),
    ) -> Result<Option<StepSums>> {
        let (config, train) = (self.config, &self.data.train);
        session
            .balancer
            .start_epoch(&session.model, train, self.data.classes)?;
        let mut sums = StepSums::new(self.data.input_shapes.len());
        let order = epoch_order(train.len(), config.seed, epoch);
        let augment = Some(config.seed ^ u64::from(epoch).rotate_left(32));
        for batch in train.batches(&order, self.batch, augment) {
            if self.cancel.is_cancelled() {
                return Ok(None);
            }
            let (inputs, labels) = batch?;
            let mut metrics = session.step(epoch, progress.step, lr, &inputs, &labels)?;
            metrics.elapsed_seconds = self.started.elapsed().as_secs_f64();
            sums.add(&metrics);
            let diverged = divergence(&metrics);
            emit(TrainingEvent::Step(metrics));
            if let Some(what) = diverged.filter(|_| config.on_divergence == OnDivergence::Fail) {
                candle_core::bail!(
                    "diverged at step {}: {what} (lower the learning rate, or set \
                     on_divergence = \"continue\" to record the rest)",
                    progress.step
                );
            }
            progress.step += 1;
        }
        Ok(Some(sums))
    }

    /// The outcome of the run: its last test scores (measured now when no epoch was left to
    /// train) and those at the best validation epoch.
    fn summary(
        &self,
        session: &Session,
        progress: &Progress,
        last_test: Option<SplitScores>,
        stopped_early: bool,
    ) -> Result<RunSummary> {
        let test = match last_test {
            Some(test) => test,
            None => evaluate(&session.model, &self.data.test, self.data.classes)?,
        };
        let (best_epoch, test_at_best) = match &progress.test_at_best {
            Some(scores) => (progress.best_epoch, scores.clone()),
            None => (progress.epoch, test.clone()),
        };
        Ok(RunSummary {
            epochs: progress.epoch,
            stopped_early,
            parameters: session.store.parameter_count(),
            test,
            best_epoch,
            best_validation_accuracy: progress.best_scores.as_ref().map(|v| v.fused),
            test_at_best,
            elapsed_seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    /// The epoch's report: its steps' means, its scores, and the steps taken so far.
    fn epoch_metrics(
        &self,
        (epoch, lr): (u32, f64),
        sums: &StepSums,
        scores: &EpochScores,
        steps: u64,
    ) -> EpochMetrics {
        let per_step = self.steps_per_epoch as f64;
        let mean = |sums: &[f64]| sums.iter().map(|v| v / per_step).collect();
        EpochMetrics {
            epoch,
            train_loss: sums.loss / per_step,
            coefficients: mean(&sums.coefficients),
            confidences: mean(&sums.confidences),
            gradient_norms: mean(&sums.gradient_norms),
            learning_rate: lr,
            train: scores.train.clone(),
            validation: scores.validation.clone(),
            test: scores.test.clone(),
            solo_accuracy: scores.solo_accuracy.clone(),
            elapsed_seconds: self.started.elapsed().as_secs_f64(),
            steps,
        }
    }
}

/// Per-step metrics summed over an epoch, for the epoch's means.
struct StepSums {
    loss: f64,
    coefficients: Vec<f64>,
    confidences: Vec<f64>,
    gradient_norms: Vec<f64>,
}

impl StepSums {
    fn new(modalities: usize) -> Self {
        Self {
            loss: 0.0,
            coefficients: vec![0.0; modalities],
            confidences: vec![0.0; modalities],
            gradient_norms: vec![0.0; modalities],
        }
    }

    fn add(&mut self, step: &StepMetrics) {
        self.loss += step.loss;
        let sums = [
            (&mut self.coefficients, &step.coefficients),
            (&mut self.confidences, &step.confidences),
            (&mut self.gradient_norms, &step.gradient_norms),
        ];
        for (sums, values) in sums {
            for (sum, value) in sums.iter_mut().zip(values) {
                *sum += value;
            }
        }
    }
}

/// The model's scores after an epoch.
struct EpochScores {
    train: SplitScores,
    validation: Option<SplitScores>,
    test: SplitScores,
    /// Fused accuracy with one modality seen, on the validation split (else the test split).
    solo_accuracy: Vec<f64>,
}

impl EpochScores {
    fn measure(session: &Session, data: &Dataset) -> Result<Self> {
        let model = &session.model;
        let train = evaluate(model, &data.train, data.classes)?;
        let validation = (data.validation.as_ref())
            .map(|v| evaluate(model, v, data.classes))
            .transpose()?;
        let solo_split = data.validation.as_ref().unwrap_or(&data.test);
        Ok(Self {
            train,
            validation,
            test: evaluate(model, &data.test, data.classes)?,
            solo_accuracy: (0..data.input_shapes.len())
                .map(|m| solo_accuracy(model, solo_split, m))
                .collect::<Result<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests;
