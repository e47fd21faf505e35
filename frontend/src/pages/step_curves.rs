//! Per-step curves (k, s and loss at every optimisation step), read from the server's
//! downsampled series and smoothed in the browser; the view's settings live in the URL.

use balancelab_shared::{smooth, EpochMetrics, SeriesPoint, XAxis};
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use super::{in_place, url_with, QuerySelect};
use crate::api::{self, snake};
use crate::chart::{LineChart, Series, FUSED_COLOR, MODALITY_COLORS};

/// How per-step curves are shown, kept in the URL (`?smooth=0.6&x=epoch`) so a reload or a
/// shared link shows the same: debiased EMA smoothing and the x axis.
#[derive(Clone, Copy)]
pub(super) struct StepView {
    smoothing: Memo<f64>,
    pub(super) x_axis: Memo<XAxis>,
    pub(super) x_label: Signal<&'static str>,
}

impl StepView {
    /// The view the current URL states.
    pub(super) fn from_url() -> Self {
        let query = use_query_map();
        let smoothing = Memo::new(move |_| {
            (query.read().get("smooth"))
                .and_then(|s| s.parse::<f64>().ok())
                .map_or(0.6, |s| s.clamp(0.0, 0.99))
        });
        let x_axis = Memo::new(move |_| match query.read().get("x").as_deref() {
            Some("epoch") => XAxis::Epoch,
            Some("time") => XAxis::Time,
            _ => XAxis::Step,
        });
        let x_label = Signal::derive(move || match x_axis.get() {
            XAxis::Step => "step",
            XAxis::Epoch => "epoch",
            XAxis::Time => "seconds since start",
        });
        Self {
            smoothing,
            x_axis,
            x_label,
        }
    }

    /// `points` smoothed as the view says.
    pub(super) fn smooth(&self, points: &[SeriesPoint]) -> Vec<(f64, f64)> {
        let weight = self.smoothing.get();
        smooth(points, weight).iter().map(|p| (p.0, p.1)).collect()
    }
}

/// The smoothing slider and x-axis choice of `view`, which change the URL of `path`.
#[component]
pub(super) fn StepViewControls(view: StepView, path: String) -> impl IntoView {
    let query = use_query_map();
    let navigate = use_navigate();
    let smooth = {
        let path = path.clone();
        move |ev| {
            let changes = [("smooth", event_target_value(&ev))];
            navigate(
                &url_with(&path, query.get_untracked(), &changes),
                in_place(),
            );
        }
    };
    view! {
        <div class="run-filters">
            <label>
                <span>{move || format!("Smoothing {:.2}", view.smoothing.get())}</span>
                <input id="smoothing" type="range" min="0" max="0.99" step="0.01"
                    prop:value=move || view.smoothing.get().to_string()
                    on:change=smooth />
            </label>
            <QuerySelect id="x-axis" label="x axis" key="x" path
                value=Signal::derive(move || snake(view.x_axis.get()))
                options=&[("step", "step"), ("epoch", "epoch"), ("time", "wall time")] />
        </div>
    }
}

/// A run's per-step curves from the server's downsampled series, shown as the URL's
/// [`StepView`] says. Refreshed at every new epoch while the run trains.
#[component]
pub(super) fn StepCurves(
    id: i64,
    share: Option<String>,
    names: Signal<Vec<String>>,
    epochs: RwSignal<Vec<EpochMetrics>>,
) -> impl IntoView {
    let view = StepView::from_url();
    let x_axis = view.x_axis;
    let series = LocalResource::new(move || {
        let x = x_axis.get();
        let modalities = names.get().len();
        // A new epoch means new steps to draw.
        let _ = epochs.with(Vec::len);
        let share = share.clone();
        async move {
            let mut keys = vec!["step.loss".to_owned()];
            for m in 0..modalities {
                keys.push(format!("step.coefficients[{m}]"));
                keys.push(format!("step.confidences[{m}]"));
            }
            api::metric_series(id, &keys, 1000, x, share.as_deref()).await
        }
    });
    let curves = move |prefix: &'static str| {
        Signal::derive(move || {
            let names = names.get();
            let fetched = series.get().and_then(Result::ok).unwrap_or_default();
            (fetched.iter())
                .filter(|s| s.key.starts_with(prefix))
                .enumerate()
                .map(|(i, s)| Series {
                    dash: "",
                    label: if prefix == "step.loss" {
                        "loss".into()
                    } else {
                        names.get(i).cloned().unwrap_or_else(|| format!("m{i}"))
                    },
                    color: if prefix == "step.loss" {
                        FUSED_COLOR
                    } else {
                        MODALITY_COLORS[i % MODALITY_COLORS.len()]
                    },
                    points: view.smooth(&s.points),
                })
                .collect::<Vec<_>>()
        })
    };
    let coefficients = curves("step.coefficients");
    let confidences = curves("step.confidences");
    let loss = curves("step.loss");
    let x_end = Signal::derive(move || {
        (series.get().and_then(Result::ok).unwrap_or_default().iter())
            .flat_map(|s| s.points.last().map(|p| p.0))
            .fold(1.0, f64::max)
    });
    let x_label = view.x_label;
    view! {
        <section class="card step-curves">
            <h2>"Per step"</h2>
            <StepViewControls view path=format!("/runs/{id}") />
            <div class="charts">
                <LineChart title="Gradient coefficient k per step" x_label y_label="k"
                    series=coefficients x_max=x_end x_min=0.0 lines_only=true reference=1.0 />
                <LineChart title="Confidence s per step" x_label y_label="s on the true class"
                    series=confidences x_max=x_end x_min=0.0 lines_only=true y_range=(0.0, 1.0) />
                <LineChart title="Loss per step" x_label y_label="the method's objective"
                    series=loss x_max=x_end x_min=0.0 lines_only=true />
            </div>
        </section>
    }
}
