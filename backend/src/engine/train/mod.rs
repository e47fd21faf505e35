//! The training loop: one run from its configuration to its last epoch.

use std::path::Path;
use std::time::Instant;

use balancelab_shared::{
    CoefficientTarget, EpochMetrics, MethodConfig, RunConfig, SplitScores, StepMetrics,
};
use candle_core::{Device, Result, Tensor, D};
use candle_nn::loss::cross_entropy;
use candle_nn::ops::softmax;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use super::balance::{balancer, Balancer, StepContext};
use super::checkpoint::{self, Progress};
use super::dataset::{Dataset, Split};
use super::events::{CancelToken, TrainingEvent};
use super::model::{MultimodalModel, Pass};
use super::optim::Optimizer;
use super::params::ParamStore;

/// The validation split is drawn with a fixed seed, so runs with different seeds share it.
const VALIDATION_SEED: u64 = 0x7a11_da7e;

/// Where a run keeps its checkpoints, and whether it continues from the last one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checkpointing<'a> {
    pub dir: Option<&'a Path>,
    pub resume: bool,
}

/// The outcome of a completed run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    /// Epochs trained (fewer than configured when early stopping ended the run).
    pub epochs: u32,
    pub stopped_early: bool,
    pub parameters: usize,
    /// Test scores after the last epoch.
    pub test: SplitScores,
    /// Epoch with the best validation accuracy of the fused output, and the test scores
    /// then: what the papers report. Without a validation split, the last epoch.
    pub best_epoch: u32,
    pub best_validation_accuracy: Option<f64>,
    pub test_at_best: SplitScores,
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
    let modalities = data.input_shapes.len();

    let mut session = Session::new(config, &data.input_shapes, data.classes, &device)?;
    let mut progress = Progress::default();
    if let (Some(dir), true) = (checkpoints.dir, checkpoints.resume) {
        progress = checkpoint::load(
            dir,
            "last",
            &session.store,
            Some(&mut session.optimizer),
            &device,
        )?;
        session.balancer.restore(&progress.balancer)?;
    }
    let n = data.train.len();
    let batch = (config.batch_size as usize).min(n);
    let steps_per_epoch = n.div_ceil(batch) as u64;
    emit(TrainingEvent::Started {
        epochs: config.epochs,
        first_epoch: progress.epoch + 1,
        steps_per_epoch,
    });

    let mut last_test = None;
    let patience_spent = |progress: &Progress| {
        (config.early_stopping_patience).is_some_and(|p| progress.stale_epochs >= p)
    };
    // A run that stopped early stays stopped when resumed (raise the patience to go on).
    let mut stopped_early = patience_spent(&progress);
    let first_epoch = if stopped_early {
        config.epochs + 1
    } else {
        progress.epoch + 1
    };
    for epoch in first_epoch..=config.epochs {
        let lr = config.schedule.learning_rate(config.learning_rate, epoch);
        session
            .balancer
            .start_epoch(&session.model, &data.train, data.classes)?;
        let mut loss_sum = 0.0;
        let mut k_sum = vec![0.0; modalities];
        let mut s_sum = vec![0.0; modalities];
        let mut norm_sum = vec![0.0; modalities];
        let order = epoch_order(n, config.seed, epoch);
        let augment = Some(config.seed ^ u64::from(epoch).rotate_left(32));
        for batch in data.train.batches(&order, batch, augment) {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let (inputs, labels) = batch?;
            let mut metrics = session.step(epoch, progress.step, lr, &inputs, &labels)?;
            metrics.elapsed_seconds = started.elapsed().as_secs_f64();
            loss_sum += metrics.loss;
            for m in 0..modalities {
                k_sum[m] += metrics.coefficients[m];
                s_sum[m] += metrics.confidences[m];
                norm_sum[m] += metrics.gradient_norms[m];
            }
            emit(TrainingEvent::Step(metrics));
            progress.step += 1;
        }

        let train = evaluate(&session.model, &data.train, data.classes)?;
        let validation = data
            .validation
            .as_ref()
            .map(|v| evaluate(&session.model, v, data.classes))
            .transpose()?;
        let test = evaluate(&session.model, &data.test, data.classes)?;
        let solo_split = data.validation.as_ref().unwrap_or(&data.test);
        let solo_accuracy = (0..modalities)
            .map(|m| solo_accuracy(&session.model, solo_split, m))
            .collect::<Result<_>>()?;
        session.balancer.end_epoch(validation.as_ref());
        let mean = |sums: &[f64]| sums.iter().map(|v| v / steps_per_epoch as f64).collect();
        emit(TrainingEvent::Epoch(EpochMetrics {
            epoch,
            train_loss: loss_sum / steps_per_epoch as f64,
            coefficients: mean(&k_sum),
            confidences: mean(&s_sum),
            gradient_norms: mean(&norm_sum),
            learning_rate: lr,
            train,
            validation: validation.clone(),
            test: test.clone(),
            solo_accuracy,
            elapsed_seconds: started.elapsed().as_secs_f64(),
            steps: progress.step,
        }));

        progress.epoch = epoch;
        progress.balancer = session.balancer.state();
        let improved = match (&validation, &progress.best_scores) {
            (Some(v), Some(best)) => v.beats(best),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if improved {
            progress.best_scores = validation.clone();
            progress.best_epoch = epoch;
            progress.test_at_best = Some(test.clone());
            progress.stale_epochs = 0;
            if let Some(dir) = checkpoints.dir {
                checkpoint::save(dir, "best", &session.store, None, &progress)?;
            }
        } else {
            progress.stale_epochs += 1;
        }
        if let Some(dir) = checkpoints.dir {
            checkpoint::save(
                dir,
                "last",
                &session.store,
                Some(&session.optimizer),
                &progress,
            )?;
        }
        last_test = Some(test);
        if patience_spent(&progress) {
            stopped_early = epoch < config.epochs;
            break;
        }
    }
    let test = match last_test {
        Some(test) => test,
        // Resumed after the last epoch: nothing left to train, measure the saved model.
        None => evaluate(&session.model, &data.test, data.classes)?,
    };
    let (best_epoch, test_at_best) = match &progress.test_at_best {
        Some(scores) => (progress.best_epoch, scores.clone()),
        None => (progress.epoch, test.clone()),
    };
    Ok(Some(RunSummary {
        epochs: progress.epoch,
        stopped_early,
        parameters: session.store.parameter_count(),
        test,
        best_epoch,
        best_validation_accuracy: progress.best_scores.as_ref().map(|v| v.fused),
        test_at_best,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    }))
}

