//! Who may do what: signing in, tokens, projects and roles, share links. Every endpoint is
//! tried by a stranger, a viewer, an editor and an anonymous caller, and must deny what their
//! role does not allow.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use balancelab::api::{app, AppState};
use balancelab::live::Hub;
use balancelab::store::{Store, TokenKind};
use balancelab::worker::{WorkerOptions, Workers};
use balancelab_shared::{Me, Project, Run, RunPage, Secret, ShareLink, TokenInfo, User};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Server {
    app: Router,
    store: Store,
}

/// A caller's credentials: a bearer token, a cookie, a share token, a cookie with a share
/// token, or nothing.
#[derive(Clone)]
enum As {
    Nobody,
    Token(String),
    Cookie(String),
    Share(String),
    CookieAndShare(String, String),
}

impl Server {
    async fn start() -> Self {
        let store = Store::scratch().await.unwrap();
        balancelab::auth::bootstrap(&store, Some("admin password"))
            .await
            .unwrap();
        let hub = Hub::new(store.clone());
        let checkpoints = tempfile::tempdir().unwrap().keep();
        let mut options = WorkerOptions::new(checkpoints);
        // Runs train in children of the binary (this test's own executable is not it).
        options.child.executable = env!("CARGO_BIN_EXE_balancelab").into();
        let workers = Workers::start(store.clone(), hub.clone(), options);
        Self {
            app: app(AppState::new(store.clone(), hub, workers)),
            store,
        }
    }

