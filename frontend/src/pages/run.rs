//! One run: its configuration and its modality contribution curves, live while it trains.

use balancelab_shared::{
    AvDigitsSplit, CoefficientTarget, CremaDSplit, DatasetConfig, EpochChoice, EpochMetrics,
    OptimizerConfig, Role, Run, RunConfig, RunEvent, ScheduleConfig, SplitConfig, SplitScores,
    Ucf101Modalities,
};
use futures::channel::oneshot;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::share_dialog::ShareDialog;
use super::{method_and_settings, QuerySelect, StatusBadge};
use crate::api::{self, LiveStream};
use crate::chart::{LineChart, Series, FUSED_COLOR, MODALITY_COLORS};

/// `/runs/ID`, or `/runs/ID?share=TOKEN` through a share link.
#[component]
pub(crate) fn RunPage() -> impl IntoView {
    let params = use_params_map();
    // A share link is this page with `?share=TOKEN`: the same view, read-only.
    let query = use_query_map();
    // Re-created when the id changes, so the previous run's live stream is closed; a memo,
    // so that other settings in the URL (smoothing, x axis) do not rebuild the page.
    let opened = Memo::new(move |_| {
        let id = params
            .read()
            .get("id")
            .and_then(|id| id.parse::<i64>().ok());
        id.map(|id| (id, query.read().get("share")))
    });
    move || match opened.get() {
        Some((id, share)) => view! { <RunView id share /> }.into_any(),
        None => view! { <p>"That is not a run id."</p> }.into_any(),
    }
}

/// Run `id`: loaded, then followed live until it ends.
#[component]
fn RunView(id: i64, share: Option<String>) -> impl IntoView {
    let shared = share.is_some();
    let step_share = share.clone();
    let run = RwSignal::new(None::<Run>);
    let epochs = RwSignal::new(Vec::<EpochMetrics>::new());
    let problem = RwSignal::new(None::<String>);

    let (stop, stopped) = oneshot::channel::<()>();
    on_cleanup(move || {
        let _ = stop.send(());
    });
    spawn_local(async move {
        let follow = follow_run(id, share, run, epochs, problem);
        futures::pin_mut!(follow);
        futures::future::select(follow, stopped).await;
    });

    let names = Signal::derive(move || {
        run.with(|r| {
            r.as_ref()
                .map(|r| r.config.dataset.modality_names())
                .unwrap_or_default()
        })
    });
    let planned =
        Signal::derive(move || run.with(|r| r.as_ref().map_or(1.0, |r| r.config.epochs as f64)));
    // Editors of the run's project change its tags and note, and delete it.
    // Not asked through a share link: a visitor who is not signed in would be sent to sign in.
    let projects = LocalResource::new(move || async move {
        match shared {
            true => Ok(Vec::new()),
            false => api::list_projects().await,
        }
    });
    let editable = Signal::derive(move || {
        let project = run.with(|r| r.as_ref().map(|r| r.project_id));
        let projects = projects.get().and_then(Result::ok).unwrap_or_default();
        !shared
            && projects
                .iter()
                .any(|p| Some(p.id) == project && p.role >= Role::Editor)
    });
    view! {
        <RunHeader id shared editable run epochs problem />
        <super::run_notes::RunNotes run editable />
        <EpochCharts id epochs names planned />
        <super::step_curves::StepCurves id share=step_share.clone() names epochs />
        <RunLog id share=step_share run epochs />
    }
}

