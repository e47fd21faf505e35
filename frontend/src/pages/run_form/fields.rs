//! The form's state: its inputs as typed text over the configuration they were loaded
//! from, the sweep's axes, and the parsing of both into what is sent.

use balancelab_shared::{
    ComputeDevice, DatasetConfig, FieldError, FusionKind, MethodConfig, MethodKind, Precision,
    RunConfig, Sweep, SyntheticConfig, UnimodalConfig,
};
use leptos::prelude::*;

use super::model_fields::PartFields;
use super::options::{alpha_of, dataset_of, dataset_value, method_with, uses_alpha};

/// `values` as the form shows a list: "1.5, 3".
fn list_text<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The form's inputs, kept as typed text until submitted, over the configuration they
/// were loaded from, which supplies every setting the form does not show.
#[derive(Clone, Copy)]
pub(super) struct FormFields {
    pub(super) loaded: RwSignal<RunConfig>,
    pub(super) dataset: RwSignal<String>,
    pub(super) noise: RwSignal<String>,
    pub(super) method: RwSignal<MethodKind>,
    pub(super) alpha: RwSignal<String>,
    /// The modality a unimodal run trains alone.
    pub(super) modality: RwSignal<usize>,
    pub(super) fusion: RwSignal<String>,
    pub(super) epochs: RwSignal<String>,
    pub(super) batch_size: RwSignal<String>,
    pub(super) learning_rate: RwSignal<String>,
    pub(super) validation_fraction: RwSignal<String>,
    pub(super) seed: RwSignal<String>,
    pub(super) device: RwSignal<String>,
    pub(super) precision: RwSignal<Precision>,
    /// Encoder, optimiser and schedule.
    pub(super) parts: PartFields,
}

/// The fields the form shows: errors for others are listed under it.
pub(super) const SHOWN_FIELDS: [&str; 15] = [
    "seeds",
    "dataset.kind",
    "dataset.noise",
    "method",
    "method.kind",
    "method.alpha",
    "method.modality",
    "model.fusion",
    "epochs",
    "batch_size",
    "learning_rate",
    "validation_fraction",
    "seed",
    "device",
    "precision",
];

/// Whether the input of `field` shows the error of `error_field` (`dataset.noise` shows
/// `dataset.noise[1]`).
pub(super) fn shows(field: &str, error_field: &str) -> bool {
    error_field
        .strip_prefix(field)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
}

impl FormFields {
    pub(super) fn new() -> Self {
        let text = || RwSignal::new(String::new());
        let fields = Self {
            loaded: RwSignal::new(RunConfig::default()),
            dataset: text(),
            noise: text(),
            method: RwSignal::new(MethodKind::from(&RunConfig::default().method)),
            alpha: text(),
            modality: RwSignal::new(0),
            fusion: text(),
            epochs: text(),
            batch_size: text(),
            learning_rate: text(),
            validation_fraction: text(),
            seed: text(),
            device: text(),
            precision: RwSignal::new(Precision::default()),
            parts: PartFields::new(),
        };
        fields.load(RunConfig::default());
        fields
    }

    /// Shows `config` in the form.
    pub(super) fn load(self, config: RunConfig) {
        self.dataset.set(dataset_value(&config.dataset).to_owned());
        let noise = match &config.dataset {
            DatasetConfig::Synthetic(s) => s.noise.clone(),
            _ => SyntheticConfig::default().noise,
        };
        self.noise.set(list_text(&noise));
        self.method.set(MethodKind::from(&config.method));
        self.alpha.set(alpha_of(&config.method).to_string());
        self.modality.set(match &config.method {
            MethodConfig::Unimodal(alone) => alone.modality,
            _ => 0,
        });
        self.fusion.set(config.model.fusion.name().to_owned());
        self.epochs.set(config.epochs.to_string());
        self.batch_size.set(config.batch_size.to_string());
        self.learning_rate.set(config.learning_rate.to_string());
        self.validation_fraction
            .set(config.validation_fraction.to_string());
        self.seed.set(config.seed.to_string());
        self.device.set(config.device.to_string());
        self.precision.set(config.precision);
        self.parts.load(&config);
        self.loaded.set(config);
    }

