//! Executes runs in the background and fans their progress out to live viewers.
//!
//! Training is CPU-bound, so it runs on the blocking thread pool; a semaphore bounds how
//! many runs train at once and the rest wait, queued. Every engine event is first written
//! to the store, then broadcast, so a viewer that reads the store after subscribing misses
//! nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use balancelab_shared::{Run, RunEvent, RunStatus};
use tokio::sync::{broadcast, mpsc, Semaphore};

use crate::engine::{CancelToken, Checkpointing, TrainingEvent};
use crate::store::{Store, StoreError};

/// Live events buffered per viewer before a slow viewer starts missing them.
const LIVE_BUFFER: usize = 1024;

/// What the runner holds for a run that is queued or training.
struct Active {
    live: broadcast::Sender<RunEvent>,
    cancel: CancelToken,
}

#[derive(Clone)]
pub struct Runner {
    store: Store,
    active: Arc<Mutex<HashMap<i64, Active>>>,
    slots: Arc<Semaphore>,
    data_dir: Option<Arc<Path>>,
}

impl Runner {
    /// `concurrency`: how many runs may train at the same time; `data_dir`: where real
    /// datasets are read from.
    pub fn new(store: Store, concurrency: usize, data_dir: Option<PathBuf>) -> Self {
        Self {
            store,
            active: Arc::default(),
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            data_dir: data_dir.map(Arc::from),
        }
    }

    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// Queues a stored run; it trains as soon as a slot is free.
    pub fn submit(&self, run: Run) {
        let (sender, _) = broadcast::channel(LIVE_BUFFER);
        let cancel = CancelToken::default();
        let active = Active {
            live: sender.clone(),
            cancel: cancel.clone(),
        };
        self.active.lock().unwrap().insert(run.id, active);
        let runner = self.clone();
        tokio::spawn(async move {
            let id = run.id;
            runner.execute(run, &sender, cancel).await;
            // Dropping the last sender ends every viewer's stream.
            runner.active.lock().unwrap().remove(&id);
        });
    }

    /// Live events of a run that is queued or training; `None` once it has ended.
    pub fn subscribe(&self, id: i64) -> Option<broadcast::Receiver<RunEvent>> {
        (self.active.lock().unwrap().get(&id)).map(|a| a.live.subscribe())
    }

    /// Asks a queued or training run to stop (between two steps); false if it is not active.
    pub fn cancel(&self, id: i64) -> bool {
        let active = self.active.lock().unwrap();
        active.get(&id).map(|a| a.cancel.cancel()).is_some()
    }

    async fn execute(&self, run: Run, live: &broadcast::Sender<RunEvent>, cancel: CancelToken) {
        let Ok(_slot) = self.slots.acquire().await else {
            return;
        };
        if cancel.is_cancelled() {
            // Cancelled while queued: no need to load its data.
            if let Err(e) = self.record(run.id, TrainingEvent::Cancelled, live).await {
                tracing::error!(run = run.id, error = %e, "could not record a cancellation");
            }
            return;
        }
        // Bounded, so a stalled database slows training down instead of filling memory.
        let (events, mut received) = mpsc::channel(256);
        let config = run.config.clone();
        let data_dir = self.data_dir.clone();
        let training = tokio::task::spawn_blocking(move || {
            let data_dir = data_dir.as_deref();
            crate::train_run(
                &config,
                data_dir,
                Checkpointing::default(),
                &cancel,
                &mut |event| {
                    // The receiver only goes away if the server is shutting down.
                    let _ = events.blocking_send(event);
                },
            );
        });
        while let Some(event) = received.recv().await {
            if let Err(e) = self.record(run.id, event, live).await {
                tracing::error!(run = run.id, error = %e, "could not record a training event");
            }
        }
        if let Err(panic) = training.await {
            let error = format!("training crashed: {panic}");
            tracing::error!(run = run.id, %error);
            let event = TrainingEvent::Failed { error };
            if let Err(e) = self.record(run.id, event, live).await {
                tracing::error!(run = run.id, error = %e, "could not record the crash");
            }
        }
    }

    async fn record(
        &self,
        id: i64,
        event: TrainingEvent,
        live: &broadcast::Sender<RunEvent>,
    ) -> Result<(), StoreError> {
        let (status, error) = match event {
            TrainingEvent::Step(_) => return Ok(()),
            TrainingEvent::Epoch(metrics) => {
                self.store.add_epoch(id, &metrics).await?;
                let _ = live.send(RunEvent::Epoch(Box::new(metrics)));
                return Ok(());
            }
            TrainingEvent::Started { .. } => (RunStatus::Running, None),
            TrainingEvent::Finished(summary) => {
                tracing::info!(run = id, fused = summary.test.fused, "run completed");
                (RunStatus::Completed, None)
            }
            TrainingEvent::Cancelled => (RunStatus::Cancelled, None),
            TrainingEvent::Failed { error } => (RunStatus::Failed, Some(error)),
        };
        self.store.set_status(id, status, error.as_deref()).await?;
        let _ = live.send(RunEvent::Status { status, error });
        Ok(())
    }
}
