//! `/runs/{id}/metrics`: series of chosen metrics, downsampled on the server so that a chart
//! of a long run stays light, keeping every bucket's extremes.
//!
//! Keys are paths into the JSON of a step (`step.loss`, `step.coefficients[0]`) or of an
//! epoch (`epoch.test.fused`, `epoch.validation.unimodal[1]`), as in results tables. A key
//! may hold one `[*]`, which stands for every index the run records (`step.coefficients[*]`
//! is `step.coefficients[0]`, `step.coefficients[1]`... for as many modalities as it has):
//! a page can ask for every modality's series before it knows how many there are.
//!
//! `/runs/{id}/export` gives every recorded number, one row per epoch or step, as CSV.

use super::responses::{InvalidFields, ReadsRun};
use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use balancelab_shared::non_finite::number;
use balancelab_shared::results::{at_path, leaves};
use balancelab_shared::{
    downsample, Downsampler, FieldError, MetricSeries, Role, SeriesPoint, StepMetrics, XAxis,
};
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, Caller, Reader};
use super::series_cache::{SeriesCache, SeriesKey};
use super::{ApiError, AppState};
use crate::store::{StepPages, Store};

/// Points per series unless asked otherwise, and the most one may ask for.
const DEFAULT_POINTS: usize = 1000;
const MAX_POINTS: usize = 10_000;
/// Series per request at most: each holds up to `MAX_POINTS` while the steps are read.
const MAX_KEYS: usize = 64;
/// Characters of one key at most: the longest recorded path is far shorter.
const MAX_KEY_CHARS: usize = 100;
/// Points one request over several runs may ask for in all (runs x keys x points): the
/// answer is held whole before it is sent.
const MAX_BATCH_POINTS: usize = 1_000_000;
/// What a key's `[*]` stands for; it is counted as this many series in the points above.
const WILDCARD: &str = "[*]";
const MAX_WILDCARD_INDICES: usize = 16;

/// The `/runs/{id}/metrics`, `/compare/metrics` and `/runs/{id}/export` routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(series))
        .routes(routes!(compare_series))
        .routes(routes!(export))
}

/// Not strict about other parameters: `share` is read by the `Reader` extractor.
#[derive(Deserialize)]
struct SeriesQuery {
    /// Comma-separated keys.
    keys: String,
    points: Option<usize>,
    #[serde(default)]
    x: XAxis,
}

/// One recorded value set: its x positions and its JSON, read by path.
struct Record {
    step: f64,
    epoch: f64,
    time: f64,
    values: Value,
}

impl Record {
    fn x(&self, axis: XAxis) -> f64 {
        match axis {
            XAxis::Step => self.step,
            XAxis::Epoch => self.epoch,
            XAxis::Time => self.time,
        }
    }
}

/// Each `step.` key's series: from `cache` when every one was computed from the same
/// steps before, else read (and kept there).
async fn step_series(
    cache: &SeriesCache,
    store: &Store,
    id: i64,
    paths: &[&str],
    x: XAxis,
    points: usize,
) -> Result<Vec<Result<MetricSeries, String>>, ApiError> {
    // The run's last log position, one row read: any event logged since gives a new key.
    let through = store.last_seq(id).await?;
    let key = |path: &str| SeriesKey {
        run: id,
        through,
        path: path.to_owned(),
        x,
        points,
    };
    let cached: Option<Vec<_>> = paths.iter().map(|path| cache.get(&key(path))).collect();
    if let Some(cached) = cached {
        return Ok(cached.into_iter().map(|s| Ok((*s).clone())).collect());
    }
    let keys: Vec<SeriesKey> = paths.iter().map(|path| key(path)).collect();
    // Read from here on: steps logged meanwhile are in it too, newer than the key says,
    // never older.
    let pages = store.step_pages(id).await?;
    let computed = read_step_series(store, pages, paths, x, points).await?;
    // Only series with points: a run without steps yet answers any key with an empty one.
    for (key, series) in keys.into_iter().zip(&computed) {
        if let Ok(series) = series {
            if series.total > 0 {
                cache.insert(key, series.clone());
            }
        }
    }
    Ok(computed)
}

