//! The training loop: one run from its configuration to its last epoch.

use std::time::Instant;

use balancelab_shared::{EpochMetrics, RunConfig, SplitAccuracy, StepMetrics};
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::loss::cross_entropy;
use candle_nn::ops::softmax;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use super::balance::{balancer, StepOutputs};
use super::dataset::{Dataset, Split};
use super::events::{CancelToken, TrainingEvent};
use super::model::LateFusionMlp;
use super::optim::SgdMomentum;
use super::params::ParamStore;

/// Width of every encoder's feature vector.
const HIDDEN: usize = 64;
const MOMENTUM: f64 = 0.9;
const EVAL_BATCH: usize = 1024;

/// The outcome of a completed run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    pub epochs: u32,
    pub parameters: usize,
    /// Test accuracy after the last epoch.
    pub test: SplitAccuracy,
    pub best_fused_accuracy: f64,
    pub elapsed_seconds: f64,
}

/// Trains `config` on `data` on the CPU, reporting to `emit`. The last event is always
/// exactly one of `Finished`, `Cancelled` or `Failed`.
pub fn train(
    config: &RunConfig,
    data: &Dataset,
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
        Ok(()) => match run(config, data, cancel, emit) {
            Ok(Some(summary)) => TrainingEvent::Finished(summary),
            Ok(None) => TrainingEvent::Cancelled,
            Err(e) => TrainingEvent::Failed {
                error: e.to_string(),
            },
        },
    };
    emit(last);
}

/// `Ok(None)` when cancelled.
fn run(
    config: &RunConfig,
    data: &Dataset,
    cancel: &CancelToken,
    emit: &mut dyn FnMut(TrainingEvent),
) -> Result<Option<RunSummary>> {
    let started = Instant::now();
    let device = Device::Cpu;
    // Independent streams for data, initial weights and batch order, all from one seed.
    let mut store = ParamStore::new(config.seed ^ 0x5eed_0001, &device);
    let model = LateFusionMlp::new(&mut store, &data.input_dims, HIDDEN, data.classes)?;
    let mut optimizer = SgdMomentum::new(store.vars(), config.learning_rate, MOMENTUM);
    let mut order_rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_0002);
    let mut balancer = balancer(&config.method, config.seed ^ 0x5eed_0003);

    let probe_heads = !balancer.trains_unimodal_heads();
    let modalities = data.input_dims.len();
    let n = data.train.len();
    let batch = (config.batch_size as usize).min(n);
    let steps_per_epoch = n.div_ceil(batch) as u64;
    emit(TrainingEvent::Started {
        epochs: config.epochs,
        steps_per_epoch,
    });

    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut step = 0u64;
    let mut best_fused_accuracy = 0.0f64;
    let mut last_test = None;
    for epoch in 1..=config.epochs {
        order.shuffle(&mut order_rng);
        let mut loss_sum = 0.0;
        let mut k_sum = vec![0.0; modalities];
        let mut s_sum = vec![0.0; modalities];
        for chunk in order.chunks(batch) {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let indices = Tensor::from_slice(chunk, chunk.len(), &device)?;
            let (inputs, labels) = data.train.select(&indices)?;
            let out = model.forward(&inputs, probe_heads)?;

            let fused_loss = cross_entropy(&out.fused, &labels)?;
            let mut total = fused_loss.clone();
            for logits in &out.unimodal {
                total = (total + cross_entropy(logits, &labels)?)?;
            }
            let confidences = out
                .unimodal
                .iter()
                .map(|logits| true_class_confidence(logits, &labels))
                .collect::<Result<Vec<_>>>()?;
            let step_outputs = StepOutputs {
                epoch,
                labels: &labels,
                outputs: &out,
                fusion_bias: model.fusion_bias(),
                confidences: &confidences,
            };
            let coefficients = balancer.coefficients(&step_outputs)?;

            // With probe heads, the unimodal losses reach only the heads (see the model).
            let mut grads = total.backward()?;
            if let Some(k) = &coefficients {
                balancer.modulate(&store, &mut grads, k)?;
            }
            optimizer.step(&grads)?;
            let coefficients = coefficients.unwrap_or_else(|| vec![1.0; modalities]);

            // When the heads are probes (joint, OGM) their losses are bookkeeping, not the objective.
            let objective = if probe_heads { &fused_loss } else { &total };
            let loss = objective.to_scalar::<f32>()? as f64;
            loss_sum += loss;
            for m in 0..modalities {
                k_sum[m] += coefficients[m];
                s_sum[m] += confidences[m];
            }
            emit(TrainingEvent::Step(StepMetrics {
                epoch,
                step,
                loss,
                coefficients,
                confidences,
            }));
            step += 1;
        }

        let test = evaluate(&model, &data.test, &device)?;
        best_fused_accuracy = best_fused_accuracy.max(test.fused);
        let steps = steps_per_epoch as f64;
        emit(TrainingEvent::Epoch(EpochMetrics {
            epoch,
            train_loss: loss_sum / steps,
            coefficients: k_sum.iter().map(|k| k / steps).collect(),
            confidences: s_sum.iter().map(|s| s / steps).collect(),
            test: test.clone(),
            elapsed_seconds: started.elapsed().as_secs_f64(),
        }));
        last_test = Some(test);
    }
    Ok(last_test.map(|test| RunSummary {
        epochs: config.epochs,
        parameters: store.parameter_count(),
        test,
        best_fused_accuracy,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    }))
}

