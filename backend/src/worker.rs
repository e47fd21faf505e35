//! Workers: claim queued runs from the store, train each in a child process
//! ([`crate::training_process`]), and record what the engine reports. The server runs a pool
//! of them; `balancelab worker` runs one pool on another machine against the same PostgreSQL
//! database.
//!
//! Durability: steps are written in batches (one transaction each); an epoch is written
//! before the engine goes on to save its checkpoint, so a stored checkpoint never runs
//! ahead of the stored epochs. A resumed run skips the steps and epochs already stored.
//!
//! Every pool also re-queues runs whose worker stopped sending heartbeats (crashed, killed,
//! cut off); the next worker resumes them from their last checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use balancelab_shared::{RunConfig, RunEvent, RunStatus};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinSet;

use crate::attempt_folders;
use crate::engine::{CancelToken, TrainingEvent};
use crate::live::Hub;
use crate::store::{Claim, Heartbeat, Lease, ResumePoint, Store};
use crate::training_process::{self, ChildOptions, Job, Report};

/// Steps written per transaction at most; a partial batch is written after [`FLUSH_AFTER`].
const STEP_BATCH: usize = 256;
const FLUSH_AFTER: Duration = Duration::from_millis(200);

/// How a pool of workers runs: its name and size, its folders, its timings.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Names this process's workers in the store (slot numbers are appended).
    pub name: String,
    /// Runs trained at the same time.
    pub concurrency: usize,
    /// Where real datasets are read from.
    pub data_dir: Option<PathBuf>,
    /// Checkpoints go to `{checkpoint_dir}/{run id}/attempt-{n}/` (see
    /// [`attempt_folders`]). Workers on several machines resume
    /// each other's runs only if they share this folder.
    pub checkpoint_dir: PathBuf,
    /// How often a training run's worker proves it is alive and checks for cancellation.
    pub heartbeat: Duration,
    /// A run whose worker has been silent this long is re-queued.
    pub stale_after: Duration,
    /// How often an idle worker looks for queued runs created elsewhere.
    pub poll: Duration,
    /// Starts of one run before it is failed instead of re-queued.
    pub max_attempts: u32,
    /// Bytes a CPU run is estimated to need at most to be queued here (see
    /// [`crate::memory_estimate`]); normally the children's hard limit too.
    pub memory_budget: Option<u64>,
    /// How runs' child processes start: the binary, and the memory one may use.
    pub child: ChildOptions,
}

impl WorkerOptions {
    /// One worker named `{hostname}:{pid}` and no data directory; heartbeats every 2 s,
    /// re-queued after 30 s of silence, polls every second, failed after 3 starts; runs train
    /// in children of this binary, each allowed [`default_memory_budget`].
    pub fn new(checkpoint_dir: PathBuf) -> Self {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Self {
            name: format!("{host}:{}", std::process::id()),
            concurrency: 1,
            data_dir: None,
            checkpoint_dir,
            heartbeat: Duration::from_secs(2),
            stale_after: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            max_attempts: 3,
            memory_budget: default_memory_budget(),
            child: ChildOptions {
                executable: std::env::current_exe().unwrap_or_else(|_| "balancelab".into()),
                memory_limit: default_memory_budget(),
            },
        }
    }
}

/// Three quarters of the machine's memory (`MemTotal` of /proc/meminfo), which a run's
/// process may use at most; none where that cannot be read.
pub fn default_memory_budget() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total_kib: u64 = (meminfo.lines())
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(total_kib * 1024 / 4 * 3)
}

/// Why this process stopped a run it was training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    /// Someone cancelled it.
    Cancelled,
    /// This process is shutting down: give the run back to the queue.
    Shutdown,
    /// The store says the run is no longer ours (re-queued or deleted).
    Lost,
}

