//! Fault injection for tests: with `BALANCELAB_FAILPOINTS=name@n` (several separated by
//! commas), the n-th time this process passes [`hit`]`("name")` it kills its process group
//! with SIGKILL, and a training process kills the worker that started it too: as a crash of
//! the machine or `kill -9` of the server and its training processes would, at exactly that
//! point (between a checkpoint's two files, say). Without the variable (as always outside
//! tests) a pass costs one read of a value set once per process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

/// In a training process, the worker that started it (0: not a training process).
static WORKER: AtomicI32 = AtomicI32::new(0);

/// Marks this process as a run's training process: a failpoint kills its worker too.
pub fn kill_parent_too() {
    // SAFETY: getppid(2) touches no memory.
    WORKER.store(unsafe { libc::getppid() }, Ordering::Relaxed);
}

/// The points this process dies at, and how many times each has been passed.
struct Plan {
    deaths: HashMap<String, u64>,
    passes: Mutex<HashMap<String, u64>>,
}

fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        let spec = std::env::var("BALANCELAB_FAILPOINTS").unwrap_or_default();
        let deaths = (spec.split(','))
            .filter_map(|point| {
                let (name, n) = point.trim().split_once('@')?;
                Some((name.to_owned(), n.parse().ok()?))
            })
            .collect();
        Plan {
            deaths,
            passes: Mutex::default(),
        }
    })
}

/// Passes failpoint `name`: kills this process group if this is the pass it dies at.
pub fn hit(name: &str) {
    let plan = plan();
    let Some(&death) = plan.deaths.get(name) else {
        return;
    };
    let mut passes = plan.passes.lock().unwrap_or_else(|e| e.into_inner());
    let pass = passes.entry(name.to_owned()).or_default();
    *pass += 1;
    if *pass == death {
        tracing::warn!(
            failpoint = name,
            pass = death,
            "failpoint: killing the process group"
        );
        let worker = WORKER.load(Ordering::Relaxed);
        // SAFETY: getppid(2) and kill(2) touch no memory; pid 0 is this process's group.
        unsafe {
            // Only the worker that started this process: not whoever adopted it since.
            if worker > 1 && libc::getppid() == worker {
                libc::kill(worker, libc::SIGKILL);
            }
            libc::kill(0, libc::SIGKILL);
        }
    }
}