/// The run's title and status, what may be done with it (cancel, clone and edit, share),
/// the page's problem if any, and the run's summary.
#[component]
fn RunHeader(
    id: i64,
    /// Opened through a read-only share link.
    shared: bool,
    /// The caller may change and delete the run.
    editable: Signal<bool>,
    run: RwSignal<Option<Run>>,
    epochs: RwSignal<Vec<EpochMetrics>>,
    problem: RwSignal<Option<String>>,
) -> impl IntoView {
    // A memo, so the share dialog is made once, not again at every status change.
    let project_id = Memo::new(move |_| run.with(|r| r.as_ref().map(|r| r.project_id)));
    let active = move || run.with(|r| r.as_ref().is_some_and(|r| !r.status.is_terminal()));
    let cancelling = RwSignal::new(false);
    // The run ends as `cancelled` through its event stream; only a refusal is shown here.
    let cancel = move |_| {
        let window = web_sys::window().expect("a browser window");
        let asked = "Cancel this run? It stops between two steps; its finished epochs are kept.";
        if !window.confirm_with_message(asked).unwrap_or(false) {
            return;
        }
        cancelling.set(true);
        spawn_local(async move {
            if let Err(api::ApiFailure(e)) = api::cancel_run(id).await {
                problem.set(Some(e.message));
                cancelling.set(false);
            }
        });
    };
    let navigate = leptos_router::hooks::use_navigate();
    let delete = move |_| {
        let window = web_sys::window().expect("a browser window");
        let asked = format!(
            "Delete run #{id}? Its metrics, checkpoints and share links go with it; this cannot be undone."
        );
        if !window.confirm_with_message(&asked).unwrap_or(false) {
            return;
        }
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::delete_run(id).await {
                Ok(()) => navigate("/", Default::default()),
                Err(api::ApiFailure(e)) => problem.set(Some(e.message)),
            }
        });
    };
    let finished = move || run.with(|r| r.as_ref().is_some_and(|r| r.status.is_terminal()));
    view! {
        <section class="card">
            <h1>{format!("Run #{id} ")} {move || run.get().map(|r| view! { <StatusBadge status=r.status /> })}</h1>
            <Show when=move || shared>
                <p class="hint">"Opened through a read-only share link."</p>
            </Show>
            <Show when=move || active() && !shared>
                <button type="button" id="cancel-run" disabled=move || cancelling.get() on:click=cancel>
                    "Cancel run"
                </button>
            </Show>
            <Show when=move || !shared>
                <A href=format!("/?from={id}") attr:id="clone-run" attr:class="button">"Clone and edit"</A>
            </Show>
            <Show when=move || editable.get() && finished()>
                <button type="button" id="delete-run" class="danger" on:click=delete.clone()>"Delete run"</button>
            </Show>
            <Show when=move || !shared>
                {move || project_id.get().map(|project_id| view! {
                    <ShareDialog run_id=id project_id />
                })}
            </Show>
            {move || problem.get().map(|p| view! { <p class="form-message" role="alert">{p}</p> })}
            {move || run.get().map(|r| view! { <RunSummary run=r epochs=epochs /> })}
        </section>
    }
}

/// The per-epoch charts: the coefficients k, accuracy on the split the URL names
/// (`?split=`, test by default), confidences, solo accuracy, gradient norms and loss.
#[component]
fn EpochCharts(
    id: i64,
    epochs: RwSignal<Vec<EpochMetrics>>,
    /// The modalities' names, in model order.
    names: Signal<Vec<String>>,
    /// The planned epochs: where the x axes end.
    planned: Signal<f64>,
) -> impl IntoView {
    let per_modality = move |value: fn(&EpochMetrics, usize) -> Option<f64>| {
        Signal::derive(move || {
            let names = names.get();
            epochs.with(|list| modality_series(list, &names, value))
        })
    };
    let coefficients = per_modality(|e, m| e.coefficients.get(m).copied());
    let confidences = per_modality(|e, m| e.confidences.get(m).copied());
    let solo = per_modality(|e, m| e.solo_accuracy.get(m).copied());
    let gradient_norms = per_modality(|e, m| e.gradient_norms.get(m).copied());
    let query = use_query_map();
    let split = Memo::new(move |_| query.read().get("split").unwrap_or_else(|| "test".into()));
    let accuracy = Signal::derive(move || {
        let split = split.get();
        let names = names.get();
        epochs.with(|list| accuracy_series(list, &split, &names))
    });
    let loss = Signal::derive(move || {
        vec![Series {
            dash: "",
            label: "training loss".into(),
            color: FUSED_COLOR,
            points: epochs.with(|l| l.iter().map(|e| (e.epoch as f64, e.train_loss)).collect()),
        }]
    });
    // The epoch results read by default, marked on every chart (runs with a validation split).
    let best = Signal::derive(move || {
        epochs.with(|list| {
            let best = EpochChoice::BestValidation.pick(list)?;
            best.validation.as_ref()?;
            Some((f64::from(best.epoch), "best val."))
        })
    });
    view! {
        <div class="run-filters">
            <QuerySelect id="accuracy-split" label="Accuracy on" key="split"
                path=format!("/runs/{id}") value=split.into()
                options=&[("test", "test split"), ("validation", "validation split"), ("train", "training split")] />
        </div>
        <section class="charts">
            <LineChart title="Gradient coefficient k per modality" x_label="epoch"
                y_label="k (mean over the epoch)" series=coefficients x_max=planned reference=1.0 mark=best />
            <LineChart title="Accuracy: fused output and each unimodal head" x_label="epoch"
                y_label="accuracy" series=accuracy x_max=planned y_range=(0.0, 1.0) mark=best />
            <LineChart title="Confidence s on the true class per modality" x_label="epoch"
                y_label="s (mean over the epoch)" series=confidences x_max=planned y_range=(0.0, 1.0) mark=best />
            <LineChart title="Solo accuracy: the fused output seeing one modality (others zeroed)"
                x_label="epoch" y_label="accuracy (validation split)" series=solo x_max=planned
                y_range=(0.0, 1.0) mark=best />
            <LineChart title="Gradient norm per modality (after balancing)" x_label="epoch"
                y_label="L2 norm (mean over the epoch)" series=gradient_norms x_max=planned mark=best />
            <LineChart title="Training loss (the method's objective)" x_label="epoch"
                y_label="loss (mean over the epoch)" series=loss x_max=planned mark=best />
        </section>
    }
}

