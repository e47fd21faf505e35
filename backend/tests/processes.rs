//! The server and workers as real processes: killed mid-run and restarted, and several
//! workers sharing one PostgreSQL queue.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use balancelab_shared::{Run, RunDetail, RunEvent, RunStatus};
use serde_json::{json, Value};

/// A `balancelab` process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port on loopback and the server's base URL there.
fn free_address() -> (u16, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (port, format!("http://127.0.0.1:{port}"))
}

/// Starts `balancelab serve` on `port` with its state in `state_dir`; fast heartbeats so
/// that a killed server's run is noticed within seconds.
fn serve(port: u16, state_dir: &Path, database_url: Option<&str>) -> Process {
    serve_with(port, state_dir, database_url, None)
}

/// [`serve`], its process group killed at `failpoints` (see `balancelab::failpoint`).
fn serve_with(
    port: u16,
    state_dir: &Path,
    database_url: Option<&str>,
    failpoints: Option<&str>,
) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_balancelab"));
    match failpoints {
        Some(points) => command.env("BALANCELAB_FAILPOINTS", points),
        None => command.env_remove("BALANCELAB_FAILPOINTS"),
    };
    command
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--heartbeat-secs", "0.2", "--stale-after-secs", "1.5"])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--ui-dir")
        .arg(state_dir.join("no-ui"))
        .env_remove("DATABASE_URL")
        .env("BALANCELAB_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "balancelab=info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // A group of its own, as a shell gives a command: a signal can go to the server and
        // its training processes together, as Ctrl-C in a terminal does.
        .process_group(0);
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    let process = Process(command.spawn().unwrap());
    let health = format!("http://127.0.0.1:{port}/api/health");
    let started = Instant::now();
    while ureq::get(&health).call().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        thread::sleep(Duration::from_millis(50));
    }
    process
}

const ADMIN_PASSWORD: &str = "admin password";

/// Signs in as the first user; returns the `Authorization` header value.
fn sign_in(base: &str) -> String {
    let credentials = json!({"name": "admin", "password": ADMIN_PASSWORD});
    let secret: Value = ureq::post(&format!("{base}/api/auth/login"))
        .send_json(&credentials)
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    format!("Bearer {}", secret["token"].as_str().unwrap())
}

fn get_json<T: serde::de::DeserializeOwned>(url: &str, auth: &str) -> T {
    (ureq::get(url).header("Authorization", auth).call().unwrap())
        .body_mut()
        .read_json()
        .unwrap()
}