/// s = (1/B) sum_b softmax(logits)_b[y_b]: the head's mean confidence on the true class.
fn true_class_confidence(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let probabilities = softmax(&logits.detach(), D::Minus1)?;
    let on_true = probabilities.gather(&labels.unsqueeze(1)?, 1)?;
    Ok(on_true.mean_all()?.to_scalar::<f32>()? as f64)
}

fn evaluate(model: &LateFusionMlp, split: &Split, device: &Device) -> Result<SplitAccuracy> {
    let n = split.len();
    let mut fused_correct = 0.0;
    let mut unimodal_correct = vec![0.0; split.inputs.len()];
    for start in (0..n).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(n);
        let indices = Tensor::arange(start as u32, end as u32, device)?;
        let (inputs, labels) = split.select(&indices)?;
        let out = model.forward(&inputs, false)?;
        fused_correct += correct(&out.fused, &labels)?;
        for (m, logits) in out.unimodal.iter().enumerate() {
            unimodal_correct[m] += correct(logits, &labels)?;
        }
    }
    let n = n as f64;
    Ok(SplitAccuracy {
        fused: fused_correct / n,
        unimodal: unimodal_correct.iter().map(|c| c / n).collect(),
    })
}

fn correct(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let hits = logits.argmax(D::Minus1)?.eq(labels)?.to_dtype(DType::F32)?;
    Ok(hits.sum_all()?.to_scalar::<f32>()? as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancelab_shared::{DatasetConfig, MethodConfig, OgmConfig, SyntheticConfig};

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
        train(config, &data(config), &CancelToken::default(), &mut |e| {
            seen.push(e)
        });
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
                steps_per_epoch: 16
            }
        );
        let steps = seen
            .iter()
            .filter(|e| matches!(e, TrainingEvent::Step(_)))
            .count();
        assert_eq!(steps, 48);
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
        for method in [MethodConfig::Joint, MethodConfig::MultiLoss] {
            let first = &epochs(&events(&small(method)))[0];
            assert_eq!(first.coefficients, [1.0, 1.0]);
        }
    }

    #[test]
    fn learns_and_is_reproducible_for_a_seed() {
        let config = small(MethodConfig::MultiLoss);
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
        train(&config, &data(&config), &cancel, &mut |e| seen.push(e));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1], TrainingEvent::Cancelled);
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