/// One series per modality of `names`: `value` at each epoch of `list`. Runs stored by older
/// versions lack some series: their epochs are skipped.
fn modality_series(
    list: &[EpochMetrics],
    names: &[String],
    value: fn(&EpochMetrics, usize) -> Option<f64>,
) -> Vec<Series> {
    (names.iter().enumerate())
        .map(|(m, name)| Series {
            dash: "",
            label: name.clone(),
            color: MODALITY_COLORS[m % MODALITY_COLORS.len()],
            points: (list.iter())
                .filter_map(|e| Some((e.epoch as f64, value(e, m)?)))
                .collect(),
        })
        .collect()
}

/// The accuracy of the fused output and of each unimodal head on `split`, at each epoch.
fn accuracy_series(list: &[EpochMetrics], split: &str, names: &[String]) -> Vec<Series> {
    let of = |value: &dyn Fn(&SplitScores) -> Option<f64>| -> Vec<(f64, f64)> {
        (list.iter())
            .filter_map(|e| Some((e.epoch as f64, value(scores(e, split)?)?)))
            .collect()
    };
    let fused = Series {
        label: "fused".into(),
        color: FUSED_COLOR,
        points: of(&|s| Some(s.fused)),
        ..Series::default()
    };
    let heads = (names.iter().enumerate()).map(|(m, name)| Series {
        label: name.clone(),
        color: MODALITY_COLORS[m % MODALITY_COLORS.len()],
        points: of(&|s| s.unimodal.get(m).copied()),
        ..Series::default()
    });
    std::iter::once(fused).chain(heads).collect()
}

/// An epoch's scores on `split` (test, validation, train); none if it has no such split.
fn scores<'a>(epoch: &'a EpochMetrics, split: &str) -> Option<&'a SplitScores> {
    match split {
        "train" => Some(&epoch.train),
        "validation" => epoch.validation.as_ref(),
        _ => Some(&epoch.test),
    }
}

/// Loads the stored run, then applies its live events until it ends.
async fn follow_run(
    id: i64,
    share: Option<String>,
    run: RwSignal<Option<Run>>,
    epochs: RwSignal<Vec<EpochMetrics>>,
    problem: RwSignal<Option<String>>,
) {
    let detail = match api::get_run(id, share.as_deref()).await {
        Ok(detail) => detail,
        Err(api::ApiFailure(e)) => return problem.set(Some(e.message)),
    };
    let finished = detail.run.status.is_terminal();
    let after = detail.last_event;
    epochs.set(detail.epochs);
    run.set(Some(detail.run));
    if finished {
        return;
    }
    let url = api::events_url(id, after, share.as_deref());
    let mut stream = match LiveStream::<RunEvent>::open(&url) {
        Ok(stream) => stream,
        Err(e) => return problem.set(Some(format!("Live updates unavailable: {e}"))),
    };
    let report = |message| problem.set(Some(message));
    while let Some(event) = stream.next_or_report(report, "reload to catch up").await {
        match event {
            // The stream replays stored epochs first; keep each epoch once.
            RunEvent::Epoch(metrics) => epochs.update(|list| {
                if list.last().is_none_or(|last| last.epoch < metrics.epoch) {
                    list.push(*metrics);
                }
            }),
            // Step-level curves come from /metrics; the run page charts epochs.
            RunEvent::Step(_) => {}
            RunEvent::Status { status, error } => {
                run.update(|r| {
                    if let Some(r) = r {
                        r.status = status;
                        r.error = error;
                    }
                });
                if status.is_terminal() {
                    break;
                }
            }
        }
    }
}

