//! Comparing runs: which configuration fields differ, and results grouped the way papers
//! tabulate them (mean +- std of a final metric over seeds, per method x fusion, say).
//!
//! Fields and metrics are named by their path in the JSON form of [`RunConfig`] and
//! [`EpochMetrics`]: `method.kind`, `model.fusion`, `method.alpha`, `test.fused`,
//! `test.unimodal[1]`, `solo_accuracy[0]`. Pure functions, so the UI can use them too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{EpochMetrics, FieldError, RunConfig, SplitScores};

/// Every leaf of a JSON value by path (`a.b`, `a.list[0]`); an empty list or object, and
/// null, are leaves too so that "absent" and "empty" still differ from a value.
pub fn leaves(value: &Value) -> BTreeMap<String, Value> {
    fn walk(path: String, value: &Value, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(child_path, child, out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, child) in items.iter().enumerate() {
                    walk(format!("{path}[{i}]"), child, out);
                }
            }
            leaf => {
                out.insert(path, leaf.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(String::new(), value, &mut out);
    out
}

/// The value at `path` in `value`, as [`leaves`] names paths (`test.unimodal[1]`).
pub fn at_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |node, segment| {
        let mut parts = segment.split('[');
        let name = parts.next()?;
        let mut node = if name.is_empty() {
            node
        } else {
            node.get(name)?
        };
        for index in parts {
            node = node.get(index.strip_suffix(']')?.parse::<usize>().ok()?)?;
        }
        Some(node)
    })
}

/// A value as a table cell: strings without quotes, everything else as JSON.
fn cell_text(value: Option<&Value>) -> String {
    match value {
        None => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn config_leaves(config: &RunConfig) -> BTreeMap<String, Value> {
    leaves(&serde_json::to_value(config).expect("a run configuration is plain data"))
}

/// One configuration field that is not the same in every compared run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigDifference {
    /// Dotted path of the field, such as `method.alpha`.
    pub field: String,
    /// The field's value in each run, in the order given; "-" where a run has no such field
    /// (another method's hyper-parameter, say).
    pub values: Vec<String>,
}

/// The fields whose values differ between the configurations, in path order. A field set to
/// null (an option left unset) and a field a run does not have both mean "not set": they do
/// not differ, and both show as "-".
pub fn config_differences(configs: &[RunConfig]) -> Vec<ConfigDifference> {
    let all: Vec<_> = configs.iter().map(config_leaves).collect();
    let mut fields: Vec<&String> = all.iter().flat_map(|leaves| leaves.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter_map(|field| {
            let values: Vec<Option<&Value>> = (all.iter())
                .map(|l| l.get(field).filter(|v| !v.is_null()))
                .collect();
            let differs = values.iter().any(|v| *v != values[0]);
            differs.then(|| ConfigDifference {
                field: field.clone(),
                values: values.into_iter().map(cell_text).collect(),
            })
        })
        .collect()
}

/// Which epoch of a run a results table reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EpochChoice {
    /// The last epoch trained.
    Last,
    /// The epoch with the best validation accuracy of the fused output (ties: lower
    /// validation loss), what papers report; the last epoch for runs without validation.
    /// The default: a collapse in the last epochs must not decide a comparison silently.
    #[default]
    BestValidation,
}

impl EpochChoice {
    /// The chosen epoch of a run's `epochs`; none if it has none.
    pub fn pick(self, epochs: &[EpochMetrics]) -> Option<&EpochMetrics> {
        if self == Self::Last {
            return epochs.last();
        }
        // The rule early stopping uses; on a full tie the earlier epoch stays best.
        let mut best: Option<(&EpochMetrics, &SplitScores)> = None;
        for epoch in epochs {
            if let Some(scores) = &epoch.validation {
                if best.is_none_or(|(_, b)| scores.beats(b)) {
                    best = Some((epoch, scores));
                }
            }
        }
        best.map(|(epoch, _)| epoch).or(epochs.last())
    }
}

/// Mean and sample standard deviation (n - 1) of one metric over a group's runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// Runs that have the metric.
    pub n: usize,
    /// Mean over those runs.
    #[serde(with = "crate::non_finite")]
    pub mean: f64,
    /// 0 for a single run.
    #[serde(with = "crate::non_finite")]
    pub std: f64,
}

