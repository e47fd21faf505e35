//! Calls to the BalanceLab HTTP API, and its live streams (Server-Sent Events).

use balancelab_shared::{
    AuditEntry, Comparison, Credentials, DatasetInfo, ErrorBody, Me, Member, MetricSeries, Preset,
    Project, Role, Run, RunConfig, RunDetail, RunPage, RunPatch, RunQuery, Secret, ShareLink,
    Sweep, XAxis,
};
use std::marker::PhantomData;

use futures::StreamExt;
use gloo_net::eventsource::futures::{EventSource, EventSourceSubscription};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a call failed, in words for the user, with the server's per-field errors if any.
#[derive(Clone, Debug)]
pub(crate) struct ApiFailure(pub(crate) ErrorBody);

impl ApiFailure {
    /// A failure that is only a message, such as a network error.
    pub(crate) fn message(message: impl ToString) -> Self {
        Self(ErrorBody {
            message: message.to_string(),
            fields: Vec::new(),
        })
    }
}

/// Where the browser is: path and query.
fn current_location() -> String {
    let location = web_sys::window().expect("a browser window").location();
    let path = location.pathname().unwrap_or_default();
    path + &location.search().unwrap_or_default()
}

/// The sign-in page, coming back to `next` afterwards.
pub(crate) fn login_url(next: &str) -> String {
    let next: String = js_sys::encode_uri_component(next).into();
    format!("/login?next={next}")
}

/// A 401 means the session is missing or over: off to the sign-in page, then back here.
async fn read<T: DeserializeOwned>(response: Response) -> Result<T, ApiFailure> {
    // Several calls fail together when a page opens signed out: one navigation, or each
    // would cancel the one before.
    static LEAVING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if response.status() == 401 && !LEAVING.swap(true, std::sync::atomic::Ordering::Relaxed) {
        let _ = (web_sys::window().expect("a browser window").location())
            .assign(&login_url(&current_location()));
    }
    read_quietly(response).await
}

/// The response's JSON body as a `T`, or the server's error body; a 401 included.
async fn read_quietly<T: DeserializeOwned>(response: Response) -> Result<T, ApiFailure> {
    // The body's bytes parsed as they are: reading it as text would decode it into a
    // JavaScript string and encode it back into the WebAssembly's memory (a compare page's
    // 4 MB took 50 ms of the 2 cores this way).
    let body = response.binary().await.map_err(ApiFailure::message)?;
    if response.ok() {
        return serde_json::from_slice(&body).map_err(ApiFailure::message);
    }
    let status = response.status();
    Err(match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(body) => ApiFailure(body),
        Err(_) => ApiFailure::message(format!("the server answered {status}")),
    })
}

/// Sends a request, with `body` as JSON if given.
async fn send(
    builder: RequestBuilder,
    body: Option<&impl Serialize>,
) -> Result<Response, ApiFailure> {
    let response = match body {
        Some(body) => {
            builder
                .json(body)
                .map_err(ApiFailure::message)?
                .send()
                .await
        }
        None => builder.send().await,
    };
    response.map_err(ApiFailure::message)
}

async fn get<T: DeserializeOwned>(url: &str) -> Result<T, ApiFailure> {
    read(send(Request::get(url), None::<&()>).await?).await
}

async fn post<T: DeserializeOwned>(
    url: &str,
    body: Option<&impl Serialize>,
) -> Result<T, ApiFailure> {
    read(send(Request::post(url), body).await?).await
}

async fn put<T: DeserializeOwned>(url: &str, body: &impl Serialize) -> Result<T, ApiFailure> {
    read(send(Request::put(url), Some(body)).await?).await
}

async fn patch<T: DeserializeOwned>(url: &str, body: &impl Serialize) -> Result<T, ApiFailure> {
    read(send(Request::patch(url), Some(body)).await?).await
}

/// DELETE, answered with no content.
async fn delete(url: &str) -> Result<(), ApiFailure> {
    let response = send(Request::delete(url), None::<&()>).await?;
    if response.ok() {
        return Ok(());
    }
    read::<serde_json::Value>(response).await.map(|_| ())
}

