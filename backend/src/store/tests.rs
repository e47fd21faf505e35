//! Run with `BALANCELAB_TEST_DATABASE_URL=postgres://...` to check PostgreSQL; scripts/test
//! does both.

use balancelab_shared::{
    EpochMetrics, MethodConfig, RunConfig, RunEvent, RunPatch, RunQuery, RunSort, RunStatus,
    SortOrder, SplitScores, StepMetrics,
};

use super::*;

fn epoch(n: u32, accuracy: f64) -> EpochMetrics {
    EpochMetrics {
        epoch: n,
        train_loss: 1.0 / n as f64,
        coefficients: vec![0.9, 1.1],
        confidences: vec![0.5, 0.3],
        gradient_norms: vec![0.1, 0.2],
        learning_rate: 0.01,
        train: SplitScores::default(),
        validation: None,
        test: SplitScores {
            fused: accuracy,
            unimodal: vec![0.4, 0.1 * n as f64],
            fused_macro_f1: 0.45,
            fused_loss: 1.2,
            unimodal_macro_f1: vec![0.35, 0.15],
        },
        solo_accuracy: vec![0.5, 0.1],
        elapsed_seconds: n as f64,
        steps: 10 * u64::from(n),
    }
}

fn step(n: u64) -> StepMetrics {
    StepMetrics {
        epoch: 1,
        step: n,
        loss: 2.0 - n as f64 * 0.01,
        fused_loss: 1.0,
        unimodal_losses: vec![1.0, 1.5],
        coefficients: vec![1.0, 1.0],
        confidences: vec![0.3, 0.2],
        gradient_norms: vec![0.1, 0.1],
        learning_rate: 0.01,
        elapsed_seconds: n as f64 * 0.1,
    }
}

/// Every step of run `id`, read page by page.
async fn all_steps(store: &Store, id: i64) -> Result<Vec<StepMetrics>> {
    let mut pages = store.step_pages(id).await?;
    let mut steps = Vec::new();
    loop {
        let page = store.next_steps(&mut pages).await?;
        if page.is_empty() {
            return Ok(steps);
        }
        steps.extend(page);
    }
}

/// A scratch store with one user, owner of one project.
async fn setup() -> Result<(Store, i64, i64)> {
    let store = Store::scratch().await?;
    let user = store
        .create_user("owner", "not a real hash", false)
        .await?
        .unwrap();
    let project = store.create_project("p", user.id).await?.unwrap();
    Ok((store, project.id, user.id))
}

fn status(status: RunStatus) -> RunEvent {
    RunEvent::Status {
        status,
        error: None,
    }
}