impl Summary {
    fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Self { n, mean, std })
    }
}

/// One group of runs: their shared values of the grouping fields and their metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultsRow {
    /// The group's value of each grouping field, in `group_by` order.
    pub group: Vec<String>,
    /// The runs in the group.
    pub run_ids: Vec<i64>,
    /// One per requested metric; none where no run of the group has it.
    pub metrics: Vec<Option<Summary>>,
}

/// Runs grouped by configuration fields, with each metric summarised per group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultsTable {
    /// The configuration fields the runs are grouped by, such as `method.kind`.
    pub group_by: Vec<String>,
    /// The metrics summarised, such as `test.fused`, one column each.
    pub metrics: Vec<String>,
    /// Which epoch of each run the metrics are read from.
    pub epoch: EpochChoice,
    /// One row per group, in order of the group values.
    pub rows: Vec<ResultsRow>,
}

/// A run as the results table needs it.
pub struct RunResult<'a> {
    /// The run's id.
    pub id: i64,
    /// Its configuration.
    pub config: &'a RunConfig,
    /// Its epochs' metrics, in order.
    pub epochs: &'a [EpochMetrics],
}

impl<'a> RunResult<'a> {
    /// Runs not stored anywhere (a sweep's, run from the CLI), numbered 1, 2, ... in order.
    pub fn numbered(configs: &'a [RunConfig], epochs: &'a [Vec<EpochMetrics>]) -> Vec<Self> {
        (configs.iter().zip(epochs).enumerate())
            .map(|(i, (config, epochs))| RunResult {
                id: i as i64 + 1,
                config,
                epochs,
            })
            .collect()
    }
}

/// The fields that tell runs' methods apart in a results table: `method.kind`, and
/// `method.modality` when a run trains one modality alone (else the unimodal runs of
/// different modalities would share a row).
pub fn method_columns<'a>(configs: impl IntoIterator<Item = &'a RunConfig>) -> Vec<String> {
    let mut columns = vec!["method.kind".to_owned()];
    if (configs.into_iter()).any(|c| matches!(c.method, crate::MethodConfig::Unimodal(_))) {
        columns.push("method.modality".to_owned());
    }
    columns
}

