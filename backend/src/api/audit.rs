//! The audit log: each change to runs, projects, members, users and tokens that succeeds is
//! recorded (who, what, when, the request's id) by its handler through [`RequestId::record`];
//! signing in and out are not changes and are not recorded. Project owners read their
//! project's entries at `/projects/{id}/audit`, admins everything at `/audit`.
//!
//! An entry is written once the change it describes is stored. If writing it fails, the
//! failure is logged and the request still succeeds: the change has been made.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::Json;
use balancelab_shared::{AuditAction, AuditEntry, Role, User};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, Caller};
use super::responses::{InvalidFields, NeedsRole};
use super::{ApiError, AppState};
use crate::store::{Audited, Store};

/// Entries per page unless asked otherwise, and the most one may ask for.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// The `/projects/{id}/audit` and `/audit` routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(project_log))
        .routes(routes!(whole_log))
}

/// The request's `x-request-id`, with which a handler records what it did. The request-id
/// layer sets one before any handler runs, but keeps a caller's own; a caller's id goes into
/// the log only if it looks like one (1 to 64 letters, digits or `-`).
pub(super) struct RequestId(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let id = (parts.headers.get("x-request-id"))
            .and_then(|v| v.to_str().ok())
            .filter(|id| {
                (1..=64).contains(&id.len())
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            .map(str::to_owned);
        Ok(Self(id))
    }
}

impl RequestId {
    /// Records that `actor` did `action` to `project` and `run` (either may be none).
    pub(super) async fn record(
        &self,
        store: &Store,
        actor: &User,
        action: AuditAction,
        (project, run): (Option<i64>, Option<i64>),
        detail: impl Into<String>,
    ) {
        let entry = Audited {
            actor: &actor.name,
            action,
            project,
            run,
            detail: detail.into(),
            request_id: self.0.as_deref(),
        };
        if let Err(e) = store.audit(&entry).await {
            tracing::error!(error = %e, action = action.as_str(), "could not write the audit log");
        }
    }
}

/// A page of the log: entries before `before` (an entry's id), newest first.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    before: Option<i64>,
    limit: Option<u32>,
}

impl Page {
    fn limits(&self) -> Result<(i64, u32), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::Invalid(vec![balancelab_shared::FieldError::new(
                "limit",
                format!("must be 1 to {MAX_LIMIT}, got {limit}"),
            )]));
        }
        Ok((self.before.unwrap_or(i64::MAX), limit))
    }
}

/// A project's audit log, newest first (owners only): runs queued, changed, cancelled,
/// deleted and shared, members added, changed and removed.
#[utoipa::path(
    get,
    path = "/projects/{id}/audit",
    operation_id = "project_audit_log",
    tag = "projects",
    params(
        ("id" = i64, Path, description = "project id"),
        ("before" = Option<i64>, Query, description = "entries before this id (the next page)"),
        ("limit" = Option<u32>, Query, description = "1 to 1000; default 100"),
    ),
    responses(
        (status = 200, body = Vec<AuditEntry>),
        InvalidFields,
        NeedsRole,
    ),
)]
async fn project_log(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller
        .require_project(&state.store, id, Role::Owner)
        .await?;
    let (before, limit) = page.limits()?;
    Ok(Json(state.store.audit_log(Some(id), before, limit).await?))
}

/// The whole audit log, newest first (admins only): every project's entries and the
/// management of users and tokens.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "audit_log",
    tag = "auth",
    params(
        ("before" = Option<i64>, Query, description = "entries before this id (the next page)"),
        ("limit" = Option<u32>, Query, description = "1 to 1000; default 100"),
    ),
    responses(
        (status = 200, body = Vec<AuditEntry>),
        InvalidFields,
        NeedsRole,
    ),
)]
async fn whole_log(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    if !user.admin {
        return Err(ApiError::Forbidden(
            "only admins read the whole audit log".into(),
        ));
    }
    let (before, limit) = page.limits()?;
    Ok(Json(state.store.audit_log(None, before, limit).await?))
}