/// Each `step.` key's series, read page by page: only one epoch's steps (their values of
/// these keys) and the points kept are held, whatever the run's length.
async fn read_step_series(
    store: &Store,
    mut pages: StepPages,
    paths: &[&str],
    x: XAxis,
    points: usize,
) -> Result<Vec<Result<MetricSeries, String>>, ApiError> {
    let mut series = StepSeries {
        samplers: vec![Downsampler::new(pages.total, points); paths.len()],
        counts: vec![0; paths.len()],
        x,
    };
    let mut epoch: Vec<PendingStep> = Vec::new();
    let mut first: Option<StepMetrics> = None;
    loop {
        let page = store.next_steps(&mut pages).await?;
        if page.is_empty() {
            break;
        }
        for step in page {
            if epoch.last().is_some_and(|last| last.epoch != step.epoch) {
                series.add_epoch(&epoch);
                epoch.clear();
            }
            epoch.push(PendingStep {
                epoch: step.epoch,
                step: step.step,
                time: step.elapsed_seconds,
                ys: paths.iter().map(|path| step.value(path)).collect(),
            });
            first.get_or_insert(step);
        }
    }
    series.add_epoch(&epoch);
    let results = (paths.iter().zip(series.samplers).zip(series.counts))
        .map(|((path, sampler), total)| {
            // A run with no steps yet has empty series; a key no step has is a mistake.
            if total == 0 && pages.total > 0 {
                let known = known_step_keys(first.as_ref());
                return Err(format!(
                    "\"step.{path}\" is not a recorded number; known: {known:?}"
                ));
            }
            Ok(MetricSeries {
                key: format!("step.{path}"),
                x,
                total,
                points: sampler.finish(),
            })
        })
        .collect();
    Ok(results)
}

/// The keys of every number a step records, for the message of a key that names none.
fn known_step_keys(step: Option<&StepMetrics>) -> Vec<String> {
    known_keys(
        "step.",
        &serde_json::to_value(step).expect("metrics serialize"),
    )
}

/// The keys of every number in `record`, each `prefix` then its path.
fn known_keys(prefix: &str, record: &Value) -> Vec<String> {
    (leaves(record).iter())
        .filter(|(_, v)| number(v).is_some())
        .map(|(k, _)| format!("{prefix}{k}"))
        .collect()
}

/// The keys `key` stands for: itself, or with its `[*]` replaced by the indices 0, 1, ...
/// that `recorded` accepts, up to the first it does not.
fn expand(key: &str, recorded: impl Fn(&str) -> bool) -> Vec<String> {
    if !key.contains(WILDCARD) {
        return vec![key.to_owned()];
    }
    (0..MAX_WILDCARD_INDICES)
        .map(|i| key.replacen(WILDCARD, &format!("[{i}]"), 1))
        .take_while(|k| recorded(k))
        .collect()
}

/// A step read, waiting for the rest of its epoch (its x on the epoch axis needs the
/// epoch's number of steps), with the values of the keys asked for.
struct PendingStep {
    epoch: u32,
    step: u64,
    time: f64,
    ys: Vec<Option<f64>>,
}

/// The step series being built, one downsampler per key.
struct StepSeries {
    samplers: Vec<Downsampler>,
    counts: Vec<usize>,
    x: XAxis,
}

impl StepSeries {
    /// Adds one epoch's steps. Steps sit inside their epoch: the i-th of n steps of epoch e
    /// at e - 1 + (i + 1) / n.
    fn add_epoch(&mut self, steps: &[PendingStep]) {
        let n = steps.len() as f64;
        for (i, step) in steps.iter().enumerate() {
            let x = match self.x {
                XAxis::Step => step.step as f64,
                XAxis::Epoch => f64::from(step.epoch) - 1.0 + (i as f64 + 1.0) / n,
                XAxis::Time => step.time,
            };
            for (k, y) in step.ys.iter().enumerate() {
                if let Some(y) = *y {
                    self.samplers[k].push(SeriesPoint(x, y));
                    self.counts[k] += 1;
                }
            }
        }
    }
}

#[utoipa::path(
    get,
    path = "/runs/{id}/metrics",
    operation_id = "run_metrics",
    tag = "runs",
    params(
        ("id" = i64, Path, description = "run id"),
        ("share" = Option<String>, Query, description = "a share link token, instead of signing in"),
        ("keys" = String, Query, description = "comma-separated: step.loss, step.coefficients[0], epoch.test.fused, ...; [*] for every index recorded (step.coefficients[*])"),
        ("points" = Option<usize>, Query, description = "2 to 10000; default 1000"),
        ("x" = Option<XAxis>, Query),
    ),
    responses(
        (status = 200, body = Vec<MetricSeries>),
        InvalidFields,
        ReadsRun,
    ),
)]
async fn series(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<SeriesQuery>,
) -> Result<Json<Vec<MetricSeries>>, ApiError> {
    let request = SeriesRequest::new(&params.keys, params.points, params.x);
    reader.run(&state.store, id).await?;
    request.refuse_oversized(1)?;
    Ok(Json(request.read(&state, id).await?))
}

