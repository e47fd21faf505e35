//! The HTTP API. Each resource module exposes its own router; [`app`] assembles them.
//!
//! Handlers take the typed extractors of `extract` (JSON bodies, query strings, the caller)
//! and answer errors with `ApiError`, which picks the status code; what a caller
//! may do is decided in [`crate::auth`], what a run configuration must satisfy in
//! [`crate::check`].

mod audit;
mod auth;
mod cross_site;
mod datasets;
mod error;
mod events;
mod extract;
mod metrics;
mod projects;
mod responses;
mod results;
mod runs;
mod series_cache;
mod share;
mod stream_slots;
mod sweeps;
mod ui;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::get;
use axum::{Json, Router};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::SecurityScheme;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use error::ApiError;
pub use ui::with_ui;

use crate::check::Environment;
use crate::live::Hub;
use crate::login_throttle::LoginThrottle;
use crate::store::Store;
use crate::worker::Workers;

/// Run configurations are small; anything larger is a mistake or an attack.
pub(super) const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares: the store, the live hub, this process's workers.
#[derive(Clone)]
pub struct AppState {
    store: Store,
    /// Woken when a handler changes a run, for its live viewers.
    hub: Hub,
    /// Woken when a run is queued; also knows the data directory and checkpoint folders.
    workers: Workers,
    /// Failed sign-ins per address and user name.
    login_throttle: Arc<LoginThrottle>,
    /// Open live streams per user and share link.
    streams: Arc<stream_slots::StreamSlots>,
    /// Session cookies are marked `Secure` (served over HTTPS, `--secure-cookies`).
    secure_cookies: bool,
    /// Step series computed lately, for the next reader of the same steps.
    series_cache: Arc<series_cache::SeriesCache>,
}

impl AppState {
    /// The state of a server whose workers (possibly none) train in this process.
    pub fn new(store: Store, hub: Hub, workers: Workers) -> Self {
        Self {
            store,
            hub,
            workers,
            login_throttle: Arc::default(),
            streams: Arc::default(),
            secure_cookies: false,
            series_cache: Arc::default(),
        }
    }

    /// This state with session cookies marked `Secure` or not: for a server reached over
    /// HTTPS only. (Behind a TLS proxy that says `X-Forwarded-Proto: https`, they are anyway.)
    pub fn with_secure_cookies(self, secure_cookies: bool) -> Self {
        Self {
            secure_cookies,
            ..self
        }
    }

    /// What run configurations are checked against: this server's data directory and the
    /// memory its runs may use.
    fn environment(&self) -> Environment<'_> {
        Environment {
            data_dir: self.workers.data_dir(),
            memory_budget: self.workers.memory_budget(),
        }
    }
}

/// The OpenAPI document's frame; the paths and schemas come from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "BalanceLab API",
        description = "Runs of balanced multimodal training: queue, watch live, compare, share. \
                       Authenticate with `Authorization: Bearer <token>` (POST /auth/login or \
                       /auth/tokens) or the browser's session cookie."
    ),
    servers((url = "/api")),
    // The data of the live streams' events, which no JSON body names, and the types of
    // query parameters.
    components(schemas(
        balancelab_shared::RunEvent,
        balancelab_shared::RunStatus,
        balancelab_shared::RunSort,
        balancelab_shared::SortOrder,
        balancelab_shared::XAxis,
        balancelab_shared::EpochChoice
    )),
    modifiers(&Authentication),
    security(("bearer" = []), ("session_cookie" = []))
)]
struct ApiDoc;

struct Authentication;

impl Modify for Authentication {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let cookie = ApiKey::Cookie(ApiKeyValue::new(extract::SESSION_COOKIE));
        components.add_security_scheme("session_cookie", SecurityScheme::ApiKey(cookie));
    }
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "the server is up"),
    ),
)]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// The API's OpenAPI 3.1 document: every resource router, collected.
pub fn openapi() -> serde_json::Value {
    document_json(resources().split_for_parts().1)
}

/// The document as JSON, with one repair: utoipa describes an internally tagged enum
/// variant as `allOf: [its struct, {kind}]`, and a struct with `deny_unknown_fields` as
/// `additionalProperties: false`, which then rejects the `kind` tag itself. Such structs
/// lose that flag (the server still rejects unknown fields, with a 422 naming them).
fn document_json(document: utoipa::openapi::OpenApi) -> serde_json::Value {
    use serde_json::Value;
    let mut json = serde_json::to_value(document).expect("OpenAPI documents serialize");
    fn tagged_parts(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(parts)) = map.get("allOf") {
                    for part in parts {
                        if let Some(Value::String(reference)) = part.get("$ref") {
                            found.extend(reference.rsplit('/').next().map(str::to_owned));
                        }
                    }
                }
                map.values().for_each(|v| tagged_parts(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| tagged_parts(v, found)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    tagged_parts(&json, &mut names);
    if let Some(Value::Object(schemas)) = json.pointer_mut("/components/schemas") {
        for name in names {
            if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
                schema.remove("additionalProperties");
            }
        }
    }
    json
}

fn resources() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .merge(auth::router())
        .merge(audit::router())
        .merge(projects::router())
        .merge(share::router())
        .merge(runs::router())
        .merge(sweeps::router())
        .merge(events::router())
        .merge(metrics::router())
        .merge(datasets::router())
        .merge(results::router())
}

/// The API under `/api`, with its OpenAPI document at `/api/openapi.json`. Unknown `/api`
/// paths get a JSON 404 rather than the UI.
pub fn app(state: AppState) -> Router {
    let (api, document) = resources().split_for_parts();
    let document = Arc::new(document_json(document));
    let api = api
        .route(
            "/openapi.json",
            get(move || async move { Json(document.as_ref().clone()) }),
        )
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed(format!("this endpoint does not answer {method}"))
        });
    let [nosniff, no_framing, referrer] = cross_site::protective_headers();
    Router::new()
        .nest("/api", api)
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(
            cross_site::refuse_cross_site_changes,
        ))
        .layer(cross_site::api_content_security_policy())
        .layer(nosniff)
        .layer(no_framing)
        .layer(referrer)
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
                            uri = %cross_site::redacted(request.uri())
                        )
                    }),
                ),
        )
}
