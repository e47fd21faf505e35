//! The HTTP API, driven through `app(state)` with `oneshot`: no socket, real store and engine.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use balancelab::api::{app, AppState};
use balancelab::live::Hub;
use balancelab::store::{Store, TokenKind};
use balancelab::worker::{WorkerOptions, Workers};
use balancelab_shared::{
    Comparison, DatasetInfo, ErrorBody, MetricSeries, ResultsTable, Run, RunConfig, RunDetail,
    RunEvent, RunPage, RunStatus, StepMetrics,
};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tower::ServiceExt;

/// The app on a scratch database (PostgreSQL when BALANCELAB_TEST_DATABASE_URL is set) with
/// one worker, reading real datasets from `data_dir`, as its first user (`admin`, owner of
/// the project `default`) sees it: every request carries admin's API token. Permissions
/// themselves are tested in access.rs.
async fn app_reading(data_dir: Option<std::path::PathBuf>) -> Router {
    app_with(|options| options.data_dir = data_dir).await
}

/// The app with its workers' options changed by `configure`.
async fn app_with(configure: impl FnOnce(&mut WorkerOptions)) -> Router {
    app_and_store(configure).await.0
}

/// The app of [`app_with`], and its store.
async fn app_and_store(configure: impl FnOnce(&mut WorkerOptions)) -> (Router, Store) {
    let store = Store::scratch().await.unwrap();
    balancelab::auth::bootstrap(&store, Some("admin password"))
        .await
        .unwrap();
    let (admin, _) = store.user_by_name("admin").await.unwrap().unwrap();
    let (token, hash) = balancelab::auth::new_token();
    store
        .add_token(admin.id, &hash, TokenKind::Api, None)
        .await
        .unwrap();
    let hub = Hub::new(store.clone());
    let checkpoints = tempfile::tempdir().unwrap().keep();
    let mut options = WorkerOptions::new(checkpoints);
    // Runs train in children of the binary (this test's own executable is not it).
    options.child.executable = env!("CARGO_BIN_EXE_balancelab").into();
    configure(&mut options);
    let workers = Workers::start(store.clone(), hub.clone(), options);
    let bearer = format!("Bearer {token}");
    let app = app(AppState::new(store.clone(), hub, workers)).layer(axum::middleware::map_request(
        move |mut request: Request<Body>| {
            let bearer = bearer.clone();
            async move {
                let value = header::HeaderValue::from_str(&bearer).unwrap();
                request.headers_mut().insert(header::AUTHORIZATION, value);
                request
            }
        },
    ));
    (app, store)
}

