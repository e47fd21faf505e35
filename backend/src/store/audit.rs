//! The audit log: who created, changed, cancelled, deleted and shared runs, changed projects'
//! members, and managed users and tokens; when, and in answer to which request.

use balancelab_shared::{AuditAction, AuditEntry};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Result, Store, StoreError};

/// What one audit entry says, before the store dates and numbers it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Audited<'a> {
    /// The user who acted.
    pub actor: &'a str,
    /// What they did.
    pub action: AuditAction,
    /// The project concerned, if any.
    pub project: Option<i64>,
    /// The run concerned, if any.
    pub run: Option<i64>,
    /// The particulars.
    pub detail: String,
    /// The request's id.
    pub request_id: Option<&'a str>,
}

fn entry_from_row(row: &AnyRow) -> Result<AuditEntry> {
    let action: String = row.try_get("action")?;
    let action = serde_json::from_value(serde_json::Value::String(action.clone()))
        .map_err(|_| StoreError::Corrupt(format!("unknown audit action {action:?}")))?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at_ms: row.try_get("at_ms")?,
        actor: row.try_get("actor")?,
        action,
        project_id: row.try_get("project_id")?,
        run_id: row.try_get("run_id")?,
        detail: row.try_get("detail")?,
        request_id: row.try_get("request_id")?,
    })
}

impl Store {
    /// Appends one entry to the audit log.
    pub(crate) async fn audit(&self, entry: &Audited<'_>) -> Result<()> {
        let sql = self.dialect.sql(
            "INSERT INTO audit_log (at_ms, actor, action, project_id, run_id, detail, request_id) \
             VALUES (NOW_MS, $1, $2, $3, $4, $5, $6)",
        );
        sqlx::query(&sql)
            .bind(entry.actor)
            .bind(entry.action.as_str())
            .bind(entry.project)
            .bind(entry.run)
            .bind(entry.detail.as_str())
            .bind(entry.request_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Up to `limit` entries before position `before` (newest first), of `project` only or,
    /// for `None`, of everything.
    pub(crate) async fn audit_log(
        &self,
        project: Option<i64>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, at_ms, actor, action, project_id, run_id, detail, request_id \
             FROM audit_log WHERE id < $1 AND ($2 IS NULL OR project_id = $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(before)
        .bind(project)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }
}
