//! Step series already computed, kept for the next reader: a run's log only grows and its
//! positions are never reused, so the series of its steps when its log ended at position
//! `through` never changes. Reopening a compare page of finished runs then reads no step
//! again; a run that trains on has a new `through`, and its series are computed afresh.

use std::sync::Arc;

use balancelab_shared::{MetricSeries, XAxis};
use quick_cache::sync::Cache;
use quick_cache::Weighter;

/// Bytes the cache holds at most, over every series, as [`ByBytes`] weighs them.
const CAPACITY_BYTES: u64 = 32 << 20;

/// What an entry costs beyond its points and paths: the key's and the series' fixed parts
/// and the cache's own keeping, rounded up.
const ENTRY_OVERHEAD: u64 = 256;

/// One series as asked for: which run's steps (its log ending at which position), which
/// key, on which x axis, downsampled to how many points.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct SeriesKey {
    pub(super) run: i64,
    pub(super) through: i64,
    pub(super) path: String,
    pub(super) x: XAxis,
    pub(super) points: usize,
}

/// An entry weighs the bytes it holds: its points (16 bytes each), its paths, and the rest.
#[derive(Clone)]
struct ByBytes;

impl Weighter<SeriesKey, Arc<MetricSeries>> for ByBytes {
    fn weight(&self, key: &SeriesKey, series: &Arc<MetricSeries>) -> u64 {
        let points = std::mem::size_of_val(series.points.as_slice()) as u64;
        points + (key.path.len() + series.key.len()) as u64 + ENTRY_OVERHEAD
    }
}

/// The step series computed lately, the least used given up first.
pub(super) struct SeriesCache(Cache<SeriesKey, Arc<MetricSeries>, ByBytes>);

impl Default for SeriesCache {
    fn default() -> Self {
        Self(Cache::with_weighter(4096, CAPACITY_BYTES, ByBytes))
    }
}

impl SeriesCache {
    pub(super) fn get(&self, key: &SeriesKey) -> Option<Arc<MetricSeries>> {
        self.0.get(key)
    }

    pub(super) fn insert(&self, key: SeriesKey, series: MetricSeries) {
        self.0.insert(key, Arc::new(series));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancelab_shared::SeriesPoint;

    fn key(run: i64, through: i64) -> SeriesKey {
        SeriesKey {
            run,
            through,
            path: "loss".into(),
            x: XAxis::Step,
            points: 500,
        }
    }

    fn series(points: usize) -> MetricSeries {
        MetricSeries {
            key: "step.loss".into(),
            x: XAxis::Step,
            points: (0..points).map(|i| SeriesPoint(i as f64, 1.0)).collect(),
            total: points,
        }
    }

    #[test]
    fn a_series_is_kept_for_the_steps_it_was_computed_from_within_its_capacity() {
        let cache = SeriesCache::default();
        cache.insert(key(1, 100), series(500));
        assert_eq!(cache.get(&key(1, 100)).unwrap().points.len(), 500);
        assert!(cache.get(&key(1, 101)).is_none(), "steps were added since");
        // Far more points than the capacity: the cache stays within it.
        for run in 2..10_000 {
            cache.insert(key(run, 1), series(1000));
        }
        let held: u64 = (1..10_000)
            .filter_map(|run| {
                cache
                    .get(&key(run, 1))
                    .map(|s| ByBytes.weight(&key(run, 1), &s))
            })
            .sum();
        assert!(held <= CAPACITY_BYTES, "{held}");
        assert!(held > CAPACITY_BYTES / 2, "the cache is used: {held}");
    }
}
