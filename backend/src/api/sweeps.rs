//! `/sweeps`: queue a grid of runs (methods x fusions x seeds over a base configuration) in
//! one request, all tagged alike.

use super::responses::{NeedsRole, ReadsBody};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use balancelab_shared::{AuditAction, ErrorBody, Run, Sweep};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::RequestId;
use super::extract::{ApiQuery, Caller, JsonBody};
use super::runs::Destination;
use super::{ApiError, AppState};
use crate::check::check_sweep;

/// The `/sweeps` route.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create))
}

/// Queues every run of the grid, in one transaction (all or none), seeds varying fastest.
/// Each run gets the sweep's tag: `sweep-<first run id>` unless the request names one. A
/// base without a validation split (`validation_fraction` 0) gets the default 0.1, since
/// results compare each run at its best validation epoch.
#[utoipa::path(
    post,
    path = "/sweeps",
    operation_id = "create_sweep",
    tag = "runs",
    params(
        ("project" = Option<i64>, Query, description = "project to queue them in (default: your first as editor)"),
    ),
    request_body = Sweep,
    responses(
        ReadsBody,
        (status = 201, body = Vec<Run>, description = "the queued runs, in grid order"),
        (status = 422, body = ErrorBody, description = "invalid fields, each named by the request field (`methods[1].alpha`)"),
        NeedsRole,
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    request: RequestId,
    ApiQuery(destination): ApiQuery<Destination>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Vec<Run>>), ApiError> {
    let project = destination.project(&state, &caller).await?;
    let mut sweep: Sweep = body.parse()?;
    // What it changed shows in the runs' configurations (and the OpenAPI description).
    sweep.add_validation_split();
    check_sweep(&sweep, state.environment()).map_err(ApiError::Invalid)?;
    let named = sweep.tag.clone();
    let tag = move |first: i64| vec![named.clone().unwrap_or_else(|| format!("sweep-{first}"))];
    let runs = (state.store)
        .create_runs(&sweep.configs(), project, tag)
        .await?;
    state.workers.wake();
    for run in &runs {
        state.hub.notify(run.id);
    }
    let (first, last) = (runs.first().map(|r| r.id), runs.last().map(|r| r.id));
    let tag = runs
        .first()
        .and_then(|r| r.tags.first())
        .map_or("", String::as_str);
    let detail = format!(
        "{} runs, {} to {}, tag {tag}",
        runs.len(),
        first.unwrap_or_default(),
        last.unwrap_or_default()
    );
    let (action, target) = (AuditAction::SweepCreated, (Some(project), None));
    (request.record(&state.store, &caller.0, action, target, detail)).await;
    Ok((StatusCode::CREATED, Json(runs)))
}
