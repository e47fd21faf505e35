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

/// Round tick positions covering `[lo, hi]`: steps of 1, 2 or 5 times a power of ten.
pub(super) fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
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

/// A tick's or a value's text: at most three decimals, no trailing zeros.
pub(super) fn label(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
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

/// Y extent: fixed if given, else the data in `x_range` (and the reference line) padded by 5%.
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
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::FUSED_COLOR;

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
