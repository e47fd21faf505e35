//! A run's checkpoints on a worker, one folder per claim of the run:
//! `{checkpoints}/{run id}/attempt-{fence}/`, numbered by the claim's fencing token.
//!
//! A worker writes only into its own claim's folder, so a worker that lost its run (its
//! heartbeats stopped reaching the store, and it trains on until it notices) never writes
//! where the run's new holder writes. The new holder may resume from the lost worker's folder,
//! whose checkpoints only ever change by an atomic rename (and no longer advance: a lost
//! worker's epochs are not stored, so it checkpoints none). A new claim resumes from the
//! newest earlier folder that holds a last checkpoint; that folder's best checkpoint is linked
//! into the new one (the best epoch may not come again), and every folder older than it is
//! removed. Once the run has ended, [`finish`] removes every folder but its last claim's.
//! Runs checkpointed before claims had folders kept their files in the run's folder itself,
//! which counts as the oldest attempt.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::engine::Checkpoint;

/// Where one claim of a run checkpoints, and what it resumes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The claim's own folder, created and empty but for the linked best checkpoint.
    pub dir: PathBuf,
    /// The newest earlier folder with a last checkpoint, if any.
    pub resume_from: Option<PathBuf>,
}

/// Prepares the folder of the claim with fencing token `fence` of the run whose checkpoints
/// live under `run_dir`.
pub fn start(run_dir: &Path, fence: i64) -> io::Result<Attempt> {
    let mut earlier = earlier_attempts(run_dir, fence)?;
    earlier.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let source = earlier
        .iter()
        .position(|(_, dir)| Checkpoint::Last.exists_in(dir));
    let dir = run_dir.join(format!("attempt-{fence}"));
    if dir.exists() {
        // Left by a start that failed before training: nothing in it is newer than the source.
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let Some(source) = source else {
        return Ok(Attempt {
            dir,
            resume_from: None,
        });
    };
    let resume_from = earlier[source].1.clone();
    for (from, to) in Checkpoint::Best
        .files_in(&resume_from)
        .into_iter()
        .zip(Checkpoint::Best.files_in(&dir))
    {
        if from.exists() {
            fs::hard_link(&from, &to).or_else(|_| fs::copy(&from, &to).map(drop))?;
        }
    }
    for (_, older) in &earlier[source + 1..] {
        remove(run_dir, older)?;
    }
    Ok(Attempt {
        dir,
        resume_from: Some(resume_from),
    })
}

/// Removes the checkpoints of every claim of the run under `run_dir` but claim `fence`'s,
/// whose last and best checkpoints are the run's: once the run has ended, nothing resumes
/// from the others.
pub fn finish(run_dir: &Path, fence: i64) -> io::Result<()> {
    for (_, dir) in earlier_attempts(run_dir, fence)? {
        remove(run_dir, &dir)?;
    }
    Ok(())
}

/// The folders of claims before `fence`, with their numbers; the run folder itself is 0.
fn earlier_attempts(run_dir: &Path, fence: i64) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut found = vec![(0, run_dir.to_owned())];
    let entries = match fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let number = (path.file_name().and_then(|n| n.to_str()))
            .and_then(|n| n.strip_prefix("attempt-"))
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(n) = number.filter(|&n| n > 0 && n < fence) {
            found.push((n, path));
        }
    }
    Ok(found)
}

/// Removes an older attempt's folder; for the run folder itself, only its checkpoint files.
fn remove(run_dir: &Path, dir: &Path) -> io::Result<()> {
    if dir != run_dir {
        return fs::remove_dir_all(dir);
    }
    for which in [Checkpoint::Last, Checkpoint::Best] {
        for file in which.files_in(dir) {
            match fs::remove_file(&file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, which: Checkpoint, text: &str) {
        fs::create_dir_all(dir).unwrap();
        for file in which.files_in(dir) {
            fs::write(file, text).unwrap();
        }
    }

    fn read_last(dir: &Path) -> String {
        fs::read_to_string(&Checkpoint::Last.files_in(dir)[0]).unwrap()
    }

    #[test]
    fn a_first_claim_starts_empty() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("7");
        let attempt = start(&run, 1).unwrap();
        assert_eq!(attempt.dir, run.join("attempt-1"));
        assert!(attempt.dir.is_dir());
        assert_eq!(attempt.resume_from, None);
    }

    #[test]
    fn a_claim_resumes_from_the_newest_earlier_checkpoint_and_keeps_the_best() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("7");
        write(&run.join("attempt-1"), Checkpoint::Last, "epoch 2");
        write(&run.join("attempt-1"), Checkpoint::Best, "best at 1");
        write(&run.join("attempt-2"), Checkpoint::Last, "epoch 4");
        write(&run.join("attempt-2"), Checkpoint::Best, "best at 3");
        // Claim 3 ended before its first checkpoint.
        fs::create_dir_all(run.join("attempt-3")).unwrap();

        let attempt = start(&run, 4).unwrap();
        let source = run.join("attempt-2");
        assert_eq!(attempt.resume_from.as_deref(), Some(source.as_path()));
        assert_eq!(read_last(&source), "epoch 4");
        let best = fs::read_to_string(&Checkpoint::Best.files_in(&attempt.dir)[1]);
        assert_eq!(best.unwrap(), "best at 3");
        assert!(!Checkpoint::Last.exists_in(&attempt.dir));
        assert!(!run.join("attempt-1").exists(), "older than the source");
        assert!(run.join("attempt-3").exists());
    }

    #[test]
    fn checkpoints_from_before_attempt_folders_are_resumed_then_removed() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("7");
        write(&run, Checkpoint::Last, "epoch 3");
        let second = start(&run, 2).unwrap();
        assert_eq!(second.resume_from.as_deref(), Some(run.as_path()));
        write(&second.dir, Checkpoint::Last, "epoch 5");
        let third = start(&run, 3).unwrap();
        assert_eq!(third.resume_from.as_deref(), Some(second.dir.as_path()));
        assert!(!Checkpoint::Last.exists_in(&run), "the old files are gone");
        assert!(second.dir.exists());
        // Ended: only the last claim's checkpoints stay.
        write(&third.dir, Checkpoint::Last, "epoch 8");
        finish(&run, 3).unwrap();
        assert!(!second.dir.exists());
        assert_eq!(read_last(&third.dir), "epoch 8");
    }
}
