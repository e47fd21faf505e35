//! `/projects`: the caller's projects, new projects, and (owners) their members' roles.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use balancelab_shared::{FieldError, Member, Project, Role};
use serde::Deserialize;

use super::runs::parse_json;
use super::{ApiError, AppState};
use crate::auth::Caller;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list).post(create))
        .route("/projects/{id}/members", get(members))
        .route(
            "/projects/{id}/members/{user}",
            put(set_member).delete(remove_member),
        )
}

async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Vec<Project>>, ApiError> {
    Ok(Json(state.store.projects_of(user.id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProject {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: Role,
}

/// Any signed-in user may create a project; they become its owner.
async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    let NewProject { name } = parse_json(&body)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        let error = FieldError::new("name", "1 to 100 characters");
        return Err(ApiError::Invalid(vec![error]));
    }
    match state.store.create_project(name, user.id).await? {
        Some(project) => Ok((StatusCode::CREATED, Json(project))),
        None => Err(ApiError::Conflict(format!(
            "a project named {name:?} exists"
        ))),
    }
}

async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Member>>, ApiError> {
    caller
        .require_project(&state.store, id, Role::Viewer)
        .await?;
    Ok(Json(state.store.members(id).await?))
}

/// Owners give a user a role (adding them if needed).
async fn set_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(i64, String)>,
    body: Bytes,
) -> Result<Json<Vec<Member>>, ApiError> {
    caller
        .require_project(&state.store, id, Role::Owner)
        .await?;
    let RoleChange { role } = parse_json(&body)?;
    if user == caller.0.name && role != Role::Owner {
        return Err(ApiError::Conflict(
            "owners cannot demote themselves; another owner can".into(),
        ));
    }
    if !state.store.set_member(id, &user, role).await? {
        return Err(ApiError::NotFound(format!("there is no user {user:?}")));
    }
    Ok(Json(state.store.members(id).await?))
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    caller
        .require_project(&state.store, id, Role::Owner)
        .await?;
    if user == caller.0.name {
        return Err(ApiError::Conflict(
            "owners cannot remove themselves; another owner can".into(),
        ));
    }
    if !state.store.remove_member(id, &user).await? {
        return Err(ApiError::NotFound(format!("{user:?} is not a member")));
    }
    Ok(StatusCode::NO_CONTENT)
}
