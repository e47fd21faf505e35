//! Calls to the BalanceLab HTTP API.

use balancelab_shared::{DatasetInfo, ErrorBody, Run, RunConfig, RunDetail};
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

pub async fn list_runs() -> Result<Vec<Run>, ApiFailure> {
    let response = Request::get("/api/runs").send().await;
    read(response.map_err(ApiFailure::message)?).await
}

pub async fn get_run(id: i64) -> Result<RunDetail, ApiFailure> {
    let response = Request::get(&format!("/api/runs/{id}")).send().await;
    read(response.map_err(ApiFailure::message)?).await
}

pub async fn list_datasets() -> Result<Vec<DatasetInfo>, ApiFailure> {
    let response = Request::get("/api/datasets").send().await;
    read(response.map_err(ApiFailure::message)?).await
}

/// URL of a run's Server-Sent Events stream.
pub fn events_url(id: i64) -> String {
    format!("/api/runs/{id}/events")
}