struct Local {
    cancel: CancelToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl Local {
    fn stop(&self, reason: StopReason) {
        self.reason.lock().unwrap().get_or_insert(reason);
        self.cancel.cancel();
    }
}

struct Shared {
    store: Store,
    hub: Hub,
    options: WorkerOptions,
    local: Mutex<HashMap<i64, Local>>,
    queued: Notify,
    shutdown: watch::Sender<bool>,
}

/// A pool of workers in this process.
#[derive(Clone)]
pub struct Workers {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Workers {
    /// Starts `options.concurrency` workers (none: this process only re-queues stale runs)
    /// and the stale-run reaper.
    pub fn start(store: Store, hub: Hub, options: WorkerOptions) -> Self {
        let shared = Arc::new(Shared {
            store,
            hub,
            local: Mutex::default(),
            queued: Notify::new(),
            shutdown: watch::channel(false).0,
            options,
        });
        let mut tasks = JoinSet::new();
        for slot in 0..shared.options.concurrency {
            tasks.spawn(work(shared.clone(), slot));
        }
        tasks.spawn(reap(shared.clone()));
        Self {
            shared,
            tasks: Arc::new(Mutex::new(tasks)),
        }
    }

    /// A run was queued: an idle worker claims it now rather than at its next poll.
    pub(crate) fn wake(&self) {
        self.shared.queued.notify_waiters();
    }

    /// Stops run `id` now if this process trains it; otherwise its worker stops it at its
    /// next heartbeat, having read the request from the store.
    pub(crate) fn cancel_local(&self, id: i64) {
        if let Some(local) = self.shared.local.lock().unwrap().get(&id) {
            local.stop(StopReason::Cancelled);
        }
    }

    /// Where these workers read real datasets from, if anywhere.
    pub(crate) fn data_dir(&self) -> Option<&Path> {
        self.shared.options.data_dir.as_deref()
    }

    /// Bytes a run queued here may be estimated to need.
    pub(crate) fn memory_budget(&self) -> Option<u64> {
        self.shared.options.memory_budget
    }

    /// The folder of run `id`'s checkpoints.
    pub(crate) fn checkpoint_dir(&self, id: i64) -> PathBuf {
        self.shared.options.checkpoint_dir.join(id.to_string())
    }

