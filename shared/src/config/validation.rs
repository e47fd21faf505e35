//! The value ranges of a run configuration: [`RunConfig::validate`] reports every invalid
//! field as a [`FieldError`].

use serde::{Deserialize, Serialize};

use super::{
    CremaDSplit, DatasetConfig, MethodConfig, MfeatView, RunConfig, SplitConfig, FSDD_SPEAKERS,
};
use crate::device::Precision;
use crate::model::{EncoderConfig, FusionKind};
use crate::optim::{CoefficientTarget, OptimizerConfig, ScheduleConfig};

/// One invalid field, named by its dotted path in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Dotted path of the field, such as `method.alpha` or `dataset.noise[1]`.
    pub field: String,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl FieldError {
    /// The error `message` about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects range checks so that every bad field is reported at once.
#[derive(Default)]
struct Checker(Vec<FieldError>);

impl Checker {
    fn range<T: PartialOrd + std::fmt::Display>(&mut self, field: &str, value: T, min: T, max: T) {
        if !(value >= min && value <= max) {
            self.0.push(FieldError::new(
                field,
                format!("must be between {min} and {max}, got {value}"),
            ));
        }
    }

    fn split(&mut self, prefix: &str, split: &SplitConfig) {
        let field = format!("{prefix}.test_fraction");
        if !(split.test_fraction > 0.0 && split.test_fraction < 1.0) {
            self.0.push(FieldError::new(
                field,
                format!(
                    "must be between 0 and 1 (exclusive), got {}",
                    split.test_fraction
                ),
            ));
        }
    }

    /// A dataset folder under the data directory: relative, without `..`.
    fn root(&mut self, root: &str) {
        let path = std::path::Path::new(root);
        let inside = path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if root.is_empty() || !inside {
            self.error(
                "dataset.root",
                "must be a folder name under the data directory (relative, no ..)",
            );
        }
    }

    fn frames(&mut self, frames: u32, image_size: u32) {
        self.range("dataset.frames", frames, 1, 64);
        self.range("dataset.image_size", image_size, 8, 1024);
    }

    fn error(&mut self, field: &str, message: &str) {
        self.0.push(FieldError::new(field, message));
    }

    fn positive(&mut self, field: &str, value: f64, max: f64) {
        if !(value > 0.0 && value <= max) {
            self.0.push(FieldError::new(
                field,
                format!("must be greater than 0 and at most {max}, got {value}"),
            ));
        }
    }
}

impl RunConfig {
    /// Checks every value range; returns all violations, not just the first.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut c = Checker::default();
        c.range("epochs", self.epochs, 1, 10_000);
        c.range("batch_size", self.batch_size, 1, 65_536);
        c.positive("learning_rate", self.learning_rate, 10.0);
        c.range("validation_fraction", self.validation_fraction, 0.0, 0.5);
        let has_validation = self.validation_fraction > 0.0;
        if let Some(patience) = self.early_stopping_patience {
            c.range("early_stopping_patience", patience, 1, 10_000);
            if !has_validation {
                c.error(
                    "early_stopping_patience",
                    "needs a validation split: set validation_fraction above 0",
                );
            }
        }
        if self.precision == Precision::Tf32 && !self.device.is_cuda() {
            c.error(
                "precision",
                "tf32 is a mode of CUDA GPUs' matrix units: on the CPU every product is \
                 float32 (choose fp32, or a cuda device)",
            );
        }
        let modalities = self.dataset.modalities();
        if self.coefficients_scale == CoefficientTarget::LearningRate
            && !matches!(self.method, MethodConfig::Mlb(_))
        {
            c.error(
                "coefficients_scale",
                "only MLB's coefficients can be applied to the learning rate (MSLR's always are)",
            );
        }
        self.check_method(&mut c, modalities, has_validation);
        self.check_model(&mut c, modalities);
        self.check_optimizer(&mut c);
        self.check_dataset(&mut c);
        if c.0.is_empty() {
            Ok(())
        } else {
            Err(c.0)
        }
    }

    fn check_dataset(&self, c: &mut Checker) {
        match &self.dataset {
            DatasetConfig::Mfeat(m) => {
                c.range("dataset.views", m.views.len(), 2, MfeatView::ALL.len());
                for (i, view) in m.views.iter().enumerate() {
                    if m.views[..i].contains(view) {
                        c.0.push(FieldError::new(
                            format!("dataset.views[{i}]"),
                            format!("{} is used twice", view.name()),
                        ));
                    }
                }
                c.split("dataset", &m.split());
            }
            DatasetConfig::DigitsHalves(split) => c.split("dataset", split),
            DatasetConfig::AvDigits(av) => {
                if !FSDD_SPEAKERS.contains(&av.test_speaker.as_str()) {
                    c.error(
                        "dataset.test_speaker",
                        &format!("must be one of {}", FSDD_SPEAKERS.join(", ")),
                    );
                }
            }
            DatasetConfig::CremaD(d) => {
                c.root(&d.root);
                c.frames(d.frames, d.image_size);
                if d.split == CremaDSplit::SpeakerFold {
                    c.range("dataset.folds", d.folds, 2, 91);
                    c.range("dataset.fold", d.fold, 0, d.folds.max(1) - 1);
                }
            }
            DatasetConfig::Ave(d) => {
                c.root(&d.root);
                c.frames(d.frames, d.image_size);
            }
            DatasetConfig::Ucf101(d) => {
                c.root(&d.root);
                c.frames(d.frames, d.image_size);
                c.range("dataset.split", d.split, 1, 3);
            }
            DatasetConfig::Synthetic(s) => {
                c.range("dataset.classes", s.classes, 2, 1000);
                c.range("dataset.features", s.features, 1, 4096);
                c.range("dataset.train_samples", s.train_samples, 1, 1_000_000);
                c.range("dataset.test_samples", s.test_samples, 1, 1_000_000);
                if s.train_samples < s.classes {
                    c.0.push(FieldError::new(
                        "dataset.train_samples",
                        "must be at least the number of classes",
                    ));
                }
                c.range("dataset.noise", s.noise.len(), 2, 16);
                for (i, &n) in s.noise.iter().enumerate() {
                    c.positive(&format!("dataset.noise[{i}]"), n, 100.0);
                }
            }
        }
    }

    fn check_method(&self, c: &mut Checker, modalities: usize, has_validation: bool) {
        let two_only = |c: &mut Checker, name: &str| {
            if modalities != 2 {
                c.error(
                    "method.kind",
                    &format!("{name} is defined for exactly two modalities"),
                );
            }
        };
        let late_only = |c: &mut Checker, name: &str| {
            if self.model.fusion != FusionKind::Late {
                c.error("model.fusion", &format!("{name} needs late fusion"));
            }
        };
        match &self.method {
            MethodConfig::Unimodal(alone) => {
                if alone.modality >= modalities {
                    c.error(
                        "method.modality",
                        &format!(
                            "the dataset has {modalities} modalities, numbered from 0: got {}",
                            alone.modality
                        ),
                    );
                }
            }
            MethodConfig::Joint => {}
            MethodConfig::MultiLoss(ml) => {
                c.range("method.fused_weight", ml.fused_weight, 0.0, 100.0);
                if !ml.unimodal_weights.is_empty() && ml.unimodal_weights.len() != modalities {
                    c.error(
                        "method.unimodal_weights",
                        &format!("needs one weight per modality ({modalities})"),
                    );
                }
                for (i, &w) in ml.unimodal_weights.iter().enumerate() {
                    c.range(&format!("method.unimodal_weights[{i}]"), w, 0.0, 100.0);
                }
            }
            MethodConfig::Mlb(mlb) => {
                c.positive("method.alpha", mlb.alpha, 100.0);
                if let Some(beta) = mlb.beta {
                    c.range("method.beta", beta, 1.0, 100.0);
                }
                c.range("method.start_epoch", mlb.start_epoch, 1, self.epochs.max(1));
                if let Some(end) = mlb.end_epoch {
                    c.range("method.end_epoch", end, mlb.start_epoch, u32::MAX);
                }
            }
            MethodConfig::Ogm(ogm) => {
                c.positive("method.alpha", ogm.alpha, 100.0);
                two_only(c, "OGM");
                late_only(c, "OGM");
            }
            MethodConfig::Agm(agm) => {
                c.positive("method.alpha", agm.alpha, 100.0);
                c.positive("method.clip_norm", agm.clip_norm, 1e6);
                two_only(c, "AGM");
            }
            MethodConfig::Mslr(mslr) => {
                if !mslr.initial.is_empty() && mslr.initial.len() != modalities {
                    c.error(
                        "method.initial",
                        &format!("needs one multiplier per modality ({modalities})"),
                    );
                }
                for (i, &k) in mslr.initial.iter().enumerate() {
                    c.positive(&format!("method.initial[{i}]"), k, 100.0);
                }
                c.range("method.window", mslr.window, 1, 1000);
                if !has_validation {
                    c.error(
                        "validation_fraction",
                        "MSLR needs a validation split: set it above 0",
                    );
                }
            }
            MethodConfig::MmCosine(cos) => {
                c.positive("method.scale", cos.scale, 1000.0);
                late_only(c, "MMCosine");
            }
            MethodConfig::Pmr(pmr) => {
                c.positive("method.alpha", pmr.alpha, 100.0);
                two_only(c, "PMR");
            }
        }
    }

    fn check_model(&self, c: &mut Checker, modalities: usize) {
        let model = &self.model;
        c.range("model.feature_dim", model.feature_dim, 1, 4096);
        match &model.encoder {
            EncoderConfig::Mlp(mlp) => c.range("model.encoder.hidden", mlp.hidden, 1, 4096),
            EncoderConfig::Cnn(cnn) => c.range("model.encoder.channels", cnn.channels, 1, 256),
            EncoderConfig::Resnet18 => {}
            EncoderConfig::Transformer(t) => {
                c.range("model.encoder.layers", t.layers, 1, 24);
                c.range("model.encoder.heads", t.heads, 1, 64);
                if t.heads > 0 && !model.feature_dim.is_multiple_of(t.heads) {
                    c.error(
                        "model.encoder.heads",
                        &format!("must divide model.feature_dim ({})", model.feature_dim),
                    );
                }
            }
        }
        if model.fusion.two_modalities_only() && modalities != 2 {
            c.error(
                "model.fusion",
                &format!(
                    "{} fusion is defined for exactly two modalities",
                    model.fusion.name()
                ),
            );
        }
    }

    fn check_optimizer(&self, c: &mut Checker) {
        match &self.optimizer {
            OptimizerConfig::Sgd(sgd) => c.range("optimizer.momentum", sgd.momentum, 0.0, 0.999),
            OptimizerConfig::Adam(adam) | OptimizerConfig::AdamW(adam) => {
                c.range("optimizer.beta1", adam.beta1, 0.0, 0.999_999);
                c.range("optimizer.beta2", adam.beta2, 0.0, 0.999_999);
                c.positive("optimizer.eps", adam.eps, 1.0);
            }
        }
        c.range(
            "optimizer.weight_decay",
            self.optimizer.weight_decay(),
            0.0,
            1.0,
        );
        match self.schedule {
            ScheduleConfig::Constant => {}
            ScheduleConfig::Step { step_size, gamma } => {
                c.range("schedule.step_size", step_size, 1, 100_000);
                c.positive("schedule.gamma", gamma, 1.0);
            }
            ScheduleConfig::CosineWarmRestarts {
                start_epoch,
                t_0,
                t_mult,
                eta_min,
            } => {
                c.range("schedule.start_epoch", start_epoch, 1, 100_000);
                c.range("schedule.t_0", t_0, 1, 100_000);
                c.range("schedule.t_mult", t_mult, 1, 100);
                c.range("schedule.eta_min", eta_min, 0.0, self.learning_rate);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MlbConfig, OgmConfig, SyntheticConfig};

    /// The fields `config`'s validation names, in order.
    fn invalid_fields(config: &RunConfig) -> Vec<String> {
        let errors = config.validate().expect_err("the configuration is invalid");
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn validation_reports_every_bad_field() {
        let config = RunConfig {
            epochs: 0,
            learning_rate: -1.0,
            method: MethodConfig::Mlb(MlbConfig {
                alpha: 0.0,
                beta: Some(0.5),
                ..MlbConfig::default()
            }),
            dataset: DatasetConfig::Synthetic(SyntheticConfig {
                noise: vec![1.0],
                ..SyntheticConfig::default()
            }),
            ..RunConfig::default()
        };
        let fields = invalid_fields(&config);
        assert_eq!(
            fields,
            [
                "epochs",
                "learning_rate",
                "method.alpha",
                "method.beta",
                "dataset.noise"
            ]
        );
    }

    #[test]
    fn mfeat_views_are_named_and_checked() {
        let json = r#"{"dataset": {"kind": "mfeat", "views": ["pix", "zer", "pix"], "test_fraction": 1.5}}"#;
        let config: RunConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.dataset.modality_names(), ["pix", "zer", "pix"]);
        let fields = invalid_fields(&config);
        assert_eq!(fields, ["dataset.views[2]", "dataset.test_fraction"]);
    }

    #[test]
    fn ogm_needs_two_modalities() {
        let config = RunConfig {
            method: MethodConfig::Ogm(OgmConfig::default()),
            dataset: DatasetConfig::Synthetic(SyntheticConfig {
                noise: vec![1.0, 2.0, 3.0],
                ..SyntheticConfig::default()
            }),
            ..RunConfig::default()
        };
        assert_eq!(config.validate().unwrap_err()[0].field, "method.kind");
    }

    #[test]
    fn a_unimodal_run_names_a_modality_the_dataset_has() {
        let alone = |modality: usize| -> RunConfig {
            serde_json::from_value(serde_json::json!({
                "method": {"kind": "unimodal", "modality": modality},
                "dataset": {"kind": "synthetic", "noise": [1, 2, 3]}
            }))
            .unwrap()
        };
        assert!(alone(2).validate().is_ok());
        let errors = alone(3).validate().unwrap_err();
        assert_eq!(errors[0].field, "method.modality");
        assert!(errors[0].message.contains("3 modalities"), "{errors:?}");
    }

    #[test]
    fn methods_check_fusion_and_validation_needs() {
        let config: RunConfig = serde_json::from_str(
            r#"{"method": {"kind": "mslr"}, "validation_fraction": 0.0,
                "model": {"fusion": "film"}, "early_stopping_patience": 3,
                "dataset": {"kind": "synthetic", "noise": [1, 2, 3]}}"#,
        )
        .unwrap();
        let fields = invalid_fields(&config);
        assert_eq!(
            fields,
            [
                "early_stopping_patience",
                "validation_fraction",
                "model.fusion"
            ]
        );
        let config: RunConfig = serde_json::from_str(
            r#"{"method": {"kind": "mm_cosine"}, "model": {"fusion": "gated"}}"#,
        )
        .unwrap();
        assert_eq!(config.validate().unwrap_err()[0].field, "model.fusion");
    }

    #[test]
    fn training_settings_are_tagged_and_checked() {
        let toml = r#"{"optimizer": {"kind": "adam_w", "weight_decay": 2.0},
            "schedule": {"kind": "step", "step_size": 0, "gamma": 0.1},
            "model": {"encoder": {"kind": "transformer", "heads": 5}}}"#;
        let config: RunConfig = serde_json::from_str(toml).unwrap();
        assert_eq!(config.optimizer.name(), "adam_w");
        let fields = invalid_fields(&config);
        assert_eq!(
            fields,
            [
                "model.encoder.heads",
                "optimizer.weight_decay",
                "schedule.step_size"
            ]
        );
    }

    #[test]
    fn tf32_needs_a_gpu() {
        let config: RunConfig = serde_json::from_str(r#"{"precision": "tf32"}"#).unwrap();
        assert_eq!(invalid_fields(&config), ["precision"]);
        let on_gpu = RunConfig {
            device: crate::ComputeDevice::Cuda(0),
            ..config
        };
        assert!(on_gpu.validate().is_ok());
        assert!(serde_json::from_str::<RunConfig>(r#"{"precision": "fp16"}"#).is_err());
    }

    #[test]
    fn nan_is_out_of_range() {
        let config = RunConfig {
            learning_rate: f64::NAN,
            ..RunConfig::default()
        };
        assert_eq!(config.validate().unwrap_err()[0].field, "learning_rate");
    }
}