fn post_run(base: &str, auth: &str, config: &Value) -> Run {
    ureq::post(&format!("{base}/api/runs"))
        .header("Authorization", auth)
        .send_json(config)
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

/// Reads a run's SSE stream from `after` into (id, event) pairs until it ends or breaks.
fn read_events(base: &str, auth: &str, id: i64, after: i64, into: &mut Vec<(i64, String)>) {
    let url = format!("{base}/api/runs/{id}/events");
    let Ok(response) = ureq::get(&url)
        .header("Authorization", auth)
        .header("Last-Event-ID", after.to_string())
        .call()
    else {
        return;
    };
    let reader = BufReader::new(response.into_body().into_reader());
    let mut event_id = None;
    for line in reader.lines() {
        let Ok(line) = line else { return };
        if let Some(id) = line.strip_prefix("id: ") {
            event_id = id.parse().ok();
        } else if let Some(data) = line.strip_prefix("data: ") {
            into.push((event_id.take().unwrap(), data.to_owned()));
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the server with SIGKILL in the middle of a run, restarts it, and checks that the
/// run resumes from its checkpoint and that every event a viewer had received is still
/// there, once, in order, with nothing missing in between.
#[test]
fn a_run_survives_its_server_being_killed() {
    let state = tempfile::tempdir().unwrap();
    let (port, base) = free_address();
    let config = json!({
        "epochs": 30,
        "batch_size": 32,
        "validation_fraction": 0.0,
        "dataset": {"kind": "synthetic", "train_samples": 2048, "test_samples": 256}
    });

    let server = serve(port, state.path(), None);
    let auth = sign_in(&base);
    let run = post_run(&base, &auth, &config);
    let viewer = {
        let (base, auth) = (base.clone(), auth.clone());
        thread::spawn(move || {
            let mut seen = Vec::new();
            read_events(&base, &auth, run.id, 0, &mut seen);
            seen
        })
    };
    let detail_url = format!("{base}/api/runs/{}", run.id);
    wait_for("two epochs", Duration::from_secs(120), || {
        get_json::<RunDetail>(&detail_url, &auth).epochs.len() >= 2
    });
    drop(server); // SIGKILL
    let acknowledged = viewer.join().unwrap();
    let stopped_at = last_acknowledged(&acknowledged);

    let _server = serve(port, state.path(), None);
    // The viewer reconnects from its last event, as a browser's EventSource does.
    let mut resumed = acknowledged.clone();
    // The session token is in the database, so it outlives the server process.
    read_events(&base, &auth, run.id, stopped_at, &mut resumed);
    let detail: RunDetail = get_json(&detail_url, &auth);
    assert_eq!(
        detail.run.status,
        RunStatus::Completed,
        "{:?}",
        detail.run.error
    );
    assert_eq!(detail.run.attempts, 2, "re-queued once, resumed once");

    let mut full = Vec::new();
    read_events(&base, &auth, run.id, 0, &mut full);
    assert_eq!(
        resumed, full,
        "reconnecting viewer saw exactly the stored log"
    );
    assert_eq!(
        full[..acknowledged.len()],
        acknowledged[..],
        "acknowledged events kept"
    );
    let ids: Vec<i64> = full.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=full.len() as i64).collect::<Vec<_>>());

    let events: Vec<RunEvent> = (full.iter())
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    let epochs: Vec<u32> = (events.iter())
        .filter_map(|e| match e {
            RunEvent::Epoch(m) => Some(m.epoch),
            _ => None,
        })
        .collect();
    assert_eq!(epochs, (1..=30).collect::<Vec<_>>(), "each epoch once");
    let steps: Vec<u64> = (events.iter())
        .filter_map(|e| match e {
            RunEvent::Step(m) => Some(m.step),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        (0..30 * 2048 / 32).collect::<Vec<_>>(),
        "each step once"
    );
    let statuses: Vec<RunStatus> = (events.iter())
        .filter_map(|e| match e {
            RunEvent::Status { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            RunStatus::Running,
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Completed
        ]
    );
}

/// SIGTERM: the server stops the run between two steps and gives it back to the queue
/// without counting an attempt; the next server resumes it.
#[test]
fn a_stopped_server_gives_its_run_back_to_the_queue() {
    let state = tempfile::tempdir().unwrap();
    let (port, base) = free_address();
    let config = json!({
        "epochs": 8,
        "dataset": {"kind": "synthetic", "train_samples": 2048, "test_samples": 256}
    });
    let mut server = serve(port, state.path(), None);
    let auth = sign_in(&base);
    let run = post_run(&base, &auth, &config);
    let detail_url = format!("{base}/api/runs/{}", run.id);
    wait_for("an epoch", Duration::from_secs(120), || {
        !get_json::<RunDetail>(&detail_url, &auth).epochs.is_empty()
    });
    // Ctrl-C in the server's terminal: SIGINT to its whole process group.
    let group = format!("-{}", server.0.id());
    assert!(Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap()
        .success());
    let exit = server.0.wait().unwrap();
    assert!(exit.success(), "a clean exit on Ctrl-C: {exit:?}");

    let _server = serve(port, state.path(), None);
    wait_for("the run to complete", Duration::from_secs(120), || {
        get_json::<RunDetail>(&detail_url, &auth).run.status == RunStatus::Completed
    });
    let detail: RunDetail = get_json(&detail_url, &auth);
    assert_eq!(
        detail.run.attempts, 1,
        "giving back does not count as an attempt"
    );
    assert_eq!(
        detail.epochs.iter().map(|m| m.epoch).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
}

/// The position of the last event the killed server's viewer received: something, and not
/// the end of the run.
fn last_acknowledged(acknowledged: &[(i64, String)]) -> i64 {
    assert!(acknowledged.len() > 2, "the viewer saw the run train");
    let last: Value = serde_json::from_str(&acknowledged.last().unwrap().1).unwrap();
    assert_ne!(last["status"], "completed", "the run ended before the kill");
    acknowledged.last().unwrap().0
}

/// Three worker processes and an API-only server share one PostgreSQL queue: each run is
/// claimed by exactly one worker, once. Needs BALANCELAB_TEST_DATABASE_URL (scripts/test
/// starts a PostgreSQL server for it).
#[test]
#[ignore = "needs BALANCELAB_TEST_DATABASE_URL (scripts/test starts a PostgreSQL server)"]
fn worker_processes_never_take_the_same_run() {
    let admin_url = std::env::var("BALANCELAB_TEST_DATABASE_URL")
        .expect("BALANCELAB_TEST_DATABASE_URL names a PostgreSQL server");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime
        .block_on(balancelab::store::Store::create_scratch_database(
            &admin_url,
        ))
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let (port, base) = free_address();
    let mut server = Command::new(env!("CARGO_BIN_EXE_balancelab"));
    let _server = {
        server
            .args([
                "serve",
                "--workers",
                "0",
                "--addr",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--database-url", &url])
            .arg("--state-dir")
            .arg(state.path())
            .env("BALANCELAB_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let process = Process(server.spawn().unwrap());
        wait_for("the server", Duration::from_secs(30), || {
            ureq::get(&format!("{base}/api/health")).call().is_ok()
        });
        process
    };
    let auth = sign_in(&base);
    let runs = 12;
    let mut ids = Vec::new();
    for seed in 0..runs {
        let config = json!({
            "seed": seed,
            "epochs": 2,
            "dataset": {"kind": "synthetic", "train_samples": 256, "test_samples": 64}
        });
        ids.push(post_run(&base, &auth, &config).id);
    }
    let workers: Vec<Process> = (0..3)
        .map(|_| {
            let child = Command::new(env!("CARGO_BIN_EXE_balancelab"))
                .args(["worker", "--concurrency", "2", "--database-url", &url])
                .arg("--state-dir")
                .arg(state.path())
                .env("RUST_LOG", "balancelab=info")
                .env("NO_COLOR", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            Process(child)
        })
        .collect();
    wait_for("every run to complete", Duration::from_secs(180), || {
        ids.iter().all(|id| {
            get_json::<RunDetail>(&format!("{base}/api/runs/{id}"), &auth)
                .run
                .status
                == RunStatus::Completed
        })
    });
    let mut claims: Vec<Vec<i64>> = Vec::new();
    for mut worker in workers {
        let _ = worker.0.kill();
        let output = worker.0.stderr.take().unwrap();
        let claimed: Vec<i64> = BufReader::new(output)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.contains("claimed a run"))
            .filter_map(|line| {
                let run = line.split("run=").nth(1)?;
                run.split_whitespace().next()?.parse().ok()
            })
            .collect();
        claims.push(claimed);
    }
    let mut all: Vec<i64> = claims.concat();
    all.sort();
    assert_eq!(all, ids, "every run claimed exactly once: {claims:?}");
    for id in &ids {
        let detail: RunDetail = get_json(&format!("{base}/api/runs/{id}"), &auth);
        assert_eq!(detail.run.attempts, 1);
    }
}

/// The training process on its own, as a worker drives it: an epoch the worker could not
/// store ends it at once, before that epoch is checkpointed; a stored one is checkpointed.
#[test]
fn the_training_process_never_checkpoints_an_epoch_that_was_not_stored() {
    use std::io::Write;
    for (answer, checkpointed) in [("stored", true), ("not-stored", false)] {
        let dir = tempfile::tempdir().unwrap();
        let job = json!({
            "config": {
                "epochs": 2,
                "dataset": {"kind": "synthetic", "train_samples": 256, "test_samples": 64}
            },
            "data_dir": null,
            "checkpoint_dir": dir.path(),
            "resume": false
        });
        let mut child = Process(
            Command::new(env!("CARGO_BIN_EXE_balancelab"))
                .arg("train-process")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut input = child.0.stdin.take().unwrap();
        writeln!(input, "{job}").unwrap();
        let mut types = Vec::new();
        for line in BufReader::new(child.0.stdout.take().unwrap()).lines() {
            let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
            let kind = event["type"].as_str().unwrap().to_owned();
            if kind == "epoch" {
                if !types.iter().any(|t| t == "epoch") {
                    let checkpoint = dir.path().join("last.safetensors");
                    assert!(!checkpoint.exists(), "checkpointed before the answer");
                }
                writeln!(input, "{answer}").unwrap();
            }
            types.push(kind);
        }
        assert!(child.0.wait().unwrap().success());
        let epochs = types.iter().filter(|t| *t == "epoch").count();
        let last = types.last().unwrap().as_str();
        if checkpointed {
            assert_eq!((epochs, last), (2, "finished"), "{types:?}");
        } else {
            assert_eq!((epochs, last), (1, "cancelled"), "{types:?}");
        }
        assert_eq!(dir.path().join("last.safetensors").exists(), checkpointed);
    }
}

/// What must not change when a run is interrupted: each epoch's numbers but its times, and
/// each step's index and loss.
#[derive(Debug, PartialEq)]
struct Curves {
    epochs: Vec<Value>,
    steps: Vec<(u64, f64)>,
}

/// The run's log read whole over SSE (it has ended): its event ids must be 1, 2, 3... and
/// each epoch and step must appear once, in order.
fn stored_curves(base: &str, auth: &str, id: i64) -> Curves {
    let mut log = Vec::new();
    read_events(base, auth, id, 0, &mut log);
    let ids: Vec<i64> = log.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (1..=log.len() as i64).collect::<Vec<_>>(),
        "no event lost or doubled"
    );
    let mut curves = Curves {
        epochs: Vec::new(),
        steps: Vec::new(),
    };
    for (_, data) in &log {
        match serde_json::from_str::<RunEvent>(data).unwrap() {
            RunEvent::Epoch(m) => {
                let mut value = serde_json::to_value(&m).unwrap();
                value.as_object_mut().unwrap().remove("elapsed_seconds");
                curves.epochs.push(value);
            }
            RunEvent::Step(m) => curves.steps.push((m.step, m.loss)),
            RunEvent::Status { .. } => {}
        }
    }
    let epochs: Vec<u64> = (curves.epochs.iter())
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(
        epochs,
        (1..=epochs.len() as u64).collect::<Vec<_>>(),
        "each epoch once"
    );
    let steps: Vec<u64> = curves.steps.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        steps,
        (0..steps.len() as u64).collect::<Vec<_>>(),
        "each step once"
    );
    curves
}

/// Seeded rounds of fault injection with real processes: the server and the run's training
/// process are killed with SIGKILL (a failpoint kills both; the random kill hits the server's
/// process group, and the training process, in a group of its own, stops when its worker is
/// gone) between a checkpoint's weights and its progress file, before a checkpoint file's rename, right after a batch of
/// events is stored but before the engine and the viewers hear of it, or at a random moment of the run;
/// then restarted. Every run must complete with no stored event lost or doubled, every
/// epoch and step once, and the same numbers as the run never interrupted.
/// `BALANCELAB_FAULT_ROUNDS` sets the number of rounds (default 8).
#[test]
fn runs_survive_their_server_being_killed_at_any_point() {
    use rand::{Rng, SeedableRng};
    let rounds: usize = std::env::var("BALANCELAB_FAULT_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8);
    let config = json!({
        "epochs": 4,
        "batch_size": 32,
        "validation_fraction": 0.2,
        "dataset": {"kind": "synthetic", "train_samples": 1280, "test_samples": 256}
    });
    let train = |failpoint: Option<&str>, random_kill: Option<Duration>| {
        let state = tempfile::tempdir().unwrap();
        let (port, base) = free_address();
        let mut server = serve_with(port, state.path(), None, failpoint);
        let auth = sign_in(&base);
        let run = post_run(&base, &auth, &config);
        let posted = Instant::now();
        let detail_url = format!("{base}/api/runs/{}", run.id);
        // None while the server cannot answer (it may be dying).
        let ended = |auth: &str| {
            let response = ureq::get(&detail_url).header("Authorization", auth).call();
            let detail = response.ok()?.body_mut().read_json::<RunDetail>().ok()?;
            Some(detail.run.status.is_terminal())
        };
        let killed = match random_kill {
            Some(after) => {
                thread::sleep(after);
                let running =
                    matches!(server.0.try_wait(), Ok(None)) && ended(&auth) == Some(false);
                if running {
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{}", server.0.id())])
                        .status();
                    let _ = server.0.wait();
                }
                running
            }
            None => {
                wait_for("the failpoint or the end", Duration::from_secs(180), || {
                    matches!(server.0.try_wait(), Ok(Some(_))) || ended(&auth) == Some(true)
                });
                matches!(server.0.try_wait(), Ok(Some(_)))
            }
        };
        if killed {
            server = serve(port, state.path(), None);
        }
        wait_for("the run to end", Duration::from_secs(180), || {
            ended(&auth) == Some(true)
        });
        let detail: RunDetail = get_json(&detail_url, &auth);
        assert_eq!(
            detail.run.status,
            RunStatus::Completed,
            "{:?}",
            detail.run.error
        );
        let curves = stored_curves(&base, &auth, run.id);
        drop(server);
        (curves, killed, detail.run.attempts, posted.elapsed())
    };

    // Random kills fall within the time the reference run took, from its queueing to its end.
    let (reference, _, _, duration) = train(None, None);
    assert_eq!((reference.epochs.len(), reference.steps.len()), (4, 4 * 32));
    let points = [
        "checkpoint-between-files",
        "checkpoint-before-rename",
        "events-written",
        "random",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut kills = 0;
    for round in 0..rounds {
        let point = points[round % points.len()];
        let pass = rng.random_range(1..=4);
        let (failpoint, random_kill) = match point {
            "random" => (None, Some(duration.mul_f64(rng.random_range(0.0..1.0)))),
            _ => (Some(format!("{point}@{pass}")), None),
        };
        let (curves, killed, attempts, _) = train(failpoint.as_deref(), random_kill);
        eprintln!("round {round}: {point} pass {pass}: killed {killed}, attempts {attempts}");
        if random_kill.is_some() {
            // A random kill may come before the run's claim, or as it ends: the run was
            // then not interrupted, and trains once.
            assert!(attempts <= 1 + u32::from(killed), "round {round}");
        } else {
            assert_eq!(attempts, 1 + u32::from(killed), "round {round}");
        }
        kills += usize::from(attempts == 2);
        assert_eq!(
            curves, reference,
            "round {round} ({point}) changed the numbers"
        );
    }
    eprintln!(
        "{rounds} rounds, {kills} interrupted: every run completed with the reference's numbers"
    );
    assert!(
        kills * 2 >= rounds,
        "most rounds must interrupt the run ({kills} of {rounds})"
    );
}

/// The processes whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    (entries.flatten())
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: the command may hold spaces, not a ')'.
            let parent: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}

/// SIGKILL to a run's training process alone (as the kernel's out-of-memory killer sends):
/// that run fails saying so, and the server goes on serving and training.
#[test]
fn a_killed_training_process_fails_its_run_alone() {
    let state = tempfile::tempdir().unwrap();
    let (port, base) = free_address();
    let server = serve(port, state.path(), None);
    let auth = sign_in(&base);
    let long = json!({
        "epochs": 1000,
        "dataset": {"kind": "synthetic", "train_samples": 2048, "test_samples": 256}
    });
    let run = post_run(&base, &auth, &long);
    let detail_url = format!("{base}/api/runs/{}", run.id);
    wait_for("an epoch", Duration::from_secs(120), || {
        !get_json::<RunDetail>(&detail_url, &auth).epochs.is_empty()
    });
    let children = children_of(server.0.id());
    assert_eq!(children.len(), 1, "one training process: {children:?}");
    let killed = Command::new("kill")
        .args(["-KILL", &children[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for("the run to fail", Duration::from_secs(60), || {
        get_json::<RunDetail>(&detail_url, &auth).run.status == RunStatus::Failed
    });
    let failed: RunDetail = get_json(&detail_url, &auth);
    let error = failed.run.error.unwrap_or_default();
    assert!(error.contains("killed (SIGKILL"), "{error}");

    let next = post_run(&base, &auth, &json!({"epochs": 2}));
    let next_url = format!("{base}/api/runs/{}", next.id);
    wait_for("the next run", Duration::from_secs(120), || {
        get_json::<RunDetail>(&next_url, &auth).run.status == RunStatus::Completed
    });
}