    /// The modalities of the dataset the form names, in model order: what a unimodal run
    /// may train (synthetic data has one per noise level typed so far).
    pub(super) fn modality_names(self) -> Vec<String> {
        let mut dataset = dataset_of(&self.dataset.get(), &self.loaded.get().dataset);
        if let DatasetConfig::Synthetic(synthetic) = &mut dataset {
            let noise: Result<Vec<f64>, _> = (self.noise.get().split(','))
                .map(|n| n.trim().parse::<f64>())
                .collect();
            if let Ok(noise) = noise {
                synthetic.noise = noise;
            }
        }
        dataset.modality_names()
    }

    /// The configuration the form describes, or every field that is wrong (checked with
    /// the rules the server applies).
    pub(super) fn to_config(self) -> Result<RunConfig, Vec<FieldError>> {
        // Every problem in one round: a field that does not parse is reported and keeps the
        // loaded value meanwhile, so that the rules still check every other field.
        let loaded = self.loaded.get();
        let mut errors = Vec::new();
        let mut parse = |field: &str, text: String, fallback: f64| match text.trim().parse::<f64>()
        {
            Ok(value) if value.is_finite() => value,
            Ok(_) => {
                errors.push(FieldError::new(
                    field,
                    "must be a finite number (this one is too large)",
                ));
                fallback
            }
            Err(_) => {
                errors.push(FieldError::new(field, "must be a number"));
                fallback
            }
        };
        let learning_rate = parse(
            "learning_rate",
            self.learning_rate.get(),
            loaded.learning_rate,
        );
        let validation_fraction = parse(
            "validation_fraction",
            self.validation_fraction.get(),
            loaded.validation_fraction,
        );
        let alpha = parse("method.alpha", self.alpha.get(), alpha_of(&loaded.method));
        let mut whole = |field: &str, text: String, fallback: u64| match text.trim().parse::<u64>()
        {
            Ok(n) => n,
            Err(_) => {
                errors.push(FieldError::new(field, "must be a whole number"));
                fallback
            }
        };
        let epochs = whole("epochs", self.epochs.get(), loaded.epochs.into());
        let batch_size = whole(
            "batch_size",
            self.batch_size.get(),
            loaded.batch_size.into(),
        );
        let seed = whole("seed", self.seed.get(), loaded.seed);
        let noise: Result<Vec<f64>, _> = (self.noise.get().split(','))
            .map(|n| n.trim().parse::<f64>())
            .collect();
        let device = self.device.get().parse::<ComputeDevice>();
        if let Err(message) = &device {
            errors.push(FieldError::new("device", message.clone()));
        }
        let method = self.method.get();
        if !uses_alpha(method) {
            errors.retain(|e| e.field != "method.alpha");
        }
        let mut dataset = dataset_of(&self.dataset.get(), &loaded.dataset);
        if let DatasetConfig::Synthetic(synthetic) = &mut dataset {
            match noise {
                Ok(noise) => synthetic.noise = noise,
                Err(_) => errors.push(FieldError::new(
                    "dataset.noise",
                    "must be numbers separated by commas, one per modality",
                )),
            }
        }
        let fusion = (FusionKind::ALL.into_iter())
            .find(|f| f.name() == self.fusion.get())
            .unwrap_or(loaded.model.fusion);
        let mut method = method_with(method, alpha, &loaded.method);
        if let MethodConfig::Unimodal(alone) = &mut method {
            alone.modality = self.modality.get();
        }
        let mut config = RunConfig {
            dataset,
            method,
            epochs: u32::try_from(epochs).unwrap_or(u32::MAX),
            batch_size: u32::try_from(batch_size).unwrap_or(u32::MAX),
            learning_rate,
            validation_fraction,
            seed,
            device: device.unwrap_or(loaded.device),
            precision: self.precision.get(),
            ..loaded
        };
        config.model.fusion = fusion;
        let config = self.parts.apply(config, &mut errors);
        if let Err(rules) = config.validate() {
            // A field already reported as unreadable is not judged on its stand-in value.
            let unread: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
            errors.extend(
                rules
                    .into_iter()
                    .filter(|e| !unread.iter().any(|u| shows(u, &e.field))),
            );
        }
        match errors.is_empty() {
            true => Ok(config),
            false => Err(errors),
        }
    }
}

