//! Live updates for viewers, read from the store so that they work whichever process or
//! machine trains the run.
//!
//! One poller per watched run reads the run's new log entries and fans them out to every
//! viewer of that run; one poller reads changed runs for the viewers of the run list. A
//! worker in this process wakes the pollers as soon as it has stored something
//! ([`Hub::notify`]); runs trained elsewhere are picked up at the next poll. Pollers stop
//! when their last viewer leaves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use balancelab_shared::Run;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::{broadcast, Notify};
use tokio_stream::wrappers::BroadcastStream;

use crate::store::{LoggedEvent, Store};

/// How often a watched run is read when nothing in this process announced news.
const POLL: Duration = Duration::from_millis(500);
/// Batches of events buffered per viewer; a viewer further behind is disconnected and
/// catches up from the store when it reconnects with its Last-Event-ID.
const VIEWER_BUFFER: usize = 256;
/// Events read per query.
const PAGE: u32 = 1000;
/// Run-list changes are read with this overlap, so that a change committed late (with an
/// earlier timestamp) is still seen; repeats are filtered out.
const LIST_OVERLAP_MS: i64 = 5_000;

struct Feed<T> {
    sender: broadcast::Sender<T>,
    wake: Arc<Notify>,
}

impl<T: Clone> Feed<T> {
    fn new() -> Self {
        Self {
            sender: broadcast::channel(VIEWER_BUFFER).0,
            wake: Arc::new(Notify::new()),
        }
    }
}

/// A batch of one run's log entries, as one poll read them.
type Batch = Arc<[LoggedEvent]>;

/// The live feeds of this process: one per watched run, one for the run list. Cheap to
/// clone; clones share the feeds.
#[derive(Clone)]
pub struct Hub {
    store: Store,
    runs: Arc<Mutex<HashMap<i64, Feed<Batch>>>>,
    list: Arc<Mutex<Option<Feed<Arc<Run>>>>>,
}

impl Hub {
    /// A hub reading from `store`, with no feed yet (each starts with its first viewer).
    pub fn new(store: Store) -> Self {
        Self {
            store,
            runs: Arc::default(),
            list: Arc::default(),
        }
    }

    /// Something about run `id` was stored: wake its poller and the run list's.
    pub fn notify(&self, id: i64) {
        if let Some(feed) = self.runs.lock().unwrap().get(&id) {
            feed.wake.notify_one();
        }
        if let Some(feed) = self.list.lock().unwrap().as_ref() {
            feed.wake.notify_one();
        }
    }

    /// Run `id`'s log after position `after`: what is stored, then new entries as they are
    /// stored, until the run ends (`live` false: stored entries only). The stored part is
    /// read a page at a time as the viewer takes it, so a viewer of a long run holds one page,
    /// not the log. A viewer that falls too far behind is ended; it resumes by reconnecting
    /// from its last position.
    pub(crate) async fn follow(
        &self,
        id: i64,
        after: i64,
        live: bool,
    ) -> Result<impl Stream<Item = LoggedEvent> + Send + 'static, crate::store::StoreError> {
        // The run's poller reads what is stored after this moment, whatever position this
        // viewer asks for (a first viewer asking past the end must not silence the others);
        // the viewer's own pages, read after it subscribes, cover everything up to then.
        let stored = self.store.last_seq(id).await?;
        let receiver = live.then(|| self.subscribe_run(id, stored));
        let store = self.store.clone();
        let delivered = Arc::new(AtomicI64::new(after));
        let read = delivered.clone();
        let backlog = stream::unfold(Some(after), move |cursor| {
            let store = store.clone();
            async move {
                let cursor = cursor?;
                match store.events_after(id, cursor, PAGE).await {
                    Ok(page) if page.is_empty() => None,
                    Ok(page) => {
                        let full = page.len() == PAGE as usize;
                        let next = page.last().map(|e| e.seq).filter(|_| full);
                        Some((stream::iter(page), next))
                    }
                    Err(e) => {
                        // Ends the stream: the viewer reconnects from its last position.
                        tracing::warn!(run = id, error = %e, "could not read the run's log");
                        None
                    }
                }
            }
        })
        .flatten()
        .inspect(move |e| read.store(e.seq, Ordering::Relaxed));
        let live = stream::iter(receiver.map(BroadcastStream::new))
            .flatten()
            // A lagged viewer ends here.
            .take_while(|batch| std::future::ready(batch.is_ok()))
            .flat_map(move |batch| {
                let last = delivered.load(Ordering::Relaxed);
                let fresh: Vec<LoggedEvent> = batch
                    .into_iter()
                    .flat_map(|events| events.to_vec())
                    .filter(|e| e.seq > last)
                    .collect();
                if let Some(e) = fresh.last() {
                    delivered.store(e.seq, Ordering::Relaxed);
                }
                stream::iter(fresh)
            });
        Ok(backlog.chain(live))
    }

    fn subscribe_run(&self, id: i64, after: i64) -> broadcast::Receiver<Batch> {
        let mut feeds = self.runs.lock().unwrap();
        if let Some(feed) = feeds.get(&id) {
            return feed.sender.subscribe();
        }
        let feed = Feed::new();
        let receiver = feed.sender.subscribe();
        tokio::spawn(poll_run(
            self.clone(),
            id,
            after,
            feed.sender.clone(),
            feed.wake.clone(),
        ));
        feeds.insert(id, feed);
        receiver
    }

    /// Runs as they change (created, status, progress, tags), from now on.
    pub(crate) fn follow_runs(&self) -> impl Stream<Item = Arc<Run>> + Send + 'static {
        let receiver = {
            let mut list = self.list.lock().unwrap();
            match list.as_ref() {
                Some(feed) => feed.sender.subscribe(),
                None => {
                    let feed = Feed::new();
                    let receiver = feed.sender.subscribe();
                    tokio::spawn(poll_list(
                        self.clone(),
                        feed.sender.clone(),
                        feed.wake.clone(),
                    ));
                    *list = Some(feed);
                    receiver
                }
            }
        };
        BroadcastStream::new(receiver)
            .take_while(|run| std::future::ready(run.is_ok()))
            .filter_map(|run| std::future::ready(run.ok()))
    }
}

