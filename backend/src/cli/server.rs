//! `balancelab serve` and `balancelab worker`: the store, the workers and the HTTP server.

use std::fs;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use balancelab::api::{self, AppState};
use balancelab::live::Hub;
use balancelab::store::Store;
use balancelab::training_process::ChildOptions;
use balancelab::worker::{WorkerOptions, Workers};

/// Where runs are stored and how workers behave: shared by `serve` and `worker`.
#[derive(clap::Args)]
pub struct WorkerArgs {
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
    /// GiB of memory one run may use on the CPU: a run estimated to need more is refused
    /// before it is queued, and a run's process is limited to it (its address space), so a
    /// run that needs more fails alone. Default: three quarters of the machine's memory.
    #[arg(long)]
    memory_budget: Option<f64>,
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
        let memory_budget = match self.memory_budget {
            None => balancelab::worker::default_memory_budget(),
            Some(gib) if gib.is_finite() && gib > 0.0 => Some((gib * f64::from(1 << 30)) as u64),
            Some(_) => bail!("--memory-budget must be a positive number of GiB"),
        };
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
        let defaults = WorkerOptions::new(state_dir.join("checkpoints"));
        let options = WorkerOptions {
            concurrency,
            data_dir: self.data_dir.clone(),
            heartbeat,
            stale_after,
            memory_budget,
            child: ChildOptions {
                memory_limit: memory_budget,
                ..defaults.child.clone()
            },
            ..defaults
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

#[tokio::main]
/// `balancelab serve`: the UI and the API, with `workers` runs trained at a time.
pub async fn serve(
    addr: SocketAddr,
    ui_dir: PathBuf,
    (workers, secure_cookies): (usize, bool),
    common: &WorkerArgs,
) -> anyhow::Result<()> {
    let (store, hub, workers) = common.open(workers).await?;
    if !ui_dir.join("index.html").exists() {
        tracing::warn!(ui_dir = %ui_dir.display(), "no built UI found: run scripts/build-ui; serving the API only");
    }
    let password = std::env::var("BALANCELAB_ADMIN_PASSWORD").ok();
    if let Some(made_up) = balancelab::auth::bootstrap(&store, password.as_deref()).await? {
        // Shown once, on the terminal only: the hash is all that is stored.
        println!(
            "First start: created the user `admin` with the password {made_up}\n\
             (shown only now; sign in at http://{addr} and create other users from there)"
        );
    }
    let state = AppState::new(store, hub, workers.clone()).with_secure_cookies(secure_cookies);
    let app = api::with_ui(api::app(state), &ui_dir);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("BalanceLab is serving at http://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
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
/// `balancelab worker`: trains queued runs only.
pub async fn worker(concurrency: usize, common: &WorkerArgs) -> anyhow::Result<()> {
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let (_, _, workers) = common.open(concurrency).await?;
    tracing::info!(concurrency, "worker started: training queued runs");
    shutdown_signal().await;
    workers.shutdown().await;
    Ok(())
}

#[tokio::main]
/// `balancelab backup`: a consistent copy of the SQLite store in a new file.
pub async fn backup(
    out: &std::path::Path,
    database_url: Option<&str>,
    state_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let store = match database_url {
        Some(url) => Store::connect(url).await,
        None => {
            let file = state_dir.join("balancelab.sqlite");
            if !file.exists() {
                bail!("no store at {} (see --state-dir)", file.display());
            }
            Store::open(&file).await
        }
    }?;
    store.backup(out).await?;
    println!("backed up to {}", out.display());
    Ok(())
}
