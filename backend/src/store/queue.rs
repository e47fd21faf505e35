//! The run queue. Workers (the server's own, or `balancelab worker` on other machines)
//! claim the oldest queued run in one statement, prove they are alive with heartbeats, and
//! hand the run back finished, failed, cancelled or re-queued. A run whose worker stopped
//! sending heartbeats is re-queued by whichever worker notices, and resumes from its last
//! checkpoint; after too many attempts it fails instead, with the reason.
//!
//! Every status change and its event-log entry are written in one transaction.

use balancelab_shared::{Run, RunEvent, RunStatus};
use sqlx::Row;

use super::events::{append, LoggedEvent};
use super::{run_from_row, Result, Store, RUN_COLUMNS};

/// What a worker learns from a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Heartbeat {
    /// Keep training.
    Continue,
    /// Someone asked to cancel the run: stop between two steps.
    Cancel,
    /// The run is no longer this worker's (it was re-queued or deleted): stop, store nothing.
    Lost,
}

/// What a cancellation request found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cancellation {
    /// The run was queued and is now cancelled.
    Cancelled,
    /// The run is training; its worker stops it at its next heartbeat (or at once, when
    /// it is this process's).
    Requested,
    /// The run has ended (or does not exist).
    NotActive,
}

/// A worker's hold on a claimed run: the worker's name and the claim's fencing token,
/// raised by every claim of the run. Every write made for the run checks both, in the same
/// statement or transaction, so a worker that lost the run writes nothing, even one that
/// has since claimed it again under the same name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The worker holding the run.
    pub worker: String,
    /// The claim's fencing token.
    pub fence: i64,
}

/// A claimed run.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// The run, as it is now: running, its attempts counted.
    pub run: Run,
    /// What the claiming worker's writes for the run must show.
    pub lease: Lease,
}

/// The condition of a write by the holder of a lease: run `$1`, held by worker `$2` under
/// fence `$3`.
const HELD: &str = "id = $1 AND worker = $2 AND fence = $3 AND status = 'running'";

impl Store {
    /// Claims the oldest queued run for `worker`, marking it running. Two workers never get
    /// the same run: SQLite serialises writers, and PostgreSQL workers skip a row another
    /// worker has locked.
    pub async fn claim_next(&self, worker: &str) -> Result<Option<Claim>> {
        let sql = self.dialect.sql(&format!(
            "UPDATE runs SET status = 'running', worker = $1, heartbeat_ms = NOW_MS, \
             attempts = attempts + 1, fence = fence + 1, cancel_requested = 0, error = NULL, \
             updated_ms = NOW_MS WHERE status = 'queued' AND id = \
             (SELECT id FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1 SKIP_LOCKED) \
             RETURNING {RUN_COLUMNS}, fence"
        ));
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(&sql)
            .bind(worker)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let run = run_from_row(&row)?;
        let lease = Lease {
            worker: worker.to_owned(),
            fence: row.try_get("fence")?,
        };
        let event = RunEvent::Status {
            status: RunStatus::Running,
            error: None,
        };
        append(&mut tx, self.dialect, run.id, &[event]).await?;
        tx.commit().await?;
        Ok(Some(Claim { run, lease }))
    }

    /// Records that the holder of `lease` is alive and still training run `id`.
    pub(crate) async fn heartbeat(&self, id: i64, lease: &Lease) -> Result<Heartbeat> {
        let sql = self.dialect.sql(&format!(
            "UPDATE runs SET heartbeat_ms = NOW_MS WHERE {HELD} RETURNING cancel_requested"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(&lease.worker)
            .bind(lease.fence)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            None => Heartbeat::Lost,
            Some(row) if row.try_get::<i64, _>("cancel_requested")? != 0 => Heartbeat::Cancel,
            Some(_) => Heartbeat::Continue,
        })
    }

