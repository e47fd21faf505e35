//! OGM's coefficients (Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient
//! Modulation", CVPR 2022), for two modalities: audio = 0, video = 1 as in the paper.
//!
//! With the late-fusion layer split into per-modality parts o_m = A_m z_m + b/2, the score
//! of a modality is s_m = sum_b softmax(o_m)_b[y_b] and rho = s_video / s_audio. The dominant
//! modality (rho > 1: video) is slowed down by k = 1 - tanh(alpha relu(x)) and the other keeps
//! k = 1, where x = rho in the authors' public code and x = rho - 1 in a reading of the
//! paper's equation ([`OgmRatio`]).

use balancelab_shared::OgmRatio;
use candle_core::{Result, Tensor, D};
use candle_nn::ops::softmax;

/// s_m = sum_b softmax(part + bias/2)_b[y_b], with no gradient.
pub fn ogm_score(part: &Tensor, fusion_bias: &Tensor, labels: &Tensor) -> Result<f64> {
    let logits = part
        .detach()
        .broadcast_add(&(fusion_bias.detach() * 0.5)?)?;
    let probabilities = softmax(&logits, D::Minus1)?;
    let on_true = probabilities.gather(&labels.unsqueeze(1)?, 1)?;
    Ok(on_true.sum_all()?.to_scalar::<f32>()? as f64)
}

/// `[k_audio, k_video]` from the scores `[s_audio, s_video]`.
pub fn ogm_coefficients(scores: [f64; 2], alpha: f64, ratio: OgmRatio) -> [f64; 2] {
    let slow = |rho: f64| {
        let x = match ratio {
            OgmRatio::PublicCode => rho,
            OgmRatio::Paper => rho - 1.0,
        };
        1.0 - (alpha * x.max(0.0)).tanh()
    };
    let rho_video = scores[1] / scores[0].max(f64::MIN_POSITIVE);
    if rho_video > 1.0 {
        [1.0, slow(rho_video)]
    } else {
        [slow(1.0 / rho_video.max(f64::MIN_POSITIVE)), 1.0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn assert_close(actual: [f64; 2], expected: [f64; 2]) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{actual:?} != {expected:?}");
        }
    }

    #[test]
    fn the_dominant_modality_is_slowed() {
        // s = (30, 60), alpha = 0.8: rho_video = 2.
        // public code: 1 - tanh(1.6) = 1 - 0.921668554406471 = 0.078331445593529
        // paper:       1 - tanh(0.8) = 1 - 0.664036770267849 = 0.335963229732151
        let public = ogm_coefficients([30.0, 60.0], 0.8, OgmRatio::PublicCode);
        assert_close(public, [1.0, 0.078331445593529]);
        let paper = ogm_coefficients([30.0, 60.0], 0.8, OgmRatio::Paper);
        assert_close(paper, [1.0, 0.335963229732151]);
        // Swapped scores: audio dominates (rho_audio = 2) and is the one slowed.
        let swapped = ogm_coefficients([60.0, 30.0], 0.8, OgmRatio::PublicCode);
        assert_close(swapped, [0.078331445593529, 1.0]);
    }

    #[test]
    fn equal_scores_slow_audio_only_in_the_public_code_reading() {
        // rho = 1 is not > 1, so audio counts as dominant: public code 1 - tanh(0.8).
        assert_close(
            ogm_coefficients([5.0, 5.0], 0.8, OgmRatio::PublicCode),
            [0.335963229732151, 1.0],
        );
        assert_close(
            ogm_coefficients([5.0, 5.0], 0.8, OgmRatio::Paper),
            [1.0, 1.0],
        );
    }

    #[test]
    fn score_sums_the_true_class_probability_with_half_the_bias() -> Result<()> {
        // part = [[0, 0], [ln 3, 0]], bias = [0, 0]: softmax rows (0.5, 0.5) and (0.75, 0.25).
        // Labels (0, 0): s = 0.5 + 0.75 = 1.25.
        let dev = Device::Cpu;
        let part = Tensor::new(&[[0f32, 0.0], [3f32.ln(), 0.0]], &dev)?;
        let bias = Tensor::new(&[0f32, 0.0], &dev)?;
        let labels = Tensor::new(&[0u32, 0], &dev)?;
        assert!((ogm_score(&part, &bias, &labels)? - 1.25).abs() < 1e-6);
        // A bias of (2 ln 3, 0) adds ln 3 to class 0's logit: rows (0.75, 0.25), (0.9, 0.1).
        let bias = Tensor::new(&[2.0 * 3f32.ln(), 0.0], &dev)?;
        assert!((ogm_score(&part, &bias, &labels)? - 1.65).abs() < 1e-6);
        Ok(())
    }
}
