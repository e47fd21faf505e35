//! `/runs/{id}/share`: read-only links to one run. Whoever holds the link's token may read
//! the run (`GET /api/runs/{id}?share=TOKEN`, its events and metrics) and nothing else,
//! until an editor revokes it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use balancelab_shared::{Role, Secret, ShareLink};

use super::runs::find;
use super::{ApiError, AppState};
use crate::auth::{new_token, require_run, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs/{id}/share", post(create).get(list))
        .route("/runs/{id}/share/{link}", delete(revoke))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Secret>), ApiError> {
    let run = find(&state, id).await?;
    require_run(&caller, &state.store, &run, Role::Editor).await?;
    let (token, hash) = new_token();
    let link = state
        .store
        .create_share_link(id, &hash, &caller.0.name)
        .await?;
    Ok((StatusCode::CREATED, Json(Secret { id: link.id, token })))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<ShareLink>>, ApiError> {
    let run = find(&state, id).await?;
    require_run(&caller, &state.store, &run, Role::Editor).await?;
    Ok(Json(state.store.share_links(id).await?))
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, link)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let run = find(&state, id).await?;
    require_run(&caller, &state.store, &run, Role::Editor).await?;
    if !state.store.revoke_share_link(id, link).await? {
        return Err(ApiError::NotFound(format!(
            "run {id} has no share link {link}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
