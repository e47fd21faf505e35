//! A sweep: one request that queues a grid of runs, every combination of methods, fusions
//! and seeds over a base configuration, all with one tag so they list and compare together.

use serde::{Deserialize, Serialize};

use crate::{FieldError, FusionKind, MethodConfig, RunConfig, RunPatch};

/// A grid of runs over a base configuration (`POST /api/sweeps`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Every setting not swept.
    pub base: RunConfig,
    /// Methods to try; empty: the base's.
    #[serde(default)]
    pub methods: Vec<MethodConfig>,
    /// Fusions to try; empty: the base's.
    #[serde(default)]
    pub fusions: Vec<FusionKind>,
    /// Seeds to try; empty: the base's.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// The tag every run of the sweep gets; default `sweep-<id of its first run>`.
    #[serde(default)]
    pub tag: Option<String>,
}

impl Sweep {
    /// More runs than this in one request is almost certainly a typo in a seed list.
    const MAX_RUNS: usize = 100;

    /// A sweep of `base` alone: one run.
    pub fn new(base: RunConfig) -> Self {
        Self {
            base,
            methods: Vec::new(),
            fusions: Vec::new(),
            seeds: Vec::new(),
            tag: None,
        }
    }

    /// Gives the grid's runs a validation split when the base holds none out
    /// (`validation_fraction` 0): a sweep's results compare each run at its best validation
    /// epoch, which a run without one does not have. Returns what it did, for the user.
    pub fn add_validation_split(&mut self) -> Option<String> {
        if self.base.validation_fraction > 0.0 {
            return None;
        }
        let fraction = RunConfig::default().validation_fraction;
        self.base.validation_fraction = fraction;
        Some(format!(
            "base.validation_fraction was 0: each run holds out {}% of its training set for \
             validation, so that the results read each run's best validation epoch",
            fraction * 100.0
        ))
    }

    /// How many runs the grid has.
    pub fn run_count(&self) -> usize {
        [self.methods.len(), self.fusions.len(), self.seeds.len()]
            .into_iter()
            .map(|n| n.max(1))
            .product()
    }

    /// The grid's configurations, seeds varying fastest, then fusions, then methods, so
    /// the runs of one setting are next to each other; each with where it sits in the grid.
    fn cells(&self) -> Vec<(Cell, RunConfig)> {
        let axis = |n: usize| -> Vec<Option<usize>> {
            if n == 0 {
                vec![None]
            } else {
                (0..n).map(Some).collect()
            }
        };
        let mut cells = Vec::new();
        for method in axis(self.methods.len()) {
            for fusion in axis(self.fusions.len()) {
                for seed in axis(self.seeds.len()) {
                    let mut config = self.base.clone();
                    if let Some(m) = method {
                        config.method = self.methods[m].clone();
                    }
                    if let Some(f) = fusion {
                        config.model.fusion = self.fusions[f];
                    }
                    if let Some(s) = seed {
                        config.seed = self.seeds[s];
                    }
                    cells.push((Cell { method, fusion }, config));
                }
            }
        }
        cells
    }

    /// The configurations of the grid's runs, in the order they are queued.
    pub fn configs(&self) -> Vec<RunConfig> {
        self.cells().into_iter().map(|(_, config)| config).collect()
    }