#[tokio::test]
async fn runs_and_their_event_logs_round_trip() -> Result<()> {
    let (store, project, _) = setup().await?;
    let run = store.create_run(&RunConfig::default(), project).await?;
    assert_eq!((run.status, run.epochs_done), (RunStatus::Queued, 0));
    assert_eq!(run.config, RunConfig::default());
    let events = [
        RunEvent::Step(Box::new(step(0))),
        RunEvent::Step(Box::new(step(1))),
        RunEvent::Epoch(Box::new(epoch(1, 0.5))),
        RunEvent::Epoch(Box::new(epoch(2, 0.25))),
    ];
    let logged = store.append_events(run.id, &events).await?;
    assert_eq!(
        logged.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(store.epochs(run.id).await?, [epoch(1, 0.5), epoch(2, 0.25)]);
    // Several runs' epochs in one read, in the order asked for: none for a run without any
    // (or unknown), a run asked for twice given twice.
    let empty = store.create_run(&RunConfig::default(), project).await?;
    let both = store
        .epochs_of_runs(&[empty.id, run.id, 9999, run.id])
        .await?;
    let logged_epochs = vec![epoch(1, 0.5), epoch(2, 0.25)];
    assert_eq!(both, [vec![], logged_epochs.clone(), vec![], logged_epochs]);
    assert!(store.delete_run(empty.id).await?);
    assert_eq!(all_steps(&store, run.id).await?, [step(0), step(1)]);
    let after = store.events_after(run.id, 2, 10).await?;
    assert_eq!(after, logged[2..]);
    assert_eq!(store.last_seq(run.id).await?, 4);
    let stored = store.get_run(run.id).await?.unwrap();
    // The best accuracy is kept, not the last.
    assert_eq!((stored.epochs_done, stored.best_accuracy), (2, Some(0.5)));
    // The heads' accuracies are those of the best epoch; the pace is the last epoch's.
    assert_eq!(stored.best_unimodal, [0.4, 0.1]);
    assert_eq!(stored.elapsed_seconds, Some(2.0));
    let point = store.resume_point(run.id).await?;
    assert_eq!(
        point,
        ResumePoint {
            epoch: 2,
            step: Some(1)
        }
    );
    assert!(point.covers(&RunEvent::Step(Box::new(step(1)))));
    assert!(!point.covers(&RunEvent::Step(Box::new(step(2)))));
    assert!(store.get_run(run.id + 1).await?.is_none());
    // A large batch (more rows than one INSERT holds) keeps its order.
    let many: Vec<RunEvent> = (2..503)
        .map(|n| RunEvent::Step(Box::new(step(n))))
        .collect();
    store.append_events(run.id, &many).await?;
    let steps = all_steps(&store, run.id).await?;
    assert_eq!(steps.len(), 503);
    assert!(steps.windows(2).all(|w| w[0].step + 1 == w[1].step));
    // Read in pages: the same steps, and none stored after the read began.
    let mut pages = store.step_pages(run.id).await?;
    assert_eq!(pages.total, 503);
    let later: Vec<RunEvent> = (503..3000)
        .map(|n| RunEvent::Step(Box::new(step(n))))
        .collect();
    store.append_events(run.id, &later).await?;
    let mut paged = Vec::new();
    loop {
        let page = store.next_steps(&mut pages).await?;
        if page.is_empty() {
            break;
        }
        paged.extend(page);
    }
    assert_eq!(paged, steps, "none stored after the read began");
    let mut pages = store.step_pages(run.id).await?;
    assert_eq!(pages.total, 3000);
    assert_eq!(
        store.next_steps(&mut pages).await?.len(),
        2000,
        "a full page"
    );
    Ok(())
}

#[tokio::test]
async fn the_queue_hands_each_run_to_one_worker_in_order() -> Result<()> {
    let (store, project, _) = setup().await?;
    let a = store.create_run(&RunConfig::default(), project).await?;
    let b = store.create_run(&RunConfig::default(), project).await?;
    let first = store.claim_next("w1").await?.unwrap();
    let second = store.claim_next("w2").await?.unwrap();
    assert_eq!((first.run.id, second.run.id), (a.id, b.id));
    assert_eq!(first.run.status, RunStatus::Running);
    assert_eq!(
        (first.run.worker.as_deref(), first.run.attempts),
        (Some("w1"), 1)
    );
    assert!(store.claim_next("w3").await?.is_none());

    let (w1, w2) = (&first.lease, &second.lease);
    assert_eq!(store.heartbeat(a.id, w1).await?, Heartbeat::Continue);
    assert_eq!(store.heartbeat(a.id, w2).await?, Heartbeat::Lost);
    assert_eq!(store.request_cancel(a.id).await?, Cancellation::Requested);
    assert_eq!(store.heartbeat(a.id, w1).await?, Heartbeat::Cancel);
    // Only the holder may finish a run.
    assert!(!store.finish(a.id, w2, RunStatus::Completed, None).await?);
    assert!(store.finish(a.id, w1, RunStatus::Cancelled, None).await?);
    assert!(
        store
            .finish(b.id, w2, RunStatus::Failed, Some("boom"))
            .await?
    );
    let b = store.get_run(b.id).await?.unwrap();
    assert_eq!(
        (b.status, b.error.as_deref(), b.worker),
        (RunStatus::Failed, Some("boom"), None)
    );
    assert_eq!(store.request_cancel(b.id).await?, Cancellation::NotActive);

    // Each status change is in the run's log, in order.
    let log = store.events_after(a.id, 0, 10).await?;
    let statuses: Vec<RunEvent> = log
        .iter()
        .map(|e| serde_json::from_str(&e.json).unwrap())
        .collect();
    assert_eq!(
        statuses,
        [status(RunStatus::Running), status(RunStatus::Cancelled)]
    );

    let queued = store.create_run(&RunConfig::default(), project).await?;
    assert_eq!(
        store.request_cancel(queued.id).await?,
        Cancellation::Cancelled
    );
    assert!(store.claim_next("w1").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_silent_worker_loses_its_run_to_the_queue_then_the_run_fails() -> Result<()> {
    let (store, project, _) = setup().await?;
    let run = store.create_run(&RunConfig::default(), project).await?;
    let w1 = store.claim_next("w1").await?.unwrap().lease;
    // Fresh heartbeat: not stale yet.
    assert!(store.requeue_stale(60_000, 2).await?.is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    assert_eq!(
        store.requeue_stale(10, 2).await?,
        [(run.id, RunStatus::Queued)]
    );
    assert_eq!(store.heartbeat(run.id, &w1).await?, Heartbeat::Lost);
    assert!(
        !store
            .finish(run.id, &w1, RunStatus::Completed, None)
            .await?
    );

    let again = store.claim_next("w2").await?.unwrap();
    assert_eq!(again.run.attempts, 2);
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    assert_eq!(
        store.requeue_stale(10, 2).await?,
        [(run.id, RunStatus::Failed)]
    );
    let failed = store.get_run(run.id).await?.unwrap();
    assert!(failed.error.unwrap().contains("stopped responding 2 times"));

    // Given back on shutdown: queued again without using up an attempt.
    let other = store.create_run(&RunConfig::default(), project).await?;
    let lease = store.claim_next("w1").await?.unwrap().lease;
    assert!(
        store
            .finish(other.id, &lease, RunStatus::Queued, None)
            .await?
    );
    let other = store.get_run(other.id).await?.unwrap();
    assert_eq!((other.status, other.attempts), (RunStatus::Queued, 0));

    // Given back because the start could not work: the attempt stays counted.
    let lease = store.claim_next("w1").await?.unwrap().lease;
    let error = Some("its stored progress could not be read");
    assert!(
        store
            .finish(other.id, &lease, RunStatus::Queued, error)
            .await?
    );
    let other = store.get_run(other.id).await?.unwrap();
    assert_eq!((other.status, other.attempts), (RunStatus::Queued, 1));
    Ok(())
}

#[tokio::test]
async fn a_worker_that_lost_its_run_writes_nothing_even_after_claiming_it_again() -> Result<()> {
    let (store, project, _) = setup().await?;
    let run = store.create_run(&RunConfig::default(), project).await?;
    let old = store.claim_next("w1").await?.unwrap().lease;
    let epoch_1 = [RunEvent::Epoch(Box::new(epoch(1, 0.5)))];
    assert!(store
        .append_held_events(run.id, &old, &epoch_1)
        .await?
        .is_some());
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    store.requeue_stale(10, 3).await?;
    // The same worker name claims it again, under a new fence.
    let new = store.claim_next("w1").await?.unwrap().lease;
    assert_eq!((new.worker.as_str(), new.fence), ("w1", old.fence + 1));
    let late = [RunEvent::Epoch(Box::new(epoch(2, 0.6)))];
    assert_eq!(store.append_held_events(run.id, &old, &late).await?, None);
    assert_eq!(store.heartbeat(run.id, &old).await?, Heartbeat::Lost);
    assert!(
        !store
            .finish(run.id, &old, RunStatus::Failed, Some("late"))
            .await?
    );
    let stored = store.get_run(run.id).await?.unwrap();
    assert_eq!((stored.status, stored.epochs_done), (RunStatus::Running, 1));

    assert!(store
        .append_held_events(run.id, &new, &late)
        .await?
        .is_some());
    assert!(
        store
            .finish(run.id, &new, RunStatus::Completed, None)
            .await?
    );
    assert_eq!(store.get_run(run.id).await?.unwrap().epochs_done, 2);
    Ok(())
}

/// Three runs: joint (accuracy 0.9), mlb (no epoch yet), joint (0.7), seeds 0 to 2.
async fn three_runs(store: &Store, project: i64) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    for (i, method) in [
        MethodConfig::Joint,
        MethodConfig::Mlb(Default::default()),
        MethodConfig::Joint,
    ]
    .into_iter()
    .enumerate()
    {
        let config = RunConfig {
            method,
            seed: i as u64,
            ..RunConfig::default()
        };
        ids.push(store.create_run(&config, project).await?.id);
    }
    store
        .append_events(ids[0], &[RunEvent::Epoch(Box::new(epoch(1, 0.9)))])
        .await?;
    store
        .append_events(ids[2], &[RunEvent::Epoch(Box::new(epoch(1, 0.7)))])
        .await?;
    Ok(ids)
}

/// The ids of the page `user` gets for `query`, and the total.
async fn listed(store: &Store, user: i64, query: RunQuery) -> Result<(Vec<i64>, u64)> {
    let page = store.list_runs(&query, user).await?;
    Ok((page.runs.iter().map(|r| r.id).collect(), page.total))
}

#[tokio::test]
async fn runs_are_filtered_sorted_paged_tagged_and_deleted() -> Result<()> {
    let (store, project, user) = setup().await?;
    let ids = three_runs(&store, project).await?;
    let patch = RunPatch {
        tags: Some(vec!["sweep-1".into(), "baseline".into(), "sweep-1".into()]),
        note: Some("Joint training, Seed zero".into()),
    };
    let tagged = store.patch_run(ids[0], &patch).await?.unwrap();
    assert_eq!(tagged.tags, ["baseline", "sweep-1"]);
    assert!(store.patch_run(999_999, &patch).await?.is_none());

    let list = |query: RunQuery| listed(&store, user, query);
    assert_eq!(
        list(RunQuery::default()).await?,
        (vec![ids[2], ids[1], ids[0]], 3)
    );
    let joint = RunQuery {
        method: Some("joint".into()),
        order: SortOrder::Asc,
        ..RunQuery::default()
    };
    assert_eq!(list(joint).await?, (vec![ids[0], ids[2]], 2));
    let by_accuracy = RunQuery {
        sort: RunSort::BestAccuracy,
        ..RunQuery::default()
    };
    assert_eq!(list(by_accuracy).await?.0, [ids[0], ids[2], ids[1]]);
    let tag = RunQuery {
        tag: Some("baseline".into()),
        ..RunQuery::default()
    };
    assert_eq!(list(tag).await?, (vec![ids[0]], 1));
    let search = RunQuery {
        search: Some("SEED ZERO".into()),
        ..RunQuery::default()
    };
    assert_eq!(list(search).await?, (vec![ids[0]], 1));
    let page = RunQuery {
        limit: 1,
        offset: 1,
        ..RunQuery::default()
    };
    assert_eq!(list(page).await?, (vec![ids[1]], 3));
    let status = RunQuery {
        status: Some(RunStatus::Running),
        ..RunQuery::default()
    };
    assert_eq!(list(status).await?, (vec![], 0));

    // A running run is not deleted; a queued one goes with its events and tags.
    store.claim_next("w1").await?;
    assert!(!store.delete_run(ids[0]).await?);
    assert!(store.delete_run(ids[2]).await?);
    assert!(store.get_run(ids[2]).await?.is_none());
    assert!(store.events_after(ids[2], 0, 10).await?.is_empty());
    assert!(!store.delete_run(ids[2]).await?);
    Ok(())
}

#[tokio::test]
async fn a_database_of_the_previous_schema_is_migrated_with_its_epochs() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        // The schema as the first release left it, with one run and two epochs.
        let url = format!("sqlite:{}?mode=rwc", path.display());
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new().connect(&url).await?;
        // The first release's migrations folder held only 0001.
        let first_release = tempfile::tempdir().unwrap();
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        std::fs::copy(
            folder.join("0001_runs.sql"),
            first_release.path().join("0001_runs.sql"),
        )
        .unwrap();
        sqlx::migrate::Migrator::new(first_release.path())
            .await?
            .run(&pool)
            .await?;
        let config = serde_json::to_string(&RunConfig::default()).unwrap();
        sqlx::query("INSERT INTO runs (config, status) VALUES ($1, 'completed')")
            .bind(config)
            .execute(&pool)
            .await?;
        for n in [1, 2] {
            let json = serde_json::to_string(&epoch(n, 0.5)).unwrap();
            sqlx::query("INSERT INTO epoch_metrics (run_id, epoch, metrics) VALUES (1, $1, $2)")
                .bind(i64::from(n))
                .bind(json)
                .execute(&pool)
                .await?;
        }
        pool.close().await;
    }
    let store = Store::open(&path).await?;
    // The first start after the upgrade makes the admin and the project `default`, which
    // takes the older runs.
    crate::auth::bootstrap(&store, Some("admin password")).await?;
    let (admin, _) = store.user_by_name("admin").await?.unwrap();
    let run = store.get_run(1).await?.unwrap();
    assert_eq!((run.status, run.epochs_done), (RunStatus::Completed, 2));
    assert_eq!(store.epochs(1).await?, [epoch(1, 0.5), epoch(2, 0.5)]);
    assert_eq!(store.last_seq(1).await?, 2);
    assert_eq!(run.project_id, store.projects_of(admin.id).await?[0].id);
    let query = RunQuery {
        method: Some(RunConfig::default().method.name().into()),
        ..RunQuery::default()
    };
    assert_eq!(store.list_runs(&query, admin.id).await?.total, 1);
    Ok(())
}

/// A SQLite store copied while open, then opened as a store: the same runs and metrics; a
/// PostgreSQL store points to pg_dump. SQLite commits are durable (`synchronous = FULL`).
#[tokio::test]
async fn a_backup_restores_every_run_and_metric() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup.sqlite");
    let scratch = Store::scratch().await?;
    if scratch.dialect != Dialect::Sqlite {
        let error = scratch.backup(&out).await.unwrap_err().to_string();
        assert!(error.contains("pg_dump"), "{error}");
        return Ok(());
    }
    // A file, as the server keeps it.
    let store = Store::open(&dir.path().join("balancelab.sqlite")).await?;
    let user = store.create_user("owner", "hash", false).await?.unwrap();
    let project = store.create_project("p", user.id).await?.unwrap().id;
    let run = store.create_run(&RunConfig::default(), project).await?;
    let events = [
        RunEvent::Step(Box::new(step(1))),
        RunEvent::Epoch(Box::new(epoch(1, 0.5))),
    ];
    store.append_events(run.id, &events).await?;
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&store.pool)
        .await?;
    assert_eq!(synchronous, 2, "FULL");
    store.backup(&out).await?;
    assert!(out.exists(), "{}", out.display());
    let error = store.backup(&out).await.unwrap_err().to_string();
    assert!(error.contains("exists"), "{error}");

    let restored = Store::open(&out).await?;
    let copy = restored.get_run(run.id).await?.unwrap();
    assert_eq!((copy.config, copy.epochs_done), (run.config, 1));
    assert_eq!(
        all_steps(&restored, run.id).await?,
        all_steps(&store, run.id).await?
    );
    assert_eq!(restored.epochs(run.id).await?, store.epochs(run.id).await?);
    Ok(())
}

