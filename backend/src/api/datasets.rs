//! `/datasets`: what can be trained on here, with each dataset's source and license.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use balancelab_shared::DatasetInfo;

use super::AppState;
use crate::auth::Caller;
use crate::data::catalog;

pub fn router() -> Router<AppState> {
    Router::new().route("/datasets", get(list))
}

async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Vec<DatasetInfo>> {
    Json(catalog(state.workers.data_dir()))
}