    /// Checks the grid's size, that no value is repeated, the tag, and every configuration
    /// of the grid; each problem is named by the request field that causes it
    /// (`methods[1].alpha`, `fusions[0]`, `base.epochs`), once.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.run_count() > Self::MAX_RUNS {
            errors.push(FieldError::new(
                "seeds",
                format!(
                    "the grid has {} runs ({} methods x {} fusions x {} seeds); at most {}",
                    self.run_count(),
                    self.methods.len().max(1),
                    self.fusions.len().max(1),
                    self.seeds.len().max(1),
                    Self::MAX_RUNS
                ),
            ));
            return Err(errors);
        }
        repeated(&mut errors, "methods", &self.methods);
        repeated(&mut errors, "fusions", &self.fusions);
        repeated(&mut errors, "seeds", &self.seeds);
        if let Some(tag) = &self.tag {
            let patch = RunPatch {
                tags: Some(vec![tag.clone()]),
                note: None,
            };
            for e in patch.validate().err().unwrap_or_default() {
                errors.push(FieldError::new("tag", e.message));
            }
        }
        for (cell, config) in self.cells() {
            for e in config.validate().err().unwrap_or_default() {
                let field = cell.request_field(&e.field);
                if !errors.iter().any(|known| known.field == field) {
                    errors.push(FieldError::new(field, e.message));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Where a configuration sits in the grid: which method and fusion of the lists (`None`:
/// the base's).
struct Cell {
    method: Option<usize>,
    fusion: Option<usize>,
}

impl Cell {
    /// The request field a configuration's `field` comes from.
    fn request_field(&self, field: &str) -> String {
        match (self.method, field.strip_prefix("method")) {
            (Some(m), Some(rest)) if rest.is_empty() || rest.starts_with('.') => {
                return format!("methods[{m}]{rest}");
            }
            _ => {}
        }
        match self.fusion {
            Some(f) if field == "model.fusion" => format!("fusions[{f}]"),
            _ => format!("base.{field}"),
        }
    }
}

fn repeated<T: PartialEq + std::fmt::Debug>(errors: &mut Vec<FieldError>, field: &str, list: &[T]) {
    for (i, value) in list.iter().enumerate() {
        if list[..i].contains(value) {
            errors.push(FieldError::new(
                format!("{field}[{i}]"),
                format!("{value:?} is already in the list"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DatasetConfig, MlbConfig, SyntheticConfig};

    fn mlb(alpha: f64) -> MethodConfig {
        MethodConfig::Mlb(MlbConfig {
            alpha,
            ..MlbConfig::default()
        })
    }

    #[test]
    fn a_sweep_without_a_validation_split_gets_one() {
        let mut sweep = Sweep::new(RunConfig {
            validation_fraction: 0.0,
            ..RunConfig::default()
        });
        let said = sweep.add_validation_split().expect("it says what it did");
        assert!(said.contains("10%"), "{said}");
        assert!(sweep.configs().iter().all(|c| c.validation_fraction == 0.1));
        // A split that is set is kept.
        let mut kept = Sweep::new(RunConfig {
            validation_fraction: 0.25,
            ..RunConfig::default()
        });
        assert_eq!(kept.add_validation_split(), None);
        assert_eq!(kept.base.validation_fraction, 0.25);
    }

    #[test]
    fn the_grid_is_every_combination_with_seeds_fastest() {
        let sweep = Sweep {
            methods: vec![MethodConfig::Joint, mlb(0.8)],
            fusions: vec![FusionKind::Late, FusionKind::Gated],
            seeds: vec![0, 1, 2],
            ..Sweep::new(RunConfig::default())
        };
        let configs = sweep.configs();
        assert_eq!((sweep.run_count(), configs.len()), (12, 12));
        let cell = |c: &RunConfig| (c.method.name(), c.model.fusion, c.seed);
        assert_eq!(cell(&configs[0]), ("joint", FusionKind::Late, 0));
        assert_eq!(cell(&configs[2]), ("joint", FusionKind::Late, 2));
        assert_eq!(cell(&configs[3]), ("joint", FusionKind::Gated, 0));
        assert_eq!(cell(&configs[11]), ("mlb", FusionKind::Gated, 2));
        // Everything not swept is the base's.
        assert!(configs
            .iter()
            .all(|c| c.epochs == RunConfig::default().epochs));
        assert_eq!(sweep.validate(), Ok(()));
    }

    #[test]
    fn empty_axes_keep_the_base() {
        let base = RunConfig {
            seed: 7,
            ..RunConfig::default()
        };
        let sweep = Sweep::new(base.clone());
        assert_eq!(sweep.configs(), [base]);
    }

    #[test]
    fn problems_are_named_by_the_request_field() {
        let three_modalities = DatasetConfig::Synthetic(SyntheticConfig {
            noise: vec![0.5, 1.0, 2.0],
            ..SyntheticConfig::default()
        });
        let sweep = Sweep {
            base: RunConfig {
                epochs: 0,
                dataset: three_modalities,
                ..RunConfig::default()
            },
            methods: vec![mlb(0.8), mlb(-1.0), mlb(0.8)],
            fusions: vec![FusionKind::Late, FusionKind::Film],
            seeds: vec![1, 1],
            tag: Some("no spaces".into()),
        };
        let errors = sweep.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "methods[2]",
                "seeds[1]",
                "tag",
                "base.epochs",
                "fusions[1]",
                "methods[1].alpha"
            ],
            "{errors:?}"
        );
    }

    #[test]
    fn a_grid_too_large_is_refused_before_anything_else() {
        let sweep = Sweep {
            seeds: (0..101).collect(),
            ..Sweep::new(RunConfig::default())
        };
        let errors = sweep.validate().unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("101 runs"), "{errors:?}");
    }
}
