//! `/runs`: create, list and read runs, follow one live, cancel one.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use balancelab_shared::{FieldError, Run, RunConfig, RunDetail, RunEvent};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::error::Category;
use tokio_stream::wrappers::BroadcastStream;

use super::{ApiError, AppState};
use crate::data::catalog;

const LIST_LIMIT: u32 = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs", get(list).post(create))
        .route("/runs/{id}", get(detail))
        .route("/runs/{id}/events", get(events))
        .route("/runs/{id}/cancel", post(cancel))
}

/// Parses a run configuration, naming the field of every problem found.
fn parse_config(body: &[u8]) -> Result<RunConfig, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let config: RunConfig = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::BadRequest(format!("request body is not valid JSON: {inner}"))
            }
            Category::Data => ApiError::Invalid(vec![FieldError::new(path, inner.to_string())]),
        }
    })?;
    let mut errors = config.validate().err().unwrap_or_default();
    errors.extend(crate::device::check_supported(config.device).err());
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(config)
}

/// A dataset must be present on this server to be trained on.
fn check_available(state: &AppState, config: &RunConfig) -> Result<(), ApiError> {
    let kind = config.dataset.kind();
    let found = catalog(state.runner.data_dir())
        .into_iter()
        .any(|d| d.kind == kind && d.available);
    if found {
        return Ok(());
    }
    let message = match state.runner.data_dir() {
        Some(dir) => format!(
            "{kind} was not found in the data directory {}",
            dir.display()
        ),
        None => format!("{kind} is read from a data directory, and this server has none"),
    };
    Err(ApiError::Invalid(vec![FieldError::new(
        "dataset.kind",
        message,
    )]))
}

async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let config = parse_config(&body)?;
    check_available(&state, &config)?;
    let run = state.store.create_run(&config).await?;
    state.runner.submit(run.clone());
    Ok((StatusCode::CREATED, Json(run)))
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<Run>>, ApiError> {
    Ok(Json(state.store.list_runs(LIST_LIMIT).await?))
}

async fn find(state: &AppState, id: i64) -> Result<Run, ApiError> {
    state
        .store
        .get_run(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run {id} does not exist")))
}

async fn detail(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = find(&state, id).await?;
    let epochs = state.store.epochs(id).await?;
    Ok(Json(RunDetail { run, epochs }))
}

/// Stops a queued or training run between two steps; it ends as `cancelled` with the epochs
/// it completed kept. 409 if it has already ended.
async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let run = find(&state, id).await?;
    if run.status.is_terminal() || !state.runner.cancel(id) {
        return Err(ApiError::Conflict(format!(
            "run {id} is not queued or running, so it cannot be cancelled"
        )));
    }
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// The run's status and stored epochs, then live events until the run ends.
async fn events(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, axum::Error>>>, ApiError> {
    // Subscribe before reading the store: an event recorded in between is then received live.
    let live = state.runner.subscribe(id);
    let run = find(&state, id).await?;
    let stored = state.store.epochs(id).await?;
    let last_stored = stored.last().map_or(0, |m| m.epoch);

    let mut backlog = vec![RunEvent::Status {
        status: run.status,
        error: run.error,
    }];
    backlog.extend(stored.into_iter().map(|m| RunEvent::Epoch(Box::new(m))));
    let live = live.filter(|_| !run.status.is_terminal()).map(|receiver| {
        BroadcastStream::new(receiver).filter_map(move |event| async move {
            match event {
                Ok(RunEvent::Epoch(m)) if m.epoch <= last_stored => None,
                Ok(event) => Some(event),
                // A viewer too slow for LIVE_BUFFER events skips ahead; a reload recovers.
                Err(_lagged) => None,
            }
        })
    });
    let events = stream::iter(backlog)
        .chain(stream::iter(live).flatten())
        .map(|event| Event::default().json_data(event));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
