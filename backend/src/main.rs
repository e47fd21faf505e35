//! The `balancelab` command: the web app (`serve`) and headless training (`train`).

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use balancelab::api::{self, AppState};
use balancelab::engine::{CancelToken, TrainingEvent};
use balancelab::runner::Runner;
use balancelab::store::Store;
use balancelab_shared::RunConfig;
use clap::{Parser, Subcommand};
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
    /// Serve the web UI and the API.
    Serve {
        #[arg(long, env = "BALANCELAB_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Folder for the SQLite database.
        #[arg(long, env = "BALANCELAB_STATE_DIR", default_value = "data")]
        state_dir: PathBuf,
        /// The built UI (scripts/build-ui writes it to dist/).
        #[arg(long, env = "BALANCELAB_UI_DIR", default_value = "dist")]
        ui_dir: PathBuf,
        /// Runs that may train at the same time.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Folder of real datasets (see `balancelab datasets`).
        #[arg(long, env = "BALANCELAB_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Train one run headless from a TOML configuration.
    Train {
        /// Run configuration (TOML); missing keys take their defaults.
        #[arg(long)]
        config: PathBuf,
        /// Output folder for the resolved config, metrics.jsonl and summary.json.
        #[arg(long)]
        out: PathBuf,
        /// Folder of real datasets (see `balancelab datasets`).
        #[arg(long, env = "BALANCELAB_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// List the datasets, whether they were found, and their sources and licenses.
    Datasets {
        #[arg(long, env = "BALANCELAB_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "balancelab=info,tower_http=info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve {
            addr,
            state_dir,
            ui_dir,
            workers,
            data_dir,
        } => serve(addr, &state_dir, ui_dir, workers, data_dir),
        Command::Train {
            config,
            out,
            data_dir,
        } => train(&config, &out, data_dir.as_deref()),
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

#[tokio::main]
async fn serve(
    addr: SocketAddr,
    state_dir: &Path,
    ui_dir: PathBuf,
    workers: usize,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    let store = Store::open(&state_dir.join("balancelab.sqlite")).await?;
    let orphaned = store
        .fail_unfinished("the server stopped before this run finished")
        .await?;
    if orphaned > 0 {
        tracing::warn!(
            orphaned,
            "marked runs of a previous server process as failed"
        );
    }
    match &data_dir {
        Some(dir) => tracing::info!(data_dir = %dir.display(), "reading real datasets"),
        None => tracing::info!("no data directory: only the synthetic dataset is available"),
    }
    let runner = Runner::new(store.clone(), workers, data_dir);
    if !ui_dir.join("index.html").exists() {
        tracing::warn!(ui_dir = %ui_dir.display(), "no built UI found: run scripts/build-ui; serving the API only");
    }
    let index = ServeFile::new(ui_dir.join("index.html"));
    // Client-side routes such as /runs/7 are served the UI, which routes them itself.
    let app = api::app(AppState { store, runner })
        .fallback_service(ServeDir::new(&ui_dir).fallback(index));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("BalanceLab is serving at http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}

fn train(config_path: &Path, out: &Path, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let text = fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let config: RunConfig = toml::from_str(&text)
        .with_context(|| format!("invalid configuration {}", config_path.display()))?;
    if let Err(errors) = config.validate() {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        bail!(
            "invalid configuration {}:\n{}",
            config_path.display(),
            lines.join("\n")
        );
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    fs::write(out.join("config.toml"), toml::to_string(&config)?)?;
    let mut metrics = std::io::BufWriter::new(fs::File::create(out.join("metrics.jsonl"))?);
    let names = config.dataset.modality_names();
    let mut written = Ok(());
    let mut outcome = None;
    balancelab::train_run(&config, data_dir, &CancelToken::default(), &mut |event| {
        if written.is_ok() {
            written = serde_json::to_writer(&mut metrics, &event)
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(metrics.write_all(b"\n")?));
        }
        match &event {
            TrainingEvent::Epoch(m) => {
                let per_modality: Vec<String> = names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        format!(
                            "[{name}] k {:.3} acc {:.3}",
                            m.coefficients[i], m.test.unimodal[i]
                        )
                    })
                    .collect();
                println!(
                    "epoch {:>4}  loss {:.4}  fused acc {:.3}  {}",
                    m.epoch,
                    m.train_loss,
                    m.test.fused,
                    per_modality.join("  ")
                );
            }
            TrainingEvent::Finished(_)
            | TrainingEvent::Cancelled
            | TrainingEvent::Failed { .. } => {
                outcome = Some(event);
            }
            _ => {}
        }
    });
    written?;
    metrics.flush()?;
    match outcome {
        Some(TrainingEvent::Finished(summary)) => {
            fs::write(
                out.join("summary.json"),
                serde_json::to_string_pretty(&summary)?,
            )?;
            println!(
                "done in {:.1}s: fused test accuracy {:.3}; wrote {}",
                summary.elapsed_seconds,
                summary.test.fused,
                out.display()
            );
            Ok(())
        }
        Some(TrainingEvent::Failed { error }) => bail!("training failed: {error}"),
        _ => bail!("training stopped before it finished"),
    }
}
