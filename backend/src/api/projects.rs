//! `/projects`: the caller's projects, new projects, and (owners) their members' roles.

use super::responses::{InvalidFields, NeedsRole, NotSignedIn, ReadsBody};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use balancelab_shared::{AuditAction, ErrorBody, FieldError, Member, Project, Role};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::RequestId;
use super::extract::{ApiJson, ApiPath, Caller, JsonBody};
use super::{ApiError, AppState};
use crate::store::MemberChange;

/// The `/projects` routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(rename))
        .routes(routes!(members))
        .routes(routes!(set_member, remove_member))
}

#[utoipa::path(
    get,
    path = "/projects",
    operation_id = "list_projects",
    tag = "projects",
    responses(
        (status = 200, body = Vec<Project>),
        NotSignedIn,
    ),
)]
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
#[utoipa::path(
    post,
    path = "/projects",
    operation_id = "create_project",
    tag = "projects",
    request_body(content = Object, description = "{\"name\": ...}"),
    responses(
        ReadsBody,
        (status = 201, body = Project),
        (status = 409, body = ErrorBody),
        InvalidFields,
        NotSignedIn,
    ),
)]
async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    request: RequestId,
    ApiJson(NewProject { name }): ApiJson<NewProject>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    let name = project_name(&name)?;
    match state.store.create_project(name, user.id).await? {
        Some(project) => {
            let (target, detail) = ((Some(project.id), None), format!("{name:?}"));
            let action = AuditAction::ProjectCreated;
            (request.record(&state.store, &user, action, target, detail)).await;
            Ok((StatusCode::CREATED, Json(project)))
        }
        None => Err(name_taken(name)),
    }
}

/// A project's name, trimmed: 1 to 100 characters.
fn project_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        let error = FieldError::new("name", "1 to 100 characters");
        return Err(ApiError::Invalid(vec![error]));
    }
    Ok(name)
}

/// Project names are unique.
fn name_taken(name: &str) -> ApiError {
    ApiError::Conflict(format!("a project named {name:?} exists"))
}

/// Owners rename their project.
#[utoipa::path(
    patch,
    path = "/projects/{id}",
    operation_id = "rename_project",
    tag = "projects",
    params(
        ("id" = i64, Path),
    ),
    request_body(content = Object, description = "{\"name\": ...}"),
    responses(
        ReadsBody,
        (status = 200, body = Project),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        InvalidFields,
        NeedsRole,
    ),
)]
async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiPath(id): ApiPath<i64>,
    body: JsonBody,
) -> Result<Json<Project>, ApiError> {
    caller
        .require_project(&state.store, id, Role::Owner)
        .await?;
    let NewProject { name } = body.parse()?;
    let name = project_name(&name)?;
    if !state.store.rename_project(id, name).await? {
        return Err(name_taken(name));
    }
    let action = AuditAction::ProjectRenamed;
    let detail = format!("to {name:?}");
    (request.record(&state.store, &caller.0, action, (Some(id), None), detail)).await;
    Ok(Json(Project {
        id,
        name: name.to_owned(),
        role: Role::Owner,
    }))
}

#[utoipa::path(
    get,
    path = "/projects/{id}/members",
    operation_id = "list_members",
    tag = "projects",
    params(
        ("id" = i64, Path),
    ),
    responses(
        (status = 200, body = Vec<Member>),
        (status = 404, body = ErrorBody),
        NotSignedIn,
    ),
)]
async fn members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<Member>>, ApiError> {
    caller
        .require_project(&state.store, id, Role::Viewer)
        .await?;
    Ok(Json(state.store.members(id).await?))
}

/// Owners give a user a role (adding them if needed).
#[utoipa::path(
    put,
    path = "/projects/{id}/members/{user}",
    operation_id = "set_member",
    tag = "projects",
    params(
        ("id" = i64, Path),
        ("user" = String, Path),
    ),
    request_body(content = Object, description = "{\"role\": \"viewer\" | \"editor\" | \"owner\"}"),
    responses(
        ReadsBody,
        (status = 200, body = Vec<Member>),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        NeedsRole,
    ),
)]
async fn set_member(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiPath((id, user)): ApiPath<(i64, String)>,
    body: JsonBody,
) -> Result<Json<Vec<Member>>, ApiError> {
    caller
        .require_project(&state.store, id, Role::Owner)
        .await?;
    let RoleChange { role } = body.parse()?;
    if user == caller.0.name && role != Role::Owner {
        return Err(ApiError::Conflict(
            "owners cannot demote themselves; another owner can".into(),
        ));
    }
    match state.store.set_member(id, &user, role).await? {
        MemberChange::Done => {
            let detail = format!("{user:?} as {}", role.as_str());
            let action = AuditAction::MemberSet;
            (request.record(&state.store, &caller.0, action, (Some(id), None), detail)).await;
            Ok(Json(state.store.members(id).await?))
        }
        MemberChange::NoSuchMember => Err(ApiError::NotFound(format!("there is no user {user:?}"))),
        MemberChange::LastOwner => Err(last_owner()),
    }
}

#[utoipa::path(
    delete,
    path = "/projects/{id}/members/{user}",
    operation_id = "remove_member",
    tag = "projects",
    params(
        ("id" = i64, Path),
        ("user" = String, Path),
    ),
    responses(
        (status = 204),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        NeedsRole,
    ),
)]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiPath((id, user)): ApiPath<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    caller
        .require_project(&state.store, id, Role::Owner)
        .await?;
    if user == caller.0.name {
        return Err(ApiError::Conflict(
            "owners cannot remove themselves; another owner can".into(),
        ));
    }
    match state.store.remove_member(id, &user).await? {
        MemberChange::Done => {
            let (action, detail) = (AuditAction::MemberRemoved, format!("{user:?}"));
            (request.record(&state.store, &caller.0, action, (Some(id), None), detail)).await;
            Ok(StatusCode::NO_CONTENT)
        }
        MemberChange::NoSuchMember => Err(ApiError::NotFound(format!("{user:?} is not a member"))),
        MemberChange::LastOwner => Err(last_owner()),
    }
}

/// Two owners demoting each other at the same moment: the second change is refused.
fn last_owner() -> ApiError {
    ApiError::Conflict("a project keeps at least one owner; this change would leave none".into())
}
