//! A small SVG line chart: axes with ticks and labels, one line per series, a legend below
//! the plot (so it never hides data), a hover read-out of every series at the pointer, zoom
//! by dragging over an x range, and export as SVG or PNG. Keyboard: arrows move the read-out,
//! `+`/`-` zoom around it, Escape resets.
//!
//! Styling is in presentation attributes, not the page's CSS, so an exported SVG looks the
//! same on its own.

use leptos::prelude::*;

use crate::chart_export;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub label: String,
    pub color: &'static str,
    /// SVG `stroke-dasharray` ("" for a solid line): tells apart series of one colour.
    pub dash: &'static str,
    /// (x, y) in data units, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// Colours of modality 0, 1, ...; the fused output is drawn in [`FUSED_COLOR`].
pub const MODALITY_COLORS: [&str; 6] = [
    "#1f6fb4", "#d1495b", "#2a9d59", "#8a5fbf", "#e08a1e", "#17a2b8",
];
pub const FUSED_COLOR: &str = "#222222";
/// Dash patterns for series sharing a colour, in order.
pub const DASHES: [&str; 4] = ["", "6 3", "2 3", "8 3 2 3"];

pub const WIDTH: f64 = 520.0;
pub const HEIGHT: f64 = 300.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 46.0;
const TEXT: &str = "#444";
/// Points drawn with a marker at most; more are lines only (the read-out still has them).
const MAX_MARKERS: usize = 1000;
/// Series listed in the read-out at most; the rest are counted.
const READ_OUT_LINES: usize = 8;

