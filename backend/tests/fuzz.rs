//! Property-based tests of everything the API reads: JSON bodies, query strings and path
//! segments, random and mutated from valid ones, sent to every endpoint that takes them.
//! Whatever arrives, the server answers (no panic, no 5xx), and every rejection of a
//! parameter or field names it. The configuration parsers (JSON as the API and the UI's
//! JSON editor read it, TOML as the CLI does) and the checks behind them are fuzzed too.
//!
//! Bounded by case counts (3,000 requests per property, about 5 s in a debug build); `PROPTEST_CASES` raises them.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use balancelab::api::{app, AppState};
use balancelab::check::{check_run, Environment};
use balancelab::live::Hub;
use balancelab::memory_estimate::estimate;
use balancelab::store::{Store, TokenKind};
use balancelab::worker::{WorkerOptions, Workers};
use balancelab_shared::{ErrorBody, RunConfig};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Names the API knows, so that random documents often reach deep into the parsers.
const KEYS: &[&str] = &[
    "kind",
    "epochs",
    "batch_size",
    "learning_rate",
    "dataset",
    "method",
    "model",
    "encoder",
    "fusion",
    "feature_dim",
    "features",
    "train_samples",
    "test_samples",
    "noise",
    "classes",
    "alpha",
    "modality",
    "beta",
    "seed",
    "device",
    "precision",
    "optimizer",
    "momentum",
    "weight_decay",
    "schedule",
    "validation_fraction",
    "early_stopping_patience",
    "on_divergence",
    "views",
    "hidden",
    "channels",
    "layers",
    "heads",
    "name",
    "role",
    "label",
    "expires_in_days",
    "current",
    "new",
    "disabled",
    "tags",
    "note",
    "base",
    "methods",
    "seeds",
    "fusions",
    "tag",
    "password",
    "start_epoch",
    "end_epoch",
    "frames",
    "image_size",
    "root",
];
/// Values the API gives meaning to.
const WORDS: &[&str] = &[
    "synthetic",
    "mfeat",
    "av_digits",
    "crema_d",
    "mlb",
    "joint",
    "ogm",
    "agm",
    "mslr",
    "mm_cosine",
    "pmr",
    "unimodal",
    "multi_loss",
    "mlp",
    "cnn",
    "resnet18",
    "transformer",
    "late",
    "mid",
    "film",
    "gated",
    "decision",
    "sgd",
    "adam",
    "adam_w",
    "cpu",
    "cuda:0",
    "cuda:99",
    "tf32",
    "fp32",
    "continue",
    "fail",
    "viewer",
    "editor",
    "owner",
    "step.loss",
    "epoch.test.fused",
    "NaN",
    "Infinity",
    "",
    "-1",
    "0",
    "1e400",
    "..",
    "../etc",
    "epochs",
    "steps",
    "time",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop::sample::select(vec![0.0, -0.0, 1e308, -1e308, 5e-324, 0.5, 1.0, 2.0])
            .prop_map(Value::from),
        (0i64..5000).prop_map(Value::from),
    ]
}

/// Any JSON document, its keys and strings mostly the API's own.
fn document() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A valid document with one value somewhere in it replaced (or removed, or added).
fn mutated(valid: Value) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(any::<prop::sample::Index>(), 1..5),
        document(),
        key(),
    )
        .prop_map(move |(path, replacement, new_key)| {
            let mut root = valid.clone();
            mutate(&mut root, &path, &replacement, &new_key);
            root
        })
}

/// Walks `path` (an index per level) into `value`, then replaces what it reached with
/// `replacement`, or inserts it under `new_key`, or removes a key.
fn mutate(value: &mut Value, path: &[prop::sample::Index], replacement: &Value, new_key: &str) {
    let Some((step, rest)) = path.split_first() else {
        return *value = replacement.clone();
    };
    match value {
        Value::Object(map) if !map.is_empty() && !rest.is_empty() => {
            let k = map.keys().nth(step.index(map.len())).unwrap().clone();
            mutate(map.get_mut(&k).unwrap(), rest, replacement, new_key);
        }
        Value::Array(items) if !items.is_empty() && !rest.is_empty() => {
            let i = step.index(items.len());
            mutate(&mut items[i], rest, replacement, new_key);
        }
        Value::Object(map) if step.index(3) == 0 => {
            map.insert(new_key.to_owned(), replacement.clone());
        }
        Value::Object(map) if !map.is_empty() && step.index(3) == 1 => {
            let k = map.keys().nth(step.index(map.len())).unwrap().clone();
            map.remove(&k);
        }
        _ => *value = replacement.clone(),
    }
}