/// Not strict either: the parameters of one run's series, and the runs.
#[derive(Deserialize)]
struct CompareSeriesQuery {
    runs: String,
    // Not a flattened `SeriesQuery`: serde's flatten reads every query value as a string.
    keys: String,
    points: Option<usize>,
    #[serde(default)]
    x: XAxis,
}

/// The same series of several runs in one request: what a compare page draws.
#[utoipa::path(
    get,
    path = "/compare/metrics",
    operation_id = "compare_metrics",
    tag = "results",
    params(
        ("runs" = String, Query, description = "run ids separated by commas (at most 100)"),
        ("keys" = String, Query, description = "comma-separated, as for one run's metrics"),
        ("points" = Option<usize>, Query, description = "2 to 10000 per series; default 1000"),
        ("x" = Option<XAxis>, Query),
    ),
    responses(
        (status = 200, body = Vec<Vec<MetricSeries>>, description = "per run, in the order asked for, its series in the order of the keys (a key with [*]: one per index the run records)"),
        InvalidFields,
        ReadsRun,
    ),
)]
async fn compare_series(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CompareSeriesQuery>,
) -> Result<Json<Vec<Vec<MetricSeries>>>, ApiError> {
    let ids = super::results::parse_ids(&params.runs)?;
    let request = SeriesRequest::new(&params.keys, params.points, params.x);
    for &id in &ids {
        caller.run(&state.store, id, Role::Viewer).await?;
    }
    request.refuse_oversized(ids.len())?;
    // Two runs read at once: one waits on the store while the other parses.
    let reads = ids.iter().copied().map(|id| request.read_each(&state, id));
    let all = futures_util::stream::iter(reads)
        .buffered(2)
        .try_collect()
        .await?;
    Ok(Json(series_of_runs(&request, all)?))
}

/// A series request: its keys and points, read from one run at a time, and its problems
/// that do not depend on the run (told together with those that do, in one answer).
struct SeriesRequest<'a> {
    keys: Vec<&'a str>,
    points: usize,
    x: XAxis,
    problems: Vec<FieldError>,
}

impl<'a> SeriesRequest<'a> {
    fn new(keys: &'a str, points: Option<usize>, x: XAxis) -> Self {
        let points = points.unwrap_or(DEFAULT_POINTS);
        let keys: Vec<&str> = (keys.split(','))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        Self {
            problems: check_series_query(points, &keys),
            keys,
            // Out of range, the keys are still checked (every problem in one answer), at a
            // size that holds no more than a valid request would.
            points: points.clamp(2, MAX_POINTS),
            x,
        }
    }

    /// Refused before any of `runs` runs is read: too many keys, or more points in all than
    /// an answer may hold (each key's series is held while the steps are read, then the
    /// answer whole).
    fn refuse_oversized(&self, runs: usize) -> Result<(), ApiError> {
        if self.keys.len() > MAX_KEYS {
            return Err(ApiError::Invalid(self.problems.clone()));
        }
        let series = (self.keys.iter())
            .map(|k| match k.contains(WILDCARD) {
                true => MAX_WILDCARD_INDICES,
                false => 1,
            })
            .sum::<usize>();
        let asked = runs * series * self.points;
        if asked <= MAX_BATCH_POINTS {
            return Ok(());
        }
        let message = format!(
            "{runs} runs x {series} series x {} points is {asked} points (a key with [*] \
             counts as {MAX_WILDCARD_INDICES}); at most {MAX_BATCH_POINTS} per request",
            self.points
        );
        let mut errors = self.problems.clone();
        errors.push(FieldError::new("points", message));
        Err(ApiError::Invalid(errors))
    }

    /// Run `id`'s series, one per key (one per index for a key with `[*]`); keys it does not
    /// record are refused by position.
    async fn read(&self, state: &AppState, id: i64) -> Result<Vec<MetricSeries>, ApiError> {
        let run = self.read_each(state, id).await?;
        Ok(series_of_runs(self, vec![run])?.remove(0))
    }

