//! Calls to the BalanceLab HTTP API.

use balancelab_shared::{
    Comparison, DatasetInfo, ErrorBody, ResultsTable, Run, RunConfig, RunDetail, RunPage,
};
use gloo_net::http::{Request, Response};
use serde::de::DeserializeOwned;

/// Why a call failed, in words for the user, with the server's per-field errors if any.
#[derive(Clone, Debug)]
pub struct ApiFailure(pub ErrorBody);

impl ApiFailure {
    fn message(message: impl ToString) -> Self {
        Self(ErrorBody {
            message: message.to_string(),
            fields: Vec::new(),
        })
    }
}

async fn read<T: DeserializeOwned>(response: Response) -> Result<T, ApiFailure> {
    if response.ok() {
        return response.json().await.map_err(ApiFailure::message);
    }
    let status = response.status();
    Err(match response.json::<ErrorBody>().await {
        Ok(body) => ApiFailure(body),
        Err(_) => ApiFailure::message(format!("the server answered {status}")),
    })
}

pub async fn create_run(config: &RunConfig) -> Result<Run, ApiFailure> {
    let request = Request::post("/api/runs")
        .json(config)
        .map_err(ApiFailure::message)?;
    read(request.send().await.map_err(ApiFailure::message)?).await
}

/// The most recent runs (the server's first page).
pub async fn list_runs() -> Result<Vec<Run>, ApiFailure> {
    let response = Request::get("/api/runs").send().await;
    let page: RunPage = read(response.map_err(ApiFailure::message)?).await?;
    Ok(page.runs)
}

pub async fn get_run(id: i64) -> Result<RunDetail, ApiFailure> {
    let response = Request::get(&format!("/api/runs/{id}")).send().await;
    read(response.map_err(ApiFailure::message)?).await
}

/// Asks the server to stop a queued or training run.
pub async fn cancel_run(id: i64) -> Result<Run, ApiFailure> {
    let response = Request::post(&format!("/api/runs/{id}/cancel"))
        .send()
        .await;
    read(response.map_err(ApiFailure::message)?).await
}

pub async fn list_datasets() -> Result<Vec<DatasetInfo>, ApiFailure> {
    let response = Request::get("/api/datasets").send().await;
    read(response.map_err(ApiFailure::message)?).await
}

fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

pub async fn compare(ids: &[i64]) -> Result<Comparison, ApiFailure> {
    let response = Request::get(&format!("/api/compare?runs={}", id_list(ids)))
        .send()
        .await;
    read(response.map_err(ApiFailure::message)?).await
}

/// URL of the results table of `ids`, grouped by `group_by`, in `format` (json, csv,
/// markdown, latex).
pub fn results_url(ids: &[i64], group_by: &str, metrics: &str, format: &str) -> String {
    format!(
        "/api/results?runs={}&group_by={group_by}&metrics={metrics}&format={format}",
        id_list(ids)
    )
}

pub async fn results(
    ids: &[i64],
    group_by: &str,
    metrics: &str,
) -> Result<ResultsTable, ApiFailure> {
    let response = Request::get(&results_url(ids, group_by, metrics, "json"))
        .send()
        .await;
    read(response.map_err(ApiFailure::message)?).await
}

/// URL of a run's Server-Sent Events stream.
pub fn events_url(id: i64) -> String {
    format!("/api/runs/{id}/events")
}
