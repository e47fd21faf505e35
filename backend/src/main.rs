//! The `balancelab` command: the web app (`serve`) and headless training (`train`, `sweep`).

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use std::future::IntoFuture;
use std::time::Duration;

use balancelab::api::{self, AppState};
use balancelab::engine::{checkpoint, CancelToken, Checkpointing, TrainingEvent};
use balancelab::live::Hub;
use balancelab::store::Store;
use balancelab::worker::{WorkerOptions, Workers};
use balancelab_shared::{
    results_table, EpochChoice, EpochMetrics, FieldError, RunConfig, RunResult, Sweep,
};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tower_http::services::{ServeDir, ServeFile};

#[derive(Parser)]
#[command(
    name = "balancelab",
    version,
    about = "A workbench for balanced multimodal learning"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web UI and the API, and train queued runs.
    Serve {
        #[arg(long, env = "BALANCELAB_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// The built UI (scripts/build-ui writes it to dist/).
        #[arg(long, env = "BALANCELAB_UI_DIR", default_value = "dist")]
        ui_dir: PathBuf,
        /// Runs this process trains at the same time (0: only serve; `balancelab worker`
        /// processes train). On first start the user `admin` is created, with the password in
        /// BALANCELAB_ADMIN_PASSWORD or a random one printed once.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        #[command(flatten)]
        common: WorkerArgs,
    },
    /// Train queued runs of a shared database, e.g. on a GPU node:
    /// `balancelab worker --database-url postgres://...`.
    Worker {
        /// Runs trained at the same time.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[command(flatten)]
        common: WorkerArgs,
    },
    /// Train one run headless from a TOML configuration (presets/ has the papers' settings).
    Train {
        /// Run configuration (TOML); missing keys take their defaults.
        #[arg(long, required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Run folder: the resolved config.toml, metrics.jsonl (every event), checkpoints/
        /// (last and best, safetensors) and summary.json.
        #[arg(long)]
        out: PathBuf,
        /// Continue the run in --out from its last checkpoint, with its config.toml.
        #[arg(long, conflicts_with = "config")]
        resume: bool,
        /// Folder of real datasets (see `balancelab datasets`).
        #[arg(long, env = "BALANCELAB_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Train a grid of runs headless, one after another: every combination of `methods`,
    /// `fusions` and `seeds` over `[base]` (TOML; an empty list keeps the base's value), each
    /// in its own folder under --out like `train`'s; then the results table (mean and std over
    /// the seeds of each method and fusion, at the best validation epoch) is printed and
    /// written to results.md and results.csv.
    Sweep {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, env = "BALANCELAB_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Check a raw download of CREMA-D, AVE or UCF101, extract the frames and audio the
    /// loaders read (ffmpeg), and write balancelab-manifest.json into it. Problems are
    /// reported with their paths and skipped; a second run only checks.
    Prepare {
        dataset: PrepareDataset,
        /// The dataset's folder (e.g. {data dir}/CREMA-D); outputs are written into it.
        #[arg(long)]
        src: PathBuf,
        /// Frames per second to extract (default: CREMA-D 1, AVE 4, UCF101 every frame).
        #[arg(long)]
        fps: Option<u32>,
    },
    /// Print the API's OpenAPI document (JSON), e.g. to generate a client.
    Openapi,
    /// List the datasets, whether they were found, and their sources and licenses.
    Datasets {
        #[arg(long, env = "BALANCELAB_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// Where runs are stored and how workers behave: shared by `serve` and `worker`.
#[derive(clap::Args)]
struct WorkerArgs {
    /// The database: `postgres://...` for several machines; default: SQLite in --state-dir.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Folder of the SQLite database and of the runs' checkpoints.
    #[arg(long, env = "BALANCELAB_STATE_DIR", default_value = "data")]
    state_dir: PathBuf,
    /// Folder of real datasets (see `balancelab datasets`).
    #[arg(long, env = "BALANCELAB_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds between a training worker's heartbeats.
    #[arg(long, default_value_t = 2.0)]
    heartbeat_secs: f64,
    /// Seconds without a heartbeat after which a run is re-queued (it resumes from its
    /// last checkpoint).
    #[arg(long, default_value_t = 30.0)]
    stale_after_secs: f64,
}

impl WorkerArgs {
    async fn open(&self, concurrency: usize) -> anyhow::Result<(Store, Hub, Workers)> {
        let positive = |name: &str, secs: f64| -> anyhow::Result<Duration> {
            Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| format!("--{name} must be a positive number of seconds"))
        };
        let heartbeat = positive("heartbeat-secs", self.heartbeat_secs)?;
        let stale_after = positive("stale-after-secs", self.stale_after_secs)?;
        if stale_after <= heartbeat {
            bail!("--stale-after-secs must be longer than --heartbeat-secs");
        }
        let state_dir = &self.state_dir;
        fs::create_dir_all(state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let store = match &self.database_url {
            Some(url) => Store::connect(url)
                .await
                .with_context(|| format!("--database-url {url}"))?,
            None => Store::open(&state_dir.join("balancelab.sqlite")).await?,
        };
        match &self.data_dir {
            Some(dir) => tracing::info!(data_dir = %dir.display(), "reading real datasets"),
            None => tracing::info!("no data directory: only the synthetic dataset is available"),
        }
        let hub = Hub::new(store.clone());
        let options = WorkerOptions {
            concurrency,
            data_dir: self.data_dir.clone(),
            heartbeat,
            stale_after,
            ..WorkerOptions::new(state_dir.join("checkpoints"))
        };
        let workers = Workers::start(store.clone(), hub.clone(), options);
        Ok((store, hub, workers))
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: runs in training go back to the queue");
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PrepareDataset {
    CremaD,
    Ave,
    Ucf101,
}

fn main() -> anyhow::Result<()> {
    balancelab::cpu_threads::limit_candle_spinning();
    balancelab::allocator::keep_freed_memory();
    tracing_subscriber::fmt()
        // Colour codes only for a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "balancelab=info,tower_http=info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve {
            addr,
            ui_dir,
            workers,
            common,
        } => serve(addr, ui_dir, workers, &common),
        Command::Worker {
            concurrency,
            common,
        } => worker(concurrency, &common),
        Command::Train {
            config,
            out,
            resume,
            data_dir,
        } => {
            let config = match &config {
                Some(path) => read_config(path)?,
                None => read_config(&out.join("config.toml"))?,
            };
            train(&config, &out, resume, data_dir.as_deref()).map(|_| ())
        }
        Command::Sweep {
            config,
            out,
            data_dir,
        } => sweep(&config, &out, data_dir.as_deref()),
        Command::Prepare { dataset, src, fps } => prepare(dataset, &src, fps),
        Command::Openapi => {
            println!("{:#}", api::openapi());
            Ok(())
        }
        Command::Datasets { data_dir } => {
            for d in balancelab::data::catalog(data_dir.as_deref()) {
                let found = if d.available { "found" } else { "not found" };
                println!("{} ({}): {found}", d.kind, d.name);
                println!("    modalities: {}", d.modalities);
                println!("    source: {}; license: {}", d.source, d.license);
            }
            Ok(())
        }
    }
}

fn prepare(dataset: PrepareDataset, src: &Path, fps: Option<u32>) -> anyhow::Result<()> {
    use balancelab::data::prepare::{prepare, PrepareKind};
    let kind = match dataset {
        PrepareDataset::CremaD => PrepareKind::CremaD,
        PrepareDataset::Ave => PrepareKind::Ave,
        PrepareDataset::Ucf101 => PrepareKind::Ucf101,
    };
    if fps == Some(0) {
        bail!("--fps must be at least 1");
    }
    if !src.is_dir() {
        bail!("--src {} is not a folder", src.display());
    }
    let summary = prepare(kind, src, fps, &|problem| {
        eprintln!("problem: {}: {}", problem.path.display(), problem.message);
    })?;
    println!(
        "{} clips: {} usable, {} with problems ({} problems in all); {} extractions this run; manifest: {}",
        summary.clips,
        summary.usable,
        summary.clips - summary.usable,
        summary.problems,
        summary.extracted,
        summary.manifest.display()
    );
    Ok(())
}

#[tokio::main]
async fn serve(
    addr: SocketAddr,
    ui_dir: PathBuf,
    workers: usize,
    common: &WorkerArgs,
) -> anyhow::Result<()> {
    let (store, hub, workers) = common.open(workers).await?;
    if !ui_dir.join("index.html").exists() {
        tracing::warn!(ui_dir = %ui_dir.display(), "no built UI found: run scripts/build-ui; serving the API only");
    }
    let index = ServeFile::new(ui_dir.join("index.html"));
    let password = std::env::var("BALANCELAB_ADMIN_PASSWORD").ok();
    if let Some(made_up) = balancelab::auth::bootstrap(&store, password.as_deref()).await? {
        // Shown once, on the terminal only: the hash is all that is stored.
        println!(
            "First start: created the user `admin` with the password {made_up}\n\
             (shown only now; sign in at http://{addr} and create other users from there)"
        );
    }
    let state = AppState::new(store, hub, workers.clone());
    // Client-side routes such as /runs/7 are served the UI, which routes them itself.
    let app = api::app(state).fallback_service(ServeDir::new(&ui_dir).fallback(index));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("BalanceLab is serving at http://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    shutdown_signal().await;
    workers.shutdown().await;
    let _ = stop.send(());
    // Live event streams never end by themselves: give requests a moment, then exit.
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    Ok(())
}

#[tokio::main]
async fn worker(concurrency: usize, common: &WorkerArgs) -> anyhow::Result<()> {
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let (_, _, workers) = common.open(concurrency).await?;
    tracing::info!(concurrency, "worker started: training queued runs");
    shutdown_signal().await;
    workers.shutdown().await;
    Ok(())
}

/// Reads a sweep (TOML), naming every invalid field as the file does (`methods[1].alpha`).
fn read_sweep(path: &Path) -> anyhow::Result<Sweep> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let sweep: Sweep =
        toml::from_str(&text).with_context(|| format!("invalid sweep {}", path.display()))?;
    let mut errors = sweep.validate().err().unwrap_or_default();
    if let Err(e) = balancelab::device::check_supported(sweep.base.device) {
        errors.push(FieldError::new("base.device", e.message));
    }
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        bail!("invalid sweep {}:\n{}", path.display(), lines.join("\n"));
    }
    Ok(sweep)
}

fn sweep(path: &Path, out: &Path, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let sweep = read_sweep(path)?;
    let configs = sweep.configs();
    let mut trained = Vec::with_capacity(configs.len());
    for (i, config) in configs.iter().enumerate() {
        let name = format!(
            "{:02}-{}-{}-seed{}",
            i + 1,
            config.method.name(),
            config.model.fusion.name(),
            config.seed
        );
        println!("run {} of {}: {name}", i + 1, configs.len());
        let epochs = train(config, &out.join(&name), false, data_dir)
            .with_context(|| format!("run {name}"))?;
        trained.push(epochs);
    }
    let runs: Vec<RunResult> = (configs.iter().zip(&trained).enumerate())
        .map(|(i, (config, epochs))| RunResult {
            id: i as i64 + 1,
            config,
            epochs,
        })
        .collect();
    let modalities = sweep.base.dataset.modalities();
    let metrics: Vec<String> = std::iter::once("test.fused".to_owned())
        .chain((0..modalities).map(|m| format!("test.unimodal[{m}]")))
        .collect();
    let group_by = ["method.kind".to_owned(), "model.fusion".to_owned()];
    let table = results_table(&runs, &group_by, &metrics, EpochChoice::BestValidation)
        .map_err(|errors| anyhow::anyhow!("results table: {errors:?}"))?;
    let markdown = api::to_markdown(&table);
    fs::write(out.join("results.md"), &markdown)?;
    fs::write(out.join("results.csv"), api::to_csv(&table))?;
    println!(
        "\nresults at the best validation epoch (mean +- std over seeds):\n{markdown}\nwrote {} and {}",
        out.join("results.md").display(),
        out.join("results.csv").display()
    );
    Ok(())
}

fn read_config(path: &Path) -> anyhow::Result<RunConfig> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: RunConfig = toml::from_str(&text)
        .with_context(|| format!("invalid configuration {}", path.display()))?;
    let mut errors = config.validate().err().unwrap_or_default();
    errors.extend(balancelab::device::check_supported(config.device).err());
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        bail!(
            "invalid configuration {}:\n{}",
            path.display(),
            lines.join("\n")
        );
    }
    Ok(config)
}

