//! Data as the engine sees it: every split in memory as tensors, one per modality.

use candle_core::{Result, Tensor};

/// Samples of one split: `inputs[m]` is `[n, features_m]` (f32), `labels` is `[n]` (u32).
pub struct Split {
    pub inputs: Vec<Tensor>,
    pub labels: Tensor,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.dims1().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices` (a `[b]` u32 tensor).
    pub fn select(&self, indices: &Tensor) -> Result<(Vec<Tensor>, Tensor)> {
        let inputs = self
            .inputs
            .iter()
            .map(|x| x.index_select(indices, 0))
            .collect::<Result<_>>()?;
        Ok((inputs, self.labels.index_select(indices, 0)?))
    }
}

pub struct Dataset {
    pub train: Split,
    pub test: Split,
    pub classes: usize,
    /// Feature size of each modality.
    pub input_dims: Vec<usize>,
}
