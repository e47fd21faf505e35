//! Live events as Server-Sent Events: one run's log (`/runs/{id}/events`), and the run list's
//! changes (`/runs/events`). A run's events carry their log position as SSE id; a client
//! that reconnects with `Last-Event-ID` (browsers do so by themselves), or asks with
//! `?after=N`, receives exactly what follows.

use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use balancelab_shared::FieldError;
use futures_util::stream::{Stream, StreamExt};
use serde::Deserialize;

use super::results::query;
use super::runs::find;
use super::{ApiError, AppState};
use crate::auth::{Caller, Reader};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs/events", get(run_list))
        .route("/runs/{id}/events", get(run_log))
}

/// Not strict about other parameters: `share` is read by the `Reader` extractor.
#[derive(Deserialize)]
struct After {
    after: Option<i64>,
}

/// The position to resume after: `Last-Event-ID`, else `?after=`, else the beginning.
fn resume_position(headers: &HeaderMap, after: Option<i64>) -> Result<i64, ApiError> {
    let Some(header) = headers.get("last-event-id") else {
        return Ok(after.unwrap_or(0));
    };
    let text = header.to_str().unwrap_or_default();
    text.trim().parse().map_err(|_| {
        ApiError::Invalid(vec![FieldError::new(
            "Last-Event-ID",
            format!("expected an event position (a number), got {text:?}"),
        )])
    })
}

/// The run's log from the requested position: stored events, then live ones until the run
/// ends. Each event's data is a `RunEvent`.
async fn run_log(
    State(state): State<AppState>,
    reader: Reader,
    Path(id): Path<i64>,
    headers: HeaderMap,
    params: Result<Query<After>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = resume_position(&headers, query(params)?.after)?;
    // Read before the log: an ended run's log is complete, so no live part is needed.
    let run = find(&state, id).await?;
    reader.require_run(&state.store, &run).await?;
    let events = state
        .hub
        .follow(id, after, !run.status.is_terminal())
        .await?
        .map(|logged| {
            Ok(Event::default()
                .id(logged.seq.to_string())
                .data(logged.json))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Every change to a run of the caller's projects (created, status, progress, tags, note)
/// from now on; data is the run as `GET /runs/{id}` would give it, without its epochs.
async fn run_list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Memberships as of connecting; a client reconnects to see a project it just joined.
    let projects: Vec<i64> = (state.store.projects_of(user.id).await?.iter())
        .map(|p| p.id)
        .collect();
    let events = (state.hub.follow_runs())
        .filter(move |run| std::future::ready(projects.contains(&run.project_id)))
        .map(|run| {
            let json = serde_json::to_string(run.as_ref()).expect("runs serialize");
            Ok(Event::default().data(json))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
