//! A small SVG line chart: axes with ticks and labels, one line per series, a legend below
//! the plot (so it never hides data), a hover read-out of every series at the pointer, zoom
//! by dragging over an x range, and export as SVG or PNG. Keyboard: arrows move the read-out,
//! `+`/`-` zoom around it, Escape resets.
//!
//! Styling is in presentation attributes, not the page's CSS, so an exported SVG looks the
//! same on its own.

mod draw;
mod scale;
mod state;

use leptos::prelude::*;

use crate::chart_export;
use draw::{read_out, selection, Legend, Plot};
use state::ChartState;

/// One line of a chart: its points and how it is drawn and named.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Series {
    pub(crate) label: String,
    pub(crate) color: &'static str,
    /// SVG `stroke-dasharray` ("" for a solid line): tells apart series of one colour.
    pub(crate) dash: &'static str,
    /// (x, y) in data units, x ascending.
    pub(crate) points: Vec<(f64, f64)>,
}

/// Colours of modality 0, 1, ...; the fused output is drawn in [`FUSED_COLOR`].
pub(crate) const MODALITY_COLORS: [&str; 6] = [
    "#1f6fb4", "#d1495b", "#2a9d59", "#8a5fbf", "#e08a1e", "#17a2b8",
];
/// Colour of the fused output's series.
pub(crate) const FUSED_COLOR: &str = "#222222";
/// Dash patterns for series sharing a colour, in order.
pub(crate) const DASHES: [&str; 4] = ["", "6 3", "2 3", "8 3 2 3"];

/// Width of a chart's plot, in SVG units.
pub(crate) const WIDTH: f64 = 520.0;
/// Height of a chart's plot, in SVG units.
pub(crate) const HEIGHT: f64 = 300.0;
/// Margins around the plotted data (left, right, top, bottom): room for the ticks and the
/// axis labels.
const LEFT: f64 = 60.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 46.0;
/// Colour of the ticks' text and the axes.
const TEXT: &str = "#444";
/// Points drawn with a marker at most; more are lines only (the read-out still has them).
const MAX_MARKERS: usize = 1000;
/// Series listed in the read-out at most; the rest are counted.
const READ_OUT_LINES: usize = 8;