/// `?project=ID` when a project is chosen (else the server picks the caller's first).
fn project_query(project: Option<i64>) -> String {
    project.map_or(String::new(), |id| format!("?project={id}"))
}

/// Queues a run of `config` in `project` (none: the caller's first project).
pub(crate) async fn create_run(
    config: &RunConfig,
    project: Option<i64>,
) -> Result<Run, ApiFailure> {
    post(
        &format!("/api/runs{}", project_query(project)),
        Some(config),
    )
    .await
}

/// Queues every run of `sweep`'s grid.
pub(crate) async fn create_sweep(
    sweep: &Sweep,
    project: Option<i64>,
) -> Result<Vec<Run>, ApiFailure> {
    post(
        &format!("/api/sweeps{}", project_query(project)),
        Some(sweep),
    )
    .await
}

/// The ready-made configurations (`presets/`).
pub(crate) async fn list_presets() -> Result<Vec<Preset>, ApiFailure> {
    get("/api/presets").await
}

/// The caller's projects, with their role in each.
pub(crate) async fn list_projects() -> Result<Vec<Project>, ApiFailure> {
    get("/api/projects").await
}

/// Creates a project, owned by the caller.
pub(crate) async fn create_project(name: &str) -> Result<Project, ApiFailure> {
    post("/api/projects", Some(&serde_json::json!({ "name": name }))).await
}

/// Renames `project` (owners only).
pub(crate) async fn rename_project(project: i64, name: &str) -> Result<Project, ApiFailure> {
    let body = serde_json::json!({ "name": name });
    patch(&format!("/api/projects/{project}"), &body).await
}

/// Changes run `id`'s tags and/or note; the run afterwards.
pub(crate) async fn change_run(id: i64, change: &RunPatch) -> Result<Run, ApiFailure> {
    patch(&format!("/api/runs/{id}"), change).await
}

/// Deletes run `id` with its metrics and checkpoints.
pub(crate) async fn delete_run(id: i64) -> Result<(), ApiFailure> {
    delete(&format!("/api/runs/{id}")).await
}

/// The page of runs `query` asks for.
pub(crate) async fn list_runs(query: &RunQuery) -> Result<RunPage, ApiFailure> {
    let mut params = vec![
        format!("limit={}", query.limit),
        format!("offset={}", query.offset),
        format!("sort={}", snake(query.sort)),
        format!("order={}", snake(query.order)),
    ];
    let optional = [
        ("status", query.status.map(snake)),
        ("method", query.method.clone()),
        ("dataset", query.dataset.clone()),
        ("tag", query.tag.clone()),
        ("search", query.search.clone()),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            let value: String = js_sys::encode_uri_component(&value).into();
            params.push(format!("{key}={value}"));
        }
    }
    get(&format!("/api/runs?{}", params.join("&"))).await
}

