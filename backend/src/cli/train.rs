//! Headless training: `balancelab train` (one run into a run folder) and `balancelab sweep`
//! (a grid of runs, then its results table).

use std::fs;
use std::path::Path;

use anyhow::{bail, Context};
use balancelab::check::{check_run, check_sweep, Environment};
use balancelab::engine::{CancelToken, Checkpoint, Checkpointing, TrainingEvent};
use balancelab::results_table::{to_csv, to_markdown};
use balancelab_shared::{
    method_columns, results_table, EpochChoice, EpochMetrics, FieldError, MethodConfig, RunConfig,
    RunResult, Sweep,
};

use super::progress::ProgressReporter;

/// Reads a run configuration (TOML) and checks it for training here.
pub fn read_config(path: &Path, data_dir: Option<&Path>) -> anyhow::Result<RunConfig> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: RunConfig = toml::from_str(&text)
        .with_context(|| format!("invalid configuration {}", path.display()))?;
    check_run(&config, here(data_dir)).map_err(|errors| invalid("configuration", path, &errors))?;
    Ok(config)
}

/// Reads a sweep (TOML), naming every invalid field as the file does (`methods[1].alpha`).
fn read_sweep(path: &Path, data_dir: Option<&Path>) -> anyhow::Result<Sweep> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut sweep: Sweep =
        toml::from_str(&text).with_context(|| format!("invalid sweep {}", path.display()))?;
    if let Some(said) = sweep.add_validation_split() {
        eprintln!("{}: {said}", path.display());
    }
    check_sweep(&sweep, here(data_dir)).map_err(|errors| invalid("sweep", path, &errors))?;
    Ok(sweep)
}

/// This process, which trains what it reads: the data directory and three quarters of the
/// machine's memory.
fn here(data_dir: Option<&Path>) -> Environment<'_> {
    Environment {
        data_dir,
        memory_budget: balancelab::worker::default_memory_budget(),
    }
}

/// The error of a file whose fields are invalid: one line per field.
fn invalid(what: &str, path: &Path, errors: &[FieldError]) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    anyhow::anyhow!("invalid {what} {}:\n{}", path.display(), lines.join("\n"))
}

/// `balancelab sweep`: trains the grid one run after another, then writes its results table.
pub fn sweep(path: &Path, out: &Path, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let sweep = read_sweep(path, data_dir)?;
    let configs = sweep.configs();
    let mut trained = Vec::with_capacity(configs.len());
    for (i, config) in configs.iter().enumerate() {
        let method = match &config.method {
            MethodConfig::Unimodal(alone) => format!("unimodal{}", alone.modality),
            other => other.name().to_owned(),
        };
        let name = format!(
            "{:02}-{method}-{}-seed{}",
            i + 1,
            config.model.fusion.name(),
            config.seed
        );
        println!("run {} of {}: {name}", i + 1, configs.len());
        let epochs = train(config, &out.join(&name), false, data_dir)
            .with_context(|| format!("run {name}"))?;
        trained.push(epochs);
    }
    let runs = RunResult::numbered(&configs, &trained);
    let modalities = sweep.base.dataset.modalities();
    let metrics: Vec<String> = std::iter::once("test.fused".to_owned())
        .chain((0..modalities).map(|m| format!("test.unimodal[{m}]")))
        .collect();
    let mut group_by = method_columns(&configs);
    group_by.push("model.fusion".to_owned());
    let table = results_table(&runs, &group_by, &metrics, EpochChoice::BestValidation)
        .map_err(|errors| anyhow::anyhow!("results table: {errors:?}"))?;
    let markdown = to_markdown(&table);
    fs::write(out.join("results.md"), &markdown)?;
    fs::write(out.join("results.csv"), to_csv(&table))?;
    println!(
        "\nresults at the best validation epoch (mean +- std over seeds):\n{markdown}\nwrote {} and {}",
        out.join("results.md").display(),
        out.join("results.csv").display()
    );
    Ok(())
}

/// The configuration of the run in `out` trained to `epochs` in all: checked as a new
/// configuration would be, then written to the run's config.toml.
pub fn extend(
    mut config: RunConfig,
    epochs: u32,
    out: &Path,
    data_dir: Option<&Path>,
) -> anyhow::Result<RunConfig> {
    if epochs <= config.epochs {
        bail!(
            "--epochs must be more than the run's {} epochs, got {epochs} (a run is extended, not shortened)",
            config.epochs
        );
    }
    config.epochs = epochs;
    let path = out.join("config.toml");
    check_run(&config, here(data_dir))
        .map_err(|errors| invalid("configuration", &path, &errors))?;
    fs::write(&path, toml::to_string(&config)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(config)
}

/// Trains `config` into the run folder `out`; returns its epochs.
pub fn train(
    config: &RunConfig,
    out: &Path,
    resume: bool,
    data_dir: Option<&Path>,
) -> anyhow::Result<Vec<EpochMetrics>> {
    let resolved = out.join("config.toml");
    let checkpoint_dir = out.join("checkpoints");
    if resume && !Checkpoint::Last.exists_in(&checkpoint_dir) {
        bail!("{} has no checkpoint to resume from", out.display());
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if !resume {
        fs::write(&resolved, toml::to_string(&config)?)?;
    }
    let metrics_path = out.join("metrics.jsonl");
    let metrics_file = fs::OpenOptions::new()
        .create(true)
        .append(resume)
        .write(true)
        .truncate(!resume)
        .open(&metrics_path)
        .with_context(|| format!("opening {}", metrics_path.display()))?;
    let mut reporter = ProgressReporter::new(metrics_file, config.dataset.modality_names());
    let checkpoints = Checkpointing {
        dir: Some(&checkpoint_dir),
        resume_from: resume.then_some(checkpoint_dir.as_path()),
    };
    let cancel = CancelToken::default();
    balancelab::train_run(config, data_dir, checkpoints, &cancel, &mut |event| {
        reporter.on_event(event)
    });
    let (epochs, outcome) = reporter.finish()?;
    match outcome {
        Some(TrainingEvent::Finished(summary)) => {
            fs::write(
                out.join("summary.json"),
                serde_json::to_string_pretty(&summary)?,
            )?;
            println!(
                "done in {:.1}s: test accuracy {:.3} at the best epoch ({}), {:.3} at the last; wrote {}",
                summary.elapsed_seconds,
                summary.test_at_best.fused,
                summary.best_epoch,
                summary.test.fused,
                out.display()
            );
            Ok(epochs)
        }
        Some(TrainingEvent::Failed { error }) => bail!("training failed: {error}"),
        _ => bail!("training stopped before it finished"),
    }
}
