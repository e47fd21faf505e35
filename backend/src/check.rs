//! The one check every run configuration passes before it is queued or trained, whoever
//! starts it (the API, a sweep, the CLI, a worker): the configuration's own rules
//! ([`RunConfig::validate`]), whether this build can drive its device, whether its
//! dataset is present in the data directory, and whether it fits the memory a run may use.

use std::path::Path;

use balancelab_shared::{FieldError, RunConfig, Sweep};

use crate::data::catalog;
use crate::engine::nn::Encoder;
use crate::{device, memory_estimate};

/// What a configuration is checked against: the process that will train it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Environment<'a> {
    /// The folder of real datasets; without one only the synthetic data exists.
    pub data_dir: Option<&'a Path>,
    /// Bytes a run on the CPU may use; a configuration estimated to need more is refused.
    pub memory_budget: Option<u64>,
}

/// Checks `config` for training in `environment`, naming the field of every problem found.
/// The dataset is looked for, and the memory estimated, only once the rest is valid (the
/// loaders and the estimate assume valid sizes).
pub fn check_run(config: &RunConfig, environment: Environment) -> Result<(), Vec<FieldError>> {
    let mut errors = config.validate().err().unwrap_or_default();
    errors.extend(device::check_supported(config.device).err());
    if errors.is_empty() {
        errors.extend(check_dataset(config, environment.data_dir).err());
    }
    if errors.is_empty() {
        errors.extend(check_encoder(config).err());
    }
    if errors.is_empty() {
        errors.extend(check_memory(config, environment.memory_budget));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks a sweep's grid (see [`Sweep::validate`]) and its base configuration's device and
/// dataset, naming fields as the request does (`base.device`, `methods[1].alpha`).
pub fn check_sweep(sweep: &Sweep, environment: Environment) -> Result<(), Vec<FieldError>> {
    let mut errors = sweep.validate().err().unwrap_or_default();
    errors.extend(device::check_supported(sweep.base.device).err());
    if errors.is_empty() {
        errors.extend(check_dataset(&sweep.base, environment.data_dir).err());
    }
    if errors.is_empty() {
        errors.extend(check_encoder(&sweep.base).err());
    }
    if errors.is_empty() {
        // The grid changes only methods, fusions and seeds: the largest of its runs speaks
        // for all, and what to lower is in the base.
        let refusal =
            (sweep.configs().into_iter()).find_map(|c| check_memory(&c, environment.memory_budget));
        errors.extend(refusal.map(|e| FieldError::new(format!("base.{}", e.field), e.message)));
    }
    let in_base = |e: FieldError| match e.field.as_str() {
        "device" | "dataset.kind" | "model.encoder.kind" => {
            FieldError::new(format!("base.{}", e.field), e.message)
        }
        _ => e,
    };
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into_iter().map(in_base).collect())
    }
}

/// Checks that the encoder reads every modality's input shape.
fn check_encoder(config: &RunConfig) -> Result<(), FieldError> {
    let footprint = crate::data::footprint(&config.dataset);
    let names = config.dataset.modality_names();
    for (m, shape) in footprint.shapes.iter().enumerate() {
        if let Err(needs) = Encoder::check_input(&config.model.encoder, shape) {
            let name = names.get(m).map_or("a modality", String::as_str);
            let message = format!("{needs}; {name} is {shape:?}");
            return Err(FieldError::new("model.encoder.kind", message));
        }
    }
    Ok(())
}

/// Refuses a CPU run estimated to need more than `budget` bytes. On a GPU the activations
/// and parameters live in the GPU's memory, which this process cannot size without a CUDA
/// context: there, the GPU's own out-of-memory error fails the run.
fn check_memory(config: &RunConfig, budget: Option<u64>) -> Option<FieldError> {
    let budget = budget.filter(|_| !config.device.is_cuda())?;
    memory_estimate::estimate(config).refusal(config, budget)
}

/// Checks that the configuration's dataset is present in `data_dir`.
fn check_dataset(config: &RunConfig, data_dir: Option<&Path>) -> Result<(), FieldError> {
    let kind = config.dataset.kind();
    let found = (catalog(data_dir).into_iter()).any(|d| d.kind == kind && d.available);
    if found {
        return Ok(());
    }
    let message = match data_dir {
        Some(dir) => format!(
            "{kind} was not found in the data directory {}",
            dir.display()
        ),
        None => format!(
            "{kind} is read from a data directory, and this server has none \
             (BALANCELAB_DATA_DIR or --data-dir)"
        ),
    };
    Err(FieldError::new("dataset.kind", message))
}

#[cfg(test)]
mod tests {
    use balancelab_shared::{ComputeDevice, DatasetConfig, MfeatConfig};

    use super::*;

    #[test]
    fn the_defaults_pass_without_a_data_directory() {
        assert_eq!(
            check_run(&RunConfig::default(), Environment::default()),
            Ok(())
        );
    }

    #[test]
    fn a_missing_dataset_names_the_field_once_the_rest_is_valid() {
        let mut config = RunConfig {
            dataset: DatasetConfig::Mfeat(MfeatConfig::default()),
            ..RunConfig::default()
        };
        let errors = check_run(&config, Environment::default()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "dataset.kind");
        assert!(errors[0].message.contains("has none"), "{errors:?}");
        // An encoder that cannot read a modality's input is named before anything is sized.
        let transformer_on_video = RunConfig {
            dataset: DatasetConfig::CremaD(Default::default()),
            model: balancelab_shared::ModelConfig {
                encoder: balancelab_shared::EncoderConfig::Transformer(Default::default()),
                ..Default::default()
            },
            ..RunConfig::default()
        };
        let environment = Environment {
            data_dir: Some(Path::new("/nonexistent")),
            memory_budget: Some(1 << 30),
        };
        let errors = check_encoder(&transformer_on_video).unwrap_err();
        assert_eq!(errors.field, "model.encoder.kind");
        assert!(
            errors.message.contains("audio is [1, 257, 188]"),
            "{errors:?}"
        );
        assert!(check_run(&transformer_on_video, environment).is_err());
        config.epochs = 0;
        let errors = check_run(&config, Environment::default()).unwrap_err();
        assert_eq!(
            errors[0].field, "epochs",
            "the rules come first: {errors:?}"
        );
    }

    #[test]
    fn a_sweep_names_its_base_fields() {
        let sweep = Sweep::new(RunConfig {
            device: ComputeDevice::Cuda(0),
            ..RunConfig::default()
        });
        if device::check_supported(sweep.base.device).is_ok() {
            return; // a CUDA build: the device is fine
        }
        let errors = check_sweep(&sweep, Environment::default()).unwrap_err();
        assert_eq!(errors[0].field, "base.device");
    }
}
