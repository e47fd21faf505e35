//! Several runs side by side: the configuration fields that differ, their curves overlaid,
//! and their results grouped as a paper's table, with exports. The runs are in the URL
//! (`/compare?runs=3,4,7`), so the view can be shared and survives a reload.

use balancelab_shared::{Comparison, EpochMetrics, ResultsTable, RunDetail};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use super::method_and_settings;
use super::step_curves::{StepView, StepViewControls};
use crate::api::{self, ApiFailure};
use crate::chart::{LineChart, Series, DASHES, MODALITY_COLORS};

/// What the results table groups by and reports (query parameters of `/api/results`).
const GROUP_BY: &str = "method.kind,model.fusion";
/// Points per run and series the overlay asks for: 50 runs stay light to draw.
const STEP_POINTS: usize = 500;
const METRICS: &str = "test.fused,test.unimodal[0],test.unimodal[1],test.fused_macro_f1";

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
    let details = {
        let ids = ids.clone();
        LocalResource::new(move || {
            let ids = ids.clone();
            async move {
                let all = ids.iter().map(|&id| api::get_run(id, None));
                futures::future::try_join_all(all).await
            }
        })
    };
    let results = {
        let ids = ids.clone();
        LocalResource::new(move || {
            let ids = ids.clone();
            async move { api::results(&ids, GROUP_BY, METRICS).await }
        })
    };
    let exports = [
        ("csv", "CSV", "csv"),
        ("markdown", "Markdown", "md"),
        ("latex", "LaTeX", "tex"),
    ]
    .map(|(format, label, extension)| {
        let href = api::results_url(&ids, GROUP_BY, METRICS, format);
        view! { <a class="export" href=href download=format!("results.{extension}")>{label}</a> }
    })
    .collect_view();
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
                {move || details.get().map(|result| match result {
                    Ok(details) => view! {
                        <Curves details=details.clone() />
                        <StepOverlay details />
                    }.into_any(),
                    Err(ApiFailure(e)) => view! { <p class="form-message">{e.message}</p> }.into_any(),
                })}
            </Suspense>
        </section>
        <section class="card">
            <h2>"Results (last epoch; mean ± sample std over the runs of each group)"</h2>
            <Suspense fallback=|| view! { <p>"Loading results..."</p> }>
                {move || results.get().map(|result| match result {
                    Ok(table) => view! { <Results table /> }.into_any(),
                    Err(ApiFailure(e)) => view! { <p class="form-message">{e.message}</p> }.into_any(),
                })}
            </Suspense>
            <p class="exports">"Export: "{exports}</p>
        </section>
    }
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
fn per_run(details: &[RunDetail], value: fn(&EpochMetrics) -> Option<f64>) -> Vec<Series> {
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

#[component]
fn Curves(details: Vec<RunDetail>) -> impl IntoView {
    let x_max = details
        .iter()
        .map(|d| d.run.config.epochs as f64)
        .fold(1.0, f64::max);
    let fused = per_run(&details, |e| Some(e.test.fused));
    let weak = per_run(&details, |e| e.test.unimodal.get(1).copied());
    let k = per_run(&details, |e| e.coefficients.get(1).copied());
    let loss = per_run(&details, |e| Some(e.train_loss));
    view! {
        <div class="charts">
            <LineChart title="Test accuracy of the fused output" x_label="epoch" y_label="accuracy"
                series=Signal::stored(fused) x_max=Signal::stored(x_max) />
            <LineChart title="Test accuracy of the second modality's head" x_label="epoch"
                y_label="accuracy" series=Signal::stored(weak) x_max=Signal::stored(x_max) />
            <LineChart title="Coefficient k of the second modality" x_label="epoch"
                y_label="k (mean over the epoch)" series=Signal::stored(k)
                x_max=Signal::stored(x_max) reference=1.0 />
            <LineChart title="Training loss" x_label="epoch" y_label="loss (mean over the epoch)"
                series=Signal::stored(loss) x_max=Signal::stored(x_max) />
        </div>
    }
}

/// Every run's per-step loss and k of the second modality, overlaid: the server sends each
/// series downsampled (extremes kept), the browser smooths it as the URL says.
#[component]
fn StepOverlay(details: Vec<RunDetail>) -> impl IntoView {
    let view = StepView::from_url();
    let x_axis = view.x_axis;
    let ids: Vec<i64> = details.iter().map(|d| d.run.id).collect();
    let fetched = LocalResource::new(move || {
        let x = x_axis.get();
        let ids = ids.clone();
        async move {
            let keys = ["step.loss".to_owned(), "step.coefficients[1]".to_owned()];
            let all = ids
                .iter()
                .map(|&id| api::metric_series(id, &keys, STEP_POINTS, x, None));
            futures::future::try_join_all(all).await
        }
    });
    let styles = styles(&details);
    let labels: Vec<String> = details.iter().map(run_label).collect();
    let curves = move |key: &'static str| {
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
    let loss = curves("step.loss");
    let k = curves("step.coefficients[1]");
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
    view! {
        <h2>"Per step"</h2>
        <StepViewControls view path="/compare".to_owned() />
        {move || fetched.get().and_then(Result::err).map(|ApiFailure(e)| view! {
            <p class="form-message">{e.message}</p>
        })}
        <div class="charts step-overlay">
            <LineChart title="Loss per step, every run" x_label y_label="the method's objective"
                series=loss x_max=x_end x_min=0.0 lines_only=true />
            <LineChart title="Coefficient k of the second modality per step, every run" x_label
                y_label="k" series=k x_max=x_end x_min=0.0 lines_only=true reference=1.0 />
        </div>
    }
}

#[component]
fn Results(table: ResultsTable) -> impl IntoView {
    let header = (table
        .group_by
        .iter()
        .chain(std::iter::once(&"runs".to_owned())))
    .chain(&table.metrics)
    .map(|name| view! { <th>{name.clone()}</th> })
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