/// The run's settings in words, its progress, every setting as JSON, and why it failed.
#[component]
fn RunSummary(run: Run, epochs: RwSignal<Vec<EpochMetrics>>) -> impl IntoView {
    let config = run.config;
    let config_json = config.clone();
    let model_label = format!(
        "{} encoders, {} fusion, {}-wide features",
        config.model.encoder.name(),
        config.model.fusion.name(),
        config.model.feature_dim
    );
    let total = config.epochs;
    let progress = move || {
        epochs.with(|l| match l.last() {
            Some(last) => format!("epoch {} of {total}", last.epoch),
            None => format!("0 of {total} epochs"),
        })
    };
    let accuracy = move || epochs.with(|l| accuracy_text(l));
    view! {
        <dl class="config">
            <dt>"Method"</dt><dd>{method_and_settings(&config.method)}</dd>
            <dt>"Data"</dt><dd>{dataset_text(&config.dataset)}</dd>
            <dt>"Modalities"</dt><dd>{config.dataset.modality_names().join(", ")}</dd>
            <dt>"Model"</dt><dd>{model_label}</dd>
            <dt>"Optimiser"</dt><dd>{training_text(&config)}</dd>
            <dt>"Progress"</dt><dd class="progress">{progress}</dd>
            <dt>"Fused accuracy"</dt><dd id="run-accuracy">{accuracy}</dd>
            <dt>"Created"</dt><dd>{run.created_at}</dd>
        </dl>
        <details class="resolved-config">
            <summary>"Every setting (the resolved configuration)"</summary>
            <pre>{serde_json::to_string_pretty(&config_json).expect("a RunConfig serializes")}</pre>
        </details>
        {run.error.map(|e| view! { <p class="form-message" role="alert">{format!("Failed: {e}")}</p> })}
    }
}

/// The fused output's accuracy where every view reports it: at the best validation epoch
/// (as the run list, compare and results tables do) and at the last, each with its split.
fn accuracy_text(epochs: &[EpochMetrics]) -> String {
    let Some(last) = epochs.last() else {
        return "none yet".into();
    };
    let last_text = format!(
        "last epoch ({}): {:.1}% on test",
        last.epoch,
        100.0 * last.test.fused
    );
    let best = EpochChoice::BestValidation.pick(epochs);
    match best.and_then(|b| Some((b, b.validation.as_ref()?))) {
        Some((best, validation)) => format!(
            "best validation epoch ({}): {:.1}% on validation, {:.1}% on test; {last_text}",
            best.epoch,
            100.0 * validation.fused,
            100.0 * best.test.fused
        ),
        None => format!("{last_text} (no validation split)"),
    }
}

/// The dataset and its split in words: "CREMA-D (CREMA-D); train.csv / test.csv; ...".
fn dataset_text(dataset: &DatasetConfig) -> String {
    let held_out = |split: SplitConfig| {
        format!(
            "{:.0}% of each class held out for testing (split seed {})",
            100.0 * split.test_fraction,
            split.split_seed
        )
    };
    match dataset {
        DatasetConfig::Synthetic(data) => format!(
            "synthetic: {} classes, {} features per modality, {} train / {} test samples",
            data.classes, data.features, data.train_samples, data.test_samples
        ),
        DatasetConfig::Mfeat(m) => format!("UCI Multiple Features; {}", held_out(m.split())),
        DatasetConfig::DigitsHalves(split) => {
            format!(
                "optical digits, 8x8 split into halves; {}",
                held_out(split.clone())
            )
        }
        DatasetConfig::AvDigits(av) => match av.split {
            AvDigitsSplit::Takes => "FSDD spoken digits + MNIST; takes 0-4 held out".into(),
            AvDigitsSplit::Speaker => format!(
                "FSDD spoken digits + MNIST; speaker {} held out",
                av.test_speaker
            ),
        },
        DatasetConfig::CremaD(c) => {
            let split = match c.split {
                CremaDSplit::Csv => "train.csv / test.csv".to_owned(),
                CremaDSplit::SpeakerFold => {
                    format!("speaker fold {} of {}", c.fold, c.folds)
                }
            };
            format!(
                "CREMA-D ({}); {split}; {} frame(s) at {}px",
                c.root, c.frames, c.image_size
            )
        }
        DatasetConfig::Ave(c) => format!(
            "AVE ({}); official lists; {} frame(s) at {}px",
            c.root, c.frames, c.image_size
        ),
        DatasetConfig::Ucf101(c) => format!(
            "UCF101 ({}), {}; split {}; {} frame(s) at {}px",
            c.root,
            match c.modalities {
                Ucf101Modalities::AudioRgb => "audio + RGB",
                Ucf101Modalities::RgbFlow => "RGB + flow",
            },
            c.split,
            c.frames,
            c.image_size
        ),
    }
}

