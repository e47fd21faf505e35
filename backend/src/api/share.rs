//! `/runs/{id}/share`: read-only links to one run. Whoever holds the link's token may read
//! the run (`GET /api/runs/{id}?share=TOKEN`, its events and metrics) and nothing else,
//! until an editor revokes it.

use super::responses::ChangesRun;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use balancelab_shared::{AuditAction, Role, Secret, ShareLink};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::RequestId;
use super::extract::{ApiPath, Caller};
use super::{ApiError, AppState};
use crate::auth::new_token;

/// The share links' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

#[utoipa::path(
    post,
    path = "/runs/{id}/share",
    operation_id = "create_share_link",
    tag = "sharing",
    params(
        ("id" = i64, Path, description = "run id"),
    ),
    responses(
        (status = 201, body = Secret, description = "the link's token, shown once"),
        ChangesRun,
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<Secret>), ApiError> {
    let run = caller.run(&state.store, id, Role::Editor).await?;
    let (token, hash) = new_token();
    let link = state
        .store
        .create_share_link(id, &hash, &caller.0.name)
        .await?;
    let target = (Some(run.project_id), Some(id));
    let detail = format!("share link {}", link.id);
    (request.record(
        &state.store,
        &caller.0,
        AuditAction::RunShared,
        target,
        detail,
    ))
    .await;
    Ok((StatusCode::CREATED, Json(Secret { id: link.id, token })))
}

#[utoipa::path(
    get,
    path = "/runs/{id}/share",
    operation_id = "list_share_links",
    tag = "sharing",
    params(
        ("id" = i64, Path, description = "run id"),
    ),
    responses(
        (status = 200, body = Vec<ShareLink>),
        ChangesRun,
    ),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<ShareLink>>, ApiError> {
    caller.run(&state.store, id, Role::Editor).await?;
    Ok(Json(state.store.share_links(id).await?))
}

#[utoipa::path(
    delete,
    path = "/runs/{id}/share/{link}",
    operation_id = "revoke_share_link",
    tag = "sharing",
    params(
        ("id" = i64, Path, description = "run id"),
        ("link" = i64, Path),
    ),
    responses(
        (status = 204),
        ChangesRun,
    ),
)]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiPath((id, link)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let run = caller.run(&state.store, id, Role::Editor).await?;
    if !state.store.revoke_share_link(id, link).await? {
        return Err(ApiError::NotFound(format!(
            "run {id} has no share link {link}"
        )));
    }
    let target = (Some(run.project_id), Some(id));
    let detail = format!("share link {link}");
    (request.record(
        &state.store,
        &caller.0,
        AuditAction::ShareRevoked,
        target,
        detail,
    ))
    .await;
    Ok(StatusCode::NO_CONTENT)
}