/// A project never loses its last owner, also when two owners demote each other at once.
#[tokio::test]
async fn a_project_keeps_an_owner_whatever_changes_race() -> Result<()> {
    use balancelab_shared::Role;
    let (store, project, _) = setup().await?;
    let second = store.create_user("second", "hash", false).await?.unwrap();
    assert_eq!(
        store.set_member(project, "owner", Role::Editor).await?,
        MemberChange::LastOwner
    );
    assert_eq!(
        store.remove_member(project, "owner").await?,
        MemberChange::LastOwner
    );
    assert_eq!(
        store.set_member(project, &second.name, Role::Owner).await?,
        MemberChange::Done
    );
    for _ in 0..5 {
        let (a, b) = tokio::join!(
            store.set_member(project, "owner", Role::Viewer),
            store.set_member(project, "second", Role::Viewer),
        );
        let mut outcomes = [a?, b?];
        outcomes.sort_by_key(|o| *o == MemberChange::Done);
        assert_eq!(outcomes, [MemberChange::LastOwner, MemberChange::Done]);
        let owners = (store.members(project).await?.iter())
            .filter(|m| m.role == Role::Owner)
            .count();
        assert_eq!(owners, 1);
        // Both owners again for the next round.
        for name in ["owner", "second"] {
            store.set_member(project, name, Role::Owner).await?;
        }
    }
    assert_eq!(
        store.set_member(project, "nobody", Role::Viewer).await?,
        MemberChange::NoSuchMember
    );
    Ok(())
}