/// Trains `config` into the run folder `out`; returns its epochs.
fn train(
    config: &RunConfig,
    out: &Path,
    resume: bool,
    data_dir: Option<&Path>,
) -> anyhow::Result<Vec<EpochMetrics>> {
    let resolved = out.join("config.toml");
    let checkpoint_dir = out.join("checkpoints");
    if resume && !checkpoint::paths(&checkpoint_dir, "last").1.exists() {
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
    let mut metrics = std::io::BufWriter::new(metrics_file);
    let names = config.dataset.modality_names();
    let mut written = Ok(());
    let mut outcome = None;
    let mut epochs = Vec::new();
    // Hidden when stderr is not a terminal.
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:30} epoch {msg} [{elapsed_precise} < {eta_precise}]")
            .expect("a valid template"),
    );
    let checkpoints = Checkpointing {
        dir: Some(&checkpoint_dir),
        resume,
    };
    balancelab::train_run(
        config,
        data_dir,
        checkpoints,
        &CancelToken::default(),
        &mut |event| {
            if written.is_ok() {
                written = serde_json::to_writer(&mut metrics, &event)
                    .map_err(anyhow::Error::from)
                    .and_then(|()| Ok(metrics.write_all(b"\n")?));
            }
            match &event {
                TrainingEvent::Started {
                    epochs,
                    first_epoch,
                    steps_per_epoch,
                } => {
                    bar.set_length(u64::from(epochs + 1 - first_epoch) * steps_per_epoch);
                    if *first_epoch > 1 {
                        println!("resuming at epoch {first_epoch}");
                    }
                }
                TrainingEvent::Step(step) => {
                    bar.inc(1);
                    bar.set_message(format!("{} loss {:.4}", step.epoch, step.loss));
                }
                TrainingEvent::Epoch(m) => {
                    epochs.push((*m).clone());
                    let scores = m.validation.as_ref().unwrap_or(&m.test);
                    let split = if m.validation.is_some() {
                        "val"
                    } else {
                        "test"
                    };
                    let per_modality: Vec<String> = names
                        .iter()
                        .enumerate()
                        .map(|(i, name)| {
                            format!(
                                "[{name}] k {:.3} acc {:.3}",
                                m.coefficients[i], scores.unimodal[i]
                            )
                        })
                        .collect();
                    // println on the bar does nothing when it is hidden; suspend prints anyway.
                    bar.suspend(|| {
                        println!(
                            "epoch {:>4}  loss {:.4}  {split} acc {:.3}  {}",
                            m.epoch,
                            m.train_loss,
                            scores.fused,
                            per_modality.join("  ")
                        )
                    });
                }
                TrainingEvent::Finished(_)
                | TrainingEvent::Cancelled
                | TrainingEvent::Failed { .. } => {
                    outcome = Some(event);
                }
            }
        },
    );
    bar.finish_and_clear();
    written?;
    metrics.flush()?;
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
