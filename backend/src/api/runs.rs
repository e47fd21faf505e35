//! `/runs`: create, list (filtered, sorted, paged), read, tag and annotate, clone with
//! changes, cancel and delete runs.

use super::responses::{ChangesRun, InvalidFields, NeedsRole, NotSignedIn, ReadsBody, ReadsRun};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use balancelab_shared::{
    AuditAction, ErrorBody, FieldError, Role, Run, RunConfig, RunDetail, RunPage, RunPatch,
    RunQuery, RunSort, RunStatus, SortOrder,
};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::RequestId;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, JsonBody, Reader};
use super::{ApiError, AppState};
use crate::check::check_run;
use crate::store::Cancellation;

/// The `/runs` routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(detail, patch, delete))
        .routes(routes!(cancel))
        .routes(routes!(clone))
}

async fn queue(
    state: &AppState,
    (caller, request): (&Caller, &RequestId),
    config: &RunConfig,
    project: i64,
    detail: String,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    check_run(config, state.environment()).map_err(ApiError::Invalid)?;
    let run = state.store.create_run(config, project).await?;
    state.workers.wake();
    state.hub.notify(run.id);
    let action = AuditAction::RunCreated;
    (request.record(
        &state.store,
        &caller.0,
        action,
        (Some(project), Some(run.id)),
        detail,
    ))
    .await;
    Ok((StatusCode::CREATED, Json(run)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Destination {
    /// Default: the caller's first project in which they are an editor or owner.
    project: Option<i64>,
}

impl Destination {
    /// The project new runs go to, which the caller must be an editor of.
    pub(super) async fn project(&self, state: &AppState, caller: &Caller) -> Result<i64, ApiError> {
        if let Some(project) = self.project {
            (caller.require_project(&state.store, project, Role::Editor)).await?;
            return Ok(project);
        }
        (state.store.projects_of(caller.0.id).await?.into_iter())
            .find(|p| p.role >= Role::Editor)
            .map(|p| p.id)
            .ok_or_else(|| {
                ApiError::Forbidden(
                    "you are not an editor of any project; ask a project owner".into(),
                )
            })
    }
}

/// Queues a run in `?project=ID`, which needs the editor role there.
#[utoipa::path(
    post,
    path = "/runs",
    operation_id = "create_run",
    tag = "runs",
    params(
        ("project" = Option<i64>, Query, description = "project to queue it in (default: your first as editor)"),
    ),
    request_body = RunConfig,
    responses(
        ReadsBody,
        (status = 201, body = Run),
        InvalidFields,
        NeedsRole,
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiQuery(destination): ApiQuery<Destination>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let project = destination.project(&state, &caller).await?;
    let config: RunConfig = body.parse()?;
    let detail = format!("{} on {}", config.method.name(), config.dataset.kind());
    queue(&state, (&caller, &request), &config, project, detail).await
}

/// A new run from run `id`'s configuration with the body's changes: a JSON merge patch
/// (RFC 7396), e.g. `{"seed": 2, "method": {"alpha": 0.5}}`.
#[utoipa::path(
    post,
    path = "/runs/{id}/clone",
    operation_id = "clone_run",
    tag = "runs",
    params(
        ("id" = i64, Path, description = "run id"),
    ),
    request_body(content = Object, description = "JSON merge patch (RFC 7396) of the source run's config"),
    responses(
        ReadsBody,
        (status = 201, body = Run),
        InvalidFields,
        ChangesRun,
    ),
)]
async fn clone(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiPath(id): ApiPath<i64>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let source = caller.run(&state.store, id, Role::Editor).await?;
    let mut config = serde_json::to_value(&source.config).expect("a RunConfig serializes");
    // No body: the same configuration again.
    if let Some(changes) = body.parse_optional::<Value>()? {
        merge_patch(&mut config, &changes);
    }
    // Parsed as a body would be, so that an error names its field the same way.
    let ApiJson(config) = ApiJson::<RunConfig>::from_bytes(config.to_string().as_bytes())?;
    let detail = format!("cloned from run {id}");
    queue(
        &state,
        (&caller, &request),
        &config,
        source.project_id,
        detail,
    )
    .await
}

/// RFC 7396: objects merge key by key, `null` removes a key, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let fields = target.as_object_mut().expect("made an object above");
    for (key, change) in changes {
        if change.is_null() {
            fields.remove(key);
        } else {
            merge_patch(fields.entry(key.clone()).or_insert(Value::Null), change);
        }
    }
}

#[utoipa::path(
    get,
    path = "/runs",
    operation_id = "list_runs",
    tag = "runs",
    params(
        ("project" = Option<i64>, Query),
        ("status" = Option<RunStatus>, Query),
        ("method" = Option<String>, Query),
        ("dataset" = Option<String>, Query),
        ("tag" = Option<String>, Query),
        ("search" = Option<String>, Query),
        ("sort" = Option<RunSort>, Query),
        ("order" = Option<SortOrder>, Query),
        ("limit" = Option<u32>, Query, description = "1 to 500; default 50"),
        ("offset" = Option<u32>, Query),
    ),
    responses(
        (status = 200, body = RunPage),
        InvalidFields,
        NotSignedIn,
    ),
)]
async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiQuery(params): ApiQuery<RunQuery>,
) -> Result<Json<RunPage>, ApiError> {
    if params.limit == 0 || params.limit > RunQuery::MAX_LIMIT {
        return Err(ApiError::Invalid(vec![FieldError::new(
            "limit",
            format!("must be 1 to {}", RunQuery::MAX_LIMIT),
        )]));
    }
    Ok(Json(state.store.list_runs(&params, user.id).await?))
}

