//! Metric series and their downsampling: a chart of 10,000 steps needs a few hundred points,
//! but must still show every spike, so each bucket keeps its minimum and its maximum.

use serde::{Deserialize, Serialize};

/// The x axis of a series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum XAxis {
    /// Optimisation steps (for epoch metrics: steps done when the epoch ended).
    #[default]
    Step,
    /// Epochs; a step inside epoch `e` sits at a fraction of the way from `e - 1` to `e`.
    Epoch,
    /// Seconds since the run started.
    Time,
}

/// One point of a series: `[x, y]` in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeriesPoint(
    #[serde(with = "crate::non_finite")] pub f64,
    #[serde(with = "crate::non_finite")] pub f64,
);

/// One metric of one run, such as `step.coefficients[0]` or `epoch.test.fused`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricSeries {
    /// The metric, such as `step.loss`.
    pub key: String,
    /// What the points' x values measure.
    pub x: XAxis,
    /// The points, in x order, after downsampling.
    pub points: Vec<SeriesPoint>,
    /// Points before downsampling.
    pub total: usize,
}

/// At most `max_points` of `points` (in x order): the points are cut into `max_points / 2`
/// consecutive buckets and each keeps its lowest and highest point, in their order. The
/// series' extremes therefore always survive. Fewer points than the limit are kept as is.
pub fn downsample(points: &[SeriesPoint], max_points: usize) -> Vec<SeriesPoint> {
    let mut downsampler = Downsampler::new(points.len(), max_points);
    for &point in points {
        downsampler.push(point);
    }
    downsampler.finish()
}

/// [`downsample`] one point at a time, for series read in pages: it holds one bucket and
/// the points kept, never the whole series. The number of points must be known up front: it
/// sizes the buckets, and a series that turns out longer gets more of them.
#[derive(Clone, Debug)]
pub struct Downsampler {
    max_points: usize,
    /// Points per bucket; `usize::MAX` keeps every point.
    bucket_size: usize,
    in_bucket: usize,
    /// The bucket's first lowest and last highest point so far.
    low: Option<SeriesPoint>,
    high: Option<SeriesPoint>,
    kept: Vec<SeriesPoint>,
}

impl Downsampler {
    /// A downsampler of a series of `total` points to at most `max_points`.
    pub fn new(total: usize, max_points: usize) -> Self {
        let bucket_size = if total <= max_points {
            usize::MAX
        } else {
            total.div_ceil((max_points / 2).max(1))
        };
        Self {
            max_points,
            bucket_size,
            in_bucket: 0,
            low: None,
            high: None,
            kept: Vec::new(),
        }
    }

    /// The next point of the series, in x order.
    pub fn push(&mut self, point: SeriesPoint) {
        if self.bucket_size == usize::MAX {
            return self.kept.push(point);
        }
        if self.in_bucket == self.bucket_size {
            self.close_bucket();
        }
        self.in_bucket += 1;
        // The first of equal lows and the last of equal highs, as `min_by` and `max_by` pick.
        if self.low.is_none_or(|low| point.1.total_cmp(&low.1).is_lt()) {
            self.low = Some(point);
        }
        if self
            .high
            .is_none_or(|high| point.1.total_cmp(&high.1).is_ge())
        {
            self.high = Some(point);
        }
    }

    fn close_bucket(&mut self) {
        if let (Some(low), Some(high)) = (self.low.take(), self.high.take()) {
            let (first, second) = if low.0 <= high.0 {
                (low, high)
            } else {
                (high, low)
            };
            self.kept.push(first);
            // The same point when the bucket's lowest is its highest (NaN != NaN: by bits).
            let same =
                second.0.to_bits() == first.0.to_bits() && second.1.to_bits() == first.1.to_bits();
            if !same {
                self.kept.push(second);
            }
        }
        self.in_bucket = 0;
    }

    /// The points kept.
    pub fn finish(mut self) -> Vec<SeriesPoint> {
        self.close_bucket();
        if self.max_points == 1 {
            self.kept.truncate(1);
        }
        self.kept
    }
}

