//! Runs: create, read, list with filters and pages, tag and annotate, delete.

use balancelab_shared::{Run, RunConfig, RunPage, RunPatch, RunQuery, RunSort, SortOrder};
use sqlx::{Any, Row, Transaction};

use super::{run_from_row, Result, Store, RUN_COLUMNS};

/// A filter's value, bound with its own type.
enum Bound {
    Text(String),
    Int(i64),
}

impl Bound {
    fn bind_to<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            Self::Text(text) => query.bind(text.as_str()),
            Self::Int(n) => query.bind(*n),
        }
    }
}

impl Store {
    /// Stores a new queued run in `project`. Committed before this returns: once the API has
    /// answered with the run, it exists.
    pub async fn create_run(&self, config: &RunConfig, project: i64) -> Result<Run> {
        let mut runs = self
            .create_runs(std::slice::from_ref(config), project, |_| Vec::new())
            .await?;
        Ok(runs.remove(0))
    }

    /// Stores queued runs of `configs` in `project`, in one transaction: all of them or
    /// none. Each gets the tags `tags` gives for the id of the first (a sweep is named after
    /// it). Returned in the order given, which is the order they are claimed.
    pub(crate) async fn create_runs(
        &self,
        configs: &[RunConfig],
        project: i64,
        tags: impl Fn(i64) -> Vec<String>,
    ) -> Result<Vec<Run>> {
        let sql = self.dialect.sql(
            "INSERT INTO runs (config, status, method, dataset, updated_ms, project_id) \
             VALUES ($1, 'queued', $2, $3, NOW_MS, $4) RETURNING id",
        );
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(configs.len());
        for config in configs {
            let json = serde_json::to_string(config).expect("a RunConfig always serializes");
            let id: i64 = sqlx::query_scalar(&sql)
                .bind(json)
                .bind(config.method.name())
                .bind(config.dataset.kind())
                .bind(project)
                .fetch_one(&mut *tx)
                .await?;
            let tags = tags(*ids.first().unwrap_or(&id));
            if !tags.is_empty() {
                self.set_tags(&mut tx, id, &tags).await?;
            }
            ids.push(id);
        }
        tx.commit().await?;
        let mut runs = Vec::with_capacity(ids.len());
        for id in ids {
            runs.push(self.get_run(id).await?.expect("committed above"));
        }
        Ok(runs)
    }

    /// Run `id`; `None` if it does not exist.
    pub(crate) async fn get_run(&self, id: i64) -> Result<Option<Run>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The page of runs `query` asks for among those user `viewer` may see (the runs of
    /// their projects), and how many match in all.
    pub(crate) async fn list_runs(&self, query: &RunQuery, viewer: i64) -> Result<RunPage> {
        let mut conditions = Vec::new();
        let mut values: Vec<Bound> = Vec::new();
        let mut bind = |condition: &str, value: Bound| {
            values.push(value);
            conditions.push(condition.replace('?', &format!("${}", values.len())));
        };
        bind(
            "project_id IN (SELECT project_id FROM members WHERE user_id = ?)",
            Bound::Int(viewer),
        );
        if let Some(project) = query.project {
            bind("project_id = ?", Bound::Int(project));
        }
        if let Some(status) = query.status {
            bind("status = ?", Bound::Text(status.as_str().to_owned()));
        }
        if let Some(method) = &query.method {
            bind("method = ?", Bound::Text(method.clone()));
        }
        if let Some(dataset) = &query.dataset {
            bind("dataset = ?", Bound::Text(dataset.clone()));
        }
        if let Some(tag) = &query.tag {
            bind(
                "EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = runs.id AND t.tag = ?)",
                Bound::Text(tag.clone()),
            );
        }
        if let Some(text) = query.search.as_deref().filter(|t| !t.is_empty()) {
            let pattern = format!("%{}%", text.to_lowercase());
            bind(
                "(LOWER(note) LIKE ? OR LOWER(tags) LIKE ?)",
                Bound::Text(pattern),
            );
        }
        let filter = format!("WHERE {}", conditions.join(" AND "));
        let column = match query.sort {
            RunSort::Id => "id",
            RunSort::Status => "status",
            RunSort::Method => "method",
            RunSort::Dataset => "dataset",
            RunSort::BestAccuracy => "COALESCE(best_accuracy, -1)",
        };
        let order = match query.order {
            SortOrder::Asc => "ASC",
            SortOrder::Desc => "DESC",
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM runs {filter}");
        let mut count = sqlx::query(&count_sql);
        for value in &values {
            count = value.bind_to(count);
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get("n")?;

        let page_sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs {filter} ORDER BY {column} {order}, id {order} \
             LIMIT {} OFFSET {}",
            query.limit.clamp(1, RunQuery::MAX_LIMIT),
            query.offset
        );
        let mut page = sqlx::query(&page_sql);
        for value in &values {
            page = value.bind_to(page);
        }
        let rows = page.fetch_all(&self.pool).await?;
        Ok(RunPage {
            runs: rows.iter().map(run_from_row).collect::<Result<_>>()?,
            total: total as u64,
        })
    }

    /// Replaces the tags and/or note given in `patch` (already validated); `None` if the run
    /// does not exist.
    pub(crate) async fn patch_run(&self, id: i64, patch: &RunPatch) -> Result<Option<Run>> {
        let mut tx = self.pool.begin().await?;
        if let Some(note) = &patch.note {
            let sql = self
                .dialect
                .sql("UPDATE runs SET note = $1, updated_ms = NOW_MS WHERE id = $2");
            sqlx::query(&sql)
                .bind(note.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(tags) = &patch.tags {
            self.set_tags(&mut tx, id, tags).await?;
        }
        tx.commit().await?;
        self.get_run(id).await
    }

    /// Replaces run `id`'s tags (sorted, each once), in the run and in the tag index.
    async fn set_tags(
        &self,
        tx: &mut Transaction<'_, Any>,
        id: i64,
        tags: &[String],
    ) -> Result<()> {
        let mut tags = tags.to_vec();
        tags.sort();
        tags.dedup();
        let json = serde_json::to_string(&tags).expect("strings serialize");
        let sql = self
            .dialect
            .sql("UPDATE runs SET tags = $1, updated_ms = NOW_MS WHERE id = $2");
        sqlx::query(&sql)
            .bind(json)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM run_tags WHERE run_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        for tag in &tags {
            // Through the run, so that tagging a run that does not exist changes nothing.
            sqlx::query("INSERT INTO run_tags (run_id, tag) SELECT id, $1 FROM runs WHERE id = $2")
                .bind(tag.as_str())
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Deletes a run that is not claimed by a worker, with its events and tags. Returns
    /// whether a run was deleted; a running run is left alone (cancel it first).
    pub(crate) async fn delete_run(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM runs WHERE id = $1 AND status <> 'running'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// Runs changed (created, status, progress, tags, note) at or after `since_ms` on the
    /// database clock, oldest change first, with the time of their change.
    pub(crate) async fn runs_changed_since(&self, since_ms: i64) -> Result<Vec<(Run, i64)>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS}, updated_ms FROM runs WHERE updated_ms >= $1 \
             ORDER BY updated_ms LIMIT 1000"
        );
        let rows = sqlx::query(&sql)
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((run_from_row(row)?, row.try_get("updated_ms")?)))
            .collect()
    }

    /// The database clock, in Unix milliseconds.
    pub(crate) async fn now_ms(&self) -> Result<i64> {
        let sql = self.dialect.sql("SELECT NOW_MS AS now");
        Ok(sqlx::query(&sql)
            .fetch_one(&self.pool)
            .await?
            .try_get("now")?)
    }
}
