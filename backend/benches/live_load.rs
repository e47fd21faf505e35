//! Load on loopback: 200 viewers (one share link each) follow a live run over SSE while 20
//! clients read the API.
//!
//! Once every viewer's stream is open, the bench plays the worker: it claims a run and stores
//! 10 steps every 100 ms for 10 s (1,000 events), each stamped with the moment it was handed
//! to the store, so a viewer's delivery lag is its receive time minus that stamp. Prints p50/p99 of the lag and of the
//! API latency, and whether every viewer got every event.
//!
//! `cargo bench -p balancelab --bench live_load` (bounded: about 15 s).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use balancelab_shared::{RunConfig, RunEvent, RunStatus, StepMetrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

const VIEWERS: usize = 200;
const READERS: usize = 20;
const BATCHES: u64 = 100;
const STEPS_PER_BATCH: u64 = 10;
const BATCH_EVERY: Duration = Duration::from_millis(100);

fn step(n: u64, stamp: f64) -> RunEvent {
    RunEvent::Step(Box::new(StepMetrics {
        epoch: 1,
        step: n,
        loss: 1.0,
        fused_loss: 1.0,
        unimodal_losses: vec![1.0, 1.0],
        coefficients: vec![1.0, 1.0],
        confidences: vec![0.5, 0.5],
        gradient_norms: vec![0.1, 0.1],
        learning_rate: 0.01,
        elapsed_seconds: stamp,
    }))
}

/// Follows a run's events through share link `link`, counting itself in `connected` once
/// the stream's head arrives; returns the lag of each step event in seconds.
async fn view(
    addr: std::net::SocketAddr,
    (link, id): (String, i64),
    clock: Instant,
    connected: Arc<AtomicUsize>,
) -> Vec<f64> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /api/runs/{id}/events?share={link} HTTP/1.1\r\nHost: bench\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut lags = Vec::new();
    let mut pending = String::new();
    let mut counted = false;
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = clock.elapsed().as_secs_f64();
        if !counted {
            counted = true;
            connected.fetch_add(1, Ordering::Relaxed);
        }
        pending.push_str(&String::from_utf8_lossy(&buffer[..n]));
        let complete = pending.rfind('\n').map_or(0, |i| i + 1);
        for line in pending[..complete].lines() {
            let Some(rest) = line.split("\"elapsed_seconds\":").nth(1) else {
                if line.contains("\"status\":\"completed\"") {
                    return lags;
                }
                continue;
            };
            let number: String = (rest.chars())
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '-')
                .collect();
            if let Ok(stamp) = number.parse::<f64>() {
                lags.push(now - stamp);
            }
        }
        pending.drain(..complete);
    }
    lags
}

/// Repeats `GET paths` (one connection each) until `deadline`; returns latencies in seconds.
async fn read_api(
    addr: std::net::SocketAddr,
    token: &str,
    paths: [String; 2],
    deadline: Instant,
) -> Vec<f64> {
    let mut latencies = Vec::new();
    let mut buffer = Vec::new();
    'outer: while Instant::now() < deadline {
        for path in &paths {
            let started = Instant::now();
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                continue 'outer;
            };
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\
                 Connection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            buffer.clear();
            stream.read_to_end(&mut buffer).await.unwrap();
            assert!(buffer.starts_with(b"HTTP/1.1 200"), "{path} failed");
            latencies.push(started.elapsed().as_secs_f64());
        }
    }
    latencies
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let server = common::start().await;
    let (store, hub, addr) = (&server.store, &server.hub, server.addr);
    let token: &'static str = server.token.clone().leak();
    let run = store
        .create_run(&RunConfig::default(), server.project)
        .await
        .unwrap();
    let lease = store.claim_next("bench").await.unwrap().unwrap().lease;
    let links = server.share_links(run.id, VIEWERS);
    let clock = Instant::now();
    let connected = Arc::new(AtomicUsize::new(0));
    let viewers: Vec<_> = (links.into_iter())
        .map(|link| tokio::spawn(view(addr, (link, run.id), clock, connected.clone())))
        .collect();
    // Every viewer's stream open before the first event: the lag measured is delivery's,
    // not connection setup's.
    while connected.load(Ordering::Relaxed) < VIEWERS && clock.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connecting = clock.elapsed();

    let deadline = Instant::now() + BATCH_EVERY * BATCHES as u32;
    let paths = [
        format!("/api/runs/{}", run.id),
        "/api/runs?limit=50".to_owned(),
    ];
    let readers: Vec<_> = (0..READERS)
        .map(|_| tokio::spawn(read_api(addr, token, paths.clone(), deadline)))
        .collect();
    let mut ticker = tokio::time::interval(BATCH_EVERY);
    for batch in 0..BATCHES {
        ticker.tick().await;
        let stamp = clock.elapsed().as_secs_f64();
        let events: Vec<RunEvent> = (0..STEPS_PER_BATCH)
            .map(|i| step(batch * STEPS_PER_BATCH + i, stamp))
            .collect();
        store.append_events(run.id, &events).await.unwrap();
        hub.notify(run.id);
    }
    store
        .finish(run.id, &lease, RunStatus::Completed, None)
        .await
        .unwrap();
    hub.notify(run.id);

    let mut lags = Vec::new();
    let mut complete = 0;
    for viewer in viewers {
        let got = tokio::time::timeout(Duration::from_secs(10), viewer)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        complete += usize::from(got.len() == (BATCHES * STEPS_PER_BATCH) as usize);
        lags.extend(got);
    }
    let mut latencies: Vec<f64> = Vec::new();
    for reader in readers {
        latencies.extend(reader.await.unwrap());
    }
    let ms = |s: f64| format!("{:.1} ms", s * 1e3);
    println!("live load on loopback (SQLite, {} cores)", num_cpus());
    println!("| measure | value |");
    println!("|---|---|");
    println!("| SSE viewers | {VIEWERS} |");
    println!(
        "| all viewers connected in | {} |",
        ms(connecting.as_secs_f64())
    );
    println!(
        "| viewers that received all {} events | {complete} |",
        BATCHES * STEPS_PER_BATCH
    );
    println!("| events delivered | {} |", lags.len());
    println!("| delivery lag p50 | {} |", ms(percentile(&mut lags, 0.5)));
    println!("| delivery lag p99 | {} |", ms(percentile(&mut lags, 0.99)));
    println!("| delivery lag max | {} |", ms(percentile(&mut lags, 1.0)));
    println!("| API readers | {READERS} |");
    println!("| API requests | {} |", latencies.len());
    println!(
        "| API latency p50 | {} |",
        ms(percentile(&mut latencies, 0.5))
    );
    println!(
        "| API latency p99 | {} |",
        ms(percentile(&mut latencies, 0.99))
    );
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
