//! The HTTP API. Each resource module exposes its own router; [`app`] assembles them.

mod auth;
mod datasets;
mod error;
mod events;
mod metrics;
mod projects;
mod results;
mod runs;
mod share;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::get;
use axum::{Json, Router};
use governor::DefaultKeyedRateLimiter;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::live::Hub;
use crate::store::Store;
use crate::worker::Workers;

/// Run configurations are small; anything larger is a mistake or an attack.
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub hub: Hub,
    pub workers: Workers,
    /// Failed logins per user name.
    pub login_limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl AppState {
    pub fn new(store: Store, hub: Hub, workers: Workers) -> Self {
        Self {
            store,
            hub,
            workers,
            login_limiter: crate::auth::login_limiter(),
        }
    }
}

/// The API under `/api`. Unknown `/api` paths get a JSON 404 rather than the UI.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .merge(auth::router())
        .merge(projects::router())
        .merge(share::router())
        .merge(runs::router())
        .merge(events::router())
        .merge(metrics::router())
        .merge(datasets::router())
        .merge(results::router())
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) });
    Router::new()
        .nest("/api", api)
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            // Each request gets an id (or keeps the caller's x-request-id), logged with every
            // line it causes and returned in the response, to match reports with logs.
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                        let id = (request.headers().get("x-request-id"))
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        tracing::info_span!(
                            "request",
                            id,
                            method = %request.method(),
                            uri = %request.uri()
                        )
                    }),
                ),
        )
}