/// Groups runs by the values of the `group_by` fields and summarises each metric of the
/// chosen epoch per group; rows in order of their group values. Runs without any epoch are
/// left out. A field or metric that no run has is an error naming it.
pub fn results_table(
    runs: &[RunResult],
    group_by: &[String],
    metrics: &[String],
    epoch: EpochChoice,
) -> Result<ResultsTable, Vec<FieldError>> {
    // Group values -> (run ids, each metric's values).
    type Group = (Vec<i64>, Vec<Vec<f64>>);
    let mut groups: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    let mut seen_fields = vec![false; group_by.len()];
    let mut seen_metrics = vec![false; metrics.len()];
    for run in runs {
        let Some(chosen) = epoch.pick(run.epochs) else {
            continue;
        };
        let config = config_leaves(run.config);
        let scores = leaves(&serde_json::to_value(chosen).expect("metrics are plain data"));
        let key: Vec<String> = (group_by.iter().enumerate())
            .map(|(i, field)| {
                let value = config.get(field);
                seen_fields[i] |= value.is_some();
                cell_text(value)
            })
            .collect();
        let (ids, values) = groups
            .entry(key)
            .or_insert_with(|| (Vec::new(), vec![Vec::new(); metrics.len()]));
        ids.push(run.id);
        for (i, metric) in metrics.iter().enumerate() {
            if let Some(v) = scores.get(metric).and_then(crate::non_finite::number) {
                seen_metrics[i] = true;
                values[i].push(v);
            }
        }
    }
    let mut errors = Vec::new();
    if !groups.is_empty() {
        let unknown = |name: &str, names: &[String], seen: &[bool], example: &str| {
            (names.iter().zip(seen))
                .filter(|(_, seen)| !**seen)
                .map(|(field, _)| {
                    FieldError::new(
                        name,
                        format!("no run has {field:?} (paths look like {example})"),
                    )
                })
                .collect::<Vec<_>>()
        };
        errors.extend(unknown("group_by", group_by, &seen_fields, "method.kind"));
        errors.extend(unknown(
            "metrics",
            metrics,
            &seen_metrics,
            "test.unimodal[0]",
        ));
    }
    if metrics.is_empty() {
        errors.push(FieldError::new("metrics", "name at least one metric"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let rows = groups
        .into_iter()
        .map(|(group, (run_ids, values))| ResultsRow {
            group,
            run_ids,
            metrics: values.iter().map(|v| Summary::of(v)).collect(),
        })
        .collect();
    Ok(ResultsTable {
        group_by: group_by.to_vec(),
        metrics: metrics.to_vec(),
        epoch,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MethodConfig, MlbConfig};

    fn epoch(epoch: u32, validation: Option<(f64, f64)>, test: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 1.0,
            coefficients: vec![1.0, 1.0],
            confidences: vec![0.5, 0.5],
            gradient_norms: vec![],
            learning_rate: 0.01,
            train: SplitScores::default(),
            validation: validation.map(|(fused, fused_loss)| SplitScores {
                fused,
                fused_loss,
                ..SplitScores::default()
            }),
            test: SplitScores {
                fused: test,
                unimodal: vec![test - 0.1, test - 0.2],
                ..SplitScores::default()
            },
            solo_accuracy: vec![],
            elapsed_seconds: 1.0,
            steps: 0,
        }
    }

    #[test]
    fn leaves_are_dotted_and_indexed_paths() {
        let value = serde_json::json!({"a": {"b": 1, "c": [2, {"d": "x"}]}, "e": [], "f": null});
        let paths: Vec<String> = leaves(&value).into_keys().collect();
        assert_eq!(paths, ["a.b", "a.c[0]", "a.c[1].d", "e", "f"]);
    }

    #[test]
    fn a_path_reads_the_leaf_it_names() {
        let value = serde_json::json!({"a": {"b": 1, "c": [2, {"d": "x"}]}, "e": [[5, 6]]});
        for (path, leaf) in leaves(&value) {
            assert_eq!(at_path(&value, &path), Some(&leaf), "{path}");
        }
        assert_eq!(at_path(&value, "e[0][1]"), Some(&serde_json::json!(6)));
        for missing in ["a.x", "a.c[9]", "a.c[x]", "a.b.c", "e[0"] {
            assert_eq!(at_path(&value, missing), None, "{missing}");
        }
    }

    #[test]
    fn only_differing_fields_are_listed() {
        let a = RunConfig::default();
        let b = RunConfig {
            seed: 1,
            method: MethodConfig::Joint,
            ..RunConfig::default()
        };
        let diff = config_differences(&[a, b]);
        let fields: Vec<&str> = diff.iter().map(|d| d.field.as_str()).collect();
        // MLB's hyper-parameters exist only in the first run; those it leaves unset (null:
        // beta, end_epoch) are no difference.
        assert_eq!(
            fields,
            ["method.alpha", "method.kind", "method.start_epoch", "seed"]
        );
        let kind = &diff[1];
        assert_eq!(kind.values, ["mlb", "joint"]);
        assert_eq!(diff[0].values, ["0.8", "-"]);
    }

    #[test]
    fn best_validation_prefers_accuracy_then_lower_loss_then_the_earlier_epoch() {
        let epochs = [
            epoch(1, Some((0.8, 0.5)), 0.70),
            epoch(2, Some((0.9, 0.4)), 0.75),
            epoch(3, Some((0.9, 0.3)), 0.74),
            epoch(4, Some((0.9, 0.3)), 0.73),
            epoch(5, Some((0.85, 0.1)), 0.80),
        ];
        assert_eq!(EpochChoice::BestValidation.pick(&epochs).unwrap().epoch, 3);
        assert_eq!(EpochChoice::Last.pick(&epochs).unwrap().epoch, 5);
        let unvalidated = [epoch(1, None, 0.5), epoch(2, None, 0.6)];
        assert_eq!(
            EpochChoice::BestValidation
                .pick(&unvalidated)
                .unwrap()
                .epoch,
            2
        );
    }

    #[test]
    fn unimodal_runs_are_told_apart_by_their_modality() {
        let alone = |modality| RunConfig {
            method: crate::MethodConfig::Unimodal(crate::UnimodalConfig { modality }),
            ..RunConfig::default()
        };
        let plain = RunConfig::default();
        assert_eq!(method_columns([&plain]), ["method.kind"]);
        let (a, b) = (alone(0), alone(1));
        assert_eq!(
            method_columns([&plain, &a, &b]),
            ["method.kind", "method.modality"]
        );
        let epochs = [epoch(1, None, 0.5)];
        let runs: Vec<RunResult> = [&plain, &a, &b]
            .into_iter()
            .enumerate()
            .map(|(i, config)| RunResult {
                id: i as i64,
                config,
                epochs: &epochs,
            })
            .collect();
        let group_by = method_columns([&plain, &a, &b]);
        let table =
            results_table(&runs, &group_by, &["test.fused".into()], EpochChoice::Last).unwrap();
        let groups: Vec<Vec<String>> = table.rows.iter().map(|r| r.group.clone()).collect();
        assert_eq!(groups, [["mlb", "-"], ["unimodal", "0"], ["unimodal", "1"]]);
    }

    #[test]
    fn groups_runs_and_summarises_over_seeds() {
        let mlb = |seed| RunConfig {
            seed,
            method: MethodConfig::Mlb(MlbConfig::default()),
            ..RunConfig::default()
        };
        let joint = |seed| RunConfig {
            seed,
            method: MethodConfig::Joint,
            ..RunConfig::default()
        };
        let configs = [mlb(0), mlb(1), mlb(2), joint(0)];
        let finals = [0.90, 0.92, 0.97, 0.80];
        let histories: Vec<Vec<EpochMetrics>> = finals
            .iter()
            .map(|&t| vec![epoch(1, None, 0.1), epoch(2, None, t)])
            .collect();
        let runs = RunResult::numbered(&configs, &histories);
        let table = results_table(
            &runs,
            &["method.kind".into()],
            &["test.fused".into(), "test.unimodal[1]".into()],
            EpochChoice::Last,
        )
        .unwrap();
        assert_eq!(table.rows.len(), 2);
        let joint_row = &table.rows[0];
        assert_eq!(joint_row.group, ["joint"]);
        assert_eq!(joint_row.metrics[0].as_ref().unwrap().std, 0.0);
        let mlb_row = &table.rows[1];
        assert_eq!(mlb_row.run_ids, [1, 2, 3]);
        let fused = mlb_row.metrics[0].as_ref().unwrap();
        // numpy: mean([.90, .92, .97]) = 0.93, std(ddof=1) = 0.036055512754639925
        assert!((fused.mean - 0.93).abs() < 1e-12);
        assert!((fused.std - 0.036055512754639925).abs() < 1e-12);
        assert!((mlb_row.metrics[1].as_ref().unwrap().mean - 0.73).abs() < 1e-12);

        let errors = results_table(
            &runs,
            &["method.knd".into()],
            &["test.fussed".into()],
            EpochChoice::Last,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["group_by", "metrics"]);
        assert!(errors[1].message.contains("test.fussed"), "{errors:?}");
    }
}
