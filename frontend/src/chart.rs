//! A small SVG line chart: axes with ticks and labels, one line per series, a legend below
//! the plot (so it never hides data), and a hover read-out (SVG `<title>`) on every point.

use leptos::prelude::*;

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub color: &'static str,
    /// (x, y) in data units, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// Colours of modality 0, 1, ...; the fused output is drawn in [`FUSED_COLOR`].
pub const MODALITY_COLORS: [&str; 6] = [
    "#1f6fb4", "#d1495b", "#2a9d59", "#8a5fbf", "#e08a1e", "#17a2b8",
];
pub const FUSED_COLOR: &str = "#222222";

const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 46.0;

/// Linear map from data units to SVG units.
#[derive(Clone, Copy)]
struct Scale {
    x: (f64, f64),
    y: (f64, f64),
}

impl Scale {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0) * (HEIGHT - TOP - BOTTOM)
    }
}

/// Round tick positions covering `[lo, hi]`: steps of 1, 2 or 5 times a power of ten.
fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let raw = (hi - lo) / target as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|f| f * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn label(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Y extent: fixed if given, else the data (and the reference line) padded by 5%.
fn y_extent(series: &[Series], fixed: Option<(f64, f64)>, reference: Option<f64>) -> (f64, f64) {
    if let Some(range) = fixed {
        return range;
    }
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(reference);
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    (lo - pad, hi + pad)
}

/// `x_max`: the planned end of the x axis (the run's epochs), so a live chart grows into a
/// fixed frame instead of rescaling at every point.
#[component]
pub fn LineChart(
    title: &'static str,
    x_label: &'static str,
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
) -> impl IntoView {
    let plot = move || {
        let series = series.get();
        let x_min = x_min.unwrap_or(1.0);
        let scale = Scale {
            x: (x_min, x_max.get().max(x_min + 1.0)),
            y: y_extent(&series, y_range, reference),
        };
        let grid = ticks(scale.y.0, scale.y.1, 5)
            .into_iter()
            .map(|y| {
                let py = scale.py(y);
                view! {
                    <line class="grid" x1=LEFT x2=WIDTH - RIGHT y1=py y2=py />
                    <text class="tick" x=LEFT - 6.0 y=py + 4.0 text-anchor="end">{label(y)}</text>
                }
            })
            .collect_view();
        let x_ticks = ticks(scale.x.0, scale.x.1, 8)
            .into_iter()
            .filter(|x| lines_only || x.fract() == 0.0)
            .map(|x| {
                let px = scale.px(x);
                view! {
                    <line class="axis" x1=px x2=px y1=HEIGHT - BOTTOM y2=HEIGHT - BOTTOM + 5.0 />
                    <text class="tick" x=px y=HEIGHT - BOTTOM + 18.0 text-anchor="middle">{label(x)}</text>
                }
            })
            .collect_view();
        let reference_line = reference.map(|r| {
            let py = scale.py(r);
            view! { <line class="reference" x1=LEFT x2=WIDTH - RIGHT y1=py y2=py /> }
        });
        let lines = series
            .iter()
            .map(|s| {
                let points: Vec<String> = s
                    .points
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", scale.px(x), scale.py(y)))
                    .collect();
                let dots = (s.points.iter())
                    .filter(|_| !lines_only)
                    .map(|&(x, y)| {
                        let read_out = format!("{}: {} at {} {}", s.label, label(y), x_label, x);
                        view! {
                            <circle class="point" cx=scale.px(x) cy=scale.py(y) r="3" fill=s.color>
                                <title>{read_out}</title>
                            </circle>
                        }
                    })
                    .collect_view();
                view! {
                    <polyline class="line" points=points.join(" ") stroke=s.color data-series=s.label.clone() />
                    {dots}
                }
            })
            .collect_view();
        view! {
            {grid}
            {reference_line}
            <line class="axis" x1=LEFT x2=WIDTH - RIGHT y1=HEIGHT - BOTTOM y2=HEIGHT - BOTTOM />
            <line class="axis" x1=LEFT x2=LEFT y1=TOP y2=HEIGHT - BOTTOM />
            {x_ticks}
            {lines}
        }
    };
    view! {
        <figure class="chart" data-chart=title>
            <figcaption>{title}</figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=title>
                {plot}
                <text class="axis-label" x=(LEFT + WIDTH - RIGHT) / 2.0 y=HEIGHT - 8.0 text-anchor="middle">
                    {x_label}
                </text>
                <text
                    class="axis-label"
                    transform=format!("translate(16 {}) rotate(-90)", (TOP + HEIGHT - BOTTOM) / 2.0)
                    text-anchor="middle"
                >
                    {y_label}
                </text>
            </svg>
            <ul class="legend">
                {move || {
                    series
                        .get()
                        .into_iter()
                        .map(|s| {
                            view! {
                                <li>
                                    <span class="swatch" style:background=s.color></span>
                                    {s.label}
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        assert_eq!(
            ticks(0.0, 1.0, 5),
            [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(ticks(1.0, 20.0, 8), [5.0, 10.0, 15.0, 20.0]);
        assert_eq!(label(0.600_000_000_1), "0.6");
    }

    #[test]
    fn y_extent_pads_the_data_and_includes_the_reference() {
        let series = [Series {
            label: "k".into(),
            color: FUSED_COLOR,
            points: vec![(1.0, 1.2), (2.0, 1.6)],
        }];
        let (lo, hi) = y_extent(&series, None, Some(1.0));
        assert!(
            (lo - 0.97).abs() < 1e-9 && (hi - 1.63).abs() < 1e-9,
            "{lo} {hi}"
        );
        assert_eq!(y_extent(&[], None, None), (0.0, 1.0));
    }
}