/// A model with its optimiser and balancing method: what one training step needs.
pub struct Session {
    pub store: ParamStore,
    pub model: MultimodalModel,
    pub optimizer: Optimizer,
    pub balancer: Box<dyn Balancer>,
    pass: Pass,
    modalities: usize,
}

impl Session {
    pub fn new(
        config: &RunConfig,
        input_shapes: &[Vec<usize>],
        classes: usize,
        device: &Device,
    ) -> Result<Self> {
        let modalities = input_shapes.len();
        // Independent streams for initial weights, batch order and method noise, from one seed.
        let mut store = ParamStore::new(config.seed ^ 0x5eed_0001, device);
        let cosine_scale = match &config.method {
            MethodConfig::MmCosine(c) => Some(c.scale),
            _ => None,
        };
        let model = MultimodalModel::new(
            &mut store,
            &config.model,
            input_shapes,
            classes,
            cosine_scale,
        )?;
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
        let confidences = (outputs.unimodal.iter())
            .map(|logits| true_class_confidence(logits, labels))
            .collect::<Result<Vec<_>>>()?;
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
        let gradient_norms = self.store.gradient_norms(&grads, self.modalities)?;
        self.optimizer.step(&grads, lr, lr_scale)?;

        let scalar = |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>()? as f64) };
        Ok(StepMetrics {
            epoch,
            step,
            loss: scalar(&objective.loss)?,
            fused_loss: scalar(&fused_loss)?,
            unimodal_losses: unimodal_losses.iter().map(scalar).collect::<Result<_>>()?,
            coefficients: objective
                .coefficients
                .unwrap_or_else(|| vec![1.0; self.modalities]),
            confidences,
            gradient_norms,
            learning_rate: lr,
            // Filled in by the training loop, which owns the clock.
            elapsed_seconds: 0.0,
        })
    }
}