async fn test_app() -> Router {
    app_reading(None).await
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

async fn post_run(app: &Router, body: &str) -> (StatusCode, Vec<u8>) {
    let request = Request::post("/api/runs")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    send(app, request).await
}

async fn get<T: DeserializeOwned>(app: &Router, uri: &str) -> (StatusCode, T) {
    let (status, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (status, serde_json::from_slice(&body).unwrap())
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> T {
    serde_json::from_slice(body).unwrap()
}

fn small_run(method: Value) -> String {
    json!({
        "method": method,
        "epochs": 3,
        "dataset": {"kind": "synthetic", "train_samples": 256, "test_samples": 128}
    })
    .to_string()
}

async fn wait_until_finished(app: &Router, id: i64) -> RunDetail {
    for _ in 0..600 {
        let (status, detail): (_, RunDetail) = get(app, &format!("/api/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        if detail.run.status.is_terminal() {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} did not finish in 30 s");
}

#[tokio::test]
async fn a_created_run_trains_and_its_metrics_are_stored() {
    let app = test_app().await;
    let (status, body) = post_run(&app, &small_run(json!({"kind": "mlb", "alpha": 0.8}))).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let run: Run = parse(&body);
    assert_eq!(run.config.epochs, 3);

    let detail = wait_until_finished(&app, run.id).await;
    assert_eq!(
        detail.run.status,
        RunStatus::Completed,
        "{:?}",
        detail.run.error
    );
    let epochs: Vec<u32> = detail.epochs.iter().map(|m| m.epoch).collect();
    assert_eq!(epochs, [1, 2, 3]);
    let last = &detail.epochs[2];
    assert_eq!(last.coefficients.len(), 2);
    assert_eq!(last.test.unimodal.len(), 2);
    assert_ne!(last.coefficients, [1.0, 1.0], "MLB must modulate");

    assert_eq!(
        (detail.run.epochs_done, detail.run.attempts),
        (3, 1),
        "progress is kept on the run"
    );
    let best = (detail.epochs.iter())
        .map(|m| m.validation.as_ref().unwrap_or(&m.test).fused)
        .fold(0.0, f64::max);
    assert_eq!(detail.run.best_accuracy, Some(best));

    let (status, page): (_, RunPage) = get(&app, "/api/runs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.runs.iter().map(|r| r.id).collect::<Vec<_>>(), [run.id]);
    assert_eq!(page.total, 1);
}

/// The SSE events of a response body that ends: (id, JSON data) pairs.
async fn sse_events(app: &Router, request: Request<Body>) -> Vec<(i64, Value)> {
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty() && !block.starts_with(':'))
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {block:?}"))
            };
            (
                field("id: ").parse().unwrap(),
                serde_json::from_str(field("data: ")).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_event_stream_replays_a_finished_run() {
    let app = test_app().await;
    let (_, body) = post_run(&app, &small_run(json!({"kind": "joint"}))).await;
    let run: Run = parse(&body);
    wait_until_finished(&app, run.id).await;

    let events_uri = format!("/api/runs/{}/events", run.id);
    // A finished run's stream ends after its log, so the body can be collected.
    let request = Request::get(&events_uri).body(Body::empty()).unwrap();
    let events = sse_events(&app, request).await;
    let ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=events.len() as i64).collect::<Vec<_>>());
    let kinds: Vec<&str> = (events.iter())
        .map(|(_, e)| e["type"].as_str().unwrap())
        .filter(|&kind| kind != "step")
        .collect();
    assert_eq!(kinds, ["status", "epoch", "epoch", "epoch", "status"]);
    assert_eq!(events[0].1["status"], "running");
    let last = &events.last().unwrap().1;
    assert_eq!(last["status"], "completed");
    let steps = events.iter().filter(|(_, e)| e["type"] == "step").count();
    // 256 training samples in batches of the default size, three epochs.
    assert_eq!(steps, 3 * 256_usize.div_ceil(64));

    // Resuming after position n gives exactly the rest, by header or by query.
    let n = events.len() as i64 - 3;
    let request = Request::get(&events_uri)
        .header("Last-Event-ID", n.to_string())
        .body(Body::empty())
        .unwrap();
    assert_eq!(sse_events(&app, request).await, events[n as usize..]);
    let request = Request::get(format!("{events_uri}?after={n}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(sse_events(&app, request).await, events[n as usize..]);
    let request = Request::get(&events_uri)
        .header("Last-Event-ID", "yesterday")
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(parse::<ErrorBody>(&body).fields[0].field, "Last-Event-ID");
}

#[tokio::test]
async fn a_live_stream_delivers_a_run_as_it_trains_and_ends_with_it() {
    let app = test_app().await;
    let (_, body) = post_run(&app, &small_run(json!({"kind": "mlb"}))).await;
    let run: Run = parse(&body);
    // Subscribed while the run is queued or training: the stream ends when the run does.
    let request = Request::get(format!("/api/runs/{}/events", run.id))
        .body(Body::empty())
        .unwrap();
    let events = tokio::time::timeout(Duration::from_secs(60), sse_events(&app, request))
        .await
        .expect("the stream ends with the run");
    let ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
    assert_eq!(events.last().unwrap().1["status"], "completed");
    let epochs = events.iter().filter(|(_, e)| e["type"] == "epoch").count();
    assert_eq!(epochs, 3);
}

#[tokio::test]
async fn invalid_values_are_rejected_with_every_field_named() {
    let app = test_app().await;
    let body = json!({"epochs": 0, "method": {"kind": "mlb", "alpha": -1.0}}).to_string();
    let (status, body) = post_run(&app, &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error: ErrorBody = parse(&body);
    let fields: Vec<&str> = error.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["epochs", "method.alpha"]);

    let (_, page): (_, RunPage) = get(&app, "/api/runs").await;
    assert_eq!(page.total, 0, "an invalid run must not be stored");
}

#[tokio::test]
async fn type_errors_and_unknown_fields_name_their_path() {
    let app = test_app().await;
    for (body, field) in [
        (r#"{"epochs": "ten"}"#, "epochs"),
        (r#"{"method": {"kind": "mlb", "alpha": "x"}}"#, "method"),
        (r#"{"method": {"kind": "gradblend"}}"#, "method.kind"),
        // Internally tagged enums are buffered by serde, so the path stops at the enum.
        (
            r#"{"dataset": {"kind": "synthetic", "noise": [1, "x"]}}"#,
            "dataset",
        ),
        (r#"{"epoch": 3}"#, "epoch"),
        (r#"{"device": "gpu"}"#, "device"),
        (r#"{"precision": "fp16"}"#, "precision"),
        // A valid name where it cannot apply: a range error, named the same way.
        (r#"{"precision": "tf32"}"#, "precision"),
    ] {
        let (status, response) = post_run(&app, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let error: ErrorBody = parse(&response);
        assert_eq!(error.fields[0].field, field, "{body}: {error:?}");
    }
}

#[cfg(not(feature = "cuda"))]
#[tokio::test]
async fn a_gpu_run_on_a_cpu_build_is_rejected_with_the_fix() {
    let app = test_app().await;
    let (status, body) = post_run(&app, r#"{"device": "cuda:0", "epochs": 0}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error: ErrorBody = parse(&body);
    let fields: Vec<&str> = error.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["epochs", "device"], "{error:?}");
    assert!(
        error.fields[1].message.contains("--features cuda"),
        "{error:?}"
    );
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let app = test_app().await;
    let (status, body) = post_run(&app, "{\"epochs\": 3").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: ErrorBody = parse(&body);
    assert!(error.message.contains("not valid JSON"), "{error:?}");
}

#[tokio::test]
async fn missing_runs_and_endpoints_are_json_404s() {
    let app = test_app().await;
    for uri in ["/api/runs/42", "/api/runs/42/events", "/api/nothing"] {
        let (status, error): (_, ErrorBody) = get(&app, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!error.message.is_empty());
    }
}

/// Another site's page may not change anything, whatever cookie its request carries; the
/// API's answers may not be framed or sniffed.
#[tokio::test]
async fn requests_from_other_sites_cannot_change_anything() {
    let app = test_app().await;
    let from = |headers: &[(&str, &str)]| {
        let mut request =
            Request::post("/api/runs").header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Body::from("{}")).unwrap()
    };
    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[
            ("origin", "http://localhost:9999"),
            ("host", "localhost:8080"),
        ][..],
    ] {
        let (status, body) = send(&app, from(headers)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}");
        let error: ErrorBody = parse(&body);
        assert!(
            error.message.contains("may not change anything"),
            "{error:?}"
        );
    }
    let same = [
        ("sec-fetch-site", "same-origin"),
        ("origin", "http://localhost:8080"),
    ];
    assert_eq!(send(&app, from(&same)).await.0, StatusCode::CREATED);
    // Reading is not changing: a cross-site GET is answered (the cookie is SameSite).
    let request = Request::get("/api/runs").header("sec-fetch-site", "cross-site");
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
}

/// Every way a request can be malformed is a JSON error naming the parameter at fault.
#[tokio::test]
async fn malformed_paths_queries_and_bodies_get_json_errors_that_say_what_is_wrong() {
    let app = test_app().await;
    for (uri, field, says) in [
        (
            "/api/runs/abc",
            "id",
            r#"expected a whole number, got "abc""#,
        ),
        ("/api/runs/abc/events", "id", "a whole number"),
        ("/api/runs?limit=-1", "limit", r#""-1": invalid digit"#),
        ("/api/runs?project=abc", "project", r#""abc""#),
    ] {
        let (status, error): (_, ErrorBody) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(error.fields.len(), 1, "{uri}: {error:?}");
        assert_eq!(error.fields[0].field, field, "{uri}");
        assert!(error.fields[0].message.contains(says), "{uri}: {error:?}");
        assert!(
            error.message.starts_with(&format!("{field}: ")),
            "{error:?}"
        );
    }
    // Compare and results read every run named: at most 100 per request.
    let ids: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    for endpoint in ["compare", "results"] {
        let uri = format!("/api/{endpoint}?runs={}", ids.join(","));
        let (status, error): (_, ErrorBody) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{endpoint}");
        assert_eq!(error.fields[0].field, "runs");
        assert!(
            error.fields[0].message.contains("at most 100 runs"),
            "{error:?}"
        );
    }

    let post = |content_type: &str, body: Vec<u8>| {
        Request::post("/api/runs")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let (status, body) = send(&app, post("text/plain", b"{}".to_vec())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let error: ErrorBody = parse(&body);
    assert!(error.message.contains("application/json"), "{error:?}");
    let form = "application/x-www-form-urlencoded";
    assert_eq!(
        send(&app, post(form, b"{}".to_vec())).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let json = "application/json; charset=utf-8";
    assert_eq!(
        send(&app, post(json, b"{}".to_vec())).await.0,
        StatusCode::CREATED
    );

    let (status, body) = send(&app, post("application/json", vec![b' '; 10 << 20])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let error: ErrorBody = parse(&body);
    assert!(error.message.contains("limit of 64 KiB"), "{error:?}");
}

/// A data directory holding only the digits file: 40 samples, class = whether the left
/// half is lit.
fn digits_fixture() -> tempfile::TempDir {
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("digits")).unwrap();
    let file = std::fs::File::create(dir.path().join("digits/digits.csv.gz")).unwrap();
    let mut gz = GzEncoder::new(file, Compression::default());
    for i in 0..40 {
        let class = i % 2;
        let pixels: Vec<String> = (0..64)
            .map(|p| {
                if (p % 8 < 4) == (class == 1) {
                    16
                } else {
                    i % 3
                }
                .to_string()
            })
            .collect();
        writeln!(gz, "{},{class}", pixels.join(",")).unwrap();
    }
    gz.finish().unwrap();
    dir
}

#[tokio::test]
async fn datasets_are_listed_and_only_present_ones_train() {
    let data = digits_fixture();
    let app = app_reading(Some(data.path().to_owned())).await;

    let (status, datasets): (_, Vec<DatasetInfo>) = get(&app, "/api/datasets").await;
    assert_eq!(status, StatusCode::OK);
    let available: Vec<(&str, bool)> = datasets
        .iter()
        .map(|d| (d.kind.as_str(), d.available))
        .collect();
    assert_eq!(
        available,
        [
            ("synthetic", true),
            ("mfeat", false),
            ("digits_halves", true),
            ("av_digits", false),
            ("crema_d", false),
            ("ave", false),
            ("ucf101", false)
        ]
    );
    assert!(datasets.iter().all(|d| !d.license.is_empty()));

    let (status, body) = post_run(&app, r#"{"dataset": {"kind": "mfeat"}}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error: ErrorBody = parse(&body);
    assert_eq!(error.fields[0].field, "dataset.kind");
    assert!(error.fields[0].message.contains("not found"), "{error:?}");

    let body = r#"{"epochs": 2, "batch_size": 8, "dataset": {"kind": "digits_halves"}}"#;
    let (status, body) = post_run(&app, body).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let detail = wait_until_finished(&app, parse::<Run>(&body).id).await;
    assert_eq!(
        detail.run.status,
        RunStatus::Completed,
        "{:?}",
        detail.run.error
    );
    assert_eq!(detail.epochs.len(), 2);
}

#[tokio::test]
async fn real_datasets_need_a_data_directory() {
    let app = test_app().await;
    let (status, body) = post_run(&app, r#"{"dataset": {"kind": "digits_halves"}}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error: ErrorBody = parse(&body);
    assert!(error.fields[0].message.contains("has none"), "{error:?}");
}

#[tokio::test]
async fn runs_are_compared_and_tabulated_like_a_paper() {
    let app = test_app().await;
    let mut ids = Vec::new();
    for (method, seed) in [("mlb", 0), ("mlb", 1), ("joint", 0)] {
        let body = json!({
            "method": {"kind": method},
            "seed": seed,
            "epochs": 2,
            "dataset": {"kind": "synthetic", "train_samples": 256, "test_samples": 128}
        });
        let (status, body) = post_run(&app, &body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(parse::<Run>(&body).id);
    }
    let mut finals = Vec::new();
    for &id in &ids {
        let detail = wait_until_finished(&app, id).await;
        assert_eq!(detail.run.status, RunStatus::Completed);
        finals.push(detail.epochs.last().unwrap().test.fused);
    }

    let uri = format!("/api/compare?runs={},{}", ids[0], ids[2]);
    let (status, comparison): (_, Comparison) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(comparison.runs.len(), 2);
    let kind = (comparison.differences.iter())
        .find(|d| d.field == "method.kind")
        .expect("the methods differ");
    assert_eq!(kind.values, ["mlb", "joint"]);
    assert!(comparison.differences.iter().all(|d| d.field != "epochs"));
    // Each run's epochs come in the same answer, as the run's own page has them.
    for (run, epochs) in comparison.runs.iter().zip(&comparison.epochs) {
        let uri = format!("/api/runs/{}", run.id);
        let (_, detail): (_, RunDetail) = get(&app, &uri).await;
        assert_eq!(epochs, &detail.epochs);
    }

    // Several runs' series in one request equal each run's own, in the order asked for.
    let keys = "step.fused_loss,step.unimodal_losses[1],step.coefficients[0],epoch.test.fused";
    let uri = format!(
        "/api/compare/metrics?runs={},{},{}&keys={keys}&points=7&x=epoch",
        ids[2], ids[0], ids[1]
    );
    let (status, batch): (_, Vec<Vec<MetricSeries>>) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(batch.len(), 3);
    for (series, id) in batch.iter().zip([ids[2], ids[0], ids[1]]) {
        let uri = format!("/api/runs/{id}/metrics?keys={keys}&points=7&x=epoch");
        let (_, own): (_, Vec<MetricSeries>) = get(&app, &uri).await;
        assert_eq!(series, &own);
        assert_eq!(series.len(), 4);
    }
    // A key only some runs record (a third modality) gives the others an empty series.
    let body = json!({
        "epochs": 1,
        "dataset": {"kind": "synthetic", "train_samples": 64, "test_samples": 32, "noise": [1, 2, 3]}
    });
    let (_, body) = post_run(&app, &body.to_string()).await;
    let three = wait_until_finished(&app, parse::<Run>(&body).id)
        .await
        .run
        .id;
    let uri = format!(
        "/api/compare/metrics?runs={},{three}&keys=step.coefficients[2]",
        ids[0]
    );
    let (status, batch): (_, Vec<Vec<MetricSeries>>) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((batch[0][0].total, batch[0][0].points.len()), (0, 0));
    assert!(batch[1][0].total > 0);
    // `[*]` stands for every index each run records: two modalities here, three there.
    let keys = "step.fused_loss,step.coefficients[*],epoch.test.unimodal[*]";
    let uri = format!(
        "/api/compare/metrics?runs={},{three}&keys={keys}&points=5",
        ids[0]
    );
    let (status, batch): (_, Vec<Vec<MetricSeries>>) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::OK);
    let names = |run: &[MetricSeries]| run.iter().map(|s| s.key.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&batch[0]),
        [
            "step.fused_loss",
            "step.coefficients[0]",
            "step.coefficients[1]",
            "epoch.test.unimodal[0]",
            "epoch.test.unimodal[1]"
        ]
    );
    assert_eq!(batch[1].len(), 7, "{:?}", names(&batch[1]));
    assert_eq!(batch[1][3].key, "step.coefficients[2]");
    let uri = format!("/api/runs/{three}/metrics?keys={keys}&points=5");
    let (_, own): (_, Vec<MetricSeries>) = get(&app, &uri).await;
    assert_eq!(own, batch[1], "one run's series are the batch's");
    // A `[*]` no index matches, or two in one key, is refused by the key's position.
    let uri = format!(
        "/api/compare/metrics?runs={}&keys=step.loss,step.nope[*],step.coefficients[*][*]",
        ids[0]
    );
    let (status, error): (_, ErrorBody) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = error.fields.iter().map(|f| f.field.as_str()).collect();
    assert!(
        fields.contains(&"keys[1]") && fields.contains(&"keys[2]"),
        "{error:?}"
    );
    assert!(
        error.fields.iter().any(|f| f.message.contains("known")),
        "{error:?}"
    );
    let long = format!("step.{}", "0".repeat(100));
    let uri = format!("/api/runs/{}/metrics?keys=step.loss,{long}", ids[0]);
    let (status, error): (_, ErrorBody) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error.fields[0].field, "keys[1]", "{error:?}");
    let uri = format!("/api/compare/metrics?runs={}&keys=step.nope", ids[0]);
    let (status, error): (_, ErrorBody) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error.fields[0].field, "keys[0]");
    let many: Vec<String> = (0..64).map(|i| format!("step.coefficients[{i}]")).collect();
    let uri = format!(
        "/api/compare/metrics?runs={}&keys={}&points=10000",
        vec![ids[0].to_string(); 2].join(","),
        many.join(",")
    );
    let (status, error): (_, ErrorBody) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error.fields[0].message.contains("at most 1000000"),
        "{error:?}"
    );
    // One run's series are bounded alike: each `[*]` counts as 16 series.
    let wide = ["step.coefficients[*]"; 7].join(",");
    let uri = format!("/api/runs/{}/metrics?keys={wide}&points=10000", ids[0]);
    let (status, error): (_, ErrorBody) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error.fields[0].message.contains("counts as 16"),
        "{error:?}"
    );
    let (status, _): (_, ErrorBody) =
        get(&app, "/api/compare/metrics?runs=999&keys=step.loss").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let uri = format!(
        "/api/results?runs={},{},{}&group_by=method.kind&metrics=test.fused,test.unimodal[0]",
        ids[0], ids[1], ids[2]
    );
    let (status, table): (_, ResultsTable) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::OK);
    // As papers report: each run's best validation epoch unless the last is asked for.
    assert_eq!(table.epoch, balancelab_shared::EpochChoice::BestValidation);
    let groups: Vec<&str> = table.rows.iter().map(|r| r.group[0].as_str()).collect();
    assert_eq!(groups, ["joint", "mlb"]);
    let mlb = table.rows[1].metrics[0].as_ref().unwrap();
    assert_eq!(mlb.n, 2);
    assert!((mlb.mean - (finals[0] + finals[1]) / 2.0).abs() < 1e-12);

    let request = Request::get("/api/results?format=csv&group_by=method.kind,seed")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let csv = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.starts_with("method.kind,seed,runs,test.fused mean"),
        "{csv}"
    );
    let (status, body) = send(
        &app,
        Request::get("/api/results?format=latex")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("\\begin{tabular}"));

    // Bad requests say what is wrong.
    let (status, error): (_, ErrorBody) = get(&app, "/api/results?metrics=test.fussed").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error.fields[0].field, "metrics");
    let (status, error): (_, ErrorBody) = get(&app, "/api/compare?runs=1,x").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error.fields[0].field, "runs");
    let (status, _): (_, ErrorBody) = get(&app, "/api/compare?runs=999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _): (_, ErrorBody) = get(&app, "/api/results?format=pdf").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn queued_and_training_runs_are_cancelled() {
    let app = test_app().await;
    let body = json!({
        "epochs": 10000,
        "dataset": {"kind": "synthetic", "train_samples": 256, "test_samples": 128}
    });
    let (status, body) = post_run(&app, &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = parse::<Run>(&body).id;
    // With one training slot, a second run waits in the queue; cancelled there, it never trains.
    let (_, queued) = post_run(&app, r#"{"epochs": 5}"#).await;
    let queued = parse::<Run>(&queued).id;
    let request = Request::post(format!("/api/runs/{queued}/cancel"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, request).await.0, StatusCode::ACCEPTED);
    // Let the first train an epoch or more first.
    for _ in 0..600 {
        let (_, detail): (_, RunDetail) = get(&app, &format!("/api/runs/{id}")).await;
        if !detail.epochs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cancel = || {
        Request::post(format!("/api/runs/{id}/cancel"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _) = send(&app, cancel()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let detail = wait_until_finished(&app, id).await;
    assert_eq!(detail.run.status, RunStatus::Cancelled);
    assert!(!detail.epochs.is_empty() && detail.epochs.len() < 10000);
    let queued = wait_until_finished(&app, queued).await;
    assert_eq!(queued.run.status, RunStatus::Cancelled);
    assert!(queued.epochs.is_empty());

    let (status, body) = send(&app, cancel()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(parse::<ErrorBody>(&body)
        .message
        .contains("cannot be cancelled"));
    let missing = Request::post("/api/runs/999/cancel")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, missing).await.0, StatusCode::NOT_FOUND);
}

fn request(method: &str, uri: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn runs_are_tagged_filtered_cloned_with_changes_and_deleted() {
    let app = test_app().await;
    let (_, body) = post_run(&app, &small_run(json!({"kind": "joint"}))).await;
    let joint: Run = parse(&body);
    wait_until_finished(&app, joint.id).await;

    // Tags and note; invalid tags are named.
    let uri = format!("/api/runs/{}", joint.id);
    let patch = json!({"tags": ["baseline", "seed-0"], "note": "reference run"});
    let (status, body) = send(&app, request("PATCH", &uri, patch)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let tagged: Run = parse(&body);
    assert_eq!(
        (tagged.tags.len(), tagged.note.as_str()),
        (2, "reference run")
    );
    let (status, body) = send(
        &app,
        request("PATCH", &uri, json!({"tags": ["ok", "no spaces"]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(parse::<ErrorBody>(&body).fields[0].field, "tags[1]");
    let (status, _) = send(&app, request("PATCH", &uri, json!({"colour": "red"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Clone with a merge patch: the method changes, everything else is kept.
    let clone_uri = format!("/api/runs/{}/clone", joint.id);
    let changes = json!({"method": {"kind": "mlb", "alpha": 0.5}, "seed": 7});
    let (status, body) = send(&app, request("POST", &clone_uri, changes)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let clone: Run = parse(&body);
    assert_eq!((clone.config.method.name(), clone.config.seed), ("mlb", 7));
    assert_eq!(clone.config.dataset, joint.config.dataset);
    let (status, body) = send(&app, request("POST", &clone_uri, json!({"epochs": 0}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(parse::<ErrorBody>(&body).fields[0].field, "epochs");
    wait_until_finished(&app, clone.id).await;

    // Filters, sort and pages.
    let ids = |page: RunPage| page.runs.iter().map(|r| r.id).collect::<Vec<_>>();
    let (_, page): (_, RunPage) = get(&app, "/api/runs?method=mlb").await;
    assert_eq!(ids(page), [clone.id]);
    let (_, page): (_, RunPage) = get(&app, "/api/runs?tag=baseline").await;
    assert_eq!(ids(page), [joint.id]);
    let (_, page): (_, RunPage) = get(&app, "/api/runs?status=completed&order=asc").await;
    assert_eq!(ids(page), [joint.id, clone.id]);
    let (_, page): (_, RunPage) = get(&app, "/api/runs?limit=1&offset=1").await;
    assert_eq!((ids(page.clone()), page.total), (vec![joint.id], 2));
    let (_, page): (_, RunPage) = get(&app, "/api/runs?search=REFERENCE").await;
    assert_eq!(ids(page), [joint.id]);
    for bad in [
        "/api/runs?limit=0",
        "/api/runs?sort=colour",
        "/api/runs?status=done",
    ] {
        let (status, _): (_, ErrorBody) = get(&app, bad).await;
        assert!(status.is_client_error(), "{bad}: {status}");
    }

    // Deleting: gone with its metrics; deleting again is a 404.
    let delete = || request("DELETE", &uri, Value::Null);
    assert_eq!(send(&app, delete()).await.0, StatusCode::NO_CONTENT);
    assert_eq!(send(&app, delete()).await.0, StatusCode::NOT_FOUND);
    let (status, _): (_, ErrorBody) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_sweep_queues_its_grid_in_one_go_with_one_tag() {
    let app = test_app().await;
    let base: Value = serde_json::from_str(&small_run(json!({"kind": "joint"}))).unwrap();

    // Every problem named by the request field; nothing queued.
    let bad = json!({
        "base": {"epochs": 0, "dataset": {"kind": "synthetic"}},
        "methods": [{"kind": "joint"}, {"kind": "mlb", "alpha": -1.0}],
        "seeds": [1, 1],
    });
    let (status, body) = send(&app, request("POST", "/api/sweeps", bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = (parse::<ErrorBody>(&body).fields.into_iter())
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, ["seeds[1]", "base.epochs", "methods[1].alpha"]);
    let too_many = json!({"base": base, "seeds": (0..101).collect::<Vec<_>>()});
    let (status, _) = send(&app, request("POST", "/api/sweeps", too_many)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, page): (_, RunPage) = get(&app, "/api/runs").await;
    assert_eq!(page.total, 0);

    // 2 methods x 2 fusions x 2 seeds, in grid order, all tagged after the first run.
    let sweep = json!({
        "base": base,
        "methods": [{"kind": "joint"}, {"kind": "mlb", "alpha": 0.8}],
        "fusions": ["late", "gated"],
        "seeds": [0, 1],
    });
    let (status, body) = send(&app, request("POST", "/api/sweeps", sweep)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let runs: Vec<Run> = parse(&body);
    let grid: Vec<(&str, &str, u64)> = (runs.iter())
        .map(|r| {
            let c = &r.config;
            (c.method.name(), c.model.fusion.name(), c.seed)
        })
        .collect();
    assert_eq!(grid.len(), 8);
    assert_eq!(grid[0], ("joint", "late", 0));
    assert_eq!(grid[3], ("joint", "gated", 1));
    assert_eq!(grid[7], ("mlb", "gated", 1));
    let tag = format!("sweep-{}", runs[0].id);
    assert!(runs.iter().all(|r| r.tags == [tag.clone()]), "{runs:?}");
    let (_, page): (_, RunPage) = get(&app, &format!("/api/runs?tag={tag}")).await;
    assert_eq!(page.total, 8);
    for run in &runs {
        assert_eq!(
            wait_until_finished(&app, run.id).await.run.status,
            RunStatus::Completed
        );
    }

    // A named sweep; its base holds no validation split out, so its runs get the default
    // one (results read each run's best validation epoch).
    let mut without_validation = base.clone();
    without_validation["validation_fraction"] = json!(0.0);
    let named = json!({"base": without_validation, "seeds": [3, 4], "tag": "alpha-study"});
    let (status, body) = send(&app, request("POST", "/api/sweeps", named)).await;
    assert_eq!(status, StatusCode::CREATED);
    let runs: Vec<Run> = parse(&body);
    assert!(runs.iter().all(|r| r.tags == ["alpha-study"]));
    assert!(runs.iter().all(|r| r.config.validation_fraction == 0.1));
}

#[tokio::test]
async fn a_training_run_cannot_be_deleted() {
    let app = test_app().await;
    let body = json!({"epochs": 10000, "dataset": {"kind": "synthetic", "train_samples": 256}});
    let (_, body) = post_run(&app, &body.to_string()).await;
    let run: Run = parse(&body);
    for _ in 0..600 {
        let (_, detail): (_, RunDetail) = get(&app, &format!("/api/runs/{}", run.id)).await;
        if detail.run.status == RunStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let uri = format!("/api/runs/{}", run.id);
    let (status, body) = send(&app, request("DELETE", &uri, Value::Null)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(parse::<ErrorBody>(&body).message.contains("cancel it"));
    let cancel = request("POST", &format!("{uri}/cancel"), Value::Null);
    assert_eq!(send(&app, cancel).await.0, StatusCode::ACCEPTED);
    wait_until_finished(&app, run.id).await;
    assert_eq!(
        send(&app, request("DELETE", &uri, Value::Null)).await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn metric_series_are_downsampled_keeping_extremes() {
    let app = test_app().await;
    let body = json!({
        "epochs": 4,
        "batch_size": 8,
        "validation_fraction": 0.0,
        "dataset": {"kind": "synthetic", "train_samples": 512, "test_samples": 64}
    });
    let (_, body) = post_run(&app, &body.to_string()).await;
    let run: Run = parse(&body);
    wait_until_finished(&app, run.id).await;
    let uri = format!("/api/runs/{}/metrics", run.id);

    // 4 epochs x 64 steps, cut to 50 points: every bucket keeps its extremes.
    let (status, series): (_, Vec<MetricSeries>) = get(
        &app,
        &format!("{uri}?keys=step.loss,step.coefficients[1],epoch.test.fused&points=50"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (loss, k, accuracy) = (&series[0], &series[1], &series[2]);
    assert_eq!((loss.key.as_str(), loss.total), ("step.loss", 256));
    assert!(
        loss.points.len() <= 50 && loss.points.len() >= 40,
        "{}",
        loss.points.len()
    );
    let (_, full): (_, Vec<MetricSeries>) =
        get(&app, &format!("{uri}?keys=step.loss&points=10000")).await;
    let max = full[0].points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let min = full[0].points.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    assert!(loss.points.iter().any(|p| p.1 == max) && loss.points.iter().any(|p| p.1 == min));
    assert_eq!(k.total, 256);
    assert_eq!(
        accuracy.points.iter().map(|p| p.0).collect::<Vec<_>>(),
        [64.0, 128.0, 192.0, 256.0]
    );

    // On the epoch axis, the last step of epoch 2 sits at 2.0; time grows.
    let (_, by_epoch): (_, Vec<MetricSeries>) =
        get(&app, &format!("{uri}?keys=step.loss&points=10000&x=epoch")).await;
    assert_eq!(by_epoch[0].points[127].0, 2.0);
    let (_, by_time): (_, Vec<MetricSeries>) =
        get(&app, &format!("{uri}?keys=step.loss&points=10000&x=time")).await;
    assert!(by_time[0].points.windows(2).all(|w| w[0].0 <= w[1].0));

    let (status, body): (_, ErrorBody) =
        get(&app, &format!("{uri}?keys=step.colour,loss&points=1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["points", "keys[0]", "keys[1]"]);
    assert!(
        body.fields[1].message.contains("step.coefficients[0]"),
        "{}",
        body.fields[1].message
    );

    // Every recorded number as CSV: one row per epoch (or step), position columns first.
    let export = |query: &str| Request::get(format!("/api/runs/{}/export{query}", run.id));
    let (status, csv) = send(&app, export("").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 4, "{csv}");
    assert!(
        lines[0].starts_with("epoch,steps,elapsed_seconds,"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("test.unimodal[1]") && lines[0].contains("coefficients[0]"));
    assert!(lines[2].starts_with("2,128,"), "{}", lines[2]);
    let (_, steps) = send(&app, export("?of=steps").body(Body::empty()).unwrap()).await;
    let steps = String::from_utf8(steps).unwrap();
    assert_eq!(steps.lines().count(), 1 + 256);
    let header = steps.lines().next().unwrap();
    assert!(
        header.starts_with("epoch,step,elapsed_seconds,"),
        "{header}"
    );
}

/// 1,000,000 samples of 2 x 4096 floats: 32 GB.
fn huge_dataset() -> Value {
    json!({
        "dataset": {"kind": "synthetic", "features": 4096, "train_samples": 1_000_000}
    })
}

#[tokio::test]
async fn long_runs_are_charted_and_exported_page_by_page() {
    let (app, store) = app_and_store(|options| options.concurrency = 0).await;
    let (admin, _) = store.user_by_name("admin").await.unwrap().unwrap();
    let project = store.projects_of(admin.id).await.unwrap()[0].id;
    let run = store
        .create_run(&RunConfig::default(), project)
        .await
        .unwrap();
    // 5,000 steps over two epochs (more than two pages), one loss spike at step 3,333.
    let steps: Vec<RunEvent> = (0..5000u64)
        .map(|n| {
            RunEvent::Step(Box::new(StepMetrics {
                epoch: if n < 2500 { 1 } else { 2 },
                step: n,
                loss: if n == 3333 {
                    50.0
                } else {
                    1.0 + (n % 7) as f64 * 0.01
                },
                fused_loss: 1.0,
                unimodal_losses: vec![1.0, 1.5],
                coefficients: vec![1.0, 1.0],
                confidences: vec![0.3, 0.2],
                gradient_norms: vec![0.1, 0.1],
                learning_rate: 0.01,
                elapsed_seconds: n as f64,
            }))
        })
        .collect();
    store.append_events(run.id, &steps).await.unwrap();

    let uri = format!(
        "/api/runs/{}/metrics?keys=step.loss,step.coefficients[1]",
        run.id
    );
    let (_, series): (_, Vec<MetricSeries>) = get(&app, &format!("{uri}&points=100")).await;
    assert_eq!((series[0].total, series[0].points.len()), (5000, 100));
    let highest = series[0].points.iter().map(|p| p.1).fold(0.0, f64::max);
    assert_eq!(highest, 50.0, "the spike survives");
    assert!(series[1].points.iter().all(|p| p.1 == 1.0));
    let (_, by_epoch): (_, Vec<MetricSeries>) =
        get(&app, &format!("{uri}&points=10000&x=epoch")).await;
    assert_eq!(by_epoch[0].points[2499].0, 1.0);
    assert_eq!(by_epoch[0].points[4999].0, 2.0);
    // At most 64 series per request.
    let keys = vec!["step.loss"; 65].join(",");
    let uri = format!("/api/runs/{}/metrics?keys={keys}", run.id);
    let (status, error): (_, ErrorBody) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error.fields[0].field, "keys");

    let request = Request::get(format!("/api/runs/{}/export?of=steps", run.id));
    let (status, csv) = send(&app, request.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 5000);
    assert!(
        lines[0].starts_with("epoch,step,elapsed_seconds,"),
        "{}",
        lines[0]
    );
    assert!(lines[2001].starts_with("1,2000,2000"), "{}", lines[2001]);
    assert!(lines[5000].starts_with("2,4999,4999"), "{}", lines[5000]);
}

#[tokio::test]
async fn a_run_estimated_to_need_too_much_memory_is_refused_before_it_is_queued() {
    let app = app_with(|options| options.memory_budget = Some(3 << 29)).await;
    let (status, body) = post_run(&app, &huge_dataset().to_string()).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let error: ErrorBody = parse(&body);
    assert_eq!(error.fields[0].field, "dataset.train_samples");
    let message = &error.fields[0].message;
    assert!(
        message.contains("more than a run may use on this server (1.5 GiB"),
        "{message}"
    );
    assert!(message.contains("dataset.features"), "{message}");
    let sweep = json!({"base": huge_dataset(), "seeds": [1, 2]});
    let (status, body) = send(&app, request("POST", "/api/sweeps", sweep)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
    assert_eq!(
        parse::<ErrorBody>(&body).fields[0].field,
        "base.dataset.train_samples"
    );
    let (_, page): (_, RunPage) = get(&app, "/api/runs").await;
    assert_eq!(page.total, 0, "nothing was queued");
    // What fits is queued as before.
    let (status, _) = post_run(&app, &small_run(json!({"kind": "mlb"}))).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn runs_that_need_too_much_memory_or_diverge_fail_alone() {
    // No estimate at the door, as if it were wrong: the child's hard limit alone.
    let app = app_with(|options| {
        options.concurrency = 3;
        options.memory_budget = None;
        options.child.memory_limit = Some(3 << 29);
    })
    .await;
    // Trains for a few seconds, while the others start and fail.
    let long = json!({
        "epochs": 8,
        "dataset": {"kind": "synthetic", "train_samples": 4000, "test_samples": 500}
    });
    let (_, body) = post_run(&app, &long.to_string()).await;
    let fine = parse::<Run>(&body).id;
    let (_, body) = post_run(&app, &diverging_run("fail")).await;
    let diverging = parse::<Run>(&body).id;
    // 32 GB in a process allowed 1.5 GiB.
    let (status, body) = post_run(&app, &huge_dataset().to_string()).await;
    assert_eq!(status, StatusCode::CREATED);
    let huge = wait_until_finished(&app, parse::<Run>(&body).id).await;
    assert_eq!(huge.run.status, RunStatus::Failed);
    let error = huge.run.error.unwrap_or_default();
    assert!(
        error.contains("1.5 GiB, the worker's --memory-budget"),
        "{error}"
    );
    let diverged = wait_until_finished(&app, diverging).await;
    let error = diverged.run.error.unwrap_or_default();
    assert!(error.starts_with("diverged at step"), "{error}");
    let (_, detail) = get::<RunDetail>(&app, &format!("/api/runs/{fine}")).await;
    assert_eq!(
        detail.run.status,
        RunStatus::Running,
        "the others failed while it trained"
    );
    let fine = wait_until_finished(&app, fine).await;
    assert_eq!(
        fine.run.status,
        RunStatus::Completed,
        "{:?}",
        fine.run.error
    );
    assert_eq!(fine.epochs.len(), 8);
}

/// SGD at the largest learning rate with a strong weight decay: NaN by the sixth step.
fn diverging_run(on_divergence: &str) -> String {
    json!({
        "learning_rate": 10.0,
        "optimizer": {"kind": "sgd", "momentum": 0.9, "weight_decay": 1.0},
        "on_divergence": on_divergence,
        "epochs": 2,
        "batch_size": 32,
        "dataset": {"kind": "synthetic", "train_samples": 512, "test_samples": 128}
    })
    .to_string()
}

#[tokio::test]
async fn a_diverged_run_fails_saying_where_and_every_read_of_it_answers() {
    let app = test_app().await;
    let (_, body) = post_run(&app, &diverging_run("fail")).await;
    let failed = wait_until_finished(&app, parse::<Run>(&body).id).await;
    assert_eq!(failed.run.status, RunStatus::Failed);
    let error = failed.run.error.unwrap_or_default();
    assert!(
        error.starts_with("diverged at step 5: the loss is NaN"),
        "{error}"
    );

    // Recorded past the divergence: NaN and infinities stored, then read back as such.
    let (_, body) = post_run(&app, &diverging_run("continue")).await;
    let id = parse::<Run>(&body).id;
    let detail = wait_until_finished(&app, id).await;
    assert_eq!(
        detail.run.status,
        RunStatus::Completed,
        "{:?}",
        detail.run.error
    );
    assert!(
        detail.epochs[1].train_loss.is_nan(),
        "{:?}",
        detail.epochs[1]
    );
    let (status, raw) = send(
        &app,
        Request::get(format!("/api/runs/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8(raw)
        .unwrap()
        .contains(r#""train_loss":"NaN""#));

    let uri = format!("/api/runs/{id}/metrics?keys=step.loss,epoch.train_loss&points=10000");
    let (status, series): (_, Vec<MetricSeries>) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(series[0].total, 30, "every step, diverged ones included");
    assert!(series[0].points[29].1.is_nan());
    assert!(series[1].points.iter().all(|p| p.1.is_nan()));
    for query in ["", "?of=steps"] {
        let request = Request::get(format!("/api/runs/{id}/export{query}"));
        let (status, csv) = send(&app, request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(String::from_utf8(csv).unwrap().contains(",NaN,"));
    }
    let uri = format!("/api/results?runs={id}&group_by=method.kind&metrics=train_loss,test.fused");
    let (status, table): (_, ResultsTable) = get(&app, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert!(table.rows[0].metrics[0].as_ref().unwrap().mean.is_nan());
    let (status, page): (_, RunPage) = get(&app, "/api/runs").await;
    assert_eq!((status, page.total), (StatusCode::OK, 2));
}

#[tokio::test]
async fn presets_are_served_with_their_descriptions() {
    let app = test_app().await;
    let (status, presets): (_, Vec<balancelab_shared::Preset>) = get(&app, "/api/presets").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"mlb-paper-training"), "{names:?}");
    let mlb = presets
        .iter()
        .find(|p| p.name == "mlb-paper-training")
        .unwrap();
    assert_eq!(
        (mlb.config.method.name(), mlb.config.batch_size),
        ("mlb", 32)
    );
    assert!(
        mlb.description.starts_with("MLB with the training recipe"),
        "{}",
        mlb.description
    );
}

#[tokio::test]
async fn responses_carry_a_request_id_for_the_logs() {
    let app = test_app().await;
    let health = || Request::get("/api/health");
    let response = app
        .clone()
        .oneshot(health().body(Body::empty()).unwrap())
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let mine = health()
        .header("x-request-id", "trace-42")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(mine).await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42");
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let app = test_app().await;
    let (status, document): (_, Value) = get(&app, "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/health",
        "/auth/login",
        "/auth/logout",
        "/auth/me",
        "/auth/tokens",
        "/auth/tokens/{id}",
        "/auth/password",
        "/users",
        "/users/{id}",
        "/users/{id}/tokens",
        "/audit",
        "/projects",
        "/projects/{id}/audit",
        "/projects/{id}/members",
        "/projects/{id}/members/{user}",
        "/runs",
        "/runs/{id}",
        "/runs/{id}/cancel",
        "/runs/{id}/clone",
        "/sweeps",
        "/runs/{id}/share",
        "/runs/{id}/share/{link}",
        "/runs/{id}/events",
        "/runs/events",
        "/runs/{id}/metrics",
        "/runs/{id}/export",
        "/datasets",
        "/presets",
        "/compare",
        "/compare/metrics",
        "/projects/{id}",
        "/results",
    ] {
        assert!(paths.contains(&path), "{path} is not documented: {paths:?}");
    }
    assert_eq!(
        paths.len(),
        32,
        "an endpoint without a test entry: {paths:?}"
    );
    // A body's answers are documented where one is read.
    let create = document["paths"]["/runs"]["post"]["responses"]
        .as_object()
        .unwrap();
    for status in ["201", "400", "413", "415", "422"] {
        assert!(create.contains_key(status), "POST /runs lacks {status}");
    }
    let run_operations = document["paths"]["/runs/{id}"].as_object().unwrap();
    let mut methods: Vec<&String> = run_operations
        .keys()
        .filter(|k| *k != "parameters")
        .collect();
    methods.sort();
    assert_eq!(methods, ["delete", "get", "patch"]);
    // The shared types are described, down to the tagged method configurations.
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in [
        "RunConfig",
        "MethodConfig",
        "MlbConfig",
        "RunEvent",
        "ErrorBody",
        "Role",
    ] {
        assert!(schemas.contains_key(schema), "no schema {schema}");
    }
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    assert!(schemes.contains_key("bearer") && schemes.contains_key("session_cookie"));
}

/// Reads SSE frames from `body` for `secs` seconds into `seen` (their ids); the newest id.
async fn newest_within(body: &mut Body, seen: &mut Vec<i64>, secs: u64) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        if let Some(data) = frame.data_ref() {
            seen.extend(event_ids(&String::from_utf8_lossy(data)));
        }
    }
    seen.iter().copied().max().unwrap_or(0)
}

/// The ids of the SSE events in `text`.
fn event_ids(text: &str) -> Vec<i64> {
    (text.lines())
        .filter_map(|line| line.strip_prefix("id: ")?.parse().ok())
        .collect()
}

/// A first viewer that asks for a position past the end (a stale Last-Event-ID) does not
/// silence the run for the viewers after it: they keep receiving new events.
#[tokio::test]
async fn a_viewer_resuming_past_the_end_does_not_silence_the_others() {
    let app = test_app().await;
    let long = json!({"epochs": 10_000, "dataset": {"kind": "synthetic", "train_samples": 64, "test_samples": 32}});
    let (_, body) = post_run(&app, &long.to_string()).await;
    let id = parse::<Run>(&body).id;
    let open = |last: &str| {
        let request = Request::get(format!("/api/runs/{id}/events"))
            .header("last-event-id", last)
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(request)
    };
    let first = open("1000000000000").await.unwrap();
    let mut second = open("0").await.unwrap().into_body();
    let mut seen = Vec::new();
    let early = newest_within(&mut second, &mut seen, 2).await;
    let later = newest_within(&mut second, &mut seen, 3).await;
    assert!(later > early, "no new events after {early}");
    drop(first);
    let request = Request::post(format!("/api/runs/{id}/cancel"))
        .body(Body::empty())
        .unwrap();
    send(&app, request).await;
}

/// Open live streams are capped per user (16): one more is a 429 until one closes.
#[tokio::test]
async fn open_streams_are_capped_per_user() {
    let app = test_app().await;
    let open = || {
        let request = Request::get("/api/runs/events")
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(request)
    };
    let mut streams = Vec::new();
    for _ in 0..16 {
        let response = open().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        streams.push(response);
    }
    let refused = open().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let error: ErrorBody = parse(&body);
    assert!(
        error.message.contains("at most 16 live streams"),
        "{error:?}"
    );
    streams.pop();
    assert_eq!(open().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn the_series_of_a_run_that_trains_on_are_never_served_stale() {
    let app = test_app().await;
    let body = json!({
        "epochs": 10000,
        "dataset": {"kind": "synthetic", "train_samples": 256, "test_samples": 64}
    });
    let (status, body) = post_run(&app, &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = parse::<Run>(&body).id;
    let uri = format!("/api/compare/metrics?runs={id}&keys=step.loss&points=100");
    let total = || async {
        let (status, batch): (_, Vec<Vec<MetricSeries>>) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::OK);
        batch[0][0].total
    };
    let mut seen = total().await;
    // Read while it trains: each answer counts the steps stored by then, never an earlier
    // answer kept for the same request.
    let mut grew = 0;
    for _ in 0..400 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        let now = total().await;
        assert!(now >= seen, "{now} steps after {seen}");
        grew += usize::from(now > seen);
        seen = now;
        if grew >= 3 {
            break;
        }
    }
    assert!(grew >= 3, "the series grew {grew} times");
    let cancel = Request::post(format!("/api/runs/{id}/cancel"))
        .body(Body::empty())
        .unwrap();
    send(&app, cancel).await;
    wait_until_finished(&app, id).await;
}