/// Exponential moving average with TensorBoard's debiasing: s_t = w s_(t-1) + (1 - w) y_t,
/// shown as s_t / (1 - w^t), so the start is not pulled towards zero. `weight` 0 keeps the
/// series as is; values near 1 smooth hardest.
///
/// Each smoothed value is a weighted mean of the values so far, so it lies within their
/// range; it is held there, so that floating-point rounding never moves it out (a constant
/// series stays exactly constant, and a chart does not draw its rounding as a signal). A
/// value that is not finite is kept as it is and left out of the mean.
pub fn smooth(points: &[SeriesPoint], weight: f64) -> Vec<SeriesPoint> {
    let weight = weight.clamp(0.0, 0.999);
    let mut average = 0.0;
    let mut correction = 1.0;
    let (mut lowest, mut highest) = (f64::INFINITY, f64::NEG_INFINITY);
    points
        .iter()
        .map(|&SeriesPoint(x, y)| {
            if !y.is_finite() {
                return SeriesPoint(x, y);
            }
            average = weight * average + (1.0 - weight) * y;
            correction *= weight;
            (lowest, highest) = (lowest.min(y), highest.max(y));
            SeriesPoint(x, (average / (1.0 - correction)).clamp(lowest, highest))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_a_debiased_moving_average() {
        let points = series(&[1.0, 3.0, 2.0]);
        assert_eq!(smooth(&points, 0.0), points, "weight 0 changes nothing");
        // w = 0.5: raw averages 0.5, 1.75, 1.875; divided by 1 - 0.5^t = 0.5, 0.75, 0.875.
        let smoothed: Vec<f64> = smooth(&points, 0.5).iter().map(|p| p.1).collect();
        let expected = [1.0, 1.75 / 0.75, 1.875 / 0.875];
        for (got, want) in smoothed.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{smoothed:?}");
        }
        // A constant stays exactly constant from the first point: the debiasing at work,
        // and rounding held within the values' range (1.0 at weight 0.6 drifted by 1e-16).
        for weight in [0.6, 0.9, 0.99, 0.999] {
            for value in [1.0, 2.0, 0.1, 1e-7, 1234.5678] {
                let flat = smooth(&series(&[value; 300]), weight);
                assert!(flat.iter().all(|p| p.1 == value), "{value} at {weight}");
            }
        }
        // Never outside the range of the values so far; a NaN passes through, a gap.
        let ys = [0.3, 0.30000000000000004, 0.29999999999999993, f64::NAN, 0.3];
        let smoothed = smooth(&series(&ys), 0.9);
        assert!(smoothed[3].1.is_nan());
        for (i, p) in smoothed.iter().enumerate().filter(|(i, _)| *i != 3) {
            let so_far = ys[..=i].iter().filter(|y| y.is_finite());
            let (lo, hi) = so_far.fold((f64::MAX, f64::MIN), |(l, h), &y| (l.min(y), h.max(y)));
            assert!(p.1 >= lo && p.1 <= hi, "{i}: {} not in [{lo}, {hi}]", p.1);
        }
    }

    fn series(ys: &[f64]) -> Vec<SeriesPoint> {
        ys.iter()
            .enumerate()
            .map(|(i, &y)| SeriesPoint(i as f64, y))
            .collect()
    }

    #[test]
    fn short_series_are_kept_whole() {
        let points = series(&[3.0, 1.0, 2.0]);
        assert_eq!(downsample(&points, 3), points);
        assert_eq!(downsample(&points, 100), points);
    }

    #[test]
    fn each_bucket_keeps_its_minimum_and_maximum_in_x_order() {
        // 8 points, 4 allowed: buckets [0..4) and [4..8).
        let points = series(&[5.0, 9.0, 1.0, 4.0, 2.0, 2.0, 0.0, 7.0]);
        let kept = downsample(&points, 4);
        assert_eq!(
            kept,
            [
                SeriesPoint(1.0, 9.0),
                SeriesPoint(2.0, 1.0),
                SeriesPoint(6.0, 0.0),
                SeriesPoint(7.0, 7.0)
            ]
        );
    }

    #[test]
    fn a_single_spike_in_ten_thousand_points_survives() {
        let mut ys: Vec<f64> = (0..10_000).map(|i| (i as f64 * 0.01).sin()).collect();
        ys[7_777] = 50.0;
        ys[1_234] = -50.0;
        let kept = downsample(&series(&ys), 500);
        assert!(kept.len() <= 500, "{} points", kept.len());
        assert!(kept.contains(&SeriesPoint(7_777.0, 50.0)));
        assert!(kept.contains(&SeriesPoint(1_234.0, -50.0)));
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0), "x order kept");
    }

    #[test]
    fn downsampling_point_by_point_equals_the_old_slice_version() {
        // The slice version this replaced (chunks, `min_by` and `max_by`), a lone NaN fixed.
        fn by_chunks(points: &[SeriesPoint], max_points: usize) -> Vec<SeriesPoint> {
            if points.len() <= max_points {
                return points.to_vec();
            }
            let size = points.len().div_ceil((max_points / 2).max(1));
            let mut out = Vec::new();
            for bucket in points.chunks(size) {
                let by_y = |a: &&SeriesPoint, b: &&SeriesPoint| a.1.total_cmp(&b.1);
                let low = bucket.iter().min_by(by_y).unwrap();
                let high = bucket.iter().max_by(by_y).unwrap();
                let (first, second) = if low.0 <= high.0 {
                    (low, high)
                } else {
                    (high, low)
                };
                out.push(*first);
                // The slice version kept a lone NaN twice (`!=` is true for NaN); not this.
                if !std::ptr::eq(first, second) {
                    out.push(*second);
                }
            }
            if max_points == 1 {
                out.truncate(1);
            }
            out
        }
        let mut state = 12345u64;
        for n in [0, 1, 2, 7, 100, 1001] {
            // Few distinct values, so that ties are frequent; a NaN now and then.
            let ys: Vec<f64> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    match state >> 60 {
                        0 => f64::NAN,
                        r => (r % 4) as f64,
                    }
                })
                .collect();
            let points = series(&ys);
            for max_points in [1, 2, 3, 10, 99, 2000] {
                let expected = by_chunks(&points, max_points);
                let got = downsample(&points, max_points);
                assert_eq!(got.len(), expected.len(), "{n} points to {max_points}");
                for (g, e) in got.iter().zip(&expected) {
                    assert!(
                        g.0 == e.0 && g.1.total_cmp(&e.1).is_eq(),
                        "{n} to {max_points}"
                    );
                }
            }
        }
    }

    #[test]
    fn points_are_a_pair_in_json() {
        let json = serde_json::to_string(&SeriesPoint(3.0, 0.5)).unwrap();
        assert_eq!(json, "[3.0,0.5]");
    }
}
