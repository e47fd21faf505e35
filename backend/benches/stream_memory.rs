//! The server's memory while many clients read one long run: 50 follow its whole event log
//! over SSE (one share link each) and 20 export its steps as CSV, all at once.
//!
//! The bench stores a finished run of `BALANCELAB_BENCH_STEPS` steps (default 1,000,000) in
//! SQLite, serves the API in this process, and samples this process's resident memory every
//! 20 ms while the clients read. The clients are in this process too, but each keeps only
//! counts (its read buffer aside), so what grows is the server's. Prints the resident memory
//! before and at its peak, and what every client received.
//!
//! `cargo bench -p balancelab --bench stream_memory` (minutes: the clients move gigabytes).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use balancelab_shared::{RunConfig, RunEvent, RunStatus, StepMetrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

const FOLLOWERS: usize = 50;
const EXPORTERS: usize = 20;
/// Steps stored per transaction while the run is filled.
const FILL_BATCH: u64 = 10_000;

fn step(n: u64, steps_per_epoch: u64) -> RunEvent {
    RunEvent::Step(Box::new(StepMetrics {
        epoch: (n / steps_per_epoch + 1) as u32,
        step: n,
        loss: 1.0 / (1.0 + n as f64),
        fused_loss: 0.5,
        unimodal_losses: vec![0.7, 0.9],
        coefficients: vec![1.2, 0.8],
        confidences: vec![0.6, 0.4],
        gradient_norms: vec![0.1, 0.2],
        learning_rate: 0.01,
        elapsed_seconds: n as f64 * 0.01,
    }))
}

/// Resident memory of this process in bytes (`VmRSS`).
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (status.lines())
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Sends `request` and reads the answer to its end; returns (bytes, lines that contain
/// `marker`), counting as it goes. Requests are HTTP/1.0, so no chunk framing splits lines.
async fn read_all(addr: std::net::SocketAddr, request: String, marker: &[u8]) -> (u64, u64) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = vec![0; 64 * 1024];
    let (mut bytes, mut found) = (0u64, 0u64);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        bytes += n as u64;
        for &byte in &buffer[..n] {
            if byte == b'\n' {
                found += u64::from(line.windows(marker.len()).any(|w| w == marker));
                line.clear();
            } else {
                line.push(byte);
            }
        }
    }
    (bytes, found)
}

#[tokio::main]
async fn main() {
    let steps: u64 = std::env::var("BALANCELAB_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let server = common::start().await;
    let (store, addr, token) = (&server.store, server.addr, &server.token);

    let filled = Instant::now();
    let run = store
        .create_run(&RunConfig::default(), server.project)
        .await
        .unwrap();
    let lease = store.claim_next("bench").await.unwrap().unwrap().lease;
    for first in (0..steps).step_by(FILL_BATCH as usize) {
        let batch: Vec<RunEvent> = (first..(first + FILL_BATCH).min(steps))
            .map(|n| step(n, 10_000))
            .collect();
        store.append_events(run.id, &batch).await.unwrap();
    }
    store
        .finish(run.id, &lease, RunStatus::Completed, None)
        .await
        .unwrap();
    // As a worker would: the run's viewers learn it ended.
    server.hub.notify(run.id);
    let filled = filled.elapsed();

    let links = server.share_links(run.id, FOLLOWERS);

    let before = resident();
    let peak = Arc::new(AtomicU64::new(before));
    let reading = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, reading) = (peak.clone(), reading.clone());
        std::thread::spawn(move || {
            while reading.load(Ordering::Relaxed) {
                peak.fetch_max(resident(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let followers: Vec<_> = (links.iter())
        .map(|link| {
            let request = format!(
                "GET /api/runs/{}/events?share={link} HTTP/1.0\r\nHost: bench\r\n\r\n",
                run.id
            );
            tokio::spawn(read_all(addr, request, b"\"type\":\"step\""))
        })
        .collect();
    let exporters: Vec<_> = (0..EXPORTERS)
        .map(|_| {
            let request = format!(
                "GET /api/runs/{}/export?of=steps HTTP/1.0\r\nHost: bench\r\n\
                 Authorization: Bearer {token}\r\n\r\n",
                run.id
            );
            // Every row has the learning rate between two commas.
            tokio::spawn(read_all(addr, request, b",0.01,"))
        })
        .collect();
    let mut complete_streams = 0;
    let mut bytes = 0;
    for follower in followers {
        let (read, events) = follower.await.unwrap();
        bytes += read;
        complete_streams += usize::from(events == steps);
    }
    let mut complete_exports = 0;
    for exporter in exporters {
        let (read, lines) = exporter.await.unwrap();
        bytes += read;
        complete_exports += usize::from(lines == steps);
    }
    let took = started.elapsed();
    reading.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);

    let mib = |b: u64| format!("{:.0} MiB", b as f64 / f64::from(1 << 20));
    println!(
        "server memory while {FOLLOWERS} clients stream and {EXPORTERS} export a run of {steps} steps \
         (SQLite, {} cores)",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| run stored in | {:.1} s |", filled.as_secs_f64());
    println!("| resident before the clients | {} |", mib(before));
    println!("| resident at peak | {} |", mib(peak));
    println!("| growth at peak | {} |", mib(peak.saturating_sub(before)));
    println!("| streams with every step | {complete_streams} of {FOLLOWERS} |");
    println!("| exports with every step | {complete_exports} of {EXPORTERS} |");
    println!("| bytes sent | {} |", mib(bytes));
    println!("| all clients done in | {:.1} s |", took.as_secs_f64());
}
