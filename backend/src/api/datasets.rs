//! `/datasets` and `/presets`: what can be trained on here, with each dataset's source and
//! license, and ready-made run configurations.

use super::responses::NotSignedIn;
use axum::extract::State;
use axum::Json;
use balancelab_shared::{DatasetInfo, Preset};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Caller;
use super::AppState;
use crate::data::catalog;

/// The `/datasets` and `/presets` routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(presets))
}

#[utoipa::path(
    get,
    path = "/datasets",
    operation_id = "list_datasets",
    tag = "datasets",
    responses(
        (status = 200, body = Vec<DatasetInfo>),
        NotSignedIn,
    ),
)]
async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Vec<DatasetInfo>> {
    Json(catalog(state.workers.data_dir()))
}

#[utoipa::path(
    get,
    path = "/presets",
    operation_id = "list_presets",
    tag = "datasets",
    responses(
        (status = 200, body = Vec<Preset>),
        NotSignedIn,
    ),
)]
async fn presets(_caller: Caller) -> Json<Vec<Preset>> {
    Json(crate::presets::presets())
}
