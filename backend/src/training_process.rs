//! Training in a child process. Each run a worker claims trains in `balancelab
//! train-process` (a hidden subcommand of the same binary), so that an abort, a panic in a
//! kernel or running out of memory ends that run, with a reason, and never the server that
//! serves everyone else.
//!
//! The protocol, one line each way per message:
//! - worker to child, first: the [`Job`] as JSON;
//! - child to worker: every [`TrainingEvent`] as JSON, as the engine reports it; after an
//!   epoch the child waits for `stored`, so that the checkpoint it writes next never runs
//!   ahead of the stored epochs; `not-stored` instead (the store failed, or the run is no
//!   longer this worker's) ends the child at once, before it checkpoints that epoch, and so
//!   does an event the worker can no longer read (it is gone);
//! - worker to child, at any time: `cancel` (stop between two steps). The end of the
//!   child's input (the worker is gone) cancels too.
//!
//! The child's standard error (its logs, a panic's message) goes on to the worker's; what it
//! said there (an allocation that failed, a panic's message, its last line) explains a child
//! that ended without saying how.

use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use balancelab_shared::RunConfig;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

use crate::engine::{CancelToken, Checkpointing, TrainingEvent};

/// The name of the hidden subcommand.
pub const SUBCOMMAND: &str = "train-process";

/// How often the worker looks for a cancellation to pass on.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// What a child trains.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    /// The run's configuration.
    pub config: RunConfig,
    /// Where real datasets are read from.
    pub data_dir: Option<PathBuf>,
    /// The folder this attempt writes its checkpoints to.
    pub checkpoint_dir: PathBuf,
    /// The folder of the last checkpoint to resume from, if any.
    pub resume_from: Option<PathBuf>,
}

/// How children are started.
#[derive(Clone, Debug)]
pub struct ChildOptions {
    /// The `balancelab` binary.
    pub executable: PathBuf,
    /// The most address space a child training on the CPU may map (`RLIMIT_AS`), in bytes:
    /// a run that asks for more fails alone. GPU runs get no limit (the CUDA driver maps the
    /// GPU's memory into the address space).
    pub memory_limit: Option<u64>,
}

/// One report of the engine to the worker; `stored` (for an epoch) is answered once the
/// worker has tried to store the event: whether it is stored.
pub struct Report {
    /// What the engine reported.
    pub event: TrainingEvent,
    /// Told whether the event is stored, for epochs.
    pub stored: Option<oneshot::Sender<bool>>,
}

/// What the worker answers an epoch with.
enum Answer {
    /// The epoch is stored: checkpoint it and go on.
    Stored,
    /// The epoch could not be stored: stop before checkpointing it.
    NotStored,
}

/// The child's side: trains the job on standard input, reporting on standard output.
pub fn serve() -> anyhow::Result<()> {
    crate::failpoint::kill_parent_too();
    let mut input = BufReader::new(std::io::stdin());
    let mut first = String::new();
    input.read_line(&mut first)?;
    let job: Job = serde_json::from_str(&first)?;
    let cancel = CancelToken::default();
    let (stored_sender, stored) = std_mpsc::channel();
    let listener = cancel.clone();
    std::thread::spawn(move || {
        for line in input.lines() {
            match line.as_deref() {
                Ok("stored") => {
                    let _ = stored_sender.send(Answer::Stored);
                }
                Ok("not-stored") => {
                    let _ = stored_sender.send(Answer::NotStored);
                }
                Ok("cancel") => listener.cancel(),
                _ => break,
            }
        }
        // The worker is gone: nothing more would be stored.
        listener.cancel();
    });
    let mut output = std::io::stdout().lock();
    let checkpointing = Checkpointing {
        dir: Some(&job.checkpoint_dir),
        resume_from: job.resume_from.as_deref(),
    };
    crate::train_run(
        &job.config,
        job.data_dir.as_deref(),
        checkpointing,
        &cancel,
        &mut |event| {
            if report_to_worker(&mut output, &event, &stored).is_break() {
                std::process::exit(0);
            }
        },
    );
    Ok(())
}

