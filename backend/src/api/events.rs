//! Live events as Server-Sent Events: one run's log (`/runs/{id}/events`), and the run list's
//! changes (`/runs/events`). A run's events carry their log position as SSE id; a client
//! that reconnects with `Last-Event-ID` (browsers do so by themselves), or asks with
//! `?after=N`, receives exactly what follows.

use super::responses::{NotSignedIn, ReadsRun};
use balancelab_shared::FieldError;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{Stream, StreamExt};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{access_rechecks, presented_token, ApiPath, ApiQuery, Caller, Reader};
use super::stream_slots::Holder;
use super::{ApiError, AppState};
use crate::auth::{self, AccessError};
use crate::store::{Store, StoreError};

/// The live streams' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_list))
        .routes(routes!(run_log))
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
#[utoipa::path(
    get,
    path = "/runs/{id}/events",
    operation_id = "follow_run",
    tag = "live",
    params(
        ("id" = i64, Path, description = "run id"),
        ("share" = Option<String>, Query, description = "a share link token, instead of signing in"),
        ("after" = Option<i64>, Query, description = "resume after this log position (or send Last-Event-ID)"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", description = "Server-Sent Events: each data is a RunEvent, each id its log position"),
        ReadsRun,
    ),
)]
async fn run_log(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    ApiQuery(After { after }): ApiQuery<After>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = resume_position(&headers, after)?;
    // Read before the log: an ended run's log is complete, so no live part is needed.
    let run = reader.run(&state.store, id).await?;
    let slot = state.streams.take(reader.holder())?;
    let access_ends = reader.access_ends(state.store.clone(), id);
    let events = state
        .hub
        .follow(id, after, !run.status.is_terminal())
        .await?
        // Ends when the viewer may no longer see the run (a revoked link, signed out).
        .take_until(access_ends)
        .map(move |logged| {
            // Held as long as the stream.
            let _ = &slot;
            Ok(Event::default()
                .id(logged.seq.to_string())
                .data(logged.json))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

async fn project_ids(store: &Store, user: i64) -> Result<Vec<i64>, StoreError> {
    Ok((store.projects_of(user).await?.iter())
        .map(|p| p.id)
        .collect())
}

/// At every [`access_rechecks`] tick, sends the projects of the user of `token` to `memberships`;
/// resolves once the token no longer works (signed out, revoked, expired, user disabled).
/// A store that cannot answer now changes nothing.
async fn follow_memberships(
    store: Store,
    token: String,
    memberships: tokio::sync::watch::Sender<Vec<i64>>,
) {
    let mut rechecks = access_rechecks();
    loop {
        rechecks.tick().await;
        match auth::user_of_token(&store, &token).await {
            Ok(user) => {
                if let Ok(projects) = project_ids(&store, user.id).await {
                    memberships.send_replace(projects);
                }
            }
            Err(AccessError::Store(_)) => {}
            Err(_) => return,
        }
    }
}

/// Every change to a run of the caller's projects (created, status, progress, tags, note)
/// from now on; data is the run as `GET /runs/{id}` would give it, without its epochs. The
/// caller's projects are read again every 5 s (a project joined starts to show, one left
/// stops); the stream ends once the token it was opened with no longer works.
#[utoipa::path(
    get,
    path = "/runs/events",
    operation_id = "follow_run_list",
    tag = "live",
    responses(
        (status = 200, content_type = "text/event-stream", description = "Server-Sent Events: each data is a Run that changed"),
        NotSignedIn,
    ),
)]
async fn run_list(
    State(state): State<AppState>,
    Caller(user): Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = state.streams.take(Holder::User(user.id))?;
    let projects = project_ids(&state.store, user.id).await?;
    let (memberships, projects) = tokio::sync::watch::channel(projects);
    let token = presented_token(&headers).unwrap_or_default();
    let access_ends = follow_memberships(state.store.clone(), token, memberships);
    let events = (state.hub.follow_runs())
        .filter(move |run| std::future::ready(projects.borrow().contains(&run.project_id)))
        .take_until(access_ends)
        .map(move |run| {
            // Held as long as the stream.
            let _ = &slot;
            let json = serde_json::to_string(run.as_ref()).expect("runs serialize");
            Ok(Event::default().data(json))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