/// A unit enum's name as serde writes it (`best_accuracy`).
pub(crate) fn snake(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `?share=TOKEN` when the run is opened through a share link.
fn share_query(share: Option<&str>, first: bool) -> String {
    let separator = if first { '?' } else { '&' };
    share.map_or(String::new(), |token| format!("{separator}share={token}"))
}

/// Run `id` with its epochs so far, through share link token `share` if given.
pub(crate) async fn get_run(id: i64, share: Option<&str>) -> Result<RunDetail, ApiFailure> {
    get(&format!("/api/runs/{id}{}", share_query(share, true))).await
}

/// Run `id`'s series of `keys` (such as `step.loss`), at most `points` each, against `x`.
pub(crate) async fn metric_series(
    id: i64,
    keys: &[String],
    points: usize,
    x: XAxis,
    share: Option<&str>,
) -> Result<Vec<MetricSeries>, ApiFailure> {
    let keys: String = js_sys::encode_uri_component(&keys.join(",")).into();
    let url = format!(
        "/api/runs/{id}/metrics?keys={keys}&points={points}&x={}{}",
        snake(x),
        share_query(share, false)
    );
    get(&url).await
}

/// The series of `keys` of each of runs `ids` (in that order), in one request.
pub(crate) async fn compare_series(
    ids: &[i64],
    keys: &[String],
    points: usize,
    x: XAxis,
) -> Result<Vec<Vec<MetricSeries>>, ApiFailure> {
    let keys: String = js_sys::encode_uri_component(&keys.join(",")).into();
    let url = format!(
        "/api/compare/metrics?runs={}&keys={keys}&points={points}&x={}",
        id_list(ids),
        snake(x)
    );
    get(&url).await
}

/// Signs in; the server sets the session cookie every later call carries.
pub(crate) async fn login(credentials: &Credentials) -> Result<Secret, ApiFailure> {
    let request = Request::post("/api/auth/login")
        .json(credentials)
        .map_err(ApiFailure::message)?;
    read_quietly(request.send().await.map_err(ApiFailure::message)?).await
}

/// Signs out: the server ends the session.
pub(crate) async fn logout() -> Result<(), ApiFailure> {
    let response = Request::post("/api/auth/logout").send().await;
    let response = response.map_err(ApiFailure::message)?;
    if response.ok() {
        Ok(())
    } else {
        Err(ApiFailure::message(format!(
            "the server answered {}",
            response.status()
        )))
    }
}

/// Who is signed in; an error (without leaving the page) when nobody is.
pub(crate) async fn me() -> Result<Me, ApiFailure> {
    let response = Request::get("/api/auth/me").send().await;
    read_quietly(response.map_err(ApiFailure::message)?).await
}

/// Makes a read-only link to run `id`; its token is only shown now.
pub(crate) async fn share_run(id: i64) -> Result<Secret, ApiFailure> {
    post(&format!("/api/runs/{id}/share"), None::<&()>).await
}

/// Run `id`'s share links, revoked ones included.
pub(crate) async fn share_links(id: i64) -> Result<Vec<ShareLink>, ApiFailure> {
    get(&format!("/api/runs/{id}/share")).await
}

/// Revokes share link `link` of run `id`.
pub(crate) async fn revoke_share_link(id: i64, link: i64) -> Result<(), ApiFailure> {
    delete(&format!("/api/runs/{id}/share/{link}")).await
}

/// The newest `limit` entries of `project`'s audit log (owners only).
pub(crate) async fn project_audit(project: i64, limit: u32) -> Result<Vec<AuditEntry>, ApiFailure> {
    get(&format!("/api/projects/{project}/audit?limit={limit}")).await
}

/// The members of `project`, with their roles.
pub(crate) async fn members(project: i64) -> Result<Vec<Member>, ApiFailure> {
    get(&format!("/api/projects/{project}/members")).await
}

/// Gives `user` `role` in `project` (owners only); the members afterwards.
pub(crate) async fn set_member(
    project: i64,
    user: &str,
    role: Role,
) -> Result<Vec<Member>, ApiFailure> {
    let user: String = js_sys::encode_uri_component(user).into();
    let body = serde_json::json!({ "role": role });
    put(&format!("/api/projects/{project}/members/{user}"), &body).await
}

/// Takes `user` out of `project` (owners only).
pub(crate) async fn remove_member(project: i64, user: &str) -> Result<(), ApiFailure> {
    let user: String = js_sys::encode_uri_component(user).into();
    delete(&format!("/api/projects/{project}/members/{user}")).await
}

/// Asks the server to stop a queued or training run.
pub(crate) async fn cancel_run(id: i64) -> Result<Run, ApiFailure> {
    post(&format!("/api/runs/{id}/cancel"), None::<&()>).await
}

/// Every dataset the server knows, whether its files are there, and its attribution.
pub(crate) async fn list_datasets() -> Result<Vec<DatasetInfo>, ApiFailure> {
    get("/api/datasets").await
}

fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Runs `ids` side by side, with the configuration fields that differ.
pub(crate) async fn compare(ids: &[i64]) -> Result<Comparison, ApiFailure> {
    get(&format!("/api/compare?runs={}", id_list(ids))).await
}

/// What a results table reads: which runs, grouped by which fields, which metrics, at which
/// epoch of each run (`best_validation` or `last`).
pub(crate) struct ResultsQuery<'a> {
    pub(crate) ids: &'a [i64],
    pub(crate) group_by: &'a str,
    pub(crate) metrics: &'a str,
    pub(crate) epoch: &'a str,
}

