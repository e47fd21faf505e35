//! The `balancelab` command line: its commands and where each is carried out.
//!
//! - [`server`]: `serve` (the web app and API, with workers) and `worker` (workers only).
//! - [`train`]: headless `train` and `sweep`, with run folders and results tables.
//! - [`progress`]: what a headless run shows and writes while it trains.
//! - [`data`]: `prepare` and `datasets`.

mod data;
mod progress;
mod server;
mod train;

use std::net::SocketAddr;
use std::path::PathBuf;

use balancelab::api;
use clap::{Parser, Subcommand};

use data::PrepareDataset;
use server::WorkerArgs;

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
        /// Mark session cookies `Secure` (sent over HTTPS only): for a server reached over
        /// HTTPS. Behind a proxy that sends `X-Forwarded-Proto: https` they are marked anyway.
        #[arg(long, env = "BALANCELAB_SECURE_COOKIES")]
        secure_cookies: bool,
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
        /// With --resume: train the run to this many epochs in all (more than it has), its
        /// config.toml updated to say so.
        #[arg(long, requires = "resume")]
        epochs: Option<u32>,
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
    /// Copy the store (SQLite) to a new file while the server runs; the copy opens as the
    /// store with `--state-dir` (rename it balancelab.sqlite there) or `--database-url
    /// sqlite:FILE`. PostgreSQL stores are backed up with pg_dump.
    Backup {
        /// The new file.
        #[arg(long)]
        out: PathBuf,
        /// The database: `postgres://...`; default: SQLite in --state-dir.
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        /// Folder of the SQLite database.
        #[arg(long, env = "BALANCELAB_STATE_DIR", default_value = "data")]
        state_dir: PathBuf,
    },
    /// Print the API's OpenAPI document (JSON), e.g. to generate a client.
    Openapi,
    /// List the datasets, whether they were found, and their sources and licenses.
    Datasets {
        #[arg(long, env = "BALANCELAB_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Train one run for a worker, which talks to it on standard input and output.
    #[command(name = balancelab::training_process::SUBCOMMAND, hide = true)]
    TrainProcess,
}

/// Runs the command the arguments name.
pub fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve {
            addr,
            ui_dir,
            workers,
            secure_cookies,
            common,
        } => server::serve(addr, ui_dir, (workers, secure_cookies), &common),
        Command::Worker {
            concurrency,
            common,
        } => server::worker(concurrency, &common),
        Command::Train {
            config,
            out,
            resume,
            epochs,
            data_dir,
        } => {
            let data_dir = data_dir.as_deref();
            let config = match &config {
                Some(path) => train::read_config(path, data_dir)?,
                None => train::read_config(&out.join("config.toml"), data_dir)?,
            };
            let config = match epochs {
                Some(epochs) => train::extend(config, epochs, &out, data_dir)?,
                None => config,
            };
            train::train(&config, &out, resume, data_dir).map(|_| ())
        }
        Command::Sweep {
            config,
            out,
            data_dir,
        } => train::sweep(&config, &out, data_dir.as_deref()),
        Command::Prepare { dataset, src, fps } => data::prepare(dataset, &src, fps),
        Command::TrainProcess => balancelab::training_process::serve(),
        Command::Backup {
            out,
            database_url,
            state_dir,
        } => server::backup(&out, database_url.as_deref(), &state_dir),
        Command::Openapi => {
            println!("{:#}", api::openapi());
            Ok(())
        }
        Command::Datasets { data_dir } => {
            data::list(data_dir.as_deref());
            Ok(())
        }
    }
}
