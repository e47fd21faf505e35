//! From data to the screen: the frame's linear map, round ticks, the points inside a window,
//! the point nearest the pointer, and the y extent of what is shown.

use super::{Series, BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH};

/// The data window on screen and the linear map from data units to SVG units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Frame {
    pub(super) x: (f64, f64),
    pub(super) y: (f64, f64),
}

impl Frame {
    /// SVG x of data x `x`.
    pub(super) fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * (WIDTH - LEFT - RIGHT)
    }

    /// SVG y of data y `y`.
    pub(super) fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0) * (HEIGHT - TOP - BOTTOM)
    }

    /// The data x under SVG x `px`, kept inside the window.
    pub(super) fn x_at(&self, px: f64) -> f64 {
        let fraction = ((px - LEFT) / (WIDTH - LEFT - RIGHT)).clamp(0.0, 1.0);
        self.x.0 + fraction * (self.x.1 - self.x.0)
    }
}

/// Y ticks aimed at, and the smallest y span shown, relative to the values' magnitude: a
/// series that barely moves (a constant k of 1.0, or rounding noise of 1e-7 around it) is
/// drawn flat, not blown up to fill the chart.
pub(super) const Y_TICKS: usize = 5;
const MIN_RELATIVE_SPAN: f64 = 0.02;

/// The round step (1, 2 or 5 times a power of ten) that cuts `[lo, hi]` into about `target`
/// parts.
fn tick_step(lo: f64, hi: f64, target: usize) -> f64 {
    let raw = (hi - lo) / target as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|f| f * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// Round tick positions covering `[lo, hi]`: steps of 1, 2 or 5 times a power of ten.
pub(super) fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let step = tick_step(lo, hi, target);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    // Multiples of the step, rounded to its decimals: 0.6, not 0.6000000000000001.
    let decimals = decimals_of(step) as i32;
    let round = |v: f64| (v * 10f64.powi(decimals)).round() / 10f64.powi(decimals);
    (first..=last).map(|i| round(i as f64 * step)).collect()
}

/// Decimals that tell apart values `step` apart.
fn decimals_of(step: f64) -> usize {
    (-step.log10()).ceil().clamp(0.0, 12.0) as usize
}

/// A value's text: at most three decimals, no trailing zeros.
pub(super) fn label(value: f64) -> String {
    label_with(value, 3)
}

/// A tick's text: as many decimals as tell ticks `step` apart (at least the three of
/// [`label`] when they do), no trailing zeros.
pub(super) fn tick_label(value: f64, step: f64) -> String {
    label_with(value, decimals_of(step).max(3))
}

fn label_with(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    // No "-0".
    if text == "-0" { "0" } else { text }.to_owned()
}

/// The step between consecutive `ticks` (0 for fewer than two).
pub(super) fn step_of(ticks: &[f64]) -> f64 {
    match ticks {
        [a, b, ..] => b - a,
        _ => 0.0,
    }
}

/// The points of `points` inside `[x0, x1]`, plus one on each side so lines reach the edges.
pub(super) fn visible(points: &[(f64, f64)], (x0, x1): (f64, f64)) -> &[(f64, f64)] {
    let lo = points.partition_point(|p| p.0 < x0).saturating_sub(1);
    let hi = (points.partition_point(|p| p.0 <= x1) + 1).min(points.len());
    &points[lo..hi.max(lo)]
}

/// The point of `points` nearest to `x`.
pub(super) fn nearest(points: &[(f64, f64)], x: f64) -> Option<(f64, f64)> {
    let i = points.partition_point(|p| p.0 < x);
    let before = i.checked_sub(1).map(|j| points[j]);
    let after = points.get(i).copied();
    match (before, after) {
        (Some(b), Some(a)) => Some(if x - b.0 <= a.0 - x { b } else { a }),
        (b, a) => b.or(a),
    }
}

