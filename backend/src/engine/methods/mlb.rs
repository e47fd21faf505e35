//! The MLB (Multi-Loss Balanced) gradient coefficients.
//!
//! Kontras et al., "Improving Multimodal Learning with Multi-Loss Gradient Modulation",
//! BMVC 2024. From the confidences s_m of the unimodal heads on the true class:
//! r_m = mean_{n != m} s_n / s_m and k_m = 1 + tanh(alpha (r_m - 1)), so the weaker modality
//! (r_m > 1) is accelerated and the stronger one decelerated; k_m -> 1 as the heads converge.
//! The journal version (IJCV 2025) caps the acceleration with beta:
//! k_m = 1 + (beta - 1) tanh(alpha (r_m - 1)) when r_m > 1.

/// Gradient coefficient k_m of every modality from the confidences s_m (each in (0, 1]).
pub fn mlb_coefficients(confidences: &[f64], alpha: f64, beta: Option<f64>) -> Vec<f64> {
    let m = confidences.len();
    let total: f64 = confidences.iter().sum();
    confidences
        .iter()
        .map(|&s| {
            let others = (total - s) / (m - 1) as f64;
            // A head that has collapsed to zero confidence is the weakest possible: saturate.
            let ratio = others / s.max(f64::MIN_POSITIVE);
            let gain = match beta {
                Some(beta) if ratio > 1.0 => beta - 1.0,
                _ => 1.0,
            };
            1.0 + gain * (alpha * (ratio - 1.0)).tanh()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{actual:?} != {expected:?}");
        }
    }

    #[test]
    fn two_modalities_match_hand_computed_values() {
        // s = (0.8, 0.4), alpha = 0.8:
        // r_0 = 0.4/0.8 = 0.5 -> k_0 = 1 + tanh(-0.4) = 1 - 0.379948962255225 = 0.620051037744775
        // r_1 = 0.8/0.4 = 2.0 -> k_1 = 1 + tanh(0.8)  = 1 + 0.664036770267849 = 1.664036770267849
        let k = mlb_coefficients(&[0.8, 0.4], 0.8, None);
        assert_close(&k, &[0.620051037744775, 1.664036770267849]);
    }

    #[test]
    fn three_modalities_compare_with_the_mean_of_the_others() {
        // s = (0.9, 0.6, 0.3), alpha = 2:
        // r_0 = 0.45/0.9 = 0.5  -> 1 + tanh(-1)   = 0.238405844044235
        // r_1 = 0.6/0.6  = 1    -> 1
        // r_2 = 0.75/0.3 = 2.5  -> 1 + tanh(3)    = 1.99505475368673
        let k = mlb_coefficients(&[0.9, 0.6, 0.3], 2.0, None);
        assert_close(&k, &[0.238405844044235, 1.0, 1.99505475368673]);
    }

    #[test]
    fn beta_scales_only_the_acceleration() {
        // s = (0.8, 0.4), alpha = 0.5, beta = 10:
        // r_0 = 0.5 -> 1 + tanh(-0.25)    = 1 - 0.244918662403709 = 0.755081337596291
        // r_1 = 2.0 -> 1 + 9 tanh(0.5)    = 1 + 9 * 0.462117157260010 = 5.15905441534009
        let k = mlb_coefficients(&[0.8, 0.4], 0.5, Some(10.0));
        assert_close(&k, &[0.755081337596291, 5.15905441534009]);
    }

    #[test]
    fn balanced_modalities_are_left_alone() {
        assert_close(&mlb_coefficients(&[0.7, 0.7], 5.0, None), &[1.0, 1.0]);
    }

    #[test]
    fn a_collapsed_head_saturates_instead_of_dividing_by_zero() {
        let k = mlb_coefficients(&[0.5, 0.0], 0.8, None);
        assert!((k[1] - 2.0).abs() < 1e-12 && (k[0] - (1.0 + (-0.8f64).tanh())).abs() < 1e-12);
    }
}
