//! BalanceLab: a workbench for balanced multimodal learning.
//!
//! - [`engine`]: training (Candle), reporting progress as events; no HTTP, no database.
//! - [`data`]: the synthetic generator and loaders of real datasets.
//! - [`device`]: the CPU, or a CUDA GPU with the `cuda` feature.
//! - [`store`]: runs, their event logs and the run queue (SQLite or PostgreSQL).
//! - [`worker`]: claims queued runs and trains them, here or on other machines, each in a
//!   child process ([`training_process`]), each claim checkpointing into its own folder
//!   ([`attempt_folders`]).
//! - [`live`]: live updates for viewers, read from the store.
//! - [`auth`]: users, tokens, roles in projects, share links: who may do what;
//!   [`login_throttle`] slows password guessing.
//! - [`check`]: the one check of a run configuration before it is queued or trained;
//!   [`memory_estimate`] sizes what it will need.
//! - [`results_table`]: results tables as CSV, Markdown or LaTeX, for the API and the CLI.
//! - `presets`: ready-made run configurations (the papers' recipes), built in, for the API.
//! - [`api`]: the HTTP API (Axum).
//! - [`failpoint`]: kills the process at named points, for the fault-injection tests.

#![warn(missing_docs)]

pub mod allocator;
pub mod api;
pub mod attempt_folders;
pub mod auth;
pub mod check;
pub mod cpu_threads;
pub mod data;
pub mod device;
pub mod engine;
pub mod failpoint;
pub mod live;
pub mod login_throttle;
pub mod memory_estimate;
pub(crate) mod presets;
pub mod results_table;
pub mod store;
pub mod training_process;
pub mod worker;

use std::path::Path;

use balancelab_shared::RunConfig;
use engine::{CancelToken, Checkpointing, TrainingEvent};

/// Loads a run's data, then trains it: what the server's runner and the CLI both do.
/// Like [`engine::train`], it always ends with exactly one terminal event.
pub fn train_run(
    config: &RunConfig,
    data_dir: Option<&Path>,
    checkpoints: Checkpointing,
    cancel: &CancelToken,
    emit: &mut dyn FnMut(TrainingEvent),
) {
    // Checked before loading: the loaders assume valid sizes. The memory was estimated when
    // the run was queued; here the process's own limit applies.
    let environment = check::Environment {
        data_dir,
        memory_budget: None,
    };
    if let Err(errors) = check::check_run(config, environment) {
        let error = errors.iter().map(ToString::to_string).collect::<Vec<_>>();
        return emit(TrainingEvent::Failed {
            error: error.join("; "),
        });
    }
    let device = match device::open(config.device) {
        Ok(device) => device,
        Err(error) => return emit(TrainingEvent::Failed { error }),
    };
    let started = std::time::Instant::now();
    match data::load(&config.dataset, data_dir, config.seed, &device) {
        Ok(data) => {
            let seconds = started.elapsed().as_secs_f64();
            let samples = data.train.len() + data.test.len();
            tracing::info!(
                dataset = config.dataset.kind(),
                samples,
                seconds,
                samples_per_second = samples as f64 / seconds,
                "loaded the dataset"
            );
            engine::train(config, &data, checkpoints, cancel, emit)
        }
        Err(e) => emit(TrainingEvent::Failed {
            error: format!("could not load the dataset: {e}"),
        }),
    }
}
