//! What the server benchmarks share: a server on loopback whose runs the bench stores
//! itself, and share links to open streams with.

use std::net::SocketAddr;

use balancelab::api::{app, AppState};
use balancelab::live::Hub;
use balancelab::store::{Store, TokenKind};
use balancelab::worker::{WorkerOptions, Workers};

/// A serving server and what a bench needs of it.
pub struct BenchServer {
    pub store: Store,
    pub hub: Hub,
    pub addr: SocketAddr,
    /// The admin's API token.
    pub token: String,
    /// The admin's project.
    pub project: i64,
    /// Holds the database and checkpoints.
    _dir: tempfile::TempDir,
}

/// A server on loopback over SQLite in a temporary folder, with no training slots: the
/// bench plays the worker.
pub async fn start() -> BenchServer {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.sqlite")).await.unwrap();
    let hub = Hub::new(store.clone());
    let options = WorkerOptions {
        concurrency: 0,
        ..WorkerOptions::new(dir.path().join("checkpoints"))
    };
    let workers = Workers::start(store.clone(), hub.clone(), options);
    let state = AppState::new(store.clone(), hub.clone(), workers);
    balancelab::auth::bootstrap(&store, Some("bench password"))
        .await
        .unwrap();
    let (admin, _) = store.user_by_name("admin").await.unwrap().unwrap();
    let project = store.projects_of(admin.id).await.unwrap()[0].id;
    let (token, hash) = balancelab::auth::new_token();
    store
        .add_token(admin.id, &hash, TokenKind::Api, None)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    BenchServer {
        store,
        hub,
        addr,
        token,
        project,
        _dir: dir,
    }
}

impl BenchServer {
    /// `count` share links to run `id`, one per viewer: a user or link may hold only 16
    /// streams at once.
    pub fn share_links(&self, id: i64, count: usize) -> Vec<String> {
        (0..count)
            .map(|_| {
                let secret: serde_json::Value =
                    ureq::post(&format!("http://{}/api/runs/{id}/share", self.addr))
                        .header("Authorization", &format!("Bearer {}", self.token))
                        .send_empty()
                        .unwrap()
                        .body_mut()
                        .read_json()
                        .unwrap();
                secret["token"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}