/// Reads run `id`'s new log entries and broadcasts them, until the run has ended or nobody
/// watches.
async fn poll_run(
    hub: Hub,
    id: i64,
    mut cursor: i64,
    sender: broadcast::Sender<Batch>,
    wake: Arc<Notify>,
) {
    let mut ended = false;
    while !ended {
        match hub.store.events_after(id, cursor, PAGE).await {
            Ok(events) if !events.is_empty() => {
                cursor = events.last().map_or(cursor, |e| e.seq);
                ended = events.iter().any(is_terminal_status);
                let full = events.len() == PAGE as usize;
                let _ = sender.send(events.into());
                if full {
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(run = id, error = %e, "could not read new run events"),
        }
        if !ended {
            let _ = tokio::time::timeout(POLL, wake.notified()).await;
        }
        // Checked under the lock, so a viewer arriving now gets a new poller, not this one.
        let mut feeds = hub.runs.lock().unwrap();
        if ended || sender.receiver_count() == 0 {
            // Dropping the last sender ends every viewer's stream.
            feeds.remove(&id);
            return;
        }
    }
}

fn is_terminal_status(event: &LoggedEvent) -> bool {
    use balancelab_shared::RunEvent;
    // Cheap test first: most entries are steps.
    event.json.starts_with(r#"{"type":"status""#)
        && matches!(
            serde_json::from_str::<RunEvent>(&event.json),
            Ok(RunEvent::Status { status, .. }) if status.is_terminal()
        )
}

async fn poll_list(hub: Hub, sender: broadcast::Sender<Arc<Run>>, wake: Arc<Notify>) {
    let mut since = match hub.store.now_ms().await {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the database clock");
            0
        }
    };
    let mut seen: HashMap<i64, i64> = HashMap::new();
    loop {
        match hub.store.runs_changed_since(since - LIST_OVERLAP_MS).await {
            Ok(changed) => {
                for (run, updated) in changed {
                    if seen.get(&run.id) == Some(&updated) {
                        continue;
                    }
                    seen.insert(run.id, updated);
                    since = since.max(updated);
                    let _ = sender.send(Arc::new(run));
                }
                seen.retain(|_, updated| *updated >= since - LIST_OVERLAP_MS);
            }
            Err(e) => tracing::warn!(error = %e, "could not read changed runs"),
        }
        let _ = tokio::time::timeout(POLL, wake.notified()).await;
        let mut list = hub.list.lock().unwrap();
        if sender.receiver_count() == 0 {
            *list = None;
            return;
        }
    }
}