    async fn call(&self, who: &As, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
        let uri = match who {
            As::Share(token) | As::CookieAndShare(_, token) if uri.contains('?') => {
                format!("{uri}&share={token}")
            }
            As::Share(token) | As::CookieAndShare(_, token) => format!("{uri}?share={token}"),
            _ => uri.to_owned(),
        };
        let mut request = Request::builder().method(method).uri(&uri);
        match who {
            As::Token(token) => {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"))
            }
            As::Cookie(token) | As::CookieAndShare(token, _) => {
                request = request.header(header::COOKIE, format!("balancelab_session={token}"))
            }
            As::Nobody | As::Share(_) => {}
        }
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        // Event streams of runs still training never end: read only their start.
        let is_stream = (response.headers().get(header::CONTENT_TYPE))
            .is_some_and(|v| v == "text/event-stream");
        if is_stream {
            return (status, Value::Null);
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    async fn login(&self, name: &str, password: &str) -> String {
        let credentials = json!({"name": name, "password": password});
        let (status, body) =
            (self.call(&As::Nobody, Method::POST, "/api/auth/login", credentials)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value::<Secret>(body).unwrap().token
    }

    /// Admin creates the user; returns their session token.
    async fn user(&self, admin: &As, name: &str) -> As {
        let credentials = json!({"name": name, "password": "long enough"});
        let (status, body) = self
            .call(admin, Method::POST, "/api/users", credentials)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        As::Token(self.login(name, "long enough").await)
    }
}

fn small_run() -> Value {
    json!({"epochs": 1, "dataset": {"kind": "synthetic", "train_samples": 64, "test_samples": 32}})
}

#[tokio::test]
async fn every_endpoint_checks_who_is_asking() {
    let server = Server::start().await;
    let admin = As::Token(server.login("admin", "admin password").await);
    let alice = server.user(&admin, "alice").await;
    let bob = server.user(&admin, "bob").await;

    // Alice's project and run; Bob's own project.
    let (status, body) = server
        .call(
            &alice,
            Method::POST,
            "/api/projects",
            json!({"name": "vision"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let vision: Project = serde_json::from_value(body).unwrap();
    let (status, _) = server
        .call(
            &bob,
            Method::POST,
            "/api/projects",
            json!({"name": "audio"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Without ?project, Alice's only project is used; Bob is in none of hers.
    let (status, body) = server
        .call(&alice, Method::POST, "/api/runs", small_run())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let run: Run = serde_json::from_value(body).unwrap();
    assert_eq!(run.project_id, vision.id);
    let id = run.id;

    let members = format!("/api/projects/{}/members", vision.id);
    let reads = [
        format!("/api/runs/{id}"),
        format!("/api/runs/{id}/events"),
        format!("/api/runs/{id}/metrics?keys=step.loss"),
        format!("/api/runs/{id}/export"),
        format!("/api/compare?runs={id}"),
        format!("/api/compare/metrics?runs={id}&keys=step.loss"),
        format!("/api/results?runs={id}"),
    ];
    let writes = [
        (
            Method::PATCH,
            format!("/api/runs/{id}"),
            json!({"note": "mine now"}),
        ),
        (Method::POST, format!("/api/runs/{id}/cancel"), Value::Null),
        (Method::POST, format!("/api/runs/{id}/clone"), json!({})),
        (Method::POST, format!("/api/runs/{id}/share"), Value::Null),
        (Method::GET, format!("/api/runs/{id}/share"), Value::Null),
        (
            Method::POST,
            format!("/api/runs?project={}", vision.id),
            small_run(),
        ),
        (Method::DELETE, format!("/api/runs/{id}"), Value::Null),
    ];
    let owner_only = [
        (
            Method::PUT,
            format!("{members}/bob"),
            json!({"role": "owner"}),
        ),
        (Method::DELETE, format!("{members}/alice"), Value::Null),
        (
            Method::PATCH,
            format!("/api/projects/{}", vision.id),
            json!({"name": "taken over"}),
        ),
    ];

    // Nobody: 401 everywhere but /health.
    for uri in reads.iter().chain([
        &members,
        &"/api/runs".to_owned(),
        &"/api/datasets".to_owned(),
        &"/api/presets".to_owned(),
    ]) {
        let (status, _) = server
            .call(&As::Nobody, Method::GET, uri, Value::Null)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "GET {uri}");
    }
    for (method, uri, body) in writes.iter().chain(&owner_only) {
        let (status, _) = server
            .call(&As::Nobody, method.clone(), uri, body.clone())
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    let (status, _) = server
        .call(&As::Nobody, Method::GET, "/api/health", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let forged = As::Token("0".repeat(64));
    let (status, _) = server
        .call(&forged, Method::GET, "/api/runs", Value::Null)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bob, a stranger to the project: the run does not exist for him.
    for uri in reads.iter().chain([&members]) {
        let (status, _) = server.call(&bob, Method::GET, uri, Value::Null).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "stranger GET {uri}");
    }
    for (method, uri, body) in writes.iter().chain(&owner_only) {
        let (status, _) = server.call(&bob, method.clone(), uri, body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "stranger {method} {uri}");
    }
    let (_, page) = server
        .call(&bob, Method::GET, "/api/runs", Value::Null)
        .await;
    assert_eq!(serde_json::from_value::<RunPage>(page).unwrap().total, 0);
    let (_, table) = server
        .call(&bob, Method::GET, "/api/results", Value::Null)
        .await;
    assert_eq!(table["rows"], json!([]), "results only of visible runs");

    // Bob as a viewer: reads, but changes nothing.
    let (status, _) = server
        .call(
            &alice,
            Method::PUT,
            &format!("{members}/bob"),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for uri in &reads {
        let (status, _) = server.call(&bob, Method::GET, uri, Value::Null).await;
        assert_eq!(status, StatusCode::OK, "viewer GET {uri}");
    }
    for (method, uri, body) in writes.iter().chain(&owner_only) {
        let (status, _) = server.call(&bob, method.clone(), uri, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "viewer {method} {uri}");
    }
    // Who may is answered before what was sent: malformed bodies get the same 403.
    let malformed = json!(["not", "an", "object"]);
    let sweeps = format!("/api/sweeps?project={}", vision.id);
    let with_sweep = [(Method::POST, sweeps, Value::Null)];
    for (method, uri, _) in writes.iter().chain(&owner_only).chain(&with_sweep) {
        let (status, _) = server
            .call(&bob, method.clone(), uri, malformed.clone())
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "viewer {method} {uri}, malformed"
        );
    }

    // Bob as an editor: changes runs, still not members.
    let (status, _) = server
        .call(
            &alice,
            Method::PUT,
            &format!("{members}/bob"),
            json!({"role": "editor"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .call(&bob, writes[0].0.clone(), &writes[0].1, writes[0].2.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "editor PATCH");
    for (method, uri, body) in &owner_only {
        let (status, _) = server.call(&bob, method.clone(), uri, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "editor {method} {uri}");
    }
    // Owners rename their project; names stay unique and 1 to 100 characters.
    let project = format!("/api/projects/{}", vision.id);
    let rename = |name: &str| json!({ "name": name });
    let (status, body) = server
        .call(&alice, Method::PATCH, &project, rename("  vision 2 "))
        .await;
    assert_eq!(
        (status, &body["name"]),
        (StatusCode::OK, &json!("vision 2"))
    );
    let (status, body) = server
        .call(&alice, Method::PATCH, &project, rename("audio"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = server
        .call(&alice, Method::PATCH, &project, rename(" "))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["fields"][0]["field"], "name");
    let (_, listed) = server
        .call(&bob, Method::GET, "/api/projects", Value::Null)
        .await;
    let names: Vec<&str> = (listed.as_array().unwrap().iter())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vision 2", "audio"], "members see the new name");
    // Owners cannot lock themselves out; users and roles must exist.
    let (status, _) = server
        .call(
            &alice,
            Method::DELETE,
            &format!("{members}/alice"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = server
        .call(
            &alice,
            Method::PUT,
            &format!("{members}/carol"),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call(
            &alice,
            Method::PUT,
            &format!("{members}/bob"),
            json!({"role": "god"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server
        .call(
            &alice,
            Method::DELETE,
            &format!("{members}/bob"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server.call(&bob, Method::GET, &reads[0], Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "removed members lose access");

    // Only admins create users.
    let carol = json!({"name": "carol", "password": "long enough"});
    for body in [carol.clone(), json!({"name": 1})] {
        let (status, _) = server.call(&alice, Method::POST, "/api/users", body).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = server
        .call(
            &admin,
            Method::POST,
            "/api/users",
            json!({"name": "alice", "password": "long enough"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = server
        .call(
            &admin,
            Method::POST,
            "/api/users",
            json!({"name": "c a", "password": "short"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["fields"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn share_links_open_one_run_read_only_until_revoked() {
    let server = Server::start().await;
    let admin = As::Token(server.login("admin", "admin password").await);
    let (_, body) = server
        .call(&admin, Method::POST, "/api/runs", small_run())
        .await;
    let run: Run = serde_json::from_value(body).unwrap();
    let (_, body) = server
        .call(&admin, Method::POST, "/api/runs", small_run())
        .await;
    let other: Run = serde_json::from_value(body).unwrap();
    let (status, body) = server
        .call(
            &admin,
            Method::POST,
            &format!("/api/runs/{}/share", run.id),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let link: Secret = serde_json::from_value(body).unwrap();
    let guest = As::Share(link.token.clone());

    for uri in [
        format!("/api/runs/{}", run.id),
        format!("/api/runs/{}/events", run.id),
        format!("/api/runs/{}/metrics?keys=epoch.test.fused", run.id),
    ] {
        let (status, _) = server.call(&guest, Method::GET, &uri, Value::Null).await;
        assert_eq!(status, StatusCode::OK, "shared GET {uri}");
    }
    let (status, _) = server
        .call(
            &guest,
            Method::GET,
            &format!("/api/runs/{}", other.id),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the link opens its run only");

    // A signed-in user of another project who opens the link reads the run too, and only
    // through the link.
    let (status, _) = server
        .call(
            &admin,
            Method::POST,
            "/api/users",
            json!({"name": "bob", "password": "bob password 1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let bob_session = server.login("bob", "bob password 1").await;
    let bob_with_link = As::CookieAndShare(bob_session.clone(), link.token.clone());
    let bob = As::Cookie(bob_session);
    let run_uri = format!("/api/runs/{}", run.id);
    let (status, _) = server
        .call(&bob_with_link, Method::GET, &run_uri, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "bob with the link");
    let (status, _) = server.call(&bob, Method::GET, &run_uri, Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "bob without it");
    let other_uri = format!("/api/runs/{}", other.id);
    let (status, _) = server
        .call(&bob_with_link, Method::GET, &other_uri, Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the link opens its run only");
    let (status, _) = server
        .call(
            &bob_with_link,
            Method::PATCH,
            &run_uri,
            json!({"note": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "read-only for bob too");
    for (method, uri) in [
        (Method::GET, "/api/runs".to_owned()),
        (Method::PATCH, format!("/api/runs/{}", run.id)),
        (Method::POST, format!("/api/runs/{}/cancel", run.id)),
        (Method::POST, format!("/api/runs/{}/share", run.id)),
        (Method::GET, format!("/api/compare?runs={}", run.id)),
    ] {
        let (status, _) = server
            .call(&guest, method.clone(), &uri, json!({"note": "x"}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "shared {method} {uri}");
    }

    let (_, body) = server
        .call(
            &admin,
            Method::GET,
            &format!("/api/runs/{}/share", run.id),
            Value::Null,
        )
        .await;
    let links: Vec<ShareLink> = serde_json::from_value(body).unwrap();
    assert_eq!(
        (links.len(), links[0].revoked, links[0].created_by.as_str()),
        (1, false, "admin")
    );
    assert!(
        !serde_json::to_string(&links).unwrap().contains(&link.token),
        "tokens are not listed"
    );
    let revoke = format!("/api/runs/{}/share/{}", run.id, link.id);
    let (status, _) = server
        .call(&admin, Method::DELETE, &revoke, Value::Null)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .call(
            &guest,
            Method::GET,
            &format!("/api/runs/{}", run.id),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");
}

#[tokio::test]
async fn sessions_cookies_api_tokens_and_the_login_limit() {
    let server = Server::start().await;
    // The session token works as a bearer token and as the browser's cookie.
    let session = server.login("admin", "admin password").await;
    for who in [As::Token(session.clone()), As::Cookie(session.clone())] {
        let (status, body) = server
            .call(&who, Method::GET, "/api/auth/me", Value::Null)
            .await;
        assert_eq!(status, StatusCode::OK);
        let me: Me = serde_json::from_value(body).unwrap();
        assert_eq!((me.user.name.as_str(), me.user.admin), ("admin", true));
        assert_eq!(me.projects[0].name, "default");
    }
    let response = server
        .app
        .clone()
        .oneshot(
            Request::post("/api/auth/login")
                .body(Body::from(
                    json!({"name": "admin", "password": "admin password"}).to_string(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with("balancelab_session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    // Behind a proxy that terminated TLS, the cookie is sent over HTTPS only.
    let response = server
        .app
        .clone()
        .oneshot(
            Request::post("/api/auth/login")
                .header("x-forwarded-proto", "https")
                .body(Body::from(
                    json!({"name": "admin", "password": "admin password"}).to_string(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");

    // API tokens last until revoked.
    let user = As::Token(session.clone());
    let (status, body) = server
        .call(&user, Method::POST, "/api/auth/tokens", Value::Null)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let api: Secret = serde_json::from_value(body).unwrap();
    let script = As::Token(api.token.clone());
    assert_eq!(
        server
            .call(&script, Method::GET, "/api/runs", Value::Null)
            .await
            .0,
        StatusCode::OK
    );
    let revoke = format!("/api/auth/tokens/{}", api.id);
    assert_eq!(
        server
            .call(&user, Method::DELETE, &revoke, Value::Null)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server
            .call(&script, Method::GET, "/api/runs", Value::Null)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // Signing out ends the session.
    assert_eq!(
        server
            .call(&user, Method::POST, "/api/auth/logout", Value::Null)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server
            .call(&user, Method::GET, "/api/auth/me", Value::Null)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // A user to time wrong passwords with, made while the admin may sign in.
    let admin = As::Token(server.login("admin", "admin password").await);
    server.user(&admin, "eve").await;
    // Successful sign-ins (four above, five more here) are not counted.
    let right = json!({"name": "admin", "password": "admin password"});
    for _ in 0..5 {
        let (status, _) =
            (server.call(&As::Nobody, Method::POST, "/api/auth/login", right.clone())).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Five failures in a row for a name, then 429, even with the right password; the
    // message states the policy.
    let wrong = json!({"name": "admin", "password": "guess"});
    let mut statuses = Vec::new();
    let mut refusals = Vec::new();
    for _ in 0..5 {
        let (status, body) =
            (server.call(&As::Nobody, Method::POST, "/api/auth/login", wrong.clone())).await;
        statuses.push(status);
        refusals.push(body["message"].clone());
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    let (status, body) = server
        .call(&As::Nobody, Method::POST, "/api/auth/login", right)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("5 failed sign-ins in a row") && message.contains("try again in"),
        "{message}"
    );

    // An unknown name is refused exactly like a wrong password, and about as slowly (the
    // password is checked against a made-up hash); the limit is per user name.
    let timed = |credentials: Value| {
        let server = &server;
        async move {
            let started = std::time::Instant::now();
            let answer = server
                .call(&As::Nobody, Method::POST, "/api/auth/login", credentials)
                .await;
            (answer, started.elapsed())
        }
    };
    let ((status, body), unknown_took) =
        timed(json!({"name": "nobody", "password": "whatever"})).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the limit is per user name"
    );
    assert_eq!(body["message"], refusals[0]);
    let (_, known_took) = timed(json!({"name": "eve", "password": "wrong password"})).await;
    assert!(
        unknown_took.as_secs_f64() > 0.3 * known_took.as_secs_f64(),
        "unknown {unknown_took:?}, known {known_took:?}"
    );
    // A name no user can have is not looked up.
    let (status, body) = server
        .call(
            &As::Nobody,
            Method::POST,
            "/api/auth/login",
            json!({"name": "x".repeat(10_000), "password": "p"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["fields"][0]["field"], "name");
}

#[tokio::test]
async fn tokens_expire_and_are_listed_passwords_change_admins_disable_accounts() {
    let server = Server::start().await;
    let admin = As::Token(server.login("admin", "admin password").await);
    let bob = server.user(&admin, "bob").await;
    let call = |who: &As, method: Method, uri: &str, body: Value| {
        let (server, who, uri) = (&server, who.clone(), uri.to_owned());
        async move { server.call(&who, method, &uri, body).await }
    };

    // An API token with a label and a lifetime; out-of-range settings are named.
    let (status, body) = call(
        &bob,
        Method::POST,
        "/api/auth/tokens",
        json!({"label": "laptop", "expires_in_days": 7}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let laptop: Secret = serde_json::from_value(body).unwrap();
    let (status, body) = call(
        &bob,
        Method::POST,
        "/api/auth/tokens",
        json!({"label": "x".repeat(101), "expires_in_days": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["fields"][0]["field"], "expires_in_days");
    assert_eq!(body["fields"][1]["field"], "label");
    let (_, body) = call(&bob, Method::GET, "/api/auth/tokens", Value::Null).await;
    let tokens: Vec<TokenInfo> = serde_json::from_value(body).unwrap();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_eq!(
        (tokens[0].id, tokens[0].label.as_deref(), tokens[0].current),
        (laptop.id, Some("laptop"), false)
    );
    let week = tokens[0].expires_ms.unwrap() - tokens[0].created_ms.unwrap();
    assert_eq!(week, 7 * 24 * 3600 * 1000);
    assert_eq!(
        (tokens[1].kind.as_str(), tokens[1].current),
        ("session", true)
    );

    // An expired token is refused and no longer listed.
    let (bob_user, _) = server.store.user_by_name("bob").await.unwrap().unwrap();
    let (expired, hash) = balancelab::auth::new_token();
    (server.store)
        .add_token(bob_user.id, &hash, TokenKind::Api, Some(-1))
        .await
        .unwrap();
    let (status, _) = call(
        &As::Token(expired),
        Method::GET,
        "/api/auth/me",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, body) = call(&bob, Method::GET, "/api/auth/tokens", Value::Null).await;
    assert_eq!(body.as_array().unwrap().len(), 2);

    // A password change needs the current password; it revokes Bob's other sessions and his
    // API tokens, not the session that asked.
    let other_session = As::Token(server.login("bob", "long enough").await);
    let change = |current: &str, new: &str| json!({"current": current, "new": new});
    let (status, body) = call(
        &bob,
        Method::POST,
        "/api/auth/password",
        change("nope", "new password"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = call(
        &bob,
        Method::POST,
        "/api/auth/password",
        change("long enough", "short"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["fields"][0]["field"], "new");
    let (status, _) = call(
        &bob,
        Method::POST,
        "/api/auth/password",
        change("long enough", "a new password"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let me = |who: As| async move { call(&who, Method::GET, "/api/auth/me", Value::Null).await.0 };
    assert_eq!(me(bob.clone()).await, StatusCode::OK);
    assert_eq!(me(other_session).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me(As::Token(laptop.token.clone())).await,
        StatusCode::UNAUTHORIZED
    );
    let old = json!({"name": "bob", "password": "long enough"});
    let (status, _) = call(&As::Nobody, Method::POST, "/api/auth/login", old).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let bob = As::Token(server.login("bob", "a new password").await);

    // Bob may revoke his own session by id, not someone else's.
    let (_, body) = call(&admin, Method::GET, "/api/auth/tokens", Value::Null).await;
    let admins_session = body[0]["id"].as_i64().unwrap();
    let uri = format!("/api/auth/tokens/{admins_session}");
    assert_eq!(
        call(&bob, Method::DELETE, &uri, Value::Null).await.0,
        StatusCode::NOT_FOUND
    );

    // Admins: list users, disable Bob (his sessions and tokens stop at once, signing in is
    // refused saying why), enable him again; nobody else may, and no admin disables
    // themselves.
    let (status, body) = call(&bob, Method::GET, "/api/users", Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, body) = call(&admin, Method::GET, "/api/users", Value::Null).await;
    let users: Vec<User> = serde_json::from_value(body).unwrap();
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["admin", "bob"]);
    // A link Bob made to a run of admin's project, where he is an editor.
    let (_, body) = call(&admin, Method::POST, "/api/runs", small_run()).await;
    let run: Run = serde_json::from_value(body).unwrap();
    let member = format!("/api/projects/{}/members/bob", run.project_id);
    call(&admin, Method::PUT, &member, json!({"role": "editor"})).await;
    let share = format!("/api/runs/{}/share", run.id);
    let (_, body) = call(&bob, Method::POST, &share, Value::Null).await;
    let link = As::Share(serde_json::from_value::<Secret>(body).unwrap().token);
    let run_uri = format!("/api/runs/{}", run.id);
    assert_eq!(
        call(&link, Method::GET, &run_uri, Value::Null).await.0,
        StatusCode::OK
    );

    let bob_uri = format!("/api/users/{}", bob_user.id);
    let disable = json!({"disabled": true});
    assert_eq!(
        call(&bob, Method::PATCH, &bob_uri, disable.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    let admin_uri = format!("/api/users/{}", users[0].id);
    let (status, _) = call(&admin, Method::PATCH, &admin_uri, disable.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = call(&admin, Method::PATCH, &bob_uri, disable).await;
    assert_eq!(status, StatusCode::OK);
    assert!(serde_json::from_value::<User>(body).unwrap().disabled);
    assert_eq!(me(bob.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&link, Method::GET, &run_uri, Value::Null).await.0,
        StatusCode::UNAUTHORIZED,
        "a disabled user's links open nothing"
    );
    let credentials = json!({"name": "bob", "password": "a new password"});
    let (status, body) = call(&As::Nobody, Method::POST, "/api/auth/login", credentials).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["message"].as_str().unwrap().contains("disabled"),
        "{body}"
    );
    let enable = json!({"disabled": false});
    assert_eq!(
        call(&admin, Method::PATCH, &bob_uri, enable).await.0,
        StatusCode::OK
    );
    let bob = As::Token(server.login("bob", "a new password").await);
    assert_eq!(me(bob.clone()).await, StatusCode::OK);
    assert_eq!(
        call(&link, Method::GET, &run_uri, Value::Null).await.0,
        StatusCode::OK
    );

    // Revoking all of a user's tokens, without disabling them; there must be such a user.
    let (status, _) = call(&admin, Method::DELETE, "/api/users/999/tokens", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let uri = format!("/api/users/{}/tokens", bob_user.id);
    assert_eq!(
        call(&bob, Method::DELETE, &uri, Value::Null).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&admin, Method::DELETE, &uri, Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(me(bob).await, StatusCode::UNAUTHORIZED);
    server.login("bob", "a new password").await;
}

#[tokio::test]
async fn the_audit_log_says_who_changed_what_to_owners_and_admins() {
    let server = Server::start().await;
    let admin = As::Token(server.login("admin", "admin password").await);
    let alice = server.user(&admin, "alice").await;
    let bob = server.user(&admin, "bob").await;
    let call = |who: &As, method: Method, uri: &str, body: Value| {
        let (server, who, uri) = (&server, who.clone(), uri.to_owned());
        async move { server.call(&who, method, &uri, body).await }
    };
    let (_, body) = call(
        &alice,
        Method::POST,
        "/api/projects",
        json!({"name": "vision"}),
    )
    .await;
    let vision: Project = serde_json::from_value(body).unwrap();
    let project = vision.id;
    let uri = format!("/api/runs?project={project}");
    let (_, body) = call(&alice, Method::POST, &uri, small_run()).await;
    let run: Run = serde_json::from_value(body).unwrap();
    let id = run.id;
    let member = format!("/api/projects/{project}/members/bob");
    call(&alice, Method::PUT, &member, json!({"role": "editor"})).await;
    let (_, body) = call(
        &bob,
        Method::POST,
        &format!("/api/runs/{id}/share"),
        Value::Null,
    )
    .await;
    let link: Secret = serde_json::from_value(body).unwrap();
    let revoke = format!("/api/runs/{id}/share/{}", link.id);
    assert_eq!(
        call(&bob, Method::DELETE, &revoke, Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    let cancel = format!("/api/runs/{id}/cancel");
    // The run may have finished already (409): then there is nothing to record.
    let (cancel_status, _) = call(&bob, Method::POST, &cancel, Value::Null).await;
    let cancelled = cancel_status == StatusCode::ACCEPTED;
    assert!(cancelled || cancel_status == StatusCode::CONFLICT);
    // A refused change leaves no entry.
    let (status, _) = call(&bob, Method::PUT, &member, json!({"role": "owner"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let log = format!("/api/projects/{project}/audit");
    let (status, _) = call(&bob, Method::GET, &log, Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "editors do not read the log");
    let (status, body) = call(&alice, Method::GET, &log, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = body.as_array().unwrap();
    let said: Vec<(&str, &str)> = (entries.iter().rev())
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    let mut expected = vec![
        ("alice", "project_created"),
        ("alice", "run_created"),
        ("alice", "member_set"),
        ("bob", "run_shared"),
        ("bob", "share_revoked"),
    ];
    if cancelled {
        expected.push(("bob", "run_cancelled"));
    }
    assert_eq!(said, expected);
    assert!(entries
        .iter()
        .all(|e| e["request_id"].as_str().is_some_and(|r| r.len() == 36)));
    assert_eq!(entries.last().unwrap()["detail"], "\"vision\"");
    assert_eq!(entries[entries.len() - 3]["detail"], "\"bob\" as editor");
    assert!(entries.iter().skip(1).all(|e| e["project_id"] == project));
    // Pages: newest first, then before the last one seen.
    let (_, body) = call(&alice, Method::GET, &format!("{log}?limit=2"), Value::Null).await;
    let first_page = body.as_array().unwrap().clone();
    assert_eq!(first_page.len(), 2);
    let before = first_page[1]["id"].as_i64().unwrap();
    let (_, body) = call(
        &alice,
        Method::GET,
        &format!("{log}?before={before}"),
        Value::Null,
    )
    .await;
    assert_eq!(body.as_array().unwrap().len(), entries.len() - 2);
    let (status, body) = call(&alice, Method::GET, &format!("{log}?limit=0"), Value::Null).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["fields"][0]["field"], "limit");

    // The whole log, with the management of users, is the admins'.
    let (status, _) = call(&alice, Method::GET, "/api/audit", Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, body) = call(&admin, Method::GET, "/api/audit?limit=1000", Value::Null).await;
    let created: Vec<&str> = (body.as_array().unwrap().iter())
        .filter(|e| e["action"] == "user_created")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(created, ["\"bob\"", "\"alice\""]);
}

/// The ids of the runs a run-list stream announces within `seconds`.
async fn runs_announced(body: &mut Body, seconds: u64) -> Vec<i64> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for line in String::from_utf8_lossy(&data).lines() {
            if let Some(json) = line.strip_prefix("data: ") {
                seen.push(serde_json::from_str::<Run>(json).unwrap().id);
            }
        }
    }
    seen
}

/// The live run list shows each user only the runs of their projects.
#[tokio::test]
async fn the_live_run_list_shows_only_your_projects() {
    let server = Server::start().await;
    let admin = As::Token(server.login("admin", "admin password").await);
    let As::Token(bob_token) = server.user(&admin, "bob").await else {
        unreachable!()
    };
    let bob = As::Token(bob_token.clone());
    let (status, _) = server
        .call(
            &bob,
            Method::POST,
            "/api/projects",
            json!({"name": "bob's"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let request = Request::get("/api/runs/events")
        .header(header::AUTHORIZATION, format!("Bearer {bob_token}"))
        .body(Body::empty())
        .unwrap();
    let response = server.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();

    let (_, admins) = server
        .call(&admin, Method::POST, "/api/runs", small_run())
        .await;
    let (_, bobs) = server
        .call(&bob, Method::POST, "/api/runs", small_run())
        .await;
    let (admins, bobs) = (admins["id"].as_i64().unwrap(), bobs["id"].as_i64().unwrap());
    // Both runs are created and trained while the stream is read.
    let seen = runs_announced(&mut body, 3).await;
    assert!(seen.contains(&bobs), "bob sees his run change: {seen:?}");
    assert!(!seen.contains(&admins), "and never admin's: {seen:?}");

    // Added to admin's project, Bob's open stream starts showing its runs (memberships are
    // read again every 5 s); signed out, it ends.
    let admins_project = serde_json::from_value::<Run>(
        server
            .call(
                &admin,
                Method::GET,
                &format!("/api/runs/{admins}"),
                Value::Null,
            )
            .await
            .1,
    )
    .unwrap()
    .project_id;
    let member = format!("/api/projects/{admins_project}/members/bob");
    let (status, _) = (server.call(&admin, Method::PUT, &member, json!({"role": "viewer"}))).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let (_, later) = server
        .call(&admin, Method::POST, "/api/runs", small_run())
        .await;
    let later = later["id"].as_i64().unwrap();
    let seen = runs_announced(&mut body, 3).await;
    assert!(seen.contains(&later), "a project joined shows: {seen:?}");
    let (status, _) = server
        .call(&bob, Method::POST, "/api/auth/logout", Value::Null)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the run list went on after signing out");
}

/// An open stream is checked again while it runs: revoking the share link it was opened
/// with ends it, within the re-check interval (5 s).
#[tokio::test]
async fn revoking_a_link_ends_the_streams_it_opened() {
    let server = Server::start().await;
    let admin = As::Token(server.login("admin", "admin password").await);
    // Long enough to be training throughout.
    let long = json!({"epochs": 10_000, "dataset": {"kind": "synthetic", "train_samples": 64, "test_samples": 32}});
    let (_, body) = server.call(&admin, Method::POST, "/api/runs", long).await;
    let run: Run = serde_json::from_value(body).unwrap();
    let share = format!("/api/runs/{}/share", run.id);
    let (_, body) = server.call(&admin, Method::POST, &share, Value::Null).await;
    let link: Secret = serde_json::from_value(body).unwrap();

    let uri = format!("/api/runs/{}/events?share={}", run.id, link.token);
    let response = server
        .app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // Events flow before the revocation.
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), body.frame()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "the stream delivers");

    let (status, _) = server
        .call(
            &admin,
            Method::DELETE,
            &format!("{share}/{}", link.id),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream went on after its link was revoked"
    );
    let cancel = format!("/api/runs/{}/cancel", run.id);
    server
        .call(&admin, Method::POST, &cancel, Value::Null)
        .await;
}
