//! `/runs/{id}/metrics`: series of chosen metrics, downsampled on the server so that a chart
//! of a long run stays light, keeping every bucket's extremes.
//!
//! Keys are paths into the JSON of a step (`step.loss`, `step.coefficients[0]`) or of an
//! epoch (`epoch.test.fused`, `epoch.validation.unimodal[1]`), as in results tables.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use balancelab_shared::results::leaves;
use balancelab_shared::{
    downsample, ErrorBody, FieldError, MetricSeries, SeriesPoint, StepMetrics, XAxis,
};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::results::query;
use super::runs::find;
use super::{ApiError, AppState};
use crate::auth::Reader;

/// Points per series unless asked otherwise, and the most one may ask for.
const DEFAULT_POINTS: usize = 1000;
const MAX_POINTS: usize = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(series))
}

/// Not strict about other parameters: `share` is read by the `Reader` extractor.
#[derive(Deserialize)]
struct SeriesQuery {
    /// Comma-separated keys.
    keys: String,
    points: Option<usize>,
    #[serde(default)]
    x: XAxis,
}

/// One recorded value set: its x positions and its leaves by path.
struct Record {
    step: f64,
    epoch: f64,
    time: f64,
    values: BTreeMap<String, Value>,
}

impl Record {
    fn x(&self, axis: XAxis) -> f64 {
        match axis {
            XAxis::Step => self.step,
            XAxis::Epoch => self.epoch,
            XAxis::Time => self.time,
        }
    }
}

/// Steps sit inside their epoch: the i-th of n steps of epoch e at e - 1 + (i + 1) / n.
fn step_records(steps: &[StepMetrics]) -> Vec<Record> {
    let mut records = Vec::with_capacity(steps.len());
    for epoch in steps.chunk_by(|a, b| a.epoch == b.epoch) {
        let n = epoch.len() as f64;
        for (i, step) in epoch.iter().enumerate() {
            records.push(Record {
                step: step.step as f64,
                epoch: f64::from(step.epoch) - 1.0 + (i as f64 + 1.0) / n,
                time: step.elapsed_seconds,
                values: leaves(&serde_json::to_value(step).expect("metrics serialize")),
            });
        }
    }
    records
}

#[utoipa::path(
    get,
    path = "/runs/{id}/metrics",
    operation_id = "run_metrics",
    tag = "runs",
    params(
        ("id" = i64, Path, description = "run id"),
        ("share" = Option<String>, Query, description = "a share link token, instead of signing in"),
        ("keys" = String, Query, description = "comma-separated: step.loss, step.coefficients[0], epoch.test.fused, ..."),
        ("points" = Option<usize>, Query, description = "2 to 10000; default 1000"),
        ("x" = Option<XAxis>, Query),
    ),
    responses(
        (status = 200, body = Vec<MetricSeries>),
        (status = 422, body = ErrorBody, description = "invalid fields, each named"),
        (status = 401, body = ErrorBody, description = "not signed in"),
        (status = 404, body = ErrorBody, description = "no such run (or not yours to see)"),
    ),
)]
async fn series(
    State(state): State<AppState>,
    reader: Reader,
    Path(id): Path<i64>,
    params: Result<Query<SeriesQuery>, QueryRejection>,
) -> Result<Json<Vec<MetricSeries>>, ApiError> {
    let params = query(params)?;
    let points = params.points.unwrap_or(DEFAULT_POINTS);
    let mut errors = Vec::new();
    if !(2..=MAX_POINTS).contains(&points) {
        errors.push(FieldError::new(
            "points",
            format!("must be 2 to {MAX_POINTS}"),
        ));
    }
    let keys: Vec<&str> = (params.keys.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        errors.push(FieldError::new(
            "keys",
            "name at least one metric, such as step.loss",
        ));
    }
    let run = find(&state, id).await?;
    reader.require_run(&state.store, &run).await?;
    let wants = |prefix: &str| keys.iter().any(|k| k.starts_with(prefix));
    let steps = if wants("step.") {
        step_records(&state.store.steps(id).await?)
    } else {
        Vec::new()
    };
    let epochs: Vec<Record> = if wants("epoch.") {
        (state.store.epochs(id).await?.iter())
            .map(|m| Record {
                step: m.steps as f64,
                epoch: f64::from(m.epoch),
                time: m.elapsed_seconds,
                values: leaves(&serde_json::to_value(m).expect("metrics serialize")),
            })
            .collect()
    } else {
        Vec::new()
    };

    let mut result = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let (records, prefix, path) = match (key.strip_prefix("step."), key.strip_prefix("epoch."))
        {
            (Some(path), _) => (&steps, "step.", path),
            (_, Some(path)) => (&epochs, "epoch.", path),
            _ => {
                errors.push(FieldError::new(
                    format!("keys[{i}]"),
                    format!("{key:?} must start with step. or epoch."),
                ));
                continue;
            }
        };
        let values: Vec<SeriesPoint> = (records.iter())
            .filter_map(|r| Some(SeriesPoint(r.x(params.x), r.values.get(path)?.as_f64()?)))
            .collect();
        // A run with no records yet has an empty series; a key no record has is a mistake.
        if values.is_empty() && !records.is_empty() {
            let known: Vec<String> = (records[0].values.iter())
                .filter(|(_, v)| v.is_number())
                .map(|(k, _)| format!("{prefix}{k}"))
                .collect();
            errors.push(FieldError::new(
                format!("keys[{i}]"),
                format!("{key:?} is not a recorded number; known: {known:?}"),
            ));
            continue;
        }
        result.push(MetricSeries {
            key: (*key).to_owned(),
            x: params.x,
            total: values.len(),
            points: downsample(&values, points),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(Json(result))
}
