//! The browser under load: 50 finished runs of 10,000 steps each, overlaid on one compare
//! page, and one of them on its run page.
//!
//! Seeds a state folder (SQLite) with the runs as a worker would have stored them, starts
//! `balancelab serve` on it (API only), and has headless Chromium (tests/e2e/render-load.mjs)
//! measure: the time until every chart is drawn, frame times while the pointer sweeps a chart
//! (hover read-out) and while a zoom is dragged, and the time to redraw every curve after the
//! smoothing changes. Prints a table.
//!
//! `cargo bench -p balancelab --bench ui_render` (needs dist/ from scripts/build-ui, and node
//! with playwright-core and Chromium as scripts/setup installs them; about a minute).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use balancelab::store::Store;
use balancelab_shared::{EpochMetrics, RunConfig, RunEvent, RunStatus, SplitScores, StepMetrics};

const RUNS: usize = 50;
const EPOCHS: u64 = 100;
const STEPS_PER_EPOCH: u64 = 100;
const PASSWORD: &str = "render bench password";

/// A cheap deterministic noise in [-0.5, 0.5).
fn noise(run: usize, step: u64) -> f64 {
    let mut x = (run as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ step.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

/// Steps and epochs shaped like an MLB run: loss falling, k of the weak modality above 1
/// fading towards 1, one loss spike.
fn events(run: usize) -> Vec<RunEvent> {
    let mut events = Vec::new();
    let pace = 1.0 + run as f64 / RUNS as f64;
    for epoch in 1..=EPOCHS {
        for i in 0..STEPS_PER_EPOCH {
            let step = (epoch - 1) * STEPS_PER_EPOCH + i;
            let t = step as f64 / (EPOCHS * STEPS_PER_EPOCH) as f64;
            let spike = if step == 4321 { 3.0 } else { 0.0 };
            let loss = 2.0 * (-3.0 * t * pace).exp() + 0.1 + 0.2 * noise(run, step) + spike;
            let k = 1.0 + 0.6 * (-4.0 * t).exp() + 0.1 * noise(run + 1000, step);
            events.push(RunEvent::Step(Box::new(StepMetrics {
                epoch: epoch as u32,
                step,
                loss,
                fused_loss: loss * 0.6,
                unimodal_losses: vec![loss * 0.3, loss * 0.5],
                coefficients: vec![2.0 - k, k],
                confidences: vec![0.9 - 0.4 * (-3.0 * t).exp(), 0.8 - 0.6 * (-2.0 * t).exp()],
                gradient_norms: vec![0.1, 0.2],
                learning_rate: 0.01,
                elapsed_seconds: step as f64 * 0.01,
            })));
        }
        let t = epoch as f64 / EPOCHS as f64;
        let accuracy = 0.9 - 0.5 * (-3.0 * t * pace).exp();
        events.push(RunEvent::Epoch(Box::new(EpochMetrics {
            epoch: epoch as u32,
            train_loss: 2.0 * (-3.0 * t * pace).exp() + 0.1,
            coefficients: vec![0.7, 1.3],
            confidences: vec![0.8, 0.5],
            gradient_norms: vec![0.1, 0.2],
            learning_rate: 0.01,
            train: SplitScores {
                fused: accuracy + 0.05,
                unimodal: vec![accuracy - 0.05, accuracy - 0.25],
                fused_loss: 1.5 * (-3.0 * t * pace).exp() + 0.05,
                ..SplitScores::default()
            },
            validation: None,
            test: SplitScores {
                fused: accuracy,
                unimodal: vec![accuracy - 0.1, accuracy - 0.3],
                ..SplitScores::default()
            },
            solo_accuracy: vec![accuracy - 0.05, accuracy - 0.25],
            elapsed_seconds: epoch as f64,
            steps: epoch * STEPS_PER_EPOCH,
        })));
    }
    events
}

async fn seed(state: &Path) -> Vec<i64> {
    let store = Store::open(&state.join("balancelab.sqlite")).await.unwrap();
    balancelab::auth::bootstrap(&store, Some(PASSWORD))
        .await
        .unwrap();
    let (admin, _) = store.user_by_name("admin").await.unwrap().unwrap();
    let project = store.projects_of(admin.id).await.unwrap()[0].id;
    let mut ids = Vec::new();
    for run in 0..RUNS {
        let config = RunConfig {
            seed: run as u64,
            epochs: EPOCHS as u32,
            ..RunConfig::default()
        };
        let created = store.create_run(&config, project).await.unwrap();
        let claim = store.claim_next("bench").await.unwrap().unwrap();
        assert_eq!(claim.run.id, created.id);
        store.append_events(created.id, &events(run)).await.unwrap();
        store
            .finish(created.id, &claim.lease, RunStatus::Completed, None)
            .await
            .unwrap();
        ids.push(created.id);
    }
    ids
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        root.join("dist/index.html").exists(),
        "build the UI first: scripts/build-ui"
    );
    let state = tempfile::tempdir().unwrap();
    let clock = Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ids = runtime.block_on(seed(state.path()));
    println!(
        "seeded {RUNS} runs x {} steps in {:.1} s",
        EPOCHS * STEPS_PER_EPOCH,
        clock.elapsed().as_secs_f64()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_balancelab"))
        .args(["serve", "--workers", "0", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--state-dir")
        .arg(state.path())
        .arg("--ui-dir")
        .arg(root.join("dist"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if ureq::get(&format!("{base}/api/health")).call().is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    let status = Command::new("node")
        .arg(root.join("tests/e2e/render-load.mjs"))
        .env("BASE", &base)
        .env("PASSWORD", PASSWORD)
        .env("RUNS", ids.join(","))
        .status()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(status.success(), "the browser measurement failed");
}