    /// Stops claiming runs, stops the runs in training between two steps and gives them
    /// back to the queue (they resume from their last checkpoint), then waits for the
    /// workers to finish writing.
    pub async fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        for local in self.shared.local.lock().unwrap().values() {
            local.stop(StopReason::Shutdown);
        }
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        while tasks.join_next().await.is_some() {}
    }
}

async fn work(shared: Arc<Shared>, slot: usize) {
    let name = format!("{}#{slot}", shared.options.name);
    let mut shutdown = shared.shutdown.subscribe();
    while !*shutdown.borrow() {
        match shared.store.claim_next(&name).await {
            Ok(Some(claim)) => {
                let (run, attempt) = (claim.run.id, claim.run.attempts);
                tracing::info!(worker = name, run, attempt, "claimed a run");
                shared.hub.notify(run);
                execute(&shared, claim).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(worker = name, error = %e, "could not claim a run"),
        }
        tokio::select! {
            _ = shared.queued.notified() => {}
            _ = tokio::time::sleep(shared.options.poll) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn reap(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let timeout = shared.options.stale_after;
    while !*shutdown.borrow() {
        let stale = (shared.store)
            .requeue_stale(timeout.as_millis() as i64, shared.options.max_attempts)
            .await;
        match stale {
            Ok(changed) => {
                for (id, status) in &changed {
                    tracing::warn!(run = id, status = status.as_str(), "its worker went silent");
                    shared.hub.notify(*id);
                }
                if !changed.is_empty() {
                    shared.queued.notify_waiters();
                }
            }
            Err(e) => tracing::error!(error = %e, "could not re-queue stale runs"),
        }
        tokio::select! {
            _ = tokio::time::sleep(timeout / 4) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn execute(shared: &Arc<Shared>, claim: Claim) {
    let id = claim.run.id;
    let store = &shared.store;
    let lease = &claim.lease;
    // Whether the end was recorded (the run still this worker's).
    let finish = |status: RunStatus, error: Option<String>| async move {
        let recorded = match store.finish(id, lease, status, error.as_deref()).await {
            Ok(true) => {
                tracing::info!(run = id, status = status.as_str(), "run ended");
                true
            }
            Ok(false) => {
                tracing::warn!(run = id, "the run was taken from this worker");
                false
            }
            Err(e) => {
                tracing::error!(run = id, error = %e, "could not record the run's end");
                false
            }
        };
        shared.hub.notify(id);
        recorded
    };
    let resume = match store.resume_point(id).await {
        Ok(point) => point,
        Err(e) => {
            let attempts = claim.run.attempts;
            let status = if attempts >= shared.options.max_attempts {
                RunStatus::Failed
            } else {
                RunStatus::Queued
            };
            let error = format!("its stored progress could not be read (start {attempts}): {e}");
            finish(status, Some(error)).await;
            return;
        }
    };
    let run_dir = shared.options.checkpoint_dir.join(id.to_string());
    let attempt = match attempt_folders::start(&run_dir, lease.fence) {
        Ok(attempt) => attempt,
        Err(e) => {
            let error = format!(
                "its checkpoint folder {} is unusable: {e}",
                run_dir.display()
            );
            finish(RunStatus::Failed, Some(error)).await;
            return;
        }
    };
    // The store may be one epoch ahead of the checkpoints (the previous attempt died between
    // storing an epoch and checkpointing it): that epoch is trained again, its stored events
    // kept. A checkpoint is found here whenever one was written here; none at all with more
    // than the first epoch stored means the checkpoints are elsewhere (another machine's).
    if resume.epoch > 1 && attempt.resume_from.is_none() {
        let error = format!(
            "it was interrupted after epoch {} and its checkpoint is not in {} on this worker",
            resume.epoch,
            run_dir.display()
        );
        finish(RunStatus::Failed, Some(error)).await;
        return;
    }
    if claim.run.attempts > 1 {
        tracing::info!(run = id, after_epoch = resume.epoch, "resuming the run");
    }

    let local = Local {
        cancel: CancelToken::default(),
        reason: Arc::default(),
    };
    let cancel = local.cancel.clone();
    let reason = local.reason.clone();
    shared.local.lock().unwrap().insert(id, local);
    if *shared.shutdown.borrow() {
        // Shutdown began between the claim and the registration above.
        cancel.cancel();
        reason.lock().unwrap().get_or_insert(StopReason::Shutdown);
    }

    let heartbeat = tokio::spawn(beat(shared.clone(), lease.clone(), id));
    let (reports, received) = mpsc::channel(2 * STEP_BATCH);
    let training = spawn_training(shared, claim.run.config.clone(), attempt, cancel, reports);
    let outcome = record(shared, (id, lease), resume, received).await;
    heartbeat.abort();
    let outcome = match training.await {
        Err(panic) => Some(TrainingEvent::Failed {
            error: format!("training crashed: {panic}"),
        }),
        Ok(()) => outcome,
    };
    shared.local.lock().unwrap().remove(&id);
    let stop = *reason.lock().unwrap();
    if let Some(TrainingEvent::Finished(summary)) = &outcome {
        tracing::info!(
            run = id,
            test_accuracy = summary.test.fused,
            "run completed"
        );
    }
    match end_status(outcome, stop) {
        Some((status, error)) => {
            if finish(status, error).await && status.is_terminal() {
                if let Err(e) = attempt_folders::finish(&run_dir, lease.fence) {
                    tracing::warn!(run = id, error = %e, "could not remove older checkpoints");
                }
            }
        }
        None => shared.hub.notify(id),
    }
}

/// Trains `config` in a child process, sending every event to `reports`; an epoch's event
/// waits until the recorder has stored it, so that the checkpoint the engine writes next
/// never runs ahead of the stored epochs.
fn spawn_training(
    shared: &Shared,
    config: RunConfig,
    attempt: attempt_folders::Attempt,
    cancel: CancelToken,
    reports: mpsc::Sender<Report>,
) -> tokio::task::JoinHandle<()> {
    let job = Job {
        config,
        data_dir: shared.options.data_dir.clone(),
        checkpoint_dir: attempt.dir,
        resume_from: attempt.resume_from,
    };
    let child = shared.options.child.clone();
    tokio::spawn(async move { training_process::train(&child, job, cancel, reports).await })
}

/// The status a run ends in, from the engine's last event and why this worker stopped it;
/// none when the run was taken from this worker (its new owner records the end).
fn end_status(
    outcome: Option<TrainingEvent>,
    stop: Option<StopReason>,
) -> Option<(RunStatus, Option<String>)> {
    Some(match (outcome, stop) {
        (_, Some(StopReason::Lost)) => return None,
        (Some(TrainingEvent::Finished(_)), _) => (RunStatus::Completed, None),
        (Some(TrainingEvent::Failed { error }), _) => (RunStatus::Failed, Some(error)),
        (_, Some(StopReason::Shutdown)) => (RunStatus::Queued, None),
        (_, Some(StopReason::Cancelled)) | (Some(TrainingEvent::Cancelled), None) => {
            (RunStatus::Cancelled, None)
        }
        (_, None) => (
            RunStatus::Failed,
            Some("training ended without saying how".to_owned()),
        ),
    })
}

/// Sends heartbeats for run `id` until aborted; stops the run when the store says so.
async fn beat(shared: Arc<Shared>, lease: Lease, id: i64) {
    let mut interval = tokio::time::interval(shared.options.heartbeat);
    loop {
        interval.tick().await;
        let reason = match shared.store.heartbeat(id, &lease).await {
            Ok(Heartbeat::Continue) => continue,
            Ok(Heartbeat::Cancel) => StopReason::Cancelled,
            Ok(Heartbeat::Lost) => StopReason::Lost,
            Err(e) => {
                tracing::warn!(run = id, error = %e, "heartbeat failed");
                continue;
            }
        };
        if let Some(local) = shared.local.lock().unwrap().get(&id) {
            local.stop(reason);
        }
    }
}

/// Writes the engine's reports to the store (steps in batches) while the run is held under
/// `lease`, and wakes the viewers; returns the terminal event.
async fn record(
    shared: &Arc<Shared>,
    (id, lease): (i64, &Lease),
    resume: ResumePoint,
    mut received: mpsc::Receiver<Report>,
) -> Option<TrainingEvent> {
    let mut batch: Vec<RunEvent> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<bool>> = Vec::new();
    let mut outcome = None;
    loop {
        let report = if batch.is_empty() {
            received.recv().await
        } else {
            match tokio::time::timeout(FLUSH_AFTER, received.recv()).await {
                Ok(report) => report,
                Err(_elapsed) => {
                    flush(shared, (id, lease), &mut batch, &mut waiting).await;
                    continue;
                }
            }
        };
        let Some(Report { event, stored }) = report else {
            break;
        };
        waiting.extend(stored);
        let event = match event {
            TrainingEvent::Step(m) => RunEvent::Step(Box::new(m)),
            TrainingEvent::Epoch(m) => RunEvent::Epoch(Box::new(m)),
            TrainingEvent::Started { .. } => continue,
            terminal => {
                outcome = Some(terminal);
                continue;
            }
        };
        let is_epoch = matches!(event, RunEvent::Epoch(_));
        if !resume.covers(&event) {
            batch.push(event);
        }
        if is_epoch || batch.len() >= STEP_BATCH {
            flush(shared, (id, lease), &mut batch, &mut waiting).await;
        }
    }
    flush(shared, (id, lease), &mut batch, &mut waiting).await;
    outcome
}

async fn flush(
    shared: &Arc<Shared>,
    (id, lease): (i64, &Lease),
    batch: &mut Vec<RunEvent>,
    waiting: &mut Vec<oneshot::Sender<bool>>,
) {
    let stop = |reason| {
        if let Some(local) = shared.local.lock().unwrap().get(&id) {
            local.stop(reason);
        }
    };
    let lost = (shared.local.lock().unwrap().get(&id))
        .is_some_and(|l| *l.reason.lock().unwrap() == Some(StopReason::Lost));
    let mut stored = !lost;
    if !batch.is_empty() && !lost {
        // A write that fails is retried once; if the store stays unreachable the run is
        // stopped, since what it computes could not be kept.
        let mut written = shared.store.append_held_events(id, lease, batch).await;
        if written.is_err() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            written = shared.store.append_held_events(id, lease, batch).await;
        }
        match written {
            Ok(Some(_)) => {
                // Stored, not yet acknowledged to the engine nor shown to viewers.
                crate::failpoint::hit("events-written");
                shared.hub.notify(id);
            }
            Ok(None) => {
                stored = false;
                tracing::warn!(run = id, "the run was taken from this worker: stopping it");
                stop(StopReason::Lost);
            }
            Err(e) => {
                stored = false;
                tracing::error!(run = id, error = %e, "could not store the run's metrics");
                stop(StopReason::Shutdown);
            }
        }
    }
    batch.clear();
    // An epoch that could not be stored must not be checkpointed: the engine stops instead.
    for sender in waiting.drain(..) {
        let _ = sender.send(stored);
    }
}
