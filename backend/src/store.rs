//! Runs and their metrics in SQLite (WAL mode), through sqlx with embedded migrations.

use std::path::Path;
use std::str::FromStr;

use balancelab_shared::{EpochMetrics, Run, RunConfig, RunStatus};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        Self::connect(options, 4).await
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // Every connection to ":memory:" is a separate database: keep exactly one.
        Self::connect(options, 1).await
    }

    async fn connect(options: SqliteConnectOptions, connections: u32) -> Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    pub async fn create_run(&self, config: &RunConfig) -> Result<Run> {
        let json = serde_json::to_string(config).expect("a RunConfig always serializes");
        let row = sqlx::query(
            "INSERT INTO runs (config, status) VALUES (?, ?) RETURNING id, config, status, error, created_at",
        )
        .bind(json)
        .bind(RunStatus::Queued.as_str())
        .fetch_one(&self.pool)
        .await?;
        run_from_row(&row)
    }

    pub async fn get_run(&self, id: i64) -> Result<Option<Run>> {
        let row =
            sqlx::query("SELECT id, config, status, error, created_at FROM runs WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Most recent first.
    pub async fn list_runs(&self, limit: u32) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT id, config, status, error, created_at FROM runs ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    pub async fn set_status(&self, id: i64, status: RunStatus, error: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE runs SET status = ?, error = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn add_epoch(&self, id: i64, metrics: &EpochMetrics) -> Result<()> {
        let json = serde_json::to_string(metrics).expect("EpochMetrics always serializes");
        sqlx::query("INSERT INTO epoch_metrics (run_id, epoch, metrics) VALUES (?, ?, ?)")
            .bind(id)
            .bind(metrics.epoch)
            .bind(json)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn epochs(&self, id: i64) -> Result<Vec<EpochMetrics>> {
        let rows = sqlx::query("SELECT metrics FROM epoch_metrics WHERE run_id = ? ORDER BY epoch")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| parse_json(row.get::<&str, _>("metrics")))
            .collect()
    }

    /// Marks runs left queued or running by a previous process as failed, with `reason`.
    /// Returns how many there were.
    pub async fn fail_unfinished(&self, reason: &str) -> Result<u64> {
        let done = sqlx::query("UPDATE runs SET status = ?, error = ? WHERE status IN (?, ?)")
            .bind(RunStatus::Failed.as_str())
            .bind(reason)
            .bind(RunStatus::Queued.as_str())
            .bind(RunStatus::Running.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

fn run_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Run> {
    let status: &str = row.get("status");
    Ok(Run {
        id: row.get("id"),
        status: RunStatus::parse(status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run status {status:?}")))?,
        config: parse_json(row.get::<&str, _>("config"))?,
        created_at: row.get("created_at"),
        error: row.get("error"),
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancelab_shared::SplitScores;

    fn epoch(n: u32) -> EpochMetrics {
        EpochMetrics {
            epoch: n,
            train_loss: 1.0 / n as f64,
            coefficients: vec![0.9, 1.1],
            confidences: vec![0.5, 0.3],
            gradient_norms: vec![0.1, 0.2],
            learning_rate: 0.01,
            train: SplitScores::default(),
            validation: None,
            test: SplitScores {
                fused: 0.5,
                unimodal: vec![0.4, 0.2],
                fused_macro_f1: 0.45,
                fused_loss: 1.2,
                unimodal_macro_f1: vec![0.35, 0.15],
            },
            solo_accuracy: vec![0.5, 0.1],
            elapsed_seconds: n as f64,
        }
    }

    #[tokio::test]
    async fn runs_and_epochs_round_trip() -> Result<()> {
        let store = Store::in_memory().await?;
        let created = store.create_run(&RunConfig::default()).await?;
        assert_eq!(created.status, RunStatus::Queued);
        store.add_epoch(created.id, &epoch(2)).await?;
        store.add_epoch(created.id, &epoch(1)).await?;
        store
            .set_status(created.id, RunStatus::Failed, Some("boom"))
            .await?;
        let run = store.get_run(created.id).await?.unwrap();
        assert_eq!(
            (run.status, run.error.as_deref()),
            (RunStatus::Failed, Some("boom"))
        );
        assert_eq!(run.config, RunConfig::default());
        assert_eq!(store.epochs(created.id).await?, [epoch(1), epoch(2)]);
        assert!(store.get_run(created.id + 1).await?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn unfinished_runs_are_failed_on_restart() -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let id = {
            let store = Store::open(&path).await?;
            let a = store.create_run(&RunConfig::default()).await?;
            let b = store.create_run(&RunConfig::default()).await?;
            store.set_status(b.id, RunStatus::Completed, None).await?;
            a.id
        };
        let store = Store::open(&path).await?;
        assert_eq!(store.fail_unfinished("server restarted").await?, 1);
        let run = store.get_run(id).await?.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(store.list_runs(10).await?.len(), 2);
        Ok(())
    }
}