/// A valid run configuration as JSON, with a dataset, method and encoder of each kind.
fn valid_config() -> impl Strategy<Value = Value> {
    let datasets = [
        json!({"kind": "synthetic", "features": 8, "train_samples": 64, "test_samples": 32}),
        json!({"kind": "crema_d", "frames": 2, "image_size": 64}),
        json!({"kind": "mfeat", "views": ["fac", "mor"]}),
    ];
    let methods = [
        json!({"kind": "mlb", "alpha": 1.0}),
        json!({"kind": "ogm", "alpha": 0.3}),
        json!({"kind": "multi_loss"}),
    ];
    let encoders = [
        json!({"kind": "mlp", "hidden": 8}),
        json!({"kind": "cnn", "channels": 4}),
        json!({"kind": "transformer", "layers": 1, "heads": 2}),
    ];
    (0..3usize, 0..3usize, 0..3usize).prop_map(move |(d, m, e)| {
        json!({
            "epochs": 2,
            "dataset": datasets[d],
            "method": methods[m],
            "model": {"encoder": encoders[e], "fusion": "late", "feature_dim": 8},
            "optimizer": {"kind": "adam", "weight_decay": 1e-4},
        })
    })
}

struct Api {
    app: Router,
    token: String,
    run: i64,
    project: i64,
    admin: i64,
}

impl Api {
    /// A server that queues but never trains (no workers), its admin's token, one run.
    async fn start() -> Self {
        let store = Store::scratch().await.unwrap();
        balancelab::auth::bootstrap(&store, Some("admin password"))
            .await
            .unwrap();
        let (admin, _) = store.user_by_name("admin").await.unwrap().unwrap();
        let (token, hash) = balancelab::auth::new_token();
        (store.add_token(admin.id, &hash, TokenKind::Api, None))
            .await
            .unwrap();
        let project = store.projects_of(admin.id).await.unwrap()[0].id;
        let run = store
            .create_run(&RunConfig::default(), project)
            .await
            .unwrap();
        let hub = Hub::new(store.clone());
        let dir = tempfile::tempdir().unwrap().keep();
        let options = WorkerOptions {
            concurrency: 0,
            ..WorkerOptions::new(dir)
        };
        let workers = Workers::start(store.clone(), hub.clone(), options);
        Self {
            app: app(AppState::new(store, hub, workers)),
            token,
            run: run.id,
            project,
            admin: admin.id,
        }
    }

    /// Sends the request; fails the case on a 5xx, or on a rejection that names nothing.
    async fn check(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<(), TestCaseError> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let Ok(request) = request.body(body) else {
            return Ok(()); // not a request axum could receive: an invalid URI
        };
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let streams = (response.headers().get(header::CONTENT_TYPE))
            .is_some_and(|v| v == "text/event-stream");
        if streams {
            return Ok(()); // a live stream: its start was all there was to check
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let said = String::from_utf8_lossy(&bytes);
        prop_assert!(!status.is_server_error(), "{method} {uri}: {status} {said}");
        if status.is_client_error() {
            let error: ErrorBody = serde_json::from_slice(&bytes).map_err(|e| {
                TestCaseError::fail(format!("{method} {uri}: {status} {said}: {e}"))
            })?;
            prop_assert!(
                !error.message.is_empty(),
                "{method} {uri}: {status} says nothing"
            );
            if matches!(
                status,
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            ) {
                prop_assert!(
                    !error.fields.is_empty() && error.fields.iter().all(|f| !f.message.is_empty()),
                    "{method} {uri}: {status} names no field: {said}"
                );
            }
        }
        Ok(())
    }
}

fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn every_body_gets_an_answer_and_every_rejection_names_its_field() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Arc::new(runtime.block_on(Api::start()));
    let (run, project, admin) = (api.run, api.project, api.admin);
    let endpoints: Vec<(Method, String)> = vec![
        (Method::POST, "/api/runs".into()),
        (Method::POST, format!("/api/runs?project={project}")),
        (Method::POST, "/api/sweeps".into()),
        (Method::PATCH, format!("/api/runs/{run}")),
        (Method::POST, format!("/api/runs/{run}/clone")),
        (Method::POST, "/api/projects".into()),
        (Method::PATCH, format!("/api/projects/{project}")),
        (
            Method::PUT,
            format!("/api/projects/{project}/members/admin"),
        ),
        (Method::POST, "/api/auth/tokens".into()),
        (Method::POST, "/api/auth/password".into()),
        (Method::POST, "/api/users".into()),
        (Method::PATCH, format!("/api/users/{admin}")),
        (Method::POST, "/api/auth/login".into()),
    ];
    let bodies = prop_oneof![
        2 => document(),
        3 => valid_config().prop_flat_map(mutated),
        1 => valid_config().prop_map(|base| json!({"base": base, "seeds": [1, 2]})).prop_flat_map(mutated),
    ];
    let endpoint = prop::sample::select(endpoints);
    runner(3000)
        .run(&(endpoint, bodies), |((method, uri), body)| {
            runtime.block_on(api.check(method, &uri, Some(&body)))
        })
        .unwrap();
}