/// Y extent: fixed if given, else the data in `x_range` and the reference line, at least
/// [`MIN_RELATIVE_SPAN`] of their magnitude wide, padded by 5% and widened to round ticks, so
/// that a tick lies at or beyond the data on each side.
pub(super) fn y_extent(
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
    let span = (hi - lo).max(MIN_RELATIVE_SPAN * lo.abs().max(hi.abs()));
    let (lo, hi) = if span > 0.0 {
        let middle = lo / 2.0 + hi / 2.0;
        let span = span.max(hi - lo);
        (middle - span / 2.0, middle + span / 2.0)
    } else {
        // Everything is 0.
        (-0.5, 0.5)
    };
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let step = tick_step(lo, hi, Y_TICKS);
    ((lo / step).floor() * step, (hi / step).ceil() * step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::FUSED_COLOR;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        assert_eq!(ticks(0.0, 1.0, 5), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(ticks(1.0, 20.0, 8), [5.0, 10.0, 15.0, 20.0]);
        assert_eq!(label(0.600_000_000_1), "0.6");
        assert_eq!(tick_label(0.000_012, 0.000_002), "0.000012");
        assert_eq!(tick_label(-0.000_000_1, 0.005), "0");
    }

    /// The y axis of `points` with the reference line at 1, as the k charts draw it: its
    /// extent and its ticks' labels.
    fn k_axis(ys: &[f64]) -> ((f64, f64), Vec<String>) {
        let series = [Series {
            label: "k".into(),
            color: FUSED_COLOR,
            points: ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect(),
            ..Series::default()
        }];
        let (lo, hi) = y_extent(&series, (0.0, ys.len() as f64), None, Some(1.0));
        let ticks = ticks(lo, hi, Y_TICKS);
        let step = step_of(&ticks);
        let labels = ticks.iter().map(|&t| tick_label(t, step)).collect();
        ((lo, hi), labels)
    }

    #[test]
    fn a_constant_series_is_drawn_flat_with_distinct_round_ticks() {
        // A joint run's k: exactly 1.0 at every step.
        let ((lo, hi), labels) = k_axis(&[1.0; 50]);
        assert!(lo < 1.0 && hi > 1.0 && hi - lo < 0.05, "{lo} {hi}");
        assert!(labels.contains(&"1".to_owned()), "{labels:?}");
        let mut distinct = labels.clone();
        distinct.dedup();
        assert_eq!(distinct, labels, "no two ticks say the same");
        assert!(labels.len() >= 3, "{labels:?}");
    }

    #[test]
    fn rounding_noise_is_not_blown_up() {
        // 1e-7 of variation around 1 (what EMA rounding once added): the same axis as flat.
        let noisy: Vec<f64> = (0..50)
            .map(|i| 1.0 + 1e-7 * f64::from(i % 3) - 1e-7)
            .collect();
        let (noisy_extent, labels) = k_axis(&noisy);
        let (flat_extent, _) = k_axis(&[1.0; 50]);
        assert!(
            (noisy_extent.0 - flat_extent.0).abs() < 1e-6,
            "{noisy_extent:?}"
        );
        assert!(
            (noisy_extent.1 - flat_extent.1).abs() < 1e-6,
            "{noisy_extent:?}"
        );
        assert!(labels.iter().all(|l| l.len() <= 5), "{labels:?}");
    }

    #[test]
    fn k_below_one_has_ticks_on_both_sides_and_at_one() {
        let ((lo, hi), labels) = k_axis(&[0.6, 0.75, 0.9]);
        assert!(lo <= 0.6 && hi >= 1.0, "{lo} {hi}");
        let ticks = ticks(lo, hi, Y_TICKS);
        assert!(ticks.first().is_some_and(|&t| t <= 0.6), "{ticks:?}");
        assert!(ticks.last().is_some_and(|&t| t >= 1.0), "{ticks:?}");
        assert!(labels.contains(&"1".to_owned()), "{labels:?}");
        assert!(labels.contains(&"0.6".to_owned()), "{labels:?}");
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
        // x = 3 is kept (the line must reach the edge), x = 4 is not: 1 to 9, padded to
        // 0.6 to 9.4, widened to ticks 2 apart.
        assert_eq!((lo, hi), (0.0, 10.0));
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