/// How the run trains, in words: optimiser, learning rate and schedule, batch, seed, what
/// k multiplies, the device and its precision.
fn training_text(config: &RunConfig) -> String {
    let optimizer = match &config.optimizer {
        OptimizerConfig::Sgd(sgd) => format!(
            "SGD (momentum {}, weight decay {})",
            sgd.momentum, sgd.weight_decay
        ),
        OptimizerConfig::Adam(adam) => format!("Adam (weight decay {})", adam.weight_decay),
        OptimizerConfig::AdamW(adam) => format!("AdamW (weight decay {})", adam.weight_decay),
    };
    let schedule = match &config.schedule {
        ScheduleConfig::Constant => "constant".to_owned(),
        ScheduleConfig::Step { step_size, gamma } => format!("x{gamma} every {step_size} epochs"),
        ScheduleConfig::CosineWarmRestarts {
            start_epoch,
            t_0,
            t_mult,
            ..
        } => format!("cosine warm restarts from epoch {start_epoch} (T0 {t_0}, x{t_mult})"),
    };
    let k_target = match config.coefficients_scale {
        CoefficientTarget::Gradients => "",
        CoefficientTarget::LearningRate => "; k applied to the learning rate",
    };
    format!(
        "{optimizer}, lr {} ({schedule}), batch {}, seed {}{k_target}; on {} in {}",
        config.learning_rate,
        config.batch_size,
        config.seed,
        config.device,
        config.precision.name()
    )
}

/// The run's story as text, one line per event, growing while it trains; and its numbers
/// as CSV.
#[component]
fn RunLog(
    id: i64,
    share: Option<String>,
    run: RwSignal<Option<Run>>,
    epochs: RwSignal<Vec<EpochMetrics>>,
) -> impl IntoView {
    let lines = move || {
        let Some(run) = run.get() else {
            return String::new();
        };
        let mut lines = vec![format!("{} created", run.created_at)];
        let percents = |values: &[f64]| {
            (values.iter())
                .map(|v| format!("{:.1}%", 100.0 * v))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        epochs.with(|list| {
            for e in list {
                let k: Vec<String> = e.coefficients.iter().map(|k| format!("{k:.3}")).collect();
                lines.push(format!(
                    "epoch {:>4} at {:>7.1} s: loss {:.4}, test fused {:.1}%, heads {}, k {}, lr {}",
                    e.epoch,
                    e.elapsed_seconds,
                    e.train_loss,
                    100.0 * e.test.fused,
                    percents(&e.test.unimodal),
                    k.join(" / "),
                    e.learning_rate
                ));
            }
        });
        if run.attempts > 1 {
            lines.push(format!(
                "started {} times (re-queued after its worker stopped)",
                run.attempts
            ));
        }
        if let Some(worker) = &run.worker {
            lines.push(format!("training on {worker}"));
        }
        lines.push(match &run.error {
            Some(error) => format!("{}: {error}", run.status.as_str()),
            None => run.status.as_str().to_owned(),
        });
        lines.join("\n")
    };
    let export = move |of: &str| {
        let share = share
            .as_ref()
            .map_or(String::new(), |t| format!("&share={t}"));
        format!("/api/runs/{id}/export?of={of}{share}")
    };
    view! {
        <section class="card">
            <h2>"Log"</h2>
            <pre class="run-log" id="run-log" tabindex="0">{lines}</pre>
            <p class="exports">
                "Export: "
                <a class="export" href=export("epochs") download=format!("run-{id}-epochs.csv")>"epochs (CSV)"</a>
                <a class="export" href=export("steps") download=format!("run-{id}-steps.csv")>"steps (CSV)"</a>
            </p>
        </section>
    }
}