/// s = (1/B) sum_b softmax(logits)_b[y_b]: the head's mean confidence on the true class.
fn true_class_confidence(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let probabilities = softmax(&logits.detach(), D::Minus1)?;
    let on_true = probabilities.gather(&labels.unsqueeze(1)?, 1)?;
    Ok(on_true.mean_all()?.to_scalar::<f32>()? as f64)
}

/// What a model predicts for a split.
struct Predictions {
    fused: Vec<u32>,
    unimodal: Vec<Vec<u32>>,
    /// Sum of the fused output's cross-entropy over the samples.
    fused_loss_sum: f64,
}

/// Predictions over a split; with `solo`, every modality but that one gets zero input.
fn predict(model: &MultimodalModel, split: &Split, solo: Option<usize>) -> Result<Predictions> {
    let n = split.len();
    let mut fused = Vec::with_capacity(n);
    let mut unimodal = Vec::new();
    let mut fused_loss_sum = 0.0;
    for batch in split.in_order(split.evaluation_batch()) {
        let (mut inputs, labels) = batch?;
        if let Some(keep) = solo {
            for (m, x) in inputs.iter_mut().enumerate() {
                if m != keep {
                    *x = x.zeros_like()?;
                }
            }
        }
        let out = model.forward(&inputs, Pass::EVAL)?;
        let loss = cross_entropy(&out.fused, &labels)?.to_scalar::<f32>()? as f64;
        fused_loss_sum += loss * labels.dim(0)? as f64;
        fused.extend(out.fused.argmax(D::Minus1)?.to_vec1::<u32>()?);
        unimodal.resize(out.unimodal.len(), Vec::with_capacity(n));
        for (m, logits) in out.unimodal.iter().enumerate() {
            unimodal[m].extend(logits.argmax(D::Minus1)?.to_vec1::<u32>()?);
        }
    }
    Ok(Predictions {
        fused,
        unimodal,
        fused_loss_sum,
    })
}

fn evaluate(model: &MultimodalModel, split: &Split, classes: usize) -> Result<SplitScores> {
    let labels = split.labels.to_vec1::<u32>()?;
    let p = predict(model, split, None)?;
    Ok(SplitScores {
        fused: accuracy(&p.fused, &labels),
        unimodal: p.unimodal.iter().map(|u| accuracy(u, &labels)).collect(),
        fused_macro_f1: macro_f1(&p.fused, &labels, classes),
        unimodal_macro_f1: (p.unimodal.iter())
            .map(|u| macro_f1(u, &labels, classes))
            .collect(),
        fused_loss: p.fused_loss_sum / labels.len().max(1) as f64,
    })
}

/// Fused accuracy when only modality `m` is seen: how much the fusion relies on it.
fn solo_accuracy(model: &MultimodalModel, split: &Split, m: usize) -> Result<f64> {
    let labels = split.labels.to_vec1::<u32>()?;
    Ok(accuracy(&predict(model, split, Some(m))?.fused, &labels))
}

fn accuracy(predicted: &[u32], labels: &[u32]) -> f64 {
    let hits = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    hits as f64 / labels.len().max(1) as f64
}