/// Reports `event` to the worker and, for an epoch, waits for its answer. `Break` when the
/// child must end at once, before the engine checkpoints what it just reported: the worker
/// is gone (its pipe is closed, or it can no longer answer) or could not store the epoch.
/// The worker has then already decided what becomes of the run, and a checkpoint of an
/// epoch it never stored would make the run's next attempt skip that epoch.
fn report_to_worker(
    output: &mut impl Write,
    event: &TrainingEvent,
    answers: &std_mpsc::Receiver<Answer>,
) -> ControlFlow<()> {
    if report(output, event).is_err() {
        return ControlFlow::Break(());
    }
    if matches!(event, TrainingEvent::Epoch(_)) && !matches!(answers.recv(), Ok(Answer::Stored)) {
        let _ = report(output, &TrainingEvent::Cancelled);
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(())
}

/// One event as a line of JSON on `output`.
fn report(output: &mut impl Write, event: &TrainingEvent) -> std::io::Result<()> {
    let line = serde_json::to_string(event).expect("events serialize");
    writeln!(output, "{line}")?;
    output.flush()
}

/// The worker's side: trains `job` in a child process, sending every event to `reports`.
/// The last report is always a terminal event: the child's, or a failure that says how the
/// child ended.
pub async fn train(
    options: &ChildOptions,
    job: Job,
    cancel: CancelToken,
    reports: mpsc::Sender<Report>,
) {
    let on_gpu = job.config.device.is_cuda();
    let failure = match run_child(options, &job, on_gpu, &cancel, &reports).await {
        Ok(None) => return,
        Ok(Some(error)) | Err(error) => error,
    };
    let event = TrainingEvent::Failed { error: failure };
    let _ = reports
        .send(Report {
            event,
            stored: None,
        })
        .await;
}

/// Runs the child to its end; `Ok(Some(reason))` when it ended without a terminal event.
async fn run_child(
    options: &ChildOptions,
    job: &Job,
    on_gpu: bool,
    cancel: &CancelToken,
    reports: &mpsc::Sender<Report>,
) -> Result<Option<String>, String> {
    let mut child =
        start(options, on_gpu).map_err(|e| format!("the training process could not start: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let said = Arc::new(Mutex::new(Said::default()));
    let relay = tokio::spawn(relay_stderr(stderr, said.clone()));

    let job_line = serde_json::to_string(job).expect("a job serializes") + "\n";
    // A child that dies at once closes its input; how it ended is what matters then.
    let _ = stdin.write_all(job_line.as_bytes()).await;
    let mut lines = AsyncBufReader::new(stdout).lines();
    let mut poll = tokio::time::interval(CANCEL_POLL);
    let mut cancel_sent = false;
    let mut ended = false;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let event: TrainingEvent = serde_json::from_str(&line)
                    .map_err(|e| format!("the training process reported {line:?}: {e}"))?;
                ended |= matches!(
                    event,
                    TrainingEvent::Finished(_) | TrainingEvent::Cancelled | TrainingEvent::Failed { .. }
                );
                forward(event, reports, &mut stdin).await;
            }
            _ = poll.tick() => {
                if cancel.is_cancelled() && !cancel_sent {
                    cancel_sent = true;
                    let _ = stdin.write_all(b"cancel\n").await;
                }
            }
        }
    }
    drop(stdin);
    let status = child
        .wait()
        .await
        .map_err(|e| format!("the training process could not be waited for: {e}"))?;
    let _ = relay.await;
    if ended {
        return Ok(None);
    }
    let said = said.lock().unwrap();
    let limit = options.memory_limit.filter(|_| !on_gpu);
    Ok(Some(how_it_ended(status, limit, &said)))
}

/// Passes `event` on; for an epoch, waits until it is stored and tells the child.
async fn forward(event: TrainingEvent, reports: &mpsc::Sender<Report>, stdin: &mut ChildStdin) {
    let (stored, written) = match event {
        TrainingEvent::Epoch(_) => {
            let (sender, receiver) = oneshot::channel();
            (Some(sender), Some(receiver))
        }
        _ => (None, None),
    };
    // The recorder only goes away if this worker is being torn down.
    if reports.send(Report { event, stored }).await.is_ok() {
        if let Some(written) = written {
            let answer: &[u8] = match written.await {
                Ok(true) => b"stored\n",
                _ => b"not-stored\n",
            };
            let _ = stdin.write_all(answer).await;
        }
    }
}

/// The child process, in a process group of its own (a Ctrl-C in the server's terminal is
/// for the server, which then stops its runs through their input and gives them back), its
/// address space limited when it trains on the CPU.
fn start(options: &ChildOptions, on_gpu: bool) -> std::io::Result<Child> {
    let mut command = Command::new(&options.executable);
    command
        .arg(SUBCOMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let limit = options.memory_limit.filter(|_| !on_gpu);
    // SAFETY: setpgid and setrlimit are async-signal-safe, and nothing else runs between
    // fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(limit) = limit {
                let limit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command.spawn()
}

/// What the child's standard error said that explains how it ended.
#[derive(Debug, Default)]
struct Said {
    /// Rust's "memory allocation of N bytes failed" before its abort.
    allocation_failed: bool,
    /// A panic's location and message (the line after "panicked at").
    panic: Option<String>,
    /// The last line that was not part of a backtrace.
    last: Option<String>,
}

impl Said {
    fn hear(&mut self, line: &str) {
        if line.starts_with("memory allocation of") && line.ends_with("failed") {
            self.allocation_failed = true;
        }
        if let Some(panic) = &mut self.panic {
            if !panic.contains('\n') {
                panic.push('\n');
                panic.push_str(line);
            }
        } else if line.contains("panicked at") {
            self.panic = Some(line.to_owned());
        }
        let backtrace = line.starts_with(' ')
            || line.starts_with("stack backtrace:")
            || line.starts_with("note: ");
        if !backtrace && !line.is_empty() {
            self.last = Some(line.to_owned());
        }
    }
}

/// Copies the child's standard error to ours, noting what explains how it ended.
async fn relay_stderr(stderr: tokio::process::ChildStderr, said: Arc<Mutex<Said>>) {
    let mut lines = AsyncBufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("{line}");
        said.lock().unwrap().hear(&line);
    }
}