    /// Run `id`'s series for each key (one, or one per index for a key with `[*]`), or why
    /// the run has none for that key.
    async fn read_each(
        &self,
        state: &AppState,
        id: i64,
    ) -> Result<Vec<Result<Vec<MetricSeries>, String>>, ApiError> {
        let (keys, points, store) = (&self.keys, self.points, &state.store);
        let epochs = EpochRecords::read(store, id, keys).await?;
        let wild_steps = (keys.iter()).any(|k| k.starts_with("step.") && k.contains(WILDCARD));
        let first_step = match wild_steps {
            true => store.first_step(id).await?,
            false => None,
        };
        let in_first_step =
            |k: &str| (first_step.as_ref()).is_some_and(|s| s.value(&k["step.".len()..]).is_some());
        let concrete: Vec<Vec<String>> = (keys.iter())
            .map(|key| match key.starts_with("step.") {
                true => expand(key, in_first_step),
                false => expand(key, |k| epochs.records(k)),
            })
            .collect();
        let step_paths: Vec<&str> = (concrete.iter().flatten())
            .filter_map(|k| k.strip_prefix("step."))
            .collect();
        let mut steps = if step_paths.is_empty() {
            Vec::new()
        } else {
            let cache = &state.series_cache;
            step_series(cache, store, id, &step_paths, self.x, points).await?
        }
        .into_iter();
        Ok((keys.iter().zip(concrete))
            .map(|(key, concrete)| {
                // Every step series taken in order, whatever fails: the next key's come next.
                let series: Vec<Result<MetricSeries, String>> = (concrete.iter())
                    .map(|k| match k.starts_with("step.") {
                        true => steps.next().expect("one series per step key"),
                        false => epochs.series(k, self.x, points),
                    })
                    .collect();
                if concrete.is_empty() {
                    // A `[*]` that no index of a run with records matches is a mistake.
                    let known = if key.starts_with("step.") {
                        first_step
                            .is_some()
                            .then(|| known_step_keys(first_step.as_ref()))
                    } else if key.starts_with("epoch.") {
                        epochs.known()
                    } else {
                        return Err(format!("{key:?} must start with step. or epoch."));
                    };
                    if let Some(known) = known {
                        return Err(format!(
                            "{key:?} matches no recorded number; known: {known:?}"
                        ));
                    }
                }
                series.into_iter().collect()
            })
            .collect())
    }
}

