//! Metric records a training run produces. Vectors hold one value per modality, in model order.
//! A number that is not finite (a diverged loss) is written as `"NaN"`, `"Infinity"` or
//! `"-Infinity"` ([`crate::non_finite`]).

use serde::{Deserialize, Serialize};

/// Metrics of one optimisation step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepMetrics {
    /// The epoch the step belongs to (from 1).
    pub epoch: u32,
    /// Global step index, starting at 0.
    pub step: u64,
    /// The objective of the step, as the method defines it.
    #[serde(with = "crate::non_finite")]
    pub loss: f64,
    /// Cross-entropy of the fused output.
    #[serde(with = "crate::non_finite")]
    pub fused_loss: f64,
    /// Cross-entropy of each unimodal head.
    #[serde(with = "crate::non_finite::vec")]
    pub unimodal_losses: Vec<f64>,
    /// Coefficient k_m the method applied to each modality (1 when not balancing).
    #[serde(with = "crate::non_finite::vec")]
    pub coefficients: Vec<f64>,
    /// Mean confidence s_m of each unimodal head on the true class.
    #[serde(with = "crate::non_finite::vec")]
    pub confidences: Vec<f64>,
    /// L2 norm of the gradient of each modality's parameters, as the optimiser received it.
    #[serde(with = "crate::non_finite::vec")]
    pub gradient_norms: Vec<f64>,
    /// Base learning rate of the step, after the schedule.
    #[serde(with = "crate::non_finite")]
    pub learning_rate: f64,
    /// Wall time since the run started, at the end of the step.
    #[serde(default, with = "crate::non_finite")]
    pub elapsed_seconds: f64,
}

impl StepMetrics {
    /// The number at `path` (`loss`, `coefficients[1]`), as [`crate::results::at_path`]
    /// finds it in the step's JSON, without building the JSON: series of long runs read
    /// every step.
    pub fn value(&self, path: &str) -> Option<f64> {
        // As at_path reads it: empty segments (`loss.`) are passed over.
        let mut segments = path.split('.').filter(|s| !s.is_empty());
        let (Some(path), None) = (segments.next(), segments.next()) else {
            return None;
        };
        let (name, index) = match path.split_once('[') {
            Some((name, rest)) => (name, Some(rest.strip_suffix(']')?.parse::<usize>().ok()?)),
            None => (path, None),
        };
        let list = match (name, index) {
            ("epoch", None) => return Some(f64::from(self.epoch)),
            ("step", None) => return Some(self.step as f64),
            ("loss", None) => return Some(self.loss),
            ("fused_loss", None) => return Some(self.fused_loss),
            ("learning_rate", None) => return Some(self.learning_rate),
            ("elapsed_seconds", None) => return Some(self.elapsed_seconds),
            ("unimodal_losses", Some(_)) => &self.unimodal_losses,
            ("coefficients", Some(_)) => &self.coefficients,
            ("confidences", Some(_)) => &self.confidences,
            ("gradient_norms", Some(_)) => &self.gradient_norms,
            _ => return None,
        };
        list.get(index?).copied()
    }
}

/// Accuracy and macro-F1 of the fused output and of each unimodal head on one split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SplitScores {
    /// Accuracy of the fused output.
    #[serde(with = "crate::non_finite")]
    pub fused: f64,
    /// Accuracy of each unimodal head.
    #[serde(with = "crate::non_finite::vec")]
    pub unimodal: Vec<f64>,
    /// Macro-averaged F1 score of the fused output.
    #[serde(default)]
    pub fused_macro_f1: f64,
    /// Mean cross-entropy of the fused output.
    #[serde(default, with = "crate::non_finite")]
    pub fused_loss: f64,
    /// Macro-averaged F1 score of each unimodal head.
    #[serde(default)]
    pub unimodal_macro_f1: Vec<f64>,
}

impl SplitScores {
    /// Whether these (validation) scores are better than `other`: a higher fused accuracy,
    /// or the same accuracy with a lower fused loss (ties are common on small splits).
    /// Early stopping and "best epoch" results both pick by this.
    pub fn beats(&self, other: &SplitScores) -> bool {
        self.fused > other.fused
            || (self.fused == other.fused && self.fused_loss < other.fused_loss)
    }
}

/// Metrics of one finished epoch (epochs count from 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EpochMetrics {
    /// The epoch, from 1.
    pub epoch: u32,
    /// Mean training loss over the epoch's steps.
    #[serde(with = "crate::non_finite")]
    pub train_loss: f64,
    /// Mean k_m over the epoch's steps.
    #[serde(with = "crate::non_finite::vec")]
    pub coefficients: Vec<f64>,
    /// Mean s_m over the epoch's steps.
    #[serde(with = "crate::non_finite::vec")]
    pub confidences: Vec<f64>,
    /// Mean per-modality gradient norm over the epoch's steps.
    #[serde(default, with = "crate::non_finite::vec")]
    pub gradient_norms: Vec<f64>,
    /// Base learning rate of the epoch, after the schedule.
    #[serde(default, with = "crate::non_finite")]
    pub learning_rate: f64,
    /// Scores on the training split, measured after the epoch.
    #[serde(default)]
    pub train: SplitScores,
    /// Scores on the validation split, when the run holds one out.
    #[serde(default)]
    pub validation: Option<SplitScores>,
    /// Scores on the test split, measured after the epoch.
    pub test: SplitScores,
    /// Imbalance measure per modality: validation accuracy of the fused output with every
    /// other modality's input zeroed (test split when there is no validation split).
    #[serde(default, with = "crate::non_finite::vec")]
    pub solo_accuracy: Vec<f64>,
    /// Wall time since the run started.
    #[serde(with = "crate::non_finite")]
    pub elapsed_seconds: f64,
    /// Optimisation steps taken when the epoch ended.
    #[serde(default)]
    pub steps: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::non_finite::number;
    use crate::results::{at_path, leaves};

    #[test]
    fn a_step_value_is_the_number_at_its_path_in_the_json() {
        let step = StepMetrics {
            epoch: 3,
            step: 41,
            loss: 1.25,
            fused_loss: f64::NAN,
            unimodal_losses: vec![0.5, f64::INFINITY],
            coefficients: vec![0.75, 1.25],
            confidences: vec![0.25, 0.5],
            gradient_norms: vec![2.0, 3.0],
            learning_rate: 0.01,
            elapsed_seconds: 9.5,
        };
        let json = serde_json::to_value(&step).unwrap();
        let paths = leaves(&json);
        // Every field is a leaf, so a new field must be added to `value` too.
        assert_eq!(paths.len(), 14, "{paths:?}");
        for path in paths.keys() {
            let expected = number(at_path(&json, path).unwrap()).unwrap();
            let found = step
                .value(path)
                .unwrap_or_else(|| panic!("{path} not found"));
            assert!(
                found == expected || (found.is_nan() && expected.is_nan()),
                "{path}: {found} against {expected}"
            );
        }
        let missing = [
            "nope",
            "coefficients",
            "coefficients[2]",
            "loss[0]",
            "step[x]",
            "loss.x",
        ];
        for missing in missing {
            assert_eq!(step.value(missing), None, "{missing}");
            assert_eq!(at_path(&json, missing).and_then(number), None, "{missing}");
        }
        for odd in ["loss.", ".loss", "coefficients[1]."] {
            let expected = at_path(&json, odd).and_then(number);
            assert_eq!(step.value(odd), expected, "{odd}");
            assert!(expected.is_some(), "{odd}");
        }
    }
}
