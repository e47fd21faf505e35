//! Several runs side by side: the configuration fields that differ, their curves overlaid,
//! and their results grouped as a paper's table, with exports. The runs are in the URL
//! (`/compare?runs=3,4,7`), so the view can be shared and survives a reload.

use balancelab_shared::{
    method_columns, results_table, Comparison, EpochChoice, EpochMetrics, MetricSeries,
    ResultsTable, RunDetail, RunResult,
};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use super::method_and_settings;
use super::step_curves::{StepView, StepViewControls};
use crate::api::{self, ApiFailure};
use crate::chart::{LineChart, Series, DASHES, MODALITY_COLORS};

/// Points per series the step overlay asks for, at most, and its points per chart in all:
/// 50 runs overlaid get 200 each (100 buckets' extremes), a few runs the full 500.
const STEP_POINTS: usize = 500;
const STEP_POINTS_PER_CHART: usize = 10_000;

/// `/compare?runs=1,2,...`: runs side by side.
#[component]
pub(crate) fn ComparePage() -> impl IntoView {
    let query = use_query_map();
    // A memo: other settings in the URL (smoothing, x axis) must not rebuild the page.
    let ids = Memo::new(move |_| {
        let text = query.read().get("runs").unwrap_or_default();
        (text.split(','))
            .map(|id| id.trim().parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
    });
    move || match ids.get() {
        Ok(ids) if ids.len() >= 2 => view! { <CompareView ids /> }.into_any(),
        _ => view! {
            <p>"Choose two runs or more to compare on the "<A href="/">"runs page"</A>"."</p>
        }
        .into_any(),
    }
}

#[component]
fn CompareView(ids: Vec<i64>) -> impl IntoView {
    let comparison = {
        let ids = ids.clone();
        LocalResource::new(move || {
            let ids = ids.clone();
            async move { api::compare(&ids).await }
        })
    };
    // Asked for beside the comparison, not after it: `[*]` names every modality's series
    // before the runs' modalities are known.
    let steps = StepSeries::fetch(ids.clone());
    let title = format!(
        "Comparing runs {}",
        ids.iter()
            .map(|id| format!("#{id}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    view! {
        <section class="card">
            <h1>{title}</h1>
            <h2>"Configuration: the fields that differ"</h2>
            <Suspense fallback=|| view! { <p>"Loading..."</p> }>
                {move || comparison.get().map(|result| match result {
                    Ok(comparison) => view! { <Differences comparison /> }.into_any(),
                    Err(ApiFailure(e)) => view! { <p class="form-message">{e.message}</p> }.into_any(),
                })}
            </Suspense>
        </section>
        <section class="card">
            <Suspense fallback=|| view! { <p>"Loading curves..."</p> }>
                {move || comparison.get().map(|result| match result {
                    Ok(comparison) => {
                        let details = details_of(comparison);
                        view! {
                            <Curves details=details.clone() />
                            <StepOverlay details steps />
                        }.into_any()
                    }
                    Err(ApiFailure(e)) => view! { <p class="form-message">{e.message}</p> }.into_any(),
                })}
            </Suspense>
        </section>
        {move || comparison.get().and_then(Result::ok).map(|comparison| {
            let details = details_of(comparison);
            let modalities = modality_names(&details);
            view! { <ResultsSection details modalities /> }
        })}
    }
}

/// Each compared run with its epochs, as a run page reads them.
fn details_of(comparison: Comparison) -> Vec<RunDetail> {
    let mut epochs = comparison.epochs.into_iter();
    (comparison.runs.into_iter())
        .map(|run| RunDetail {
            run,
            epochs: epochs.next().unwrap_or_default(),
            last_event: 0,
        })
        .collect()
}

#[component]
fn Differences(comparison: Comparison) -> impl IntoView {
    if comparison.differences.is_empty() {
        return view! { <p class="hint">"The configurations are identical."</p> }.into_any();
    }
    let header = (comparison.runs.iter())
        .map(|run| view! { <th>{format!("#{}", run.id)}</th> })
        .collect_view();
    let rows = (comparison.differences.into_iter())
        .map(|d| {
            view! { <tr><th scope="row"><code>{d.field}</code></th>{cells(d.values)}</tr> }
        })
        .collect_view();
    view! {
        <table class="runs differences">
            <thead><tr><th>"Field"</th>{header}</tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

/// Each run's colour and dash: one colour per method (in order of first appearance), and
/// runs of the same method (seeds, settings) told apart by their dash.
fn styles(details: &[RunDetail]) -> Vec<(&'static str, &'static str)> {
    let mut methods: Vec<&str> = Vec::new();
    let mut seen: Vec<usize> = Vec::new();
    (details.iter())
        .map(|d| {
            let method = d.run.config.method.name();
            let m = match methods.iter().position(|known| *known == method) {
                Some(m) => m,
                None => {
                    methods.push(method);
                    seen.push(0);
                    methods.len() - 1
                }
            };
            let dash = DASHES[seen[m] % DASHES.len()];
            seen[m] += 1;
            (MODALITY_COLORS[m % MODALITY_COLORS.len()], dash)
        })
        .collect()
}

/// "#3 MLB (alpha 0.8), seed 0": a run as legends name it.
fn run_label(d: &RunDetail) -> String {
    format!(
        "#{} {}, seed {}",
        d.run.id,
        method_and_settings(&d.run.config.method),
        d.run.config.seed
    )
}

/// One line per run for a metric of its epochs.
fn per_run(details: &[RunDetail], value: impl Fn(&EpochMetrics) -> Option<f64>) -> Vec<Series> {
    (details.iter().zip(styles(details)))
        .map(|(d, (color, dash))| Series {
            label: run_label(d),
            color,
            dash,
            points: (d.epochs.iter())
                .filter_map(|e| Some((e.epoch as f64, value(e)?)))
                .collect(),
        })
        .collect()
}

/// The modalities' names by position, from the first run that has each: runs of one
/// comparison usually share their data.
fn modality_names(details: &[RunDetail]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for d in details {
        for (m, name) in d
            .run
            .config
            .dataset
            .modality_names()
            .into_iter()
            .enumerate()
        {
            if m >= names.len() {
                names.push(name);
            }
        }
    }
    names
}

/// Per-epoch curves, every run overlaid: fused accuracy and loss, then each modality's head
/// accuracy, k and s side by side (one row of charts per modality).
#[component]
fn Curves(details: Vec<RunDetail>) -> impl IntoView {
    let x_max = Signal::stored(
        (details.iter())
            .map(|d| d.run.config.epochs as f64)
            .fold(1.0, f64::max),
    );
    let fused = per_run(&details, |e| Some(e.test.fused));
    let loss = per_run(&details, |e| Some(e.train.fused_loss).filter(|l| *l > 0.0));
    let modalities = (modality_names(&details).into_iter().enumerate())
        .map(|(m, name)| {
            let head = per_run(&details, move |e| e.test.unimodal.get(m).copied());
            let k = per_run(&details, move |e| e.coefficients.get(m).copied());
            let s = per_run(&details, move |e| e.confidences.get(m).copied());
            view! {
                <LineChart title=format!("Head accuracy, {name} (test split)") x_label="epoch"
                    y_label="accuracy" series=Signal::stored(head) x_max y_range=(0.0, 1.0) />
                <LineChart title=format!("Coefficient k, {name}") x_label="epoch"
                    y_label="k (mean over the epoch)" series=Signal::stored(k) x_max reference=1.0 />
                <LineChart title=format!("Confidence s, {name}") x_label="epoch"
                    y_label="s (mean over the epoch)" series=Signal::stored(s) x_max
                    y_range=(0.0, 1.0) />
            }
        })
        .collect_view();
    view! {
        <h2>"Per epoch"</h2>
        <div class="charts">
            <LineChart title="Fused accuracy (test split)" x_label="epoch" y_label="accuracy"
                series=Signal::stored(fused) x_max y_range=(0.0, 1.0) />
            <LineChart title="Fused loss (training split, after each epoch)" x_label="epoch"
                y_label="cross-entropy of the fused output" series=Signal::stored(loss) x_max />
        </div>
        <div class="charts modality-charts">{modalities}</div>
    }
}

/// The compared runs' step series as the URL asks for them: its x axis and smoothing, and
/// whether the methods' objectives are shown (`?objective=1`).
#[derive(Clone, Copy)]
struct StepSeries {
    view: StepView,
    objective: Memo<bool>,
    fetched: LocalResource<Result<Vec<Vec<MetricSeries>>, ApiFailure>>,
}

impl StepSeries {
    /// Starts reading runs `ids`' fused loss, each head's loss and each modality's k per
    /// step (and the objective on request), again whenever the x axis changes.
    fn fetch(ids: Vec<i64>) -> Self {
        let view = StepView::from_url();
        let x_axis = view.x_axis;
        let query = use_query_map();
        let objective = Memo::new(move |_| query.read().get("objective").is_some_and(|v| v == "1"));
        let points = (STEP_POINTS_PER_CHART / ids.len().max(1)).clamp(100, STEP_POINTS);
        let fetched = LocalResource::new(move || {
            let x = x_axis.get();
            let mut keys = vec![
                "step.fused_loss".to_owned(),
                "step.unimodal_losses[*]".to_owned(),
                "step.coefficients[*]".to_owned(),
            ];
            if objective.get() {
                keys.push("step.loss".to_owned());
            }
            let ids = ids.clone();
            async move { api::compare_series(&ids, &keys, points, x).await }
        });
        Self {
            view,
            objective,
            fetched,
        }
    }
}

/// Every run's per-step curves overlaid: the fused output's loss, each head's loss and each
/// modality's k, and the method's own objective on request (`?objective=1`: it sums
/// different terms per method, so it is not comparable across methods). The server sends
/// each series downsampled (extremes kept), the browser smooths it as the URL says.
#[component]
fn StepOverlay(details: Vec<RunDetail>, steps: StepSeries) -> impl IntoView {
    let StepSeries {
        view,
        objective,
        fetched,
    } = steps;
    let query = use_query_map();
    let names = modality_names(&details);
    let styles = styles(&details);
    let labels: Vec<String> = details.iter().map(run_label).collect();
    let curves = move |key: String| {
        let (styles, labels) = (styles.clone(), labels.clone());
        Signal::derive(move || {
            let runs = fetched.get().and_then(Result::ok).unwrap_or_default();
            (runs.iter().zip(&styles).zip(&labels))
                .filter_map(|((series, &(color, dash)), label)| {
                    let found = series.iter().find(|s| s.key == key)?;
                    Some(Series {
                        label: label.clone(),
                        color,
                        dash,
                        points: view.smooth(&found.points),
                    })
                })
                .collect::<Vec<_>>()
        })
    };
    let x_end = Signal::derive(move || {
        (fetched
            .get()
            .and_then(Result::ok)
            .unwrap_or_default()
            .iter()
            .flatten())
        .flat_map(|s| s.points.last().map(|p| p.0))
        .fold(1.0, f64::max)
    });
    let x_label = view.x_label;
    let fused = curves("step.fused_loss".into());
    let objective_curves = curves("step.loss".into());
    let per_modality = (names.into_iter().enumerate())
        .map(|(m, name)| {
            let loss = curves(format!("step.unimodal_losses[{m}]"));
            let k = curves(format!("step.coefficients[{m}]"));
            view! {
                <LineChart title=format!("Head loss per step, {name}") x_label
                    y_label="cross-entropy of the head" series=loss x_max=x_end x_min=0.0 lines_only=true />
                <LineChart title=format!("Coefficient k per step, {name}") x_label
                    y_label="k" series=k x_max=x_end x_min=0.0 lines_only=true reference=1.0 />
            }
        })
        .collect_view();
    let show_objective = move |ev| {
        let on = if event_target_checked(&ev) { "1" } else { "" };
        let url = super::url_with(
            "/compare",
            query.get_untracked(),
            &[("objective", on.into())],
        );
        leptos_router::hooks::use_navigate()(&url, super::in_place());
    };
    view! {
        <h2>"Per step"</h2>
        <StepViewControls view path="/compare".to_owned() />
        <label class="check">
            <input type="checkbox" id="show-objective" prop:checked=move || objective.get()
                on:change=show_objective />
            "Also each method's own objective (sums different terms per method)"
        </label>
        {move || fetched.get().and_then(Result::err).map(|ApiFailure(e)| view! {
            <p class="form-message">{e.message}</p>
        })}
        <div class="charts step-overlay">
            <LineChart title="Fused loss per step, every run" x_label
                y_label="cross-entropy of the fused output" series=fused x_max=x_end x_min=0.0
                lines_only=true />
            <Show when=move || objective.get()>
                <LineChart title="The method's objective per step, every run" x_label
                    y_label="the method's loss" series=objective_curves x_max=x_end x_min=0.0
                    lines_only=true />
            </Show>
            {per_modality}
        </div>
    }
}

/// The results grouped as a paper's table, at each run's best validation epoch unless the
/// URL says the last (`?epoch=last`), with its exports.
#[component]
fn ResultsSection(details: Vec<RunDetail>, modalities: Vec<String>) -> impl IntoView {
    let query = use_query_map();
    let epoch = Memo::new(move |_| match query.read().get("epoch").as_deref() {
        Some("last") => "last",
        _ => "best_validation",
    });
    let mut metrics = vec!["test.fused".to_owned()];
    metrics.extend((0..modalities.len()).map(|m| format!("test.unimodal[{m}]")));
    metrics.push("test.fused_macro_f1".to_owned());
    // The table the server's /api/results gives, made here from the epochs already loaded
    // (the same shared function): the switch between epochs asks the server nothing.
    let ids: Vec<i64> = details.iter().map(|d| d.run.id).collect();
    // Rows by method (unimodal runs by their modality too) and fusion.
    let mut group_by = method_columns(details.iter().map(|d| &d.run.config));
    group_by.push("model.fusion".to_owned());
    let group_list = group_by.join(",");
    let table = {
        let metrics = metrics.clone();
        Memo::new(move |_| {
            let choice = match epoch.get() {
                "last" => EpochChoice::Last,
                _ => EpochChoice::BestValidation,
            };
            let runs: Vec<RunResult> = (details.iter())
                .map(|d| RunResult {
                    id: d.run.id,
                    config: &d.run.config,
                    epochs: &d.epochs,
                })
                .collect();
            results_table(&runs, &group_by, &metrics, choice).map_err(|errors| {
                (errors.iter().map(|e| format!("{}: {}", e.field, e.message)))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
    };
    let metrics = metrics.join(",");
    let exports = move || {
        let query = api::ResultsQuery {
            ids: &ids,
            group_by: &group_list,
            metrics: &metrics,
            epoch: epoch.get(),
        };
        [("csv", "CSV", "csv"), ("markdown", "Markdown", "md"), ("latex", "LaTeX", "tex")]
            .map(|(format, label, extension)| {
                let href = api::results_url(&query, format);
                view! { <a class="export" href=href download=format!("results.{extension}")>{label}</a> }
            })
            .collect_view()
    };
    let heading = move || match epoch.get() {
        "last" => "Results on the test split at each run's last epoch",
        _ => "Results on the test split at each run's best validation epoch",
    };
    let names = StoredValue::new(modalities);
    view! {
        <section class="card">
            <h2 id="results-heading">{heading}</h2>
            <div class="run-filters">
                <super::QuerySelect id="results-epoch" label="Epoch of each run" key="epoch"
                    path="/compare".to_owned() value=Signal::derive(move || epoch.get().to_owned())
                    options=&[("best_validation", "best validation epoch"), ("last", "last epoch")] />
            </div>
            <p class="hint">"Mean ± sample std over the runs of each group. The best validation epoch has the highest validation accuracy of the fused output (ties: lower validation loss); runs without a validation split count their last epoch."</p>
            {move || match table.get() {
                Ok(table) => view! { <Results table names=names.get_value() /> }.into_any(),
                Err(message) => view! { <p class="form-message">{message}</p> }.into_any(),
            }}
            <p class="exports">"Export: "{exports}</p>
        </section>
    }
}

/// A metric's path as a column header: `test.unimodal[1]` is "audio head (test)".
fn metric_header(metric: &str, names: &[String]) -> String {
    let head = (metric.strip_prefix("test.unimodal["))
        .and_then(|rest| rest.strip_suffix(']')?.parse::<usize>().ok())
        .and_then(|m| names.get(m));
    match (head, metric) {
        (Some(name), _) => format!("{name} head acc. (test)"),
        (None, "test.fused") => "fused acc. (test)".to_owned(),
        (None, "test.fused_macro_f1") => "fused macro-F1 (test)".to_owned(),
        _ => metric.to_owned(),
    }
}

#[component]
fn Results(table: ResultsTable, names: Vec<String>) -> impl IntoView {
    let metrics = table.metrics.iter().map(|m| metric_header(m, &names));
    let header = (table.group_by.iter().cloned())
        .chain(std::iter::once("runs".to_owned()))
        .chain(metrics)
        .map(|name| view! { <th>{name}</th> })
        .collect_view();
    let rows = (table.rows.into_iter())
        .map(|row| {
            let group = cells(row.group);
            let metrics = (row.metrics.into_iter())
                .map(|m| {
                    let text = match m {
                        Some(s) if s.n > 1 => format!("{:.3} ± {:.3}", s.mean, s.std),
                        Some(s) => format!("{:.3}", s.mean),
                        None => "-".into(),
                    };
                    view! { <td class="num">{text}</td> }
                })
                .collect_view();
            view! { <tr>{group}<td class="num">{row.run_ids.len()}</td>{metrics}</tr> }
        })
        .collect_view();
    view! {
        <table class="runs results">
            <thead><tr>{header}</tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// One `<td>` per value.
fn cells(values: Vec<String>) -> impl IntoView {
    values
        .into_iter()
        .map(|v| view! { <td>{v}</td> })
        .collect_view()
}