/// The runs' series of `request` (each run's in the order of the keys, a key with `[*]`
/// giving one per index). Runs of different methods record different numbers (a joint
/// run's heads, one run's third modality): a key some runs lack gives them an empty series
/// (none for a key with `[*]`); one that no run records is refused.
fn series_of_runs(
    request: &SeriesRequest<'_>,
    runs: Vec<Vec<Result<Vec<MetricSeries>, String>>>,
) -> Result<Vec<Vec<MetricSeries>>, ApiError> {
    let mut errors = request.problems.clone();
    for i in 0..request.keys.len() {
        // A run without steps (or epochs) yet answers any key with an empty series: it tells
        // nothing. The key is refused when some run says why and none records it.
        let recorded = (runs.iter())
            .any(|run| matches!(&run[i], Ok(list) if list.iter().any(|s| s.total > 0)));
        let reason = runs.iter().find_map(|run| run[i].as_ref().err());
        if let (false, Some(reason)) = (recorded, reason) {
            errors.push(FieldError::new(format!("keys[{i}]"), reason.clone()));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok((runs.into_iter())
        .map(|run| {
            (run.into_iter().zip(&request.keys))
                .flat_map(|(series, key)| match series {
                    Ok(list) => list,
                    Err(_) if key.contains(WILDCARD) => Vec::new(),
                    Err(_) => vec![MetricSeries {
                        key: (*key).to_owned(),
                        x: request.x,
                        points: Vec::new(),
                        total: 0,
                    }],
                })
                .collect()
        })
        .collect())
}

/// The problems of a series request that do not depend on the run.
fn check_series_query(points: usize, keys: &[&str]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !(2..=MAX_POINTS).contains(&points) {
        errors.push(FieldError::new(
            "points",
            format!("must be 2 to {MAX_POINTS}"),
        ));
    }
    if keys.is_empty() {
        errors.push(FieldError::new(
            "keys",
            "name at least one metric, such as step.loss",
        ));
    }
    if keys.len() > MAX_KEYS {
        errors.push(FieldError::new(
            "keys",
            format!("at most {MAX_KEYS} metrics per request, got {}", keys.len()),
        ));
    }
    for (i, key) in keys.iter().enumerate() {
        if key.len() > MAX_KEY_CHARS {
            errors.push(FieldError::new(
                format!("keys[{i}]"),
                format!("at most {MAX_KEY_CHARS} characters"),
            ));
        }
        if key.matches(WILDCARD).count() > 1 {
            errors.push(FieldError::new(
                format!("keys[{i}]"),
                format!("at most one {WILDCARD} per key"),
            ));
        }
    }
    errors
}

/// A run's recorded epochs (at most 10,000), read only if a key asks for them.
struct EpochRecords {
    epochs: Vec<Record>,
}

impl EpochRecords {
    async fn read(store: &Store, id: i64, keys: &[&str]) -> Result<Self, ApiError> {
        let epochs = if keys.iter().any(|k| k.starts_with("epoch.")) {
            (store.epochs(id).await?.iter())
                .map(|m| Record {
                    step: m.steps as f64,
                    epoch: f64::from(m.epoch),
                    time: m.elapsed_seconds,
                    values: serde_json::to_value(m).expect("metrics serialize"),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self { epochs })
    }

    /// Whether some epoch records a number at epoch key `key`.
    fn records(&self, key: &str) -> bool {
        let Some(path) = key.strip_prefix("epoch.") else {
            return false;
        };
        (self.epochs.iter()).any(|r| at_path(&r.values, path).and_then(number).is_some())
    }

    /// The keys of every number the first epoch records; none before the first epoch.
    fn known(&self) -> Option<Vec<String>> {
        (self.epochs.first()).map(|r| known_keys("epoch.", &r.values))
    }

    /// The series of epoch key `key` against `x`, downsampled to `points`; or why it has none.
    fn series(&self, key: &str, x: XAxis, points: usize) -> Result<MetricSeries, String> {
        let Some(path) = key.strip_prefix("epoch.") else {
            return Err(format!("{key:?} must start with step. or epoch."));
        };
        let (records, prefix) = (&self.epochs, "epoch.");
        let values: Vec<SeriesPoint> = (records.iter())
            .filter_map(|r| Some(SeriesPoint(r.x(x), number(at_path(&r.values, path)?)?)))
            .collect();
        // A run with no records yet has an empty series; a key no record has is a mistake.
        if values.is_empty() && !records.is_empty() {
            let known = known_keys(prefix, &records[0].values);
            return Err(format!(
                "{key:?} is not a recorded number; known: {known:?}"
            ));
        }
        Ok(MetricSeries {
            key: key.to_owned(),
            x,
            total: values.len(),
            points: downsample(&values, points),
        })
    }
}

/// Which records an export holds.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Records {
    #[default]
    Epochs,
    Steps,
}

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(default)]
    of: Records,
}

/// Columns that say where a row is come first; the rest in path order.
const LEADING_COLUMNS: [&str; 4] = ["epoch", "step", "steps", "elapsed_seconds"];

#[utoipa::path(
    get,
    path = "/runs/{id}/export",
    operation_id = "export_run_metrics",
    tag = "runs",
    params(
        ("id" = i64, Path, description = "run id"),
        ("share" = Option<String>, Query, description = "a share link token, instead of signing in"),
        ("of" = Option<String>, Query, description = "`epochs` (default) or `steps`"),
    ),
    responses(
        (status = 200, content_type = "text/csv", description = "one row per epoch or step, a column per recorded number (`test.unimodal[1]`, ...)"),
        ReadsRun,
    ),
)]
async fn export(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(ExportQuery { of }): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    reader.run(&state.store, id).await?;
    let body = match of {
        Records::Epochs => {
            let rows: Vec<BTreeMap<String, Value>> = (state.store.epochs(id).await?.iter())
                .map(|m| leaves(&serde_json::to_value(m).expect("metrics serialize")))
                .collect();
            // Every column any epoch has (a validation split may appear in some epochs only).
            let columns = columns_of(&rows);
            Body::from(csv_rows(&columns, &rows, true))
        }
        Records::Steps => step_csv(state.store, id).await?,
    };
    let name = match of {
        Records::Epochs => "epochs",
        Records::Steps => "steps",
    };
    let disposition = format!("attachment; filename=\"run-{id}-{name}.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Every column of `rows`, those that say where a row is first, then in path order.
fn columns_of(rows: &[BTreeMap<String, Value>]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    columns.sort_by(|a, b| {
        let rank = |c: &str| LEADING_COLUMNS.iter().position(|l| *l == c);
        let rank = |c: &String| (rank(c).unwrap_or(LEADING_COLUMNS.len()), c.clone());
        rank(a).cmp(&rank(b))
    });
    columns
}

/// `rows` as CSV lines of `columns` (an empty cell where a row has none), after the header
/// line if `header`.
fn csv_rows(columns: &[String], rows: &[BTreeMap<String, Value>], header: bool) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    if header {
        writer.write_record(columns).expect("in-memory CSV");
    }
    for row in rows {
        let record = columns.iter().map(|c| match row.get(c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(value) => value.to_string(),
        });
        writer.write_record(record).expect("in-memory CSV");
    }
    writer.into_inner().expect("in-memory CSV")
}

/// Every step of run `id` as a CSV body sent page by page, so that the export of a run of
/// millions of steps holds one page. The columns are the first page's: every step records
/// the same numbers.
async fn step_csv(store: Store, id: i64) -> Result<Body, ApiError> {
    let mut pages = store.step_pages(id).await?;
    let rows = |steps: Vec<StepMetrics>| -> Vec<BTreeMap<String, Value>> {
        (steps.iter())
            .map(|m| leaves(&serde_json::to_value(m).expect("metrics serialize")))
            .collect()
    };
    let first = rows(store.next_steps(&mut pages).await?);
    let columns = columns_of(&first);
    let head = Bytes::from(csv_rows(&columns, &first, true));
    let rest = futures_util::stream::try_unfold(
        (store, pages, columns),
        move |(store, mut pages, columns)| async move {
            let page = store.next_steps(&mut pages).await?;
            if page.is_empty() {
                return Ok(None);
            }
            let chunk = Bytes::from(csv_rows(&columns, &rows(page), false));
            Ok::<_, crate::store::StoreError>(Some((chunk, (store, pages, columns))))
        },
    );
    let head = futures_util::stream::once(async { Ok(head) });
    Ok(Body::from_stream(head.chain(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(total: usize) -> Result<Vec<MetricSeries>, String> {
        Ok(vec![MetricSeries {
            key: "step.coefficients[2]".into(),
            x: XAxis::Step,
            points: (0..total).map(|i| SeriesPoint(i as f64, 1.0)).collect(),
            total,
        }])
    }

    #[test]
    fn a_key_no_run_records_is_refused_and_one_some_lack_is_empty_for_them() {
        let request = SeriesRequest::new("step.coefficients[2]", Some(10), XAxis::Step);
        let unknown = || Err("not a recorded number".to_owned());
        // Recorded by one run: the other gets an empty series.
        let answer = series_of_runs(&request, vec![vec![series(3)], vec![unknown()]]).unwrap();
        assert_eq!((answer[0][0].total, answer[1][0].total), (3, 0));
        assert_eq!(answer[1][0].key, "step.coefficients[2]");
        // A run without steps yet says nothing about a key: a typo is still refused.
        let Err(ApiError::Invalid(errors)) =
            series_of_runs(&request, vec![vec![series(0)], vec![unknown()]])
        else {
            panic!("a key no run records is refused");
        };
        assert_eq!(errors[0].field, "keys[0]");
        // No run has any steps: nothing to refuse it by.
        let answer = series_of_runs(&request, vec![vec![series(0)]]).unwrap();
        assert_eq!(answer[0][0].total, 0);
    }

    #[test]
    fn a_wildcard_stands_for_every_index_recorded() {
        let recorded = |k: &str| ["step.coefficients[0]", "step.coefficients[1]"].contains(&k);
        assert_eq!(
            expand("step.coefficients[*]", recorded),
            ["step.coefficients[0]", "step.coefficients[1]"]
        );
        assert_eq!(expand("step.loss", |_| false), ["step.loss"]);
        assert!(expand("step.nope[*]", recorded).is_empty());
        // At most MAX_WILDCARD_INDICES, whatever a record holds.
        assert_eq!(expand("epoch.x[*]", |_| true).len(), MAX_WILDCARD_INDICES);
        // A wildcard key that a run lacks gives it no series (not an empty one).
        let request = SeriesRequest::new("step.fused_loss,step.x[*]", Some(10), XAxis::Step);
        let answer = series_of_runs(
            &request,
            vec![
                vec![series(2), Err("none".into())],
                vec![series(1), series(1)],
            ],
        );
        let answer = answer.unwrap();
        assert_eq!((answer[0].len(), answer[1].len()), (1, 2));
    }
}
