//! The schema's migrations, compiled into the binary. sqlx's `migrate!` macro would embed
//! them as well, but it needs sqlx's macros, which build sqlx and SQLite's C a second time
//! for the compiler: on a cold build that was two minutes of CPU for one folder listing.

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

/// One database's migrations: (version, file name, SQL) in version order; a test checks the
/// list against the folder, so a new file cannot be forgotten here.
type Migrations = &'static [(i64, &'static str, &'static str)];

macro_rules! migrations {
    ($dir:literal: $($version:literal $file:literal),+ $(,)?) => {
        &[$(($version, $file, include_str!(concat!("../../migrations/", $dir, "/", $file)))),+]
    };
}

const SQLITE: Migrations = migrations!("sqlite":
    1 "0001_runs.sql",
    2 "0002_queue_and_event_log.sql",
    3 "0003_users_projects_sharing.sql",
    4 "0004_run_pace_and_best_heads.sql",
    5 "0005_run_fence.sql",
    6 "0006_accounts.sql",
    7 "0007_audit_log.sql",
    8 "0008_run_events_by_kind.sql",
);

const POSTGRES: Migrations = migrations!("postgres":
    1 "0001_schema.sql",
    2 "0002_users_projects_sharing.sql",
    3 "0003_run_pace_and_best_heads.sql",
    4 "0004_run_fence.sql",
    5 "0005_accounts.sql",
    6 "0006_audit_log.sql",
    7 "0007_run_events_by_kind.sql",
);

#[derive(Debug)]
struct Embedded(Migrations);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.0.iter().map(migration).collect()) })
    }
}

/// What sqlx's folder source makes of a file: the description is the name after the
/// version with `_` as spaces, and the checksum (of the SQL) is the one databases migrated
/// by `migrate!` already hold.
fn migration(&(version, file, sql): &(i64, &'static str, &'static str)) -> Migration {
    let description = file
        .trim_end_matches(".sql")
        .split_once('_')
        .map_or(file, |(_, name)| name)
        .replace('_', " ");
    let no_tx = sql.starts_with("-- no-transaction");
    Migration::new(
        version,
        description.into(),
        MigrationType::Simple,
        sql.into(),
        no_tx,
    )
}

/// SQLite's migrations.
pub(super) async fn sqlite() -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(SQLITE)).await
}

/// PostgreSQL's migrations.
pub(super) async fn postgres() -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(POSTGRES)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        for (dir, embedded) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let listed: Vec<String> = embedded.iter().map(|m| m.1.to_owned()).collect();
            assert_eq!(listed, files(dir), "{dir}");
            for (version, file, _) in embedded {
                assert_eq!(file[..4].parse::<i64>().unwrap(), *version, "{file}");
            }
        }
    }

    #[test]
    fn descriptions_are_what_sqlx_would_read_from_the_folder() {
        let m = migration(&SQLITE[1]);
        assert_eq!(
            (m.version, m.description.as_ref()),
            (2, "queue and event log")
        );
    }
}