/// URL of the results table `query` asks for, in `format` (json, csv, markdown, latex).
pub(crate) fn results_url(query: &ResultsQuery, format: &str) -> String {
    let metrics: String = js_sys::encode_uri_component(query.metrics).into();
    format!(
        "/api/results?runs={}&group_by={}&metrics={metrics}&epoch={}&format={format}",
        id_list(query.ids),
        query.group_by,
        query.epoch
    )
}

/// URL of a run's Server-Sent Events stream, from after log position `after`.
pub(crate) fn events_url(id: i64, after: i64, share: Option<&str>) -> String {
    format!(
        "/api/runs/{id}/events?after={after}{}",
        share_query(share, false)
    )
}

/// A Server-Sent Events stream whose messages are JSON `T`s, such as a run's live events.
/// Dropping it closes the connection.
pub(crate) struct LiveStream<T> {
    // Held for the connection: dropping the source closes it.
    _source: EventSource,
    messages: EventSourceSubscription,
    _message: PhantomData<fn() -> T>,
}

/// Why a live stream brought no message.
#[derive(Clone, Debug, PartialEq)]
enum LiveError {
    /// The connection is lost for good (the browser first retries a dropped one by itself).
    Lost,
    /// A message that is not a `T`: what is wrong with it.
    Unreadable(String),
}

impl<T: DeserializeOwned> LiveStream<T> {
    /// Opens the stream at `url`; why it cannot be opened, otherwise.
    pub(crate) fn open(url: &str) -> Result<Self, String> {
        let mut source = EventSource::new(url).map_err(|e| e.to_string())?;
        let messages = source.subscribe("message").map_err(|e| e.to_string())?;
        Ok(Self {
            _source: source,
            messages,
            _message: PhantomData,
        })
    }

    /// The next message, or why there is none this time; nothing once the stream has ended.
    async fn receive(&mut self) -> Option<Result<T, LiveError>> {
        let message = match self.messages.next().await? {
            Ok((_, message)) => message,
            Err(_) => return Some(Err(LiveError::Lost)),
        };
        let Some(data) = message.data().as_string() else {
            return Some(Err(LiveError::Unreadable("not text".into())));
        };
        Some(parse_message(&data))
    }

    /// The next message that reads as a `T`; `None` once the stream is lost. Unreadable
    /// messages are skipped and the loss ends it, each told to `report` with `advice` (how to
    /// catch up) after it.
    pub(crate) async fn next_or_report(
        &mut self,
        report: impl Fn(String),
        advice: &str,
    ) -> Option<T> {
        loop {
            match self.receive().await? {
                Ok(message) => return Some(message),
                Err(LiveError::Lost) => {
                    report(format!("Lost the live connection; {advice}."));
                    return None;
                }
                Err(LiveError::Unreadable(why)) => report(format!(
                    "A live update could not be read ({why}); {advice}."
                )),
            }
        }
    }
}

/// A live message's JSON `data` as a `T`.
fn parse_message<T: DeserializeOwned>(data: &str) -> Result<T, LiveError> {
    serde_json::from_str(data).map_err(|e| LiveError::Unreadable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use balancelab_shared::{RunEvent, RunStatus};

    use super::*;

    #[test]
    fn a_live_message_that_is_not_an_event_is_an_error_not_dropped() {
        let event =
            parse_message::<RunEvent>(r#"{"type": "status", "status": "running", "error": null}"#);
        assert_eq!(
            event,
            Ok(RunEvent::Status {
                status: RunStatus::Running,
                error: None
            })
        );
        let Err(LiveError::Unreadable(why)) = parse_message::<RunEvent>(r#"{"type": "epoch"}"#)
        else {
            panic!("an epoch without its metrics is not an event");
        };
        assert!(!why.is_empty());
    }
}
