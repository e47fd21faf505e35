//! `/compare` and `/results`: what differs between runs, and their results grouped the way
//! papers tabulate them, as JSON or exported as CSV, Markdown or LaTeX.

use super::responses::{InvalidFields, ReadsRun};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use balancelab_shared::{
    config_differences, method_columns, results_table, Comparison, EpochChoice, EpochMetrics,
    FieldError, ResultsTable, Role, Run, RunQuery, RunResult, RunStatus,
};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller};
use super::{ApiError, AppState};
use crate::results_table::{to_csv, to_latex, to_markdown};

/// The `/compare` and `/results` routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(compare))
        .routes(routes!(results))
}

/// Runs one compare or results request reads at most: each is read whole (its epochs).
const MAX_IDS: usize = 100;
/// Epochs one compare answer holds at most, over all its runs.
const MAX_COMPARED_EPOCHS: u64 = 50_000;

/// A comma-separated list of at most [`MAX_IDS`] run ids, as `?runs=3,4,7`.
pub(super) fn parse_ids(text: &str) -> Result<Vec<i64>, ApiError> {
    let invalid = |message: String| ApiError::Invalid(vec![FieldError::new("runs", message)]);
    let count = text.split(',').count();
    if count > MAX_IDS {
        return Err(invalid(format!(
            "at most {MAX_IDS} runs per request, got {count}"
        )));
    }
    text.split(',')
        .map(|id| id.trim().parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            invalid(format!(
                "expected run ids separated by commas, got {text:?}"
            ))
        })
}

fn list(text: &str) -> Vec<String> {
    (text.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The runs with these ids, each of which the caller must be allowed to see.
async fn runs_by_id(state: &AppState, caller: &Caller, ids: &[i64]) -> Result<Vec<Run>, ApiError> {
    let mut runs = Vec::with_capacity(ids.len());
    for &id in ids {
        runs.push(caller.run(&state.store, id, Role::Viewer).await?);
    }
    Ok(runs)
}

/// Each run's stored epochs, in the order of `runs`.
async fn epochs_of(state: &AppState, runs: &[Run]) -> Result<Vec<Vec<EpochMetrics>>, ApiError> {
    let ids: Vec<i64> = runs.iter().map(|run| run.id).collect();
    Ok(state.store.epochs_of_runs(&ids).await?)
}

#[derive(Deserialize)]
struct CompareQuery {
    runs: String,
}

/// The runs, and the configuration fields that are not the same in all of them.
#[utoipa::path(
    get,
    path = "/compare",
    operation_id = "compare_runs",
    tag = "results",
    params(
        ("runs" = String, Query, description = "run ids separated by commas"),
    ),
    responses(
        (status = 200, body = Comparison),
        InvalidFields,
        ReadsRun,
    ),
)]
async fn compare(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CompareQuery>,
) -> Result<Json<Comparison>, ApiError> {
    let ids = parse_ids(&params.runs)?;
    let runs = runs_by_id(&state, &caller, &ids).await?;
    let configs: Vec<_> = runs.iter().map(|r| r.config.clone()).collect();
    // The answer is held whole: its epochs are bounded (50 runs of 1,000 epochs pass).
    let total: u64 = runs.iter().map(|r| u64::from(r.epochs_done)).sum();
    if total > MAX_COMPARED_EPOCHS {
        let message = format!(
            "these runs have {total} epochs in all; at most {MAX_COMPARED_EPOCHS} are compared at once"
        );
        return Err(ApiError::Invalid(vec![FieldError::new("runs", message)]));
    }
    let epochs = epochs_of(&state, &runs).await?;
    Ok(Json(Comparison {
        differences: config_differences(&configs),
        runs,
        epochs,
    }))
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Format {
    #[default]
    Json,
    Csv,
    Markdown,
    Latex,
}

#[derive(Deserialize)]
struct ResultsQuery {
    /// Configuration fields to group by; default `method.kind`.
    group_by: Option<String>,
    /// Metrics of the chosen epoch; default `test.fused`.
    metrics: Option<String>,
    #[serde(default)]
    epoch: EpochChoice,
    /// Run ids; default: the most recent completed runs.
    runs: Option<String>,
    #[serde(default)]
    format: Format,
}

#[utoipa::path(
    get,
    path = "/results",
    operation_id = "results_table",
    tag = "results",
    params(
        ("group_by" = Option<String>, Query, description = "config paths, e.g. method.kind,model.fusion; default method.kind (and method.modality when a run is unimodal)"),
        ("metrics" = Option<String>, Query, description = "epoch metric paths, e.g. test.fused"),
        ("epoch" = Option<EpochChoice>, Query, description = "best_validation (the default) or last"),
        ("runs" = Option<String>, Query, description = "run ids; default: your completed runs"),
        ("format" = Option<String>, Query, description = "json, csv, markdown or latex"),
    ),
    responses(
        (status = 200, body = ResultsTable, description = "JSON, or the table as CSV, Markdown or LaTeX"),
        InvalidFields,
        ReadsRun,
    ),
)]
async fn results(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ResultsQuery>,
) -> Result<Response, ApiError> {
    let runs = match params.runs.as_deref() {
        Some(ids) => runs_by_id(&state, &caller, &parse_ids(ids)?).await?,
        None => {
            // Without ids: the most recent completed runs.
            let completed = RunQuery {
                status: Some(RunStatus::Completed),
                limit: MAX_IDS as u32,
                ..RunQuery::default()
            };
            state.store.list_runs(&completed, caller.0.id).await?.runs
        }
    };
    let histories = epochs_of(&state, &runs).await?;
    let inputs: Vec<RunResult> = (runs.iter().zip(&histories))
        .map(|(run, epochs)| RunResult {
            id: run.id,
            config: &run.config,
            epochs,
        })
        .collect();
    let group_by = match params.group_by.as_deref() {
        Some(fields) => list(fields),
        None => method_columns(runs.iter().map(|run| &run.config)),
    };
    let metrics = list(params.metrics.as_deref().unwrap_or("test.fused"));
    let table =
        results_table(&inputs, &group_by, &metrics, params.epoch).map_err(ApiError::Invalid)?;
    let text = |content_type: &'static str, body: String| {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    Ok(match params.format {
        Format::Json => Json(table).into_response(),
        Format::Csv => text("text/csv; charset=utf-8", to_csv(&table)),
        Format::Markdown => text("text/markdown; charset=utf-8", to_markdown(&table)),
        Format::Latex => text("application/x-latex; charset=utf-8", to_latex(&table)),
    })
}
