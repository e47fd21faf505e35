//! Runs, their event logs and the run queue, in SQLite (WAL, the default: one file in the
//! state folder) or PostgreSQL (`DATABASE_URL=postgres://...`, for several machines).
//!
//! Both go through sqlx's Any driver with `$n` parameters, which both databases accept; the
//! few statements that differ (the clock, row locking) come from [`Dialect`]. Each database
//! has its own migrations folder describing the same schema.
//!
//! - [`runs`]: creating, reading, listing, tagging and deleting runs.
//! - [`events`]: the per-run event log (status changes, steps, epochs) that live viewers
//!   and resuming clients read by position.
//! - [`queue`]: workers claiming runs, heartbeats, cancellation and re-queueing.
//! - [`access`]: users, tokens, projects with roles, share links.
//! - [`audit`]: the audit log of who changed what.

mod access;
mod audit;
mod events;
mod migrations;
mod queue;
mod runs;

use std::path::Path;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub(crate) use access::MemberChange;
pub use access::TokenKind;
pub(crate) use audit::Audited;
pub use events::LoggedEvent;
pub(crate) use events::{ResumePoint, StepPages};
pub(crate) use queue::{Cancellation, Heartbeat};
pub use queue::{Claim, Lease};

use balancelab_shared::{Run, RunStatus};

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused a statement or could not be reached.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error(transparent)]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored value this build cannot read (an unknown status, broken JSON).
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database URL {0:?}: use sqlite:PATH or postgres://...")]
    UnsupportedUrl(String),
    /// Something this store cannot do, and why.
    #[error("{0}")]
    Unsupported(String),
}

/// The result of a store operation.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What differs between the two databases' SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// The database's clock in Unix milliseconds: heartbeats are compared on one clock,
    /// whatever the workers' clocks say.
    fn now_ms(self) -> &'static str {
        match self {
            Self::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Appended to the queue's "next queued run" subquery: PostgreSQL workers skip rows
    /// another worker is claiming instead of waiting for it. SQLite has one writer at a time.
    fn skip_locked(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// Appended to a read that must hold its rows until the transaction ends. SQLite needs
    /// none: it has one writer at a time.
    fn for_update(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => "FOR UPDATE",
        }
    }

    /// `sql` with `NOW_MS` replaced by this database's clock (and `SKIP_LOCKED`,
    /// `FOR_UPDATE` by what this database says for them).
    fn sql(self, sql: &str) -> String {
        sql.replace("NOW_MS", self.now_ms())
            .replace("SKIP_LOCKED", self.skip_locked())
            .replace("FOR_UPDATE", self.for_update())
    }
}

/// The database: a connection pool (cheap to clone) and the SQL dialect it speaks.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

impl Store {
    /// Connects to `url` (`sqlite:PATH` or `postgres://...`) and applies pending migrations.
    /// A SQLite file is created if missing.
    pub async fn connect(url: &str) -> Result<Self> {
        let dialect = Dialect::of_url(url)?;
        let (url, connections) = match dialect {
            Dialect::Sqlite if url.contains(":memory:") => (url.to_owned(), 1),
            Dialect::Sqlite if url.contains('?') => (url.to_owned(), 4),
            Dialect::Sqlite => (format!("{url}?mode=rwc"), 4),
            Dialect::Postgres => (url.to_owned(), 8),
        };
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(connections)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // Said, not assumed: a commit is on disk before it returns, even
                        // through a power cut (NORMAL would keep it only through a crash).
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(connection)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        match dialect {
            Dialect::Sqlite => {
                migrations::sqlite().await?.run(&pool).await?;
                // Persistent in the file: readers never wait for the writer.
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await?;
            }
            Dialect::Postgres => migrations::postgres().await?.run(&pool).await?,
        }
        Ok(Self { pool, dialect })
    }

    /// Writes a consistent copy of a SQLite store to the new file `out` while it is in use
    /// (`VACUUM INTO`); the copy opens as a store like the original. PostgreSQL has its own
    /// tool for this, `pg_dump`.
    pub async fn backup(&self, out: &Path) -> Result<()> {
        if self.dialect != Dialect::Sqlite {
            return Err(StoreError::Unsupported(
                "back up a PostgreSQL store with pg_dump (pg_dump -Fc URL > FILE; pg_restore \
                 -d URL FILE restores it)"
                    .into(),
            ));
        }
        if out.exists() {
            return Err(StoreError::Unsupported(format!(
                "{} exists; a backup is written to a new file",
                out.display()
            )));
        }
        // A literal: SQLite takes no bound parameter here.
        let path = out.display().to_string().replace('\'', "''");
        sqlx::query(&format!("VACUUM INTO '{path}'"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Opens (creating if needed) the SQLite database file at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::connect(&format!("sqlite:{}", path.display())).await
    }

    /// A private in-memory SQLite database.
    async fn in_memory() -> Result<Self> {
        // Every connection to ":memory:" is a separate database: `connect` keeps exactly one.
        Self::connect("sqlite::memory:").await
    }

    /// An empty database for a test: in memory, or, when `BALANCELAB_TEST_DATABASE_URL`
    /// names a PostgreSQL server, a new database created on it (so that the same tests
    /// check both).
    pub async fn scratch() -> Result<Self> {
        match std::env::var("BALANCELAB_TEST_DATABASE_URL") {
            Ok(admin_url) => {
                let url = Self::create_scratch_database(&admin_url).await?;
                Self::connect(&url).await
            }
            Err(_) => Self::in_memory().await,
        }
    }

    /// Creates a uniquely named database on the server of `admin_url`; returns its URL.
    pub async fn create_scratch_database(admin_url: &str) -> Result<String> {
        use rand::Rng;
        sqlx::any::install_default_drivers();
        let name = format!("balancelab_test_{:016x}", rand::rng().random::<u64>());
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(admin_url)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        Ok(format!("{base}/{name}"))
    }
}

/// The columns [`run_from_row`] reads.
const RUN_COLUMNS: &str = "id, config, status, error, created_at, tags, note, epochs_done, \
     best_accuracy, best_unimodal, elapsed_seconds, worker, attempts, project_id";

fn run_from_row(row: &AnyRow) -> Result<Run> {
    let status: String = row.try_get("status")?;
    let count = |column: &str| -> Result<u32> {
        let value: i64 = row.try_get(column)?;
        u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value}")))
    };
    Ok(Run {
        id: row.try_get("id")?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run status {status:?}")))?,
        config: parse_json(&row.try_get::<String, _>("config")?)?,
        created_at: row.try_get("created_at")?,
        error: row.try_get("error")?,
        tags: parse_json(&row.try_get::<String, _>("tags")?)?,
        note: row.try_get("note")?,
        epochs_done: count("epochs_done")?,
        best_accuracy: row.try_get("best_accuracy")?,
        best_unimodal: (row.try_get::<Option<String>, _>("best_unimodal")?)
            .map(|json| parse_json(&json))
            .transpose()?
            .unwrap_or_default(),
        elapsed_seconds: row.try_get("elapsed_seconds")?,
        worker: row.try_get("worker")?,
        attempts: count("attempts")?,
        project_id: row.try_get::<Option<i64>, _>("project_id")?.unwrap_or(0),
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests;