/// `x_max`: the planned end of the x axis (the run's epochs), so a live chart grows into a
/// fixed frame instead of rescaling at every point.
#[component]
pub(crate) fn LineChart(
    #[prop(into)] title: String,
    #[prop(into)] x_label: Signal<&'static str>,
    y_label: &'static str,
    #[prop(into)] series: Signal<Vec<Series>>,
    #[prop(into)] x_max: Signal<f64>,
    #[prop(optional)] y_range: Option<(f64, f64)>,
    /// A dashed horizontal line, e.g. k = 1 (no modulation).
    #[prop(optional)]
    reference: Option<f64>,
    /// Where the x axis starts (default 1, the first epoch).
    #[prop(optional)]
    x_min: Option<f64>,
    /// Lines without a marker per point, for dense series (steps).
    #[prop(optional)]
    lines_only: bool,
    /// An x to mark with a labelled vertical line, e.g. the best validation epoch.
    #[prop(optional, into)]
    mark: MaybeProp<(f64, &'static str)>,
) -> impl IntoView {
    let chart = ChartState::new(x_min.unwrap_or(1.0), x_max, series, y_range, reference);
    let (caption, data_chart) = (title.clone(), title.clone());
    let plot_title = title.clone();
    let title = StoredValue::new(title);
    let export = move |download: fn(&web_sys::Element, &str, &[chart_export::LegendItem])| {
        move |_| {
            if let Some(svg) = chart.svg_ref.get_untracked() {
                let legend = series.with_untracked(|s| chart_export::legend_items(s));
                title.with_value(|title| download(&svg, title, &legend));
            }
        }
    };
    let selection = move || Some(selection(chart.frame.get(), chart.drag.get()?));
    // The series before the frame computed from them (see the plot's lines).
    let read_out = move || {
        let x = chart.hover.get()?;
        Some(series.with(|all| read_out(chart.frame.get(), x, all, x_label.get())))
    };
    view! {
        <figure class="chart" data-chart=data_chart>
            <figcaption>{caption}</figcaption>
            <div class="plot-area">
                <Plot chart title=plot_title x_label y_label series reference lines_only mark />
                // The pointer's read-out and the zoom selection are drawn on a layer of
                // their own: moving them repaints neither the curves nor the axes.
                <svg class="overlay" viewBox=format!("0 0 {WIDTH} {HEIGHT}") aria-hidden="true">
                    {selection}
                    {read_out}
                </svg>
            </div>
            <div class="chart-tools">
                <Legend series />
                <Show when=move || chart.zoom.get().is_some()>
                    <button type="button" class="link-button reset-zoom" on:click=move |_| chart.zoom.set(None)>
                        "Reset zoom"
                    </button>
                </Show>
                <button type="button" class="link-button export-svg" on:click=export(chart_export::download_svg)>"SVG"</button>
                <button type="button" class="link-button export-png" on:click=export(chart_export::download_png)>"PNG"</button>
            </div>
        </figure>
    }
}

#[cfg(test)]
mod rendering {
    use leptos::prelude::*;

    use super::*;

    fn render(series: Vec<Series>, lines_only: bool) -> String {
        let owner = Owner::new();
        owner.with(|| {
            view! {
                <LineChart title="Gradient coefficient k per modality" x_label="epoch" y_label="k"
                    series=Signal::stored(series) x_max=Signal::stored(10.0) reference=1.0 lines_only />
            }
            .to_html()
        })
    }

    #[test]
    fn a_chart_has_its_title_axes_lines_legend_and_tools() {
        let series = vec![
            Series {
                label: "audio".into(),
                color: MODALITY_COLORS[0],
                points: vec![(1.0, 0.8), (2.0, 0.9)],
                ..Series::default()
            },
            Series {
                label: "video".into(),
                color: MODALITY_COLORS[1],
                dash: DASHES[1],
                points: vec![(1.0, 1.3), (2.0, 1.2)],
            },
        ];
        let html = render(series.clone(), false);
        for expected in [
            "<figcaption>Gradient coefficient k per modality</figcaption>",
            ">epoch</text>",
            ">k</text>",
            r#"data-series="audio""#,
            r#"stroke-dasharray="6 3""#,
            "<title>video: 1.2 at epoch 2</title>",
            "export-svg",
            "export-png",
        ] {
            assert!(html.contains(expected), "{expected} missing from {html}");
        }
        assert_eq!(html.matches("<polyline").count(), 2);
        assert_eq!(html.matches(r#"class="point""#).count(), 4);
        // The reference line k = 1, and no read-out until the pointer is over the plot.
        assert!(html.contains(r#"class="reference""#));
        assert!(!html.contains("read-out"));
        assert!(!html.contains("reset-zoom"), "not zoomed");

        let dense = render(series, true);
        assert_eq!(dense.matches(r#"class="point""#).count(), 0, "lines only");
    }

    #[test]
    fn a_marked_x_is_drawn_with_its_label_inside_the_frame_only() {
        let series = vec![Series {
            label: "fused".into(),
            color: FUSED_COLOR,
            points: vec![(1.0, 0.5), (2.0, 0.7), (3.0, 0.6)],
            ..Series::default()
        }];
        let with_mark = |x: f64| {
            let owner = Owner::new();
            let series = series.clone();
            owner.with(|| {
                view! {
                    <LineChart title="Accuracy" x_label="epoch" y_label="accuracy"
                        series=Signal::stored(series) x_max=Signal::stored(10.0)
                        mark=Signal::stored(Some((x, "best val."))) />
                }
                .to_html()
            })
        };
        let html = with_mark(2.0);
        assert_eq!(html.matches(r#"class="mark""#).count(), 1, "{html}");
        assert!(html.contains(">best val.</text>"), "{html}");
        assert!(
            !with_mark(11.0).contains(r#"class="mark""#),
            "beyond the x axis"
        );
        assert!(
            !render(series, false).contains(r#"class="mark""#),
            "none asked for"
        );
    }

    #[test]
    fn many_points_are_drawn_as_lines_only() {
        let n = MAX_MARKERS + 1;
        let points: Vec<(f64, f64)> = (0..n)
            .map(|i| (1.0 + 9.0 * i as f64 / n as f64, 1.0))
            .collect();
        let series = vec![Series {
            label: "k".into(),
            color: FUSED_COLOR,
            points,
            ..Series::default()
        }];
        assert_eq!(render(series, false).matches(r#"class="point""#).count(), 0);
    }
}
