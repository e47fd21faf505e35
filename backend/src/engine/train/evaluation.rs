//! How a model scores on a split: accuracies and macro F1 of the fused output and of each
//! unimodal head, the fused loss, and the fused accuracy when a single modality is seen.

use balancelab_shared::SplitScores;
use candle_core::{Result, D};
use candle_nn::loss::cross_entropy;

use super::dataset::Split;
use crate::engine::nn::{MultimodalModel, Pass};

/// What a model predicts for a split.
struct Predictions {
    fused: Vec<u32>,
    unimodal: Vec<Vec<u32>>,
    /// Sum of the fused output's cross-entropy over the samples.
    fused_loss_sum: f64,
}

/// Predictions over a split; with `solo`, every modality but that one gets zero input.
fn predict(model: &MultimodalModel, split: &Split, solo: Option<usize>) -> Result<Predictions> {
    let n = split.len();
    let mut fused = Vec::with_capacity(n);
    let mut unimodal = Vec::new();
    let mut fused_loss_sum = 0.0;
    for batch in split.in_order(split.evaluation_batch()) {
        let (mut inputs, labels) = batch?;
        if let Some(keep) = solo {
            for (m, x) in inputs.iter_mut().enumerate() {
                if m != keep {
                    *x = x.zeros_like()?;
                }
            }
        }
        let out = model.forward(&inputs, Pass::EVAL)?;
        let loss = cross_entropy(&out.fused, &labels)?.to_scalar::<f32>()? as f64;
        fused_loss_sum += loss * labels.dim(0)? as f64;
        fused.extend(out.fused.argmax(D::Minus1)?.to_vec1::<u32>()?);
        unimodal.resize(out.unimodal.len(), Vec::with_capacity(n));
        for (m, logits) in out.unimodal.iter().enumerate() {
            unimodal[m].extend(logits.argmax(D::Minus1)?.to_vec1::<u32>()?);
        }
    }
    Ok(Predictions {
        fused,
        unimodal,
        fused_loss_sum,
    })
}

/// Accuracy, macro F1 and the fused loss of the model on `split`.
pub fn evaluate(model: &MultimodalModel, split: &Split, classes: usize) -> Result<SplitScores> {
    let labels = split.labels.to_vec1::<u32>()?;
    let p = predict(model, split, None)?;
    Ok(SplitScores {
        fused: accuracy(&p.fused, &labels),
        unimodal: p.unimodal.iter().map(|u| accuracy(u, &labels)).collect(),
        fused_macro_f1: macro_f1(&p.fused, &labels, classes),
        unimodal_macro_f1: (p.unimodal.iter())
            .map(|u| macro_f1(u, &labels, classes))
            .collect(),
        fused_loss: p.fused_loss_sum / labels.len().max(1) as f64,
    })
}

/// Fused accuracy when only modality `m` is seen: how much the fusion relies on it.
pub fn solo_accuracy(model: &MultimodalModel, split: &Split, m: usize) -> Result<f64> {
    let labels = split.labels.to_vec1::<u32>()?;
    Ok(accuracy(&predict(model, split, Some(m))?.fused, &labels))
}

fn accuracy(predicted: &[u32], labels: &[u32]) -> f64 {
    let hits = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    hits as f64 / labels.len().max(1) as f64
}

/// Unweighted mean of per-class F1 over the classes that occur in the labels or the
/// predictions (scikit-learn's `f1_score(average="macro")`).
pub fn macro_f1(predicted: &[u32], labels: &[u32], classes: usize) -> f64 {
    let (mut tp, mut fp, mut fn_) = (
        vec![0u64; classes],
        vec![0u64; classes],
        vec![0u64; classes],
    );
    for (&p, &y) in predicted.iter().zip(labels) {
        if p == y {
            tp[y as usize] += 1;
        } else {
            fp[p as usize] += 1;
            fn_[y as usize] += 1;
        }
    }
    let scores: Vec<f64> = (0..classes)
        .filter(|&c| tp[c] + fp[c] + fn_[c] > 0)
        .map(|c| 2.0 * tp[c] as f64 / (2 * tp[c] + fp[c] + fn_[c]) as f64)
        .collect();
    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_matches_scikit_learn() {
        // y_true [0, 0, 1, 2], y_pred [0, 1, 1, 1]: per-class F1 = 2TP / (2TP + FP + FN) is
        // 2/3, 2/4 and 0; f1_score(average="macro") = 0.388889.
        let f1 = macro_f1(&[0, 1, 1, 1], &[0, 0, 1, 2], 3);
        assert!((f1 - (2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12, "{f1}");
    }
}