/// The sweep's axes as chosen in the form.
#[derive(Clone, Copy)]
pub(super) struct SweepFields {
    pub(super) methods: RwSignal<Vec<MethodKind>>,
    pub(super) fusions: RwSignal<Vec<FusionKind>>,
    pub(super) seeds: RwSignal<String>,
}

impl SweepFields {
    pub(super) fn new() -> Self {
        Self {
            methods: RwSignal::new(Vec::new()),
            fusions: RwSignal::new(Vec::new()),
            seeds: RwSignal::new(String::new()),
        }
    }

    /// Whether any axis is chosen: the form then sends a sweep rather than one run.
    pub(super) fn is_chosen(self) -> bool {
        self.methods.with(|m| !m.is_empty())
            || self.fusions.with(|f| !f.is_empty())
            || self.seeds.with(|s| !s.trim().is_empty())
    }

    /// The sweep over `base` (methods take the form's alpha; unimodal is one run per
    /// modality, as papers' tables have a row each), or why the seeds are wrong.
    pub(super) fn to_sweep(self, base: RunConfig, alpha: f64) -> Result<Sweep, FieldError> {
        let seeds = self.seeds.get();
        let seeds: Vec<u64> = (seeds.split(',').map(str::trim).filter(|s| !s.is_empty()))
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| FieldError::new("seeds", "whole numbers separated by commas"))?;
        let modalities = base.dataset.modalities();
        let methods = (self.methods.get().into_iter())
            .flat_map(|kind| match kind {
                MethodKind::Unimodal => (0..modalities)
                    .map(|modality| MethodConfig::Unimodal(UnimodalConfig { modality }))
                    .collect(),
                _ => vec![method_with(kind, alpha, &base.method)],
            })
            .collect();
        let fusions = (FusionKind::ALL.into_iter())
            .filter(|f| self.fusions.with(|chosen| chosen.contains(f)))
            .collect();
        Ok(Sweep {
            methods,
            fusions,
            seeds,
            ..Sweep::new(base)
        })
    }
}

/// A toggle in a list of chosen values.
pub(super) fn toggle<T: PartialEq + Send + Sync + 'static>(
    list: RwSignal<Vec<T>>,
    value: T,
    on: bool,
) {
    list.update(|l| {
        l.retain(|v| *v != value);
        if on {
            l.push(value);
        }
    });
}

#[cfg(test)]
mod tests {
    use balancelab_shared::{AgmConfig, CremaDConfig, MethodConfig, OgmConfig, PmrConfig};

    use super::*;

    /// Signals need a reactive owner, as in the browser.
    fn in_owner<T>(f: impl FnOnce() -> T) -> T {
        leptos::prelude::Owner::new().with(f)
    }

    #[test]
    fn a_loaded_configuration_comes_back_unchanged() {
        in_owner(|| {
            let fields = FormFields::new();
            let loaded = [
                RunConfig {
                    method: MethodConfig::Ogm(OgmConfig {
                        alpha: 0.3,
                        generalization_enhancement: true,
                        end_epoch: Some(5),
                        ..OgmConfig::default()
                    }),
                    dataset: DatasetConfig::CremaD(CremaDConfig {
                        frames: 3,
                        ..CremaDConfig::default()
                    }),
                    batch_size: 16,
                    early_stopping_patience: Some(4),
                    ..RunConfig::default()
                },
                RunConfig {
                    dataset: DatasetConfig::Synthetic(SyntheticConfig {
                        noise: vec![0.5, 1.0, 4.0],
                        ..SyntheticConfig::default()
                    }),
                    ..RunConfig::default()
                },
            ];
            for config in loaded {
                fields.load(config.clone());
                // Every setting, shown or not, is what was loaded: clone and edit keeps them.
                assert_eq!(fields.to_config(), Ok(config));
            }
        });
    }

