//! `/datasets`: what can be trained on here, with each dataset's source and license.

use axum::extract::State;
use axum::Json;
use balancelab_shared::{DatasetInfo, ErrorBody};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::auth::Caller;
use crate::data::catalog;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[utoipa::path(
    get,
    path = "/datasets",
    operation_id = "list_datasets",
    tag = "datasets",
    responses(
        (status = 200, body = Vec<DatasetInfo>),
        (status = 401, body = ErrorBody, description = "not signed in"),
    ),
)]
async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Vec<DatasetInfo>> {
    Json(catalog(state.workers.data_dir()))
}
