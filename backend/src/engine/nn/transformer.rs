//! A small pre-norm transformer: the token encoder and the transformer fusion both use it.

use candle_core::{Result, Tensor, D};
use candle_nn::ops::softmax;
use candle_nn::{Linear, Module};

use super::params::{Owner, ParamStore, Role};

const EPS: f64 = 1e-5;

/// Layer norm over the last dimension, with a learned scale and shift.
///
/// Built from differentiable ops on purpose: candle_nn's `LayerNorm` (and its
/// `softmax_last_dim`) run fused kernels without a backward pass on contiguous inputs, so no
/// gradient reached their parameters or anything before them.
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(variance + EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// A [`LayerNorm`] whose scale and shift are parameters of `owner_role`.
pub fn layer_norm(
    store: &mut ParamStore,
    name: &str,
    owner_role: (Owner, Role),
    dim: usize,
) -> Result<LayerNorm> {
    Ok(LayerNorm {
        weight: store.constant(&format!("{name}.weight"), owner_role, &[dim], 1.0)?,
        bias: store.constant(&format!("{name}.bias"), owner_role, &[dim], 0.0)?,
    })
}

/// x + MHA(LN(x)), then x + FFN(LN(x)), FFN width twice the model width.
pub struct TransformerBlock {
    heads: usize,
    norm1: LayerNorm,
    qkv: Linear,
    out: Linear,
    norm2: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
}

impl TransformerBlock {
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        owner_role: (Owner, Role),
        dim: usize,
        heads: usize,
    ) -> Result<Self> {
        Ok(Self {
            heads,
            norm1: layer_norm(store, &format!("{name}.norm1"), owner_role, dim)?,
            qkv: store.linear(&format!("{name}.qkv"), owner_role, dim, 3 * dim, true)?,
            out: store.linear(&format!("{name}.out"), owner_role, dim, dim, true)?,
            norm2: layer_norm(store, &format!("{name}.norm2"), owner_role, dim)?,
            ffn_in: store.linear(&format!("{name}.ffn_in"), owner_role, dim, 2 * dim, true)?,
            ffn_out: store.linear(&format!("{name}.ffn_out"), owner_role, 2 * dim, dim, true)?,
        })
    }

    /// `x` is `[batch, tokens, dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let head_dim = d / self.heads;
        let qkv = x.apply(&self.norm1)?.apply(&self.qkv)?;
        let split = |i: usize| {
            qkv.narrow(D::Minus1, i * d, d)?
                .reshape((b, t, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
        let attended = softmax(&scores, D::Minus1)?.matmul(&v)?;
        let attended = attended.transpose(1, 2)?.reshape((b, t, d))?;
        let x = (x + attended.apply(&self.out)?)?;
        let ffn = x
            .apply(&self.norm2)?
            .apply(&self.ffn_in)?
            .gelu_erf()?
            .apply(&self.ffn_out)?;
        x + ffn
    }
}

/// Tokens -> width-`dim` embeddings + learned positions, a CLS token, blocks, final norm;
/// the CLS output is the feature vector.
pub struct TokenTransformer {
    embed: Linear,
    positions: Tensor,
    cls: Tensor,
    blocks: Vec<TransformerBlock>,
    norm: LayerNorm,
}

impl TokenTransformer {
    /// `tokens` of width `token_dim` each.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        owner_role: (Owner, Role),
        (tokens, token_dim): (usize, usize),
        dim: usize,
        (layers, heads): (usize, usize),
    ) -> Result<Self> {
        let embed = store.linear(&format!("{name}.embed"), owner_role, token_dim, dim, true)?;
        let positions = store.normal(
            &format!("{name}.positions"),
            owner_role,
            &[tokens, dim],
            0.02,
        )?;
        let cls = store.normal(&format!("{name}.cls"), owner_role, &[1, 1, dim], 0.02)?;
        let blocks = (0..layers)
            .map(|i| {
                TransformerBlock::new(store, &format!("{name}.block{i}"), owner_role, dim, heads)
            })
            .collect::<Result<_>>()?;
        let norm = layer_norm(store, &format!("{name}.norm"), owner_role, dim)?;
        Ok(Self {
            embed,
            positions,
            cls,
            blocks,
            norm,
        })
    }

    /// `x` is `[batch, tokens, token_dim]`; returns `[batch, dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let tokens = x.apply(&self.embed)?.broadcast_add(&self.positions)?;
        let cls = self.cls.broadcast_as((b, 1, self.cls.dim(2)?))?;
        let mut h = Tensor::cat(&[&cls, &tokens], 1)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        h.narrow(1, 0, 1)?.squeeze(1)?.apply(&self.norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn attention_is_permutation_equivariant() -> Result<()> {
        // Without positions, swapping two tokens swaps their outputs: a check that the
        // heads are split and merged along the right axes.
        let mut store = ParamStore::new(0, &Device::Cpu);
        let block = TransformerBlock::new(&mut store, "b", (Owner::Shared, Role::Fusion), 8, 2)?;
        let x = Tensor::randn(0f32, 1.0, (1, 3, 8), &Device::Cpu)?;
        let swapped = Tensor::cat(
            &[x.narrow(1, 1, 1)?, x.narrow(1, 0, 1)?, x.narrow(1, 2, 1)?],
            1,
        )?;
        let (y, ys) = (block.forward(&x)?, block.forward(&swapped)?);
        let diff = (y.narrow(1, 0, 1)? - ys.narrow(1, 1, 1)?)?
            .abs()?
            .max_all()?;
        assert!(diff.to_scalar::<f32>()? < 1e-5);
        let encoder = TokenTransformer::new(
            &mut store,
            "t",
            (Owner::Modality(0), Role::Encoder),
            (5, 1),
            8,
            (2, 2),
        )?;
        let z = encoder.forward(&Tensor::zeros((4, 5, 1), DType::F32, &Device::Cpu)?)?;
        assert_eq!(z.dims(), [4, 8]);
        Ok(())
    }
}