    #[test]
    fn edits_are_checked_and_named_by_field() {
        in_owner(|| {
            let fields = FormFields::new();
            fields.epochs.set("0".into());
            fields.learning_rate.set("fast".into());
            fields.noise.set("1.5, x".into());
            fields.batch_size.set("1e400".into());
            // One round: what does not read and what breaks the shared rules, together.
            let errors = fields.to_config().unwrap_err();
            let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(
                named,
                ["learning_rate", "batch_size", "dataset.noise", "epochs"]
            );
            assert_eq!(errors[0].message, "must be a number");
            fields.learning_rate.set("1e400".into());
            let errors = fields.to_config().unwrap_err();
            assert!(errors[0].message.contains("finite"), "{errors:?}");
            fields.learning_rate.set("0.1".into());
            fields.noise.set("1.5, 3".into());
            fields.batch_size.set("32".into());
            let errors = fields.to_config().unwrap_err();
            assert_eq!(errors[0].field, "epochs", "the shared rules: {errors:?}");
            fields.epochs.set("3".into());
            fields.method.set(MethodKind::Agm);
            fields.alpha.set("0.5".into());
            let config = fields.to_config().unwrap();
            assert_eq!(config.epochs, 3);
            assert!(
                matches!(config.method, MethodConfig::Agm(AgmConfig { alpha, .. }) if alpha == 0.5)
            );
        });
    }

    #[test]
    fn a_unimodal_run_names_its_modality_and_a_sweep_takes_each() {
        in_owner(|| {
            let fields = FormFields::new();
            fields.noise.set("1, 2, 4".into());
            assert_eq!(
                fields.modality_names().len(),
                3,
                "one per noise level typed"
            );
            fields.method.set(MethodKind::Unimodal);
            fields.modality.set(2);
            let config = fields.to_config().unwrap();
            assert_eq!(
                config.method,
                MethodConfig::Unimodal(UnimodalConfig { modality: 2 })
            );
            // Loaded back, the form shows it.
            fields.load(RunConfig::default());
            assert_eq!(fields.modality.get(), 0);
            fields.load(config.clone());
            assert_eq!(fields.modality.get(), 2);

            let sweep = SweepFields::new();
            toggle(sweep.methods, MethodKind::Unimodal, true);
            toggle(sweep.methods, MethodKind::Joint, true);
            let grid = sweep.to_sweep(config, 0.8).unwrap();
            let unimodal: Vec<&MethodConfig> = (grid.methods.iter())
                .filter(|m| matches!(m, MethodConfig::Unimodal(_)))
                .collect();
            assert_eq!(unimodal.len(), 3, "one unimodal run per modality");
            assert_eq!(grid.run_count(), 4);
        });
    }

    #[test]
    fn a_sweep_takes_the_forms_alpha_and_parses_its_seeds() {
        in_owner(|| {
            let sweep = SweepFields::new();
            toggle(sweep.methods, MethodKind::Joint, true);
            toggle(sweep.methods, MethodKind::Pmr, true);
            toggle(sweep.fusions, FusionKind::Gated, true);
            sweep.seeds.set("1, 2,3".into());
            let grid = sweep.to_sweep(RunConfig::default(), 0.25).unwrap();
            assert_eq!(grid.run_count(), 6);
            assert_eq!(grid.seeds, [1, 2, 3]);
            assert_eq!(
                grid.methods[1],
                MethodConfig::Pmr(PmrConfig { alpha: 0.25 })
            );
            sweep.seeds.set("1, two".into());
            let error = sweep.to_sweep(RunConfig::default(), 0.25).unwrap_err();
            assert_eq!(error.field, "seeds");
        });
    }
}
