//! The f32 values of a CPU tensor as the custom kernels read them (conv, batch_norm,
//! max_pool, add_relu): their wrappers make inputs contiguous first.

use candle_core::{CpuStorage, Layout, Result};

/// `storage`'s values under `layout`, which must be contiguous.
pub fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("a CPU kernel was given a non-contiguous tensor"),
    }
}
