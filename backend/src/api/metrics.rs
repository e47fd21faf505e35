//! `/runs/{id}/metrics`: series of chosen metrics, downsampled on the server so that a chart
//! of a long run stays light, keeping every bucket's extremes.
//!
//! Keys are paths into the JSON of a step (`step.loss`, `step.coefficients[0]`) or of an
//! epoch (`epoch.test.fused`, `epoch.validation.unimodal[1]`), as in results tables.
//!
//! `/runs/{id}/export` gives every recorded number, one row per epoch or step, as CSV.

use super::responses::{InvalidFields, ReadsRun};
use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use balancelab_shared::non_finite::number;
use balancelab_shared::results::{at_path, leaves};
use balancelab_shared::{downsample, FieldError, MetricSeries, SeriesPoint, StepMetrics, XAxis};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, Reader};
use super::{ApiError, AppState};
use crate::store::Store;

/// Points per series unless asked otherwise, and the most one may ask for.
const DEFAULT_POINTS: usize = 1000;
const MAX_POINTS: usize = 10_000;

/// The `/runs/{id}/metrics` and `/runs/{id}/export` routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(series))
        .routes(routes!(export))
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

/// One recorded value set: its x positions and its JSON, read by path.
struct Record {
    step: f64,
    epoch: f64,
    time: f64,
    values: Value,
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
                values: serde_json::to_value(step).expect("metrics serialize"),
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
        InvalidFields,
        ReadsRun,
    ),
)]
async fn series(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<SeriesQuery>,
) -> Result<Json<Vec<MetricSeries>>, ApiError> {
    let points = params.points.unwrap_or(DEFAULT_POINTS);
    let keys: Vec<&str> = (params.keys.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    let mut errors = check_series_query(points, &keys);
    reader.run(&state.store, id).await?;
    let records = RunRecords::read(&state.store, id, &keys).await?;
    let mut result = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        match records.series(key, params.x, points) {
            Ok(series) => result.push(series),
            Err(message) => errors.push(FieldError::new(format!("keys[{i}]"), message)),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(Json(result))
}

/// The problems of a series request that do not depend on the run.
fn check_series_query(points: usize, keys: &[&str]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !(2..=MAX_POINTS).contains(&points) {
        errors.push(FieldError::new(
            "points",
            format!("must be 2 to {MAX_POINTS}"),
        ));
    }
    if keys.is_empty() {
        errors.push(FieldError::new(
            "keys",
            "name at least one metric, such as step.loss",
        ));
    }
    errors
}

/// A run's recorded steps and epochs, each read only if a key asks for them.
struct RunRecords {
    steps: Vec<Record>,
    epochs: Vec<Record>,
}

impl RunRecords {
    async fn read(store: &Store, id: i64, keys: &[&str]) -> Result<Self, ApiError> {
        let wants = |prefix: &str| keys.iter().any(|k| k.starts_with(prefix));
        let steps = if wants("step.") {
            step_records(&store.steps(id).await?)
        } else {
            Vec::new()
        };
        let epochs = if wants("epoch.") {
            (store.epochs(id).await?.iter())
                .map(|m| Record {
                    step: m.steps as f64,
                    epoch: f64::from(m.epoch),
                    time: m.elapsed_seconds,
                    values: serde_json::to_value(m).expect("metrics serialize"),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self { steps, epochs })
    }

    /// The series of `key` against `x`, downsampled to `points`; or why `key` has none.
    fn series(&self, key: &str, x: XAxis, points: usize) -> Result<MetricSeries, String> {
        let (records, prefix, path) = match (key.strip_prefix("step."), key.strip_prefix("epoch."))
        {
            (Some(path), _) => (&self.steps, "step.", path),
            (_, Some(path)) => (&self.epochs, "epoch.", path),
            _ => return Err(format!("{key:?} must start with step. or epoch.")),
        };
        let values: Vec<SeriesPoint> = (records.iter())
            .filter_map(|r| Some(SeriesPoint(r.x(x), number(at_path(&r.values, path)?)?)))
            .collect();
        // A run with no records yet has an empty series; a key no record has is a mistake.
        if values.is_empty() && !records.is_empty() {
            let known: Vec<String> = (leaves(&records[0].values).iter())
                .filter(|(_, v)| number(v).is_some())
                .map(|(k, _)| format!("{prefix}{k}"))
                .collect();
            return Err(format!(
                "{key:?} is not a recorded number; known: {known:?}"
            ));
        }
        Ok(MetricSeries {
            key: key.to_owned(),
            x,
            total: values.len(),
            points: downsample(&values, points),
        })
    }
}

/// Which records an export holds.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Records {
    #[default]
    Epochs,
    Steps,
}

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(default)]
    of: Records,
}

/// Columns that say where a row is come first; the rest in path order.
const LEADING_COLUMNS: [&str; 4] = ["epoch", "step", "steps", "elapsed_seconds"];

#[utoipa::path(
    get,
    path = "/runs/{id}/export",
    operation_id = "export_run_metrics",
    tag = "runs",
    params(
        ("id" = i64, Path, description = "run id"),
        ("share" = Option<String>, Query, description = "a share link token, instead of signing in"),
        ("of" = Option<String>, Query, description = "`epochs` (default) or `steps`"),
    ),
    responses(
        (status = 200, content_type = "text/csv", description = "one row per epoch or step, a column per recorded number (`test.unimodal[1]`, ...)"),
        ReadsRun,
    ),
)]
async fn export(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(ExportQuery { of }): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    reader.run(&state.store, id).await?;
    let rows: Vec<BTreeMap<String, Value>> = match of {
        Records::Epochs => (state.store.epochs(id).await?.iter())
            .map(|m| leaves(&serde_json::to_value(m).expect("metrics serialize")))
            .collect(),
        Records::Steps => (state.store.steps(id).await?.iter())
            .map(|m| leaves(&serde_json::to_value(m).expect("metrics serialize")))
            .collect(),
    };
    // Every column any row has (a validation split may appear in some epochs only).
    let mut columns: Vec<&String> = Vec::new();
    for row in &rows {
        for key in row.keys() {
            if !columns.contains(&key) {
                columns.push(key);
            }
        }
    }
    columns.sort_by_key(|c| {
        let leading = LEADING_COLUMNS.iter().position(|l| l == c);
        (leading.unwrap_or(LEADING_COLUMNS.len()), c.as_str())
    });
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    writer.write_record(&columns).expect("in-memory CSV");
    for row in &rows {
        let record = columns.iter().map(|c| match row.get(*c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(value) => value.to_string(),
        });
        writer.write_record(record).expect("in-memory CSV");
    }
    let body = String::from_utf8(writer.into_inner().expect("in-memory CSV")).expect("UTF-8");
    let name = match of {
        Records::Epochs => "epochs",
        Records::Steps => "steps",
    };
    let disposition = format!("attachment; filename=\"run-{id}-{name}.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