/// Unweighted mean of per-class F1 over the classes that occur in the labels or the
/// predictions (scikit-learn's `f1_score(average="macro")`).
pub fn macro_f1(predicted: &[u32], labels: &[u32], classes: usize) -> f64 {
    let (mut tp, mut fp, mut fn_) = (
        vec![0u64; classes],
        vec![0u64; classes],
        vec![0u64; classes],
    );
    for (&p, &y) in predicted.iter().zip(labels) {
        if p == y {
            tp[y as usize] += 1;
        } else {
            fp[p as usize] += 1;
            fn_[y as usize] += 1;
        }
    }
    let scores: Vec<f64> = (0..classes)
        .filter(|&c| tp[c] + fp[c] + fn_[c] > 0)
        .map(|c| 2.0 * tp[c] as f64 / (2 * tp[c] + fp[c] + fn_[c]) as f64)
        .collect();
    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancelab_shared::{DatasetConfig, MethodConfig, OgmConfig, SyntheticConfig};
    use candle_core::Device;

    fn small(method: MethodConfig) -> RunConfig {
        RunConfig {
            method,
            epochs: 3,
            batch_size: 32,
            learning_rate: 0.05,
            dataset: DatasetConfig::Synthetic(SyntheticConfig {
                train_samples: 512,
                test_samples: 256,
                ..SyntheticConfig::default()
            }),
            ..RunConfig::default()
        }
    }

    fn data(config: &RunConfig) -> Dataset {
        crate::data::load(&config.dataset, None, config.seed, &Device::Cpu).unwrap()
    }

    fn events(config: &RunConfig) -> Vec<TrainingEvent> {
        let mut seen = Vec::new();
        train(
            config,
            &data(config),
            Checkpointing::default(),
            &CancelToken::default(),
            &mut |e| seen.push(e),
        );
        seen
    }

    fn epochs(events: &[TrainingEvent]) -> Vec<EpochMetrics> {
        events
            .iter()
            .filter_map(|e| match e {
                TrainingEvent::Epoch(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn emits_started_steps_epochs_then_finished() {
        let seen = events(&small(MethodConfig::default()));
        assert_eq!(
            seen[0],
            TrainingEvent::Started {
                epochs: 3,
                first_epoch: 1,
                steps_per_epoch: 15
            }
        );
        let steps = seen
            .iter()
            .filter(|e| matches!(e, TrainingEvent::Step(_)))
            .count();
        // 512 samples less a 10% validation split: 461 in batches of 32.
        assert_eq!(steps, 45);
        assert_eq!(epochs(&seen).len(), 3);
        assert!(matches!(seen.last(), Some(TrainingEvent::Finished(s)) if s.epochs == 3));
    }

    #[test]
    fn mlb_accelerates_the_noisier_modality() {
        let seen = events(&small(MethodConfig::default()));
        let first = &epochs(&seen)[0];
        // Modality 1 has twice the noise: its head is less confident, so k_1 > 1 > k_0.
        assert!(first.confidences[1] < first.confidences[0], "{first:?}");
        assert!(
            first.coefficients[1] > 1.0 && first.coefficients[0] < 1.0,
            "{first:?}"
        );
    }

    #[test]
    fn ogm_slows_the_dominant_modality() {
        let seen = events(&small(MethodConfig::Ogm(OgmConfig::default())));
        let last = &epochs(&seen)[2];
        // Modality 0 (less noise) dominates the fusion: only its coefficient drops below 1.
        assert!(
            last.coefficients[0] < 1.0 && last.coefficients[1] == 1.0,
            "{last:?}"
        );
        assert!(last.test.fused > 0.5, "{:?}", last.test);
    }

    #[test]
    fn unbalanced_methods_keep_unit_coefficients() {
        for method in [
            MethodConfig::Joint,
            MethodConfig::MultiLoss(Default::default()),
        ] {
            let first = &epochs(&events(&small(method)))[0];
            assert_eq!(first.coefficients, [1.0, 1.0]);
        }
    }

    #[test]
    fn learns_and_is_reproducible_for_a_seed() {
        let config = small(MethodConfig::MultiLoss(Default::default()));
        let a = epochs(&events(&config));
        let b = epochs(&events(&config));
        let strip = |m: &EpochMetrics| (m.train_loss, m.test.clone(), m.confidences.clone());
        assert_eq!(
            a.iter().map(strip).collect::<Vec<_>>(),
            b.iter().map(strip).collect::<Vec<_>>()
        );
        // 8 classes: chance is 12.5%.
        assert!(a[2].test.fused > 0.5, "{:?}", a[2].test);
    }

    #[test]
    fn cancellation_stops_before_the_first_step() {
        let cancel = CancelToken::default();
        cancel.cancel();
        let mut seen = Vec::new();
        let config = small(MethodConfig::Joint);
        train(
            &config,
            &data(&config),
            Checkpointing::default(),
            &cancel,
            &mut |e| seen.push(e),
        );
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1], TrainingEvent::Cancelled);
    }

    #[test]
    fn a_resumed_run_continues_the_same_curves() {
        // AGM (running means) with AdamW (moments) and a step schedule: every kind of state
        // a checkpoint must carry.
        let config = RunConfig {
            optimizer: balancelab_shared::OptimizerConfig::AdamW(Default::default()),
            schedule: balancelab_shared::ScheduleConfig::Step {
                step_size: 2,
                gamma: 0.5,
            },
            learning_rate: 0.003,
            epochs: 4,
            ..small(MethodConfig::Agm(Default::default()))
        };
        let data = data(&config);
        let dir = tempfile::tempdir().unwrap();
        let run = |resume: bool, stop_after: Option<u32>| {
            let cancel = CancelToken::default();
            let mut seen = Vec::new();
            let checkpoints = Checkpointing {
                dir: Some(dir.path()),
                resume,
            };
            train(&config, &data, checkpoints, &cancel, &mut |e| {
                if matches!(&e, TrainingEvent::Epoch(m) if Some(m.epoch) == stop_after) {
                    cancel.cancel();
                }
                seen.push(e);
            });
            seen
        };
        let uninterrupted = epochs(&run(false, None));
        let interrupted = run(false, Some(2));
        assert_eq!(interrupted.last(), Some(&TrainingEvent::Cancelled));
        let resumed = run(true, None);
        assert!(matches!(
            resumed[0],
            TrainingEvent::Started { first_epoch: 3, .. }
        ));
        let strip = |m: &EpochMetrics| {
            (
                m.epoch,
                m.train_loss,
                m.coefficients.clone(),
                m.test.clone(),
            )
        };
        let continued: Vec<_> = epochs(&resumed).iter().map(strip).collect();
        let expected: Vec<_> = uninterrupted[2..].iter().map(strip).collect();
        assert_eq!(continued, expected);
    }

    #[test]
    fn early_stopping_ends_a_run_whose_validation_accuracy_stalls() {
        let config = RunConfig {
            epochs: 40,
            early_stopping_patience: Some(2),
            ..small(MethodConfig::MultiLoss(Default::default()))
        };
        let seen = events(&config);
        let Some(TrainingEvent::Finished(summary)) = seen.last() else {
            panic!("{:?}", seen.last())
        };
        assert!(summary.stopped_early && summary.epochs < 40, "{summary:?}");
        assert_eq!(summary.epochs, summary.best_epoch + 2);
        let best = &epochs(&seen)[summary.best_epoch as usize - 1];
        assert_eq!(summary.test_at_best, best.test);
        assert_eq!(
            summary.best_validation_accuracy,
            best.validation.as_ref().map(|v| v.fused)
        );
    }

    #[test]
    fn every_method_and_fusion_trains() {
        use balancelab_shared::FusionKind;
        let methods = [
            MethodConfig::Joint,
            MethodConfig::MultiLoss(Default::default()),
            MethodConfig::default(),
            MethodConfig::Ogm(OgmConfig::default()),
            MethodConfig::Agm(Default::default()),
            MethodConfig::Mslr(Default::default()),
            MethodConfig::MmCosine(Default::default()),
            MethodConfig::Pmr(Default::default()),
        ];
        for method in methods {
            let fusions: &[FusionKind] = match method {
                MethodConfig::Ogm(_) | MethodConfig::MmCosine(_) => &[FusionKind::Late],
                _ => &FusionKind::ALL,
            };
            for &fusion in fusions {
                let mut config = small(method.clone());
                config.epochs = 2;
                config.model.fusion = fusion;
                let seen = events(&config);
                let last = &epochs(&seen)[1];
                // 8 classes: chance is 12.5%.
                assert!(
                    last.test.fused > 0.3,
                    "{} {fusion:?}: {last:?}",
                    method.name()
                );
                assert!(matches!(seen.last(), Some(TrainingEvent::Finished(_))));
            }
        }
    }

    #[test]
    fn every_encoder_takes_training_steps() -> Result<()> {
        use balancelab_shared::{CnnConfig, Downsample, EncoderConfig, FusionKind, ModelConfig};
        // Inputs shaped as datasets give them: vectors, images and clips whose sides differ in
        // parity (as spectrograms' do), token sequences. A forward pass alone once hid that
        // ResNet18 could not be trained.
        // Every parameter must move in one step, every fusion's too.
        let late = FusionKind::Late;
        let cases = [
            (EncoderConfig::default(), late, vec![vec![12], vec![7]]),
            (
                EncoderConfig::Cnn(CnnConfig {
                    channels: 4,
                    ..CnnConfig::default()
                }),
                late,
                vec![vec![1, 13, 10], vec![2, 1, 12, 12]],
            ),
            (
                EncoderConfig::Cnn(CnnConfig {
                    channels: 4,
                    downsample: Downsample::Stride,
                }),
                late,
                vec![vec![1, 13, 10], vec![2, 1, 12, 12]],
            ),
            (
                EncoderConfig::Resnet18,
                late,
                vec![vec![1, 41, 30], vec![2, 3, 16, 16]],
            ),
            (
                EncoderConfig::Transformer(Default::default()),
                late,
                vec![vec![5, 4], vec![6]],
            ),
        ];
        let fusions =
            FusionKind::ALL.map(|f| (EncoderConfig::default(), f, vec![vec![12], vec![7]]));
        let device = Device::Cpu;
        for (encoder, fusion, shapes) in cases.into_iter().chain(fusions) {
            let config = RunConfig {
                model: ModelConfig {
                    encoder: encoder.clone(),
                    fusion,
                    ..ModelConfig::default()
                },
                ..RunConfig::default()
            };
            let mut session = Session::new(&config, &shapes, 3, &device)?;
            let before = (session.store.params().iter())
                .map(|p| p.var.as_tensor().copy())
                .collect::<Result<Vec<_>>>()?;
            let inputs = (shapes.iter())
                .map(|shape| {
                    let mut dims = vec![4];
                    dims.extend_from_slice(shape);
                    Tensor::randn(0f32, 1.0, dims, &device)
                })
                .collect::<Result<Vec<_>>>()?;
            let labels = Tensor::new(&[0u32, 1, 2, 0], &device)?;
            let metrics = session.step(1, 0, 0.01, &inputs, &labels)?;
            assert!(metrics.loss.is_finite(), "{encoder:?}");
            for (param, before) in session.store.params().iter().zip(&before) {
                let moved = (param.var.as_tensor() - before)?.abs()?.sum_all()?;
                assert!(
                    moved.to_scalar::<f32>()? > 0.0,
                    "{encoder:?} {fusion:?}: {} did not move",
                    param.name
                );
            }
        }
        Ok(())
    }

    #[test]
    fn macro_f1_matches_scikit_learn() {
        // y_true [0, 0, 1, 2], y_pred [0, 1, 1, 1]: per-class F1 = 2TP / (2TP + FP + FN) is
        // 2/3, 2/4 and 0; f1_score(average="macro") = 0.388889.
        let f1 = macro_f1(&[0, 1, 1, 1], &[0, 0, 1, 2], 3);
        assert!((f1 - (2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12, "{f1}");
    }

    #[test]
    fn invalid_config_fails_with_the_field_name() {
        let config = RunConfig {
            epochs: 0,
            ..RunConfig::default()
        };
        let seen = events(&config);
        assert!(
            matches!(&seen[..], [TrainingEvent::Failed { error }] if error.starts_with("epochs:"))
        );
    }
}
