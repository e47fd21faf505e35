//! The f32 values of a CPU tensor as the custom kernels read them (conv, batch_norm,
//! max_pool, add_relu): their wrappers make inputs contiguous first; and the kernels'
//! outputs, built in parallel.

use std::cell::Cell;
use std::mem::MaybeUninit;

use candle_core::{CpuStorage, Layout, Result};
use rayon::prelude::*;

/// `storage`'s values under `layout`, which must be contiguous.
pub fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("a CPU kernel was given a non-contiguous tensor"),
    }
}

/// [`contiguous_f32`] for a kernel that writes in place.
pub fn contiguous_f32_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("a CPU kernel was given a tensor other than f32 to update");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => candle_core::bail!("a CPU kernel was given a non-contiguous tensor"),
    }
}

/// A vector of `len` values built in chunks of `chunk` (the last may be shorter) on the
/// rayon threads: `fill(i, values)` gets chunk `i` zeroed (`T::default()`) and writes it.
///
/// `vec![0.0; len]` before a parallel loop zero-fills on the calling thread alone while the
/// others wait: 15% of a max-pool CNN step's wall time (perf, 2026-11-29). Here each thread
/// zeroes its own chunks just before writing them, while they are in its cache.
pub fn par_build<T: Copy + Default + Send + Sync>(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    let mut values = Vec::with_capacity(len);
    values.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, part)| {
            part.fill(MaybeUninit::new(T::default()));
            // SAFETY: every element of `part` was just initialised, and `MaybeUninit<T>` has
            // the layout of `T`.
            let part = unsafe { &mut *(part as *mut [MaybeUninit<T>] as *mut [T]) };
            fill(i, part);
        });
    // SAFETY: the chunks cover `0..len`, and each was initialised above.
    unsafe { values.set_len(len) };
    values
}

thread_local! {
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `f` on a buffer of `len` floats of this thread that earlier calls left as they were:
/// for working matrices a kernel overwrites before reading (im2col columns, GEMM outputs),
/// which as fresh `vec![0.0; len]` were zero-filled for nothing at every call.
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    // Taken out while in use: a nested call (rayon may run another task on this thread
    // while `f` waits) gets a buffer of its own.
    let mut buffer = SCRATCH.take();
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let result = f(&mut buffer[..len]);
    SCRATCH.set(buffer);
    result
}

/// The relative L2 error of `a` against the reference `b`, as the kernels' tests state it.
#[cfg(test)]
pub fn relative(a: &candle_core::Tensor, b: &candle_core::Tensor) -> Result<f32> {
    let diff = (a - b)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
    let norm = b.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
    Ok(diff / norm.max(1e-12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_build_writes_every_chunk_from_zero() {
        let values = par_build(10, 4, |i, part: &mut [f32]| {
            assert!(part.iter().all(|&v| v == 0.0));
            part.iter_mut().for_each(|v| *v = i as f32);
        });
        assert_eq!(values, [0., 0., 0., 0., 1., 1., 1., 1., 2., 2.]);
        assert!(par_build::<u32>(0, 4, |_, _| unreachable!()).is_empty());
    }

    #[test]
    fn scratch_is_reused_and_nested_calls_get_their_own() {
        with_scratch(3, |outer| {
            outer.copy_from_slice(&[1.0, 2.0, 3.0]);
            with_scratch(2, |inner| inner.fill(9.0));
            assert_eq!(outer, [1.0, 2.0, 3.0]);
        });
        // The outer buffer went back last; a smaller request reuses it as it was left.
        with_scratch(2, |again| assert_eq!(again, [1.0, 2.0]));
    }
}
