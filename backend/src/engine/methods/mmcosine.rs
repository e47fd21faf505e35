//! MMCosine (Xu et al., "MMCosine: Multi-Modal Cosine Loss Towards Balanced Audio-Visual
//! Fine-Grained Learning", ICASSP 2023): late fusion whose per-modality logits are scaled
//! cosine similarities, f = s sum_m cos(z_m, rows of A_m), with no bias. Normalising both
//! the features and the weight rows removes the norm advantage a dominant modality builds
//! up, so no coefficient is needed; the objective is joint training's ([`super::joint`]).

use candle_core::{Result, Tensor};

/// Modality m's part of the fused logits: `scale * cos(z_b, a_k)` for every sample b
/// (rows of `features`) and class k (rows of `weight`), `[batch, classes]`.
///
/// ```
/// use balancelab::engine::methods::mmcosine::cosine_logits;
/// use candle_core::{Device, Tensor};
///
/// let z = Tensor::new(&[[2f32, 0.0]], &Device::Cpu)?;
/// let a = Tensor::new(&[[1f32, 0.0], [0.0, 3.0]], &Device::Cpu)?;
/// // cos = (1, 0): the norms of z and of the rows do not count.
/// assert_eq!(cosine_logits(&z, &a, 10.0)?.to_vec2::<f32>()?, [[10.0, 0.0]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn cosine_logits(features: &Tensor, weight: &Tensor, scale: f64) -> Result<Tensor> {
    unit_rows(features)?.matmul(&unit_rows(weight)?.t()?)? * scale
}

/// Rows scaled to unit L2 norm (`F.normalize(x, dim=1)`).
fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&norm)
}