/// Why a child that ended without a terminal event ended, for the run's error.
fn how_it_ended(status: ExitStatus, memory_limit: Option<u64>, said: &Said) -> String {
    use std::os::unix::process::ExitStatusExt;
    let mut reason = match (status.signal(), status.code()) {
        _ if said.allocation_failed => match memory_limit {
            Some(limit) => format!(
                "the run needed more memory than a run may use here ({:.1} GiB, the \
                 worker's --memory-budget)",
                limit as f64 / f64::from(1 << 30)
            ),
            None => "the run needed more memory than the machine has".to_owned(),
        },
        (Some(libc::SIGKILL), _) => {
            "the training process was killed (SIGKILL; most often the system's out-of-memory \
             killer)"
                .to_owned()
        }
        (Some(signal), _) => format!("the training process crashed (signal {signal})"),
        (None, Some(code)) => format!("the training process exited with status {code}"),
        (None, None) => "the training process ended without saying how".to_owned(),
    };
    if !said.allocation_failed {
        if let Some(explanation) = said.panic.as_ref().or(said.last.as_ref()) {
            reason.push_str(": ");
            reason.push_str(&explanation.replace('\n', " "));
        }
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn epoch() -> TrainingEvent {
        TrainingEvent::Epoch(balancelab_shared::EpochMetrics {
            epoch: 1,
            train_loss: 1.0,
            coefficients: vec![1.0, 1.0],
            confidences: vec![0.5, 0.5],
            gradient_norms: vec![0.1, 0.2],
            learning_rate: 0.01,
            train: Default::default(),
            validation: None,
            test: Default::default(),
            solo_accuracy: vec![0.5, 0.5],
            elapsed_seconds: 1.0,
            steps: 10,
        })
    }

    /// A pipe whose reader is gone.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    /// The child goes on to checkpoint an epoch only when the worker said it is stored.
    #[test]
    fn an_epoch_goes_on_only_once_stored() {
        let answered = |answer: Option<Answer>| {
            let (sender, answers) = std_mpsc::channel();
            if let Some(answer) = answer {
                sender.send(answer).unwrap();
            } else {
                drop(sender);
            }
            let mut output = Vec::new();
            let next = report_to_worker(&mut output, &epoch(), &answers);
            let lines = String::from_utf8(output).unwrap();
            (next, lines.lines().count())
        };
        assert_eq!(
            answered(Some(Answer::Stored)),
            (ControlFlow::Continue(()), 1)
        );
        // The second line says the child cancelled.
        assert_eq!(
            answered(Some(Answer::NotStored)),
            (ControlFlow::Break(()), 2)
        );
        // The worker's side of the input is closed: no answer will come.
        assert_eq!(answered(None), (ControlFlow::Break(()), 2));

        // The worker is gone when the epoch is reported (it was killed during the epoch's
        // evaluation): the child ends there, before the checkpoint, without waiting.
        let (sender, answers) = std_mpsc::channel();
        sender.send(Answer::Stored).unwrap();
        let next = report_to_worker(&mut Closed, &epoch(), &answers);
        assert_eq!(next, ControlFlow::Break(()));
        assert!(answers.try_recv().is_ok(), "no answer was read");
    }

    #[test]
    fn endings_are_explained() {
        let said = |lines: &[&str]| {
            let mut said = Said::default();
            lines.iter().for_each(|line| said.hear(line));
            said
        };
        // With RUST_BACKTRACE set, a backtrace follows the allocation failure.
        let oom = said(&[
            "memory allocation of 6553600000 bytes failed",
            "stack backtrace:",
            "   0: std::backtrace",
        ]);
        let oom = how_it_ended(ExitStatus::from_raw(libc::SIGABRT), Some(2 << 30), &oom);
        assert!(
            oom.contains("2.0 GiB") && oom.contains("--memory-budget"),
            "{oom}"
        );
        let killed = how_it_ended(ExitStatus::from_raw(libc::SIGKILL), None, &said(&[]));
        assert!(killed.contains("out-of-memory killer"), "{killed}");
        let panicked = said(&[
            "2026-12-03T10:00:00Z  INFO balancelab: loaded the dataset",
            "thread 'main' panicked at kernel.rs:3:5:",
            "boom",
            "note: run with `RUST_BACKTRACE=1` to display a backtrace",
        ]);
        let exited = how_it_ended(ExitStatus::from_raw(101 << 8), None, &panicked);
        assert_eq!(
            exited,
            "the training process exited with status 101: thread 'main' panicked at \
             kernel.rs:3:5: boom"
        );
    }
}
