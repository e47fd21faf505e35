//! The chart's drawing: the plot with its axes and lines, the read-out, the zoom selection
//! and the legend.

use leptos::prelude::*;

use super::scale::{label, nearest, step_of, tick_label, ticks, visible, Frame, Y_TICKS};
use super::state::ChartState;
use super::{Series, BOTTOM, HEIGHT, LEFT, MAX_MARKERS, READ_OUT_LINES, RIGHT, TEXT, TOP, WIDTH};

/// The plot: axes, their labels and the series' lines; it takes the pointer and the keys.
#[component]
pub(super) fn Plot(
    chart: ChartState,
    title: String,
    x_label: Signal<&'static str>,
    y_label: &'static str,
    series: Signal<Vec<Series>>,
    reference: Option<f64>,
    lines_only: bool,
    mark: MaybeProp<(f64, &'static str)>,
) -> impl IntoView {
    let axes = move || {
        let frame = chart.frame.get();
        axes(frame, !lines_only && chart.zoom.get().is_none(), reference)
    };
    let mark = move || {
        let (x, label) = mark.get()?;
        let frame = chart.frame.get();
        (frame.x.0..=frame.x.1).contains(&x).then(|| {
            let px = frame.px(x);
            view! {
                <g class="mark">
                    <line x1=px x2=px y1=TOP y2=HEIGHT - BOTTOM stroke="#5b6573" stroke-dasharray="2 3" />
                    <text x=px + 4.0 y=TOP + 10.0 font-size="11" fill="#5b6573">{label}</text>
                </g>
            }
        })
    };
    // The series first, then the frame computed from them: an effect checks its sources in
    // the order it read them, and the frame's memo reading a changed series first would
    // leave this one believing nothing changed (the curves then kept their old points).
    let lines = move || {
        series.with(|all| {
            let frame = chart.frame.get();
            lines(frame, all, x_label.get(), lines_only)
        })
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
            {mark}
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
    let y_ticks = ticks(frame.y.0, frame.y.1, Y_TICKS);
    let y_step = step_of(&y_ticks);
    let grid = (y_ticks.into_iter())
        .map(|y| {
            let py = frame.py(y);
            view! {
                <line class="grid" x1=LEFT x2=WIDTH - RIGHT y1=py y2=py stroke="#e7eaee" />
                <text class="tick" x=LEFT - 6.0 y=py + 4.0 text-anchor="end" font-size="11" fill=TEXT>
                    {tick_label(y, y_step)}
                </text>
            }
        })
        .collect_view();
    let x_ticks: Vec<f64> = (ticks(frame.x.0, frame.x.1, 8).into_iter())
        .filter(|x| !integer_x || x.fract() == 0.0)
        .collect();
    let x_step = step_of(&x_ticks);
    let x_ticks = (x_ticks.into_iter())
        .map(|x| {
            let px = frame.px(x);
            view! {
                <line class="axis" x1=px x2=px y1=HEIGHT - BOTTOM y2=HEIGHT - BOTTOM + 5.0 stroke=TEXT />
                <text class="tick" x=px y=HEIGHT - BOTTOM + 18.0 text-anchor="middle" font-size="11" fill=TEXT>
                    {tick_label(x, x_step)}
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
                push_tenths(&mut points, frame.px(x));
                points.push(',');
                push_tenths(&mut points, frame.py(y));
                points.push(' ');
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

/// Appends `v` with one decimal, as `{:.1}` writes it, by integer formatting: float
/// formatting was a fifth of the time to draw a compare page's 90,000 points.
pub(super) fn push_tenths(out: &mut String, v: f64) {
    use std::fmt::Write;
    let tenths = (v * 10.0).round();
    // NaN and values beyond an i64's exact range take the slow path.
    if tenths.is_nan() || tenths.abs() >= 1e15 {
        let _ = write!(out, "{v:.1}");
        return;
    }
    let tenths = tenths as i64;
    if tenths < 0 {
        out.push('-');
    }
    let tenths = tenths.unsigned_abs();
    let _ = write!(out, "{}.{}", tenths / 10, tenths % 10);
}

/// The read-out at data x `x`: a vertical line, each series' nearest point, and a box of
/// their values on the side of the line with more room.
pub(super) fn read_out(frame: Frame, x: f64, all: &[Series], x_label: &str) -> impl IntoView {
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
pub(super) fn selection(frame: Frame, (a, b): (f64, f64)) -> impl IntoView {
    let (pa, pb) = (frame.px(a.min(b)), frame.px(a.max(b)));
    view! {
        <rect class="selection" x=pa y=TOP width=pb - pa height=HEIGHT - TOP - BOTTOM
            fill="#1f6fb4" fill-opacity="0.12" pointer-events="none" />
    }
}

/// Each series' name beside its line style.
#[component]
pub(super) fn Legend(series: Signal<Vec<Series>>) -> impl IntoView {
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
    use super::push_tenths;

    #[test]
    fn coordinates_are_written_as_one_decimal_formatting_would() {
        for v in [
            0.0,
            0.04,
            -0.04,
            1.25,
            12.34,
            -7.96,
            99.95,
            640.0,
            -0.5,
            1e7 + 0.3,
        ] {
            let mut written = String::new();
            push_tenths(&mut written, v);
            let parsed: f64 = written.parse().unwrap();
            assert!((parsed - v).abs() <= 0.05 + 1e-9, "{v}: {written}");
            // The same text, but for the sign of a zero and ties (here away from zero).
            let tie = ((v * 10.0).fract().abs() - 0.5).abs() < 1e-6;
            let reference = format!("{v:.1}");
            assert!(
                tie || written == reference || written == reference.trim_start_matches('-'),
                "{v}: {written} against {reference}"
            );
        }
        let mut huge = String::new();
        push_tenths(&mut huge, f64::MAX);
        assert_eq!(huge, format!("{:.1}", f64::MAX));
    }
}
