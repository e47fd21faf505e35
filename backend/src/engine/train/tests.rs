//! The training loop end to end: events, methods' effects, reproducibility, resume,
//! early stopping, and every encoder, fusion and method taking steps.

use super::*;
use balancelab_shared::{
    DatasetConfig, MethodConfig, OgmConfig, OptimizerConfig, SgdConfig, SyntheticConfig,
};
use candle_core::Device;
use candle_core::Tensor;

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
fn a_unimodal_run_trains_its_modality_alone() {
    use balancelab_shared::UnimodalConfig;
    let alone = |modality| {
        let mut config = small(MethodConfig::Unimodal(UnimodalConfig { modality }));
        config.epochs = 2;
        epochs(&events(&config))
    };
    let (first, second) = (alone(0), alone(1));
    for (m, run) in [(0, &first), (1, &second)] {
        for e in run {
            // The head's output is the fused one, on every split.
            assert_eq!(e.test.fused, e.test.unimodal[m], "{e:?}");
            assert_eq!(e.test.fused_macro_f1, e.test.unimodal_macro_f1[m], "{e:?}");
        }
    }
    // The noisier modality alone learns less; neither run balances anything.
    let (last0, last1) = (first.last().unwrap(), second.last().unwrap());
    assert!(
        last0.test.fused > last1.test.fused + 0.1,
        "{last0:?} {last1:?}"
    );
    assert!(last0.test.fused > 0.5, "{last0:?}");
    assert_eq!(last0.coefficients, [1.0, 1.0]);
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
            resume_from: resume.then_some(dir.path()),
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
        MethodConfig::Unimodal(Default::default()),
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
    let fusions = FusionKind::ALL.map(|f| (EncoderConfig::default(), f, vec![vec![12], vec![7]]));
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
fn invalid_config_fails_with_the_field_name() {
    let config = RunConfig {
        epochs: 0,
        ..RunConfig::default()
    };
    let seen = events(&config);
    assert!(matches!(&seen[..], [TrainingEvent::Failed { error }] if error.starts_with("epochs:")));
}

/// SGD at the top of the learning rate's range with a strong weight decay: the weights
/// oscillate with growing amplitude and the loss is NaN by the sixth step.
fn diverging() -> RunConfig {
    RunConfig {
        learning_rate: 10.0,
        optimizer: OptimizerConfig::Sgd(SgdConfig {
            momentum: 0.9,
            weight_decay: 1.0,
        }),
        epochs: 2,
        ..small(MethodConfig::Joint)
    }
}

#[test]
fn a_diverging_run_fails_at_the_step_that_diverged() {
    let seen = events(&diverging());
    let steps: Vec<&StepMetrics> = (seen.iter())
        .filter_map(|e| match e {
            TrainingEvent::Step(s) => Some(s),
            _ => None,
        })
        .collect();
    let last = steps.last().expect("some steps ran");
    assert!(divergence(last).is_some(), "{last:?}");
    assert!(steps[..steps.len() - 1]
        .iter()
        .all(|s| divergence(s).is_none()));
    let Some(TrainingEvent::Failed { error }) = seen.last() else {
        panic!("{:?}", seen.last());
    };
    let expected = format!("diverged at step {}: ", last.step);
    assert!(error.starts_with(&expected), "{error}");
    assert!(error.contains("on_divergence"), "{error}");
}

#[test]
fn a_diverging_run_can_go_on_recording() {
    let config = RunConfig {
        on_divergence: OnDivergence::Continue,
        ..diverging()
    };
    let seen = events(&config);
    assert!(matches!(seen.last(), Some(TrainingEvent::Finished(_))));
    let epochs = epochs(&seen);
    assert_eq!(epochs.len(), 2);
    assert!(!epochs[1].train_loss.is_finite(), "{:?}", epochs[1]);
}