async fn find(state: &AppState, id: i64) -> Result<Run, ApiError> {
    state
        .store
        .get_run(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run {id} does not exist")))
}

#[utoipa::path(
    get,
    path = "/runs/{id}",
    operation_id = "get_run",
    tag = "runs",
    params(
        ("id" = i64, Path, description = "run id"),
        ("share" = Option<String>, Query, description = "a share link token, instead of signing in"),
    ),
    responses(
        (status = 200, body = RunDetail),
        ReadsRun,
    ),
)]
async fn detail(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = reader.run(&state.store, id).await?;
    // Position first: whatever is logged after it, the viewer gets from the stream.
    let last_event = state.store.last_seq(id).await?;
    let epochs = state.store.epochs(id).await?;
    Ok(Json(RunDetail {
        run,
        epochs,
        last_event,
    }))
}

/// Replaces the run's tags and/or note.
#[utoipa::path(
    patch,
    path = "/runs/{id}",
    operation_id = "patch_run",
    tag = "runs",
    params(
        ("id" = i64, Path, description = "run id"),
    ),
    request_body = RunPatch,
    responses(
        ReadsBody,
        (status = 200, body = Run),
        InvalidFields,
        ChangesRun,
    ),
)]
async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiPath(id): ApiPath<i64>,
    body: JsonBody,
) -> Result<Json<Run>, ApiError> {
    caller.run(&state.store, id, Role::Editor).await?;
    let patch: RunPatch = body.parse()?;
    patch.validate().map_err(ApiError::Invalid)?;
    let run = state.store.patch_run(id, &patch).await?;
    let run = run.ok_or_else(|| ApiError::NotFound(format!("run {id} does not exist")))?;
    state.hub.notify(id);
    let changed = serde_json::to_value(&patch).expect("a patch serializes");
    let fields: Vec<&String> = (changed.as_object().into_iter().flatten())
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k)
        .collect();
    let detail = format!("changed {fields:?}");
    let target = (Some(run.project_id), Some(id));
    (request.record(
        &state.store,
        &caller.0,
        AuditAction::RunChanged,
        target,
        detail,
    ))
    .await;
    Ok(Json(run))
}

/// Deletes a run that is not training, with its metrics and checkpoints.
#[utoipa::path(
    delete,
    path = "/runs/{id}",
    operation_id = "delete_run",
    tag = "runs",
    params(
        ("id" = i64, Path, description = "run id"),
    ),
    responses(
        (status = 204, description = "deleted"),
        (status = 409, body = ErrorBody, description = "the run is training"),
        ChangesRun,
    ),
)]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let run = caller.run(&state.store, id, Role::Editor).await?;
    if !state.store.delete_run(id).await? {
        return Err(ApiError::Conflict(format!(
            "run {id} is training; cancel it before deleting it"
        )));
    }
    let checkpoints = state.workers.checkpoint_dir(id);
    if let Err(e) = std::fs::remove_dir_all(&checkpoints) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(run = id, error = %e, "could not delete the run's checkpoints");
        }
    }
    let detail = format!(
        "{} on {}, {}",
        run.config.method.name(),
        run.config.dataset.kind(),
        run.status.as_str()
    );
    let target = (Some(run.project_id), Some(id));
    (request.record(
        &state.store,
        &caller.0,
        AuditAction::RunDeleted,
        target,
        detail,
    ))
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels a queued run at once; stops a training run between two steps (it ends as
/// `cancelled` with the epochs it completed kept). 409 if it has already ended.
#[utoipa::path(
    post,
    path = "/runs/{id}/cancel",
    operation_id = "cancel_run",
    tag = "runs",
    params(
        ("id" = i64, Path, description = "run id"),
    ),
    responses(
        (status = 202, body = Run),
        (status = 409, body = ErrorBody, description = "the run has ended"),
        ChangesRun,
    ),
)]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let run = caller.run(&state.store, id, Role::Editor).await?;
    let detail = match state.store.request_cancel(id).await? {
        Cancellation::Cancelled => {
            state.hub.notify(id);
            "cancelled while queued"
        }
        Cancellation::Requested => {
            state.workers.cancel_local(id);
            "asked to stop while training"
        }
        Cancellation::NotActive => {
            return Err(ApiError::Conflict(format!(
                "run {id} is not queued or running, so it cannot be cancelled"
            )))
        }
    };
    let target = (Some(run.project_id), Some(id));
    (request.record(
        &state.store,
        &caller.0,
        AuditAction::RunCancelled,
        target,
        detail,
    ))
    .await;
    Ok((StatusCode::ACCEPTED, Json(find(&state, id).await?)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_patch;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // The example of RFC 7396, section 3.
        let mut target = json!({
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null},
            "tags": ["example"]
        });
        merge_patch(&mut target, &patch);
        assert_eq!(
            target,
            json!({
                "title": "Hello!",
                "author": {"givenName": "John"},
                "tags": ["example"],
                "content": "This will be unchanged",
                "phoneNumber": "+01-123-456-7890"
            })
        );
    }
}