    /// Ends the hold of `lease` on run `id` with `status` (completed, failed, cancelled, or
    /// queued to give it back unfinished). Returns false, changing nothing, if the run is no
    /// longer held under this lease. A run given back without an error (on shutdown) gets its start
    /// back; one given back with an error (a start that could not work) keeps it counted, so
    /// that it fails after the attempt limit rather than cycle between workers forever.
    pub async fn finish(
        &self,
        id: i64,
        lease: &Lease,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<bool> {
        let attempts = if status == RunStatus::Queued && error.is_none() {
            "attempts - 1"
        } else {
            "attempts"
        };
        let sql = self.dialect.sql(&format!(
            "UPDATE runs SET status = $4, error = $5, worker = NULL, heartbeat_ms = NULL, \
             attempts = {attempts}, updated_ms = NOW_MS WHERE {HELD}"
        ));
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(&sql)
            .bind(id)
            .bind(&lease.worker)
            .bind(lease.fence)
            .bind(status.as_str())
            .bind(error)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let event = RunEvent::Status {
            status,
            error: error.map(str::to_owned),
        };
        append(&mut tx, self.dialect, id, &[event]).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Appends `events` to run `id`'s log, as [`Store::append_events`] does, if the run is
    /// still held under `lease`; `None`, writing nothing, if it is not.
    pub(crate) async fn append_held_events(
        &self,
        id: i64,
        lease: &Lease,
        events: &[RunEvent],
    ) -> Result<Option<Vec<LoggedEvent>>> {
        let mut tx = self.pool.begin().await?;
        // Taking the row (PostgreSQL) or the database (SQLite) for writing first: the lease
        // cannot end between this check and the events' insertion. Changing nothing: the
        // run list follows `updated_ms`, and a step batch is not a change of the run.
        let sql = format!("UPDATE runs SET fence = fence WHERE {HELD}");
        let held = sqlx::query(&sql)
            .bind(id)
            .bind(&lease.worker)
            .bind(lease.fence)
            .execute(&mut *tx)
            .await?;
        if held.rows_affected() == 0 {
            return Ok(None);
        }
        let logged = append(&mut tx, self.dialect, id, events).await?;
        tx.commit().await?;
        Ok(Some(logged))
    }

    /// Cancels a queued run at once, or asks the worker of a running one to stop.
    pub(crate) async fn request_cancel(&self, id: i64) -> Result<Cancellation> {
        let mut tx = self.pool.begin().await?;
        let sql = self.dialect.sql(
            "UPDATE runs SET status = 'cancelled', updated_ms = NOW_MS \
             WHERE id = $1 AND status = 'queued'",
        );
        let queued = sqlx::query(&sql).bind(id).execute(&mut *tx).await?;
        if queued.rows_affected() == 1 {
            let event = RunEvent::Status {
                status: RunStatus::Cancelled,
                error: None,
            };
            append(&mut tx, self.dialect, id, &[event]).await?;
            tx.commit().await?;
            return Ok(Cancellation::Cancelled);
        }
        let running = sqlx::query(
            "UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND status = 'running'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if running.rows_affected() == 1 {
            Cancellation::Requested
        } else {
            Cancellation::NotActive
        })
    }

    /// Re-queues runs whose worker has sent no heartbeat for `timeout_ms`; a run that has
    /// already been started `max_attempts` times fails instead, and one whose cancellation
    /// was requested is cancelled. Returns the runs changed and their new status.
    pub(crate) async fn requeue_stale(
        &self,
        timeout_ms: i64,
        max_attempts: u32,
    ) -> Result<Vec<(i64, RunStatus)>> {
        let gave_up = format!(
            "its worker stopped responding {max_attempts} times; the run may crash its worker \
             (out of memory?)"
        );
        let sql = self.dialect.sql(
            "UPDATE runs SET \
             status = CASE WHEN cancel_requested <> 0 THEN 'cancelled' \
                           WHEN attempts >= $2 THEN 'failed' ELSE 'queued' END, \
             error = CASE WHEN cancel_requested = 0 AND attempts >= $2 THEN $3 ELSE NULL END, \
             worker = NULL, heartbeat_ms = NULL, updated_ms = NOW_MS \
             WHERE status = 'running' AND heartbeat_ms < NOW_MS - $1 \
             RETURNING id, status, error",
        );
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&sql)
            .bind(timeout_ms)
            .bind(i64::from(max_attempts))
            .bind(gave_up)
            .fetch_all(&mut *tx)
            .await?;
        let mut changed = Vec::new();
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let status_name: String = row.try_get("status")?;
            let status = RunStatus::parse(&status_name).unwrap_or(RunStatus::Failed);
            let error: Option<String> = row.try_get("error")?;
            append(
                &mut tx,
                self.dialect,
                id,
                &[RunEvent::Status { status, error }],
            )
            .await?;
            changed.push((id, status));
        }
        tx.commit().await?;
        Ok(changed)
    }
}