/// The data window on screen and the linear map from data units to SVG units.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0) * (HEIGHT - TOP - BOTTOM)
    }

    /// The data x under SVG x `px`, kept inside the window.
    fn x_at(&self, px: f64) -> f64 {
        let fraction = ((px - LEFT) / (WIDTH - LEFT - RIGHT)).clamp(0.0, 1.0);
        self.x.0 + fraction * (self.x.1 - self.x.0)
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

/// The points of `points` inside `[x0, x1]`, plus one on each side so lines reach the edges.
fn visible(points: &[(f64, f64)], (x0, x1): (f64, f64)) -> &[(f64, f64)] {
    let lo = points.partition_point(|p| p.0 < x0).saturating_sub(1);
    let hi = (points.partition_point(|p| p.0 <= x1) + 1).min(points.len());
    &points[lo..hi.max(lo)]
}

/// The point of `points` nearest to `x`.
fn nearest(points: &[(f64, f64)], x: f64) -> Option<(f64, f64)> {
    let i = points.partition_point(|p| p.0 < x);
    let before = i.checked_sub(1).map(|j| points[j]);
    let after = points.get(i).copied();
    match (before, after) {
        (Some(b), Some(a)) => Some(if x - b.0 <= a.0 - x { b } else { a }),
        (b, a) => b.or(a),
    }
}

/// Y extent: fixed if given, else the data in `x_range` (and the reference line) padded by 5%.
fn y_extent(
    series: &[Series],
    x_range: (f64, f64),
    fixed: Option<(f64, f64)>,
    reference: Option<f64>,
) -> (f64, f64) {
    if let Some(range) = fixed {
        return range;
    }
    let values = (series.iter())
        .flat_map(|s| visible(&s.points, x_range).iter().map(|p| p.1))
        .filter(|v| v.is_finite())
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
) -> impl IntoView {
    let chart = ChartState::new(x_min.unwrap_or(1.0), x_max, series, y_range, reference);
    let export = move |download: fn(&web_sys::Element, &str, &[chart_export::LegendItem])| {
        move |_| {
            if let Some(svg) = chart.svg_ref.get_untracked() {
                let legend = series.with_untracked(|s| chart_export::legend_items(s));
                download(&svg, title, &legend);
            }
        }
    };
    let selection = move || Some(selection(chart.frame.get(), chart.drag.get()?));
    let read_out = move || {
        let x = chart.hover.get()?;
        let frame = chart.frame.get();
        let x_label = x_label.get();
        Some(series.with(|all| read_out(frame, x, all, x_label)))
    };
    view! {
        <figure class="chart" data-chart=title>
            <figcaption>{title}</figcaption>
            <div class="plot-area">
                <Plot chart title x_label y_label series reference lines_only />
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

/// What a chart shows of its data, and how the pointer and the keyboard change it.
#[derive(Clone, Copy)]
struct ChartState {
    /// The data window on screen: the zoomed x range, and the y extent of the data in it.
    frame: Memo<Frame>,
    /// The x range zoomed to; none: the whole axis.
    zoom: RwSignal<Option<(f64, f64)>>,
    /// The data x of the read-out: under the pointer, or moved to by the keyboard.
    hover: RwSignal<Option<f64>>,
    /// The x range being dragged over, from where the drag started.
    drag: RwSignal<Option<(f64, f64)>>,
    /// The whole x axis, from `x_min` to the planned end.
    full_x: Signal<(f64, f64)>,
    svg_ref: NodeRef<leptos::svg::Svg>,
}

impl ChartState {
    fn new(
        x_min: f64,
        x_max: Signal<f64>,
        series: Signal<Vec<Series>>,
        y_range: Option<(f64, f64)>,
        reference: Option<f64>,
    ) -> Self {
        let zoom = RwSignal::new(None::<(f64, f64)>);
        let full_x = Signal::derive(move || (x_min, x_max.get().max(x_min + 1.0)));
        let frame = Memo::new(move |_| {
            let x = zoom.get().unwrap_or_else(|| full_x.get());
            let y = series.with(|s| y_extent(s, x, y_range, reference));
            Frame { x, y }
        });
        Self {
            frame,
            zoom,
            hover: RwSignal::new(None),
            drag: RwSignal::new(None),
            full_x,
            svg_ref: NodeRef::new(),
        }
    }

    /// The data x under the pointer.
    fn pointer_x(self, ev: &leptos::ev::MouseEvent) -> Option<f64> {
        let svg = self.svg_ref.get_untracked()?;
        let rect = svg.get_bounding_client_rect();
        if rect.width() <= 0.0 {
            return None;
        }
        let px = (f64::from(ev.client_x()) - rect.left()) / rect.width() * WIDTH;
        Some(self.frame.get_untracked().x_at(px))
    }

    /// Shows the x range from `a` to `b`, within the axis; all of it is no zoom.
    fn zoom_to(self, (a, b): (f64, f64)) {
        let (full0, full1) = self.full_x.get();
        let (lo, hi) = (a.min(b).max(full0), a.max(b).min(full1));
        if lo <= full0 && hi >= full1 {
            self.zoom.set(None);
        } else if hi - lo > (full1 - full0) * 1e-3 {
            self.zoom.set(Some((lo, hi)));
        }
    }

    /// A press starts a drag.
    fn press(self, ev: &leptos::ev::MouseEvent) {
        if let Some(x) = self.pointer_x(ev) {
            self.drag.set(Some((x, x)));
        }
    }

    /// The read-out follows the pointer, and a drag reaches it.
    fn point(self, ev: &leptos::ev::MouseEvent) {
        let Some(x) = self.pointer_x(ev) else { return };
        self.hover.set(Some(x));
        if self.drag.get_untracked().is_some() {
            self.drag.update(|d| d.iter_mut().for_each(|d| d.1 = x));
        }
    }

    /// The end of a drag zooms to the range dragged over.
    fn release(self) {
        if let Some((a, b)) = self.drag.get_untracked() {
            let width = self.frame.get_untracked().x;
            // A click is not a zoom: the drag must cover 1% of the window.
            if (b - a).abs() > (width.1 - width.0) * 0.01 {
                self.zoom_to((a, b));
            }
        }
        self.drag.set(None);
    }

    /// Arrows move the read-out, `+`/`-` zoom around it, Escape resets.
    fn key(self, ev: &leptos::ev::KeyboardEvent) {
        let (x0, x1) = self.frame.get_untracked().x;
        let span = x1 - x0;
        let at = self.hover.get_untracked().unwrap_or((x0 + x1) / 2.0);
        match ev.key().as_str() {
            "ArrowLeft" => self.hover.set(Some((at - span / 50.0).max(x0))),
            "ArrowRight" => self.hover.set(Some((at + span / 50.0).min(x1))),
            "+" | "=" => self.zoom_to((at - span / 4.0, at + span / 4.0)),
            "-" => self.zoom_to((at - span, at + span)),
            "Escape" => {
                self.zoom.set(None);
                self.hover.set(None);
            }
            _ => return,
        }
        ev.prevent_default();
    }
}

/// The plot: axes, their labels and the series' lines; it takes the pointer and the keys.
#[component]
fn Plot(
    chart: ChartState,
    title: &'static str,
    x_label: Signal<&'static str>,
    y_label: &'static str,
    series: Signal<Vec<Series>>,
    reference: Option<f64>,
    lines_only: bool,
) -> impl IntoView {
    let axes = move || {
        let frame = chart.frame.get();
        axes(frame, !lines_only && chart.zoom.get().is_none(), reference)
    };
    let lines = move || {
        let frame = chart.frame.get();
        let x_label = x_label.get();
        series.with(|all| lines(frame, all, x_label, lines_only))
    };
    let clip_id = format!(
        "plot-{}",
        title.replace(|c: char| !c.is_alphanumeric(), "-")
    );
    let clip_url = format!("url(#{clip_id})");
    view! {
        <svg
            node_ref=chart.svg_ref
            class="plot"
            xmlns="http://www.w3.org/2000/svg"
            viewBox=format!("0 0 {WIDTH} {HEIGHT}")
            width=WIDTH
            height=HEIGHT
            font-family="system-ui, sans-serif"
            role="img"
            aria-label=format!("{title}. Arrows: read values; + and -: zoom; Escape: reset.")
            tabindex="0"
            on:mousedown=move |ev| chart.press(&ev)
            on:mousemove=move |ev| chart.point(&ev)
            on:mouseup=move |_| chart.release()
            on:mouseleave=move |_| {
                chart.hover.set(None);
                chart.drag.set(None);
            }
            on:dblclick=move |_| chart.zoom.set(None)
            on:keydown=move |ev| chart.key(&ev)
        >
            <defs>
                <clipPath id=clip_id>
                    <rect x=LEFT - 4.0 y=TOP - 4.0 width=WIDTH - LEFT - RIGHT + 8.0 height=HEIGHT - TOP - BOTTOM + 8.0 />
                </clipPath>
            </defs>
            <rect x="0" y="0" width=WIDTH height=HEIGHT fill="#ffffff" />
            {axes}
            <line class="axis" x1=LEFT x2=WIDTH - RIGHT y1=HEIGHT - BOTTOM y2=HEIGHT - BOTTOM stroke=TEXT />
            <line class="axis" x1=LEFT x2=LEFT y1=TOP y2=HEIGHT - BOTTOM stroke=TEXT />
            <g clip-path=clip_url>{lines}</g>
            <text class="axis-label" x=(LEFT + WIDTH - RIGHT) / 2.0 y=HEIGHT - 8.0 text-anchor="middle"
                font-size="12" fill="#5b6573">
                {move || x_label.get()}
            </text>
            <text
                class="axis-label"
                transform=format!("translate(16 {}) rotate(-90)", (TOP + HEIGHT - BOTTOM) / 2.0)
                text-anchor="middle"
                font-size="12"
                fill="#5b6573"
            >
                {y_label}
            </text>
        </svg>
    }
}

/// The horizontal grid with the y ticks, the x ticks (whole numbers only if `integer_x`),
/// and the dashed reference line.
fn axes(frame: Frame, integer_x: bool, reference: Option<f64>) -> impl IntoView {
    let grid = ticks(frame.y.0, frame.y.1, 5)
        .into_iter()
        .map(|y| {
            let py = frame.py(y);
            view! {
                <line class="grid" x1=LEFT x2=WIDTH - RIGHT y1=py y2=py stroke="#e7eaee" />
                <text class="tick" x=LEFT - 6.0 y=py + 4.0 text-anchor="end" font-size="11" fill=TEXT>
                    {label(y)}
                </text>
            }
        })
        .collect_view();
    let x_ticks = ticks(frame.x.0, frame.x.1, 8)
        .into_iter()
        .filter(|x| !integer_x || x.fract() == 0.0)
        .map(|x| {
            let px = frame.px(x);
            view! {
                <line class="axis" x1=px x2=px y1=HEIGHT - BOTTOM y2=HEIGHT - BOTTOM + 5.0 stroke=TEXT />
                <text class="tick" x=px y=HEIGHT - BOTTOM + 18.0 text-anchor="middle" font-size="11" fill=TEXT>
                    {label(x)}
                </text>
            }
        })
        .collect_view();
    let reference_line = reference.map(|r| {
        let py = frame.py(r);
        view! {
            <line class="reference" x1=LEFT x2=WIDTH - RIGHT y1=py y2=py
                stroke="#888" stroke-dasharray="5 4" />
        }
    });
    view! { {grid} {reference_line} {x_ticks} }
}

/// One line per series of `all`, and a marker per point (its value as a tooltip) while the
/// points shown stay few.
fn lines(frame: Frame, all: &[Series], x_label: &str, lines_only: bool) -> impl IntoView {
    let shown_points: usize = all.iter().map(|s| visible(&s.points, frame.x).len()).sum();
    let markers = !lines_only && shown_points <= MAX_MARKERS;
    all.iter()
        .map(|s| {
            let shown = visible(&s.points, frame.x);
            let mut points = String::with_capacity(shown.len() * 12);
            for &(x, y) in shown.iter().filter(|p| p.1.is_finite()) {
                use std::fmt::Write;
                let _ = write!(points, "{:.1},{:.1} ", frame.px(x), frame.py(y));
            }
            let dots = (shown.iter())
                .filter(|p| markers && p.1.is_finite())
                .map(|&(x, y)| {
                    let read_out = format!("{}: {} at {} {}", s.label, label(y), x_label, x);
                    view! {
                        <circle class="point" cx=frame.px(x) cy=frame.py(y) r="3" fill=s.color>
                            <title>{read_out}</title>
                        </circle>
                    }
                })
                .collect_view();
            view! {
                <polyline class="line" points=points stroke=s.color fill="none" stroke-width="2"
                    stroke-dasharray=s.dash data-series=s.label.clone() />
                {dots}
            }
        })
        .collect_view()
}

/// The read-out at data x `x`: a vertical line, each series' nearest point, and a box of
/// their values on the side of the line with more room.
fn read_out(frame: Frame, x: f64, all: &[Series], x_label: &str) -> impl IntoView {
    let values: Vec<(String, &'static str, f64, f64)> = (all.iter())
        .filter_map(|s| {
            let (px, py) = nearest(visible(&s.points, frame.x), x)?;
            Some((s.label.clone(), s.color, px, py))
        })
        .collect();
    let at = values.first().map_or(x, |v| v.2);
    let mut lines = vec![format!("{x_label} {}", label(at))];
    lines.extend(
        (values.iter().take(READ_OUT_LINES))
            .map(|(name, _, _, y)| format!("{name}: {}", label(*y))),
    );
    if values.len() > READ_OUT_LINES {
        lines.push(format!("+{} more", values.len() - READ_OUT_LINES));
    }
    let px = frame.px(at);
    let box_width = 12.0 + 6.2 * lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let box_width = box_width.min(WIDTH - LEFT - RIGHT);
    // On the side of the cursor with more room.
    let box_x = if px > (LEFT + WIDTH - RIGHT) / 2.0 {
        (px - 8.0 - box_width).max(LEFT)
    } else {
        (px + 8.0).min(WIDTH - RIGHT - box_width)
    };
    let markers = (values.iter())
        .map(|(_, color, x, y)| {
            view! { <circle cx=frame.px(*x) cy=frame.py(*y) r="3.5" fill="#fff" stroke=*color stroke-width="2" /> }
        })
        .collect_view();
    let text = (lines.into_iter().enumerate())
        .map(|(i, line)| {
            let weight = if i == 0 { "600" } else { "400" };
            view! {
                <text x=box_x + 6.0 y=TOP + 14.0 + 14.0 * i as f64 font-size="11" fill="#1d232b" font-weight=weight>
                    {line}
                </text>
            }
        })
        .collect_view();
    let rows = 1 + values.len().min(READ_OUT_LINES) + usize::from(values.len() > READ_OUT_LINES);
    view! {
        <g class="read-out" pointer-events="none">
            <line x1=px x2=px y1=TOP y2=HEIGHT - BOTTOM stroke="#888" />
            {markers}
            <rect x=box_x y=TOP + 2.0 width=box_width height=8.0 + 14.0 * rows as f64
                fill="#ffffff" fill-opacity="0.92" stroke="#d8dde4" rx="4" />
            {text}
        </g>
    }
}

/// The x range being dragged over, shaded.
fn selection(frame: Frame, (a, b): (f64, f64)) -> impl IntoView {
    let (pa, pb) = (frame.px(a.min(b)), frame.px(a.max(b)));
    view! {
        <rect class="selection" x=pa y=TOP width=pb - pa height=HEIGHT - TOP - BOTTOM
            fill="#1f6fb4" fill-opacity="0.12" pointer-events="none" />
    }
}

/// Each series' name beside its line style.
#[component]
fn Legend(series: Signal<Vec<Series>>) -> impl IntoView {
    view! {
        <ul class="legend">
            {move || {
                series
                    .get()
                    .into_iter()
                    .map(|s| {
                        view! {
                            <li>
                                <svg class="swatch" width="22" height="8" aria-hidden="true">
                                    <line x1="1" x2="21" y1="4" y2="4" stroke=s.color stroke-width="3"
                                        stroke-dasharray=s.dash />
                                </svg>
                                {s.label}
                            </li>
                        }
                    })
                    .collect_view()
            }}
        </ul>
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
    fn y_extent_pads_the_visible_data_and_includes_the_reference() {
        let series = [Series {
            label: "k".into(),
            color: FUSED_COLOR,
            points: vec![(1.0, 1.2), (2.0, 1.6), (3.0, 9.0), (4.0, 9.0)],
            ..Series::default()
        }];
        let (lo, hi) = y_extent(&series, (1.0, 2.0), None, Some(1.0));
        // x = 3 is kept (the line must reach the edge), x = 4 is not.
        assert!(
            (lo - 0.6).abs() < 1e-9 && (hi - 9.4).abs() < 1e-9,
            "{lo} {hi}"
        );
        assert_eq!(y_extent(&[], (0.0, 1.0), None, None), (0.0, 1.0));
    }

    #[test]
    fn the_read_out_takes_the_nearest_point() {
        let points = [(0.0, 1.0), (10.0, 2.0), (20.0, 3.0)];
        assert_eq!(nearest(&points, 4.9), Some((0.0, 1.0)));
        assert_eq!(nearest(&points, 5.1), Some((10.0, 2.0)));
        assert_eq!(nearest(&points, 99.0), Some((20.0, 3.0)));
        assert_eq!(nearest(&[], 1.0), None);
        assert_eq!(visible(&points, (11.0, 12.0)), &points[1..3]);
        assert_eq!(visible(&points, (30.0, 40.0)), &points[2..3]);
    }

    #[test]
    fn x_under_the_pointer_stays_in_the_window() {
        let frame = Frame {
            x: (0.0, 100.0),
            y: (0.0, 1.0),
        };
        assert_eq!(frame.x_at(LEFT), 0.0);
        assert_eq!(frame.x_at(WIDTH - RIGHT), 100.0);
        assert_eq!(frame.x_at(0.0), 0.0);
        assert!((frame.x_at(frame.px(37.0)) - 37.0).abs() < 1e-9);
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