#[test]
fn every_query_and_path_gets_an_answer_and_every_rejection_names_its_parameter() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Arc::new(runtime.block_on(Api::start()));
    let (run, project) = (api.run, api.project);
    let paths: Vec<String> = vec![
        "/api/runs".into(),
        format!("/api/runs/{run}"),
        format!("/api/runs/{run}/metrics"),
        format!("/api/runs/{run}/export"),
        format!("/api/runs/{run}/events"),
        "/api/compare".into(),
        "/api/compare/metrics".into(),
        "/api/results".into(),
        format!("/api/projects/{project}/audit"),
        "/api/audit".into(),
        format!("/api/projects/{project}/members"),
        "/api/datasets".into(),
        "/api/presets".into(),
    ];
    let query_keys = prop_oneof![
        3 => prop::sample::select(vec![
            "limit", "offset", "status", "sort", "order", "tag", "search", "project", "keys",
            "points", "x", "of", "runs", "before", "after", "format", "epoch", "columns", "share",
        ])
        .prop_map(str::to_owned),
        1 => key(),
    ];
    let value = prop_oneof![
        word(),
        number().prop_map(|n| n.to_string()),
        Just(format!("{run},{run}")),
        prop::collection::vec(0i64..1000, 0..5)
            .prop_map(|ids| { ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",") }),
    ];
    let query = prop::collection::vec((query_keys, value), 0..5);
    // Path segments where ids go, most of them not ids.
    let segment = prop_oneof![word(), number().prop_map(|n| n.to_string())];
    let odd_paths = segment.prop_map(move |s| {
        let s: String = url_encoded(&s);
        vec![
            format!("/api/runs/{s}"),
            format!("/api/runs/{s}/metrics?keys=step.loss"),
            format!("/api/projects/{s}/members/{s}"),
            format!("/api/runs/{run}/share/{s}"),
            format!("/api/users/{s}/tokens"),
        ]
    });
    let cases = (
        prop::sample::select(paths),
        query,
        odd_paths,
        any::<prop::sample::Index>(),
    );
    runner(3000)
        .run(&cases, |(path, pairs, odd, pick)| {
            let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
            let uri = if query.is_empty() {
                path
            } else {
                format!("{path}?{query}")
            };
            runtime.block_on(async {
                api.check(Method::GET, &uri, None).await?;
                let odd = &odd[pick.index(odd.len())];
                let method = if odd.ends_with("tokens") {
                    Method::DELETE
                } else {
                    Method::GET
                };
                api.check(method, odd, None).await
            })
        })
        .unwrap();
}

/// Percent-encodes everything but letters and digits, as a client building a URL would.
fn url_encoded(text: &str) -> String {
    serde_urlencoded::to_string([("", text)]).unwrap()[1..].replace('+', "%20")
}

#[test]
fn the_config_parsers_and_checks_never_panic() {
    // Any text, as the JSON editor and a TOML file may hold.
    runner(2000)
        .run(&any::<String>(), |text| {
            let _ = serde_json::from_str::<RunConfig>(&text);
            let _ = toml::from_str::<RunConfig>(&text);
            Ok(())
        })
        .unwrap();
    // Configurations near valid ones: parsed, checked and estimated without a panic, and a
    // refusal names a field.
    runner(2000)
        .run(&valid_config().prop_flat_map(mutated), |value| {
            let Ok(config) = serde_json::from_value::<RunConfig>(value) else {
                return Ok(());
            };
            let environment = Environment {
                data_dir: None,
                memory_budget: Some(16 << 30),
            };
            if let Err(errors) = check_run(&config, environment) {
                prop_assert!(errors
                    .iter()
                    .all(|e| !e.field.is_empty() && !e.message.is_empty()));
            }
            if config.validate().is_ok() {
                estimate(&config).total();
            }
            let toml = toml::to_string(&config).unwrap();
            prop_assert_eq!(toml::from_str::<RunConfig>(&toml).unwrap(), config);
            Ok(())
        })
        .unwrap();
}
