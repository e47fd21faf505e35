//! The GEMM every CPU kernel multiplies with: the `gemm` crate (the one Candle uses on the
//! CPU, with its AVX-512 kernels) behind a safe, bounds-checked function.

use gemm::Parallelism;

/// `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)`, each operand given by its row and
/// column strides.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    parallelism: Parallelism,
) {
    // Checked in release builds too: a wrong caller would otherwise write out of bounds
    // from safe code. Three comparisons per GEMM cost nothing beside it.
    assert!(
        covers(dst.len(), (m, n), (dst_rs, dst_cs)),
        "gemm: dst too short"
    );
    assert!(
        covers(lhs.len(), (m, k), (lhs_rs, lhs_cs)),
        "gemm: lhs too short"
    );
    assert!(
        covers(rhs.len(), (k, n), (rhs_rs, rhs_cs)),
        "gemm: rhs too short"
    );
    // SAFETY: the asserts above show that every element the strides address lies inside
    // its slice, and `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Whether a slice of `len` values holds every element of a `rows x cols` matrix with
/// strides `(row_stride, col_stride)`.
fn covers(
    len: usize,
    (rows, cols): (usize, usize),
    (row_stride, col_stride): (usize, usize),
) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * row_stride + (cols - 1) * col_stride < len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_strided_operands() {
        // [[1, 2], [3, 4]] x [[5, 6], [7, 8]] = [[19, 22], [43, 50]]; rhs read transposed.
        let lhs = [1f32, 2.0, 3.0, 4.0];
        let rhs_t = [5f32, 7.0, 6.0, 8.0];
        let mut dst = [0f32; 4];
        let args = ((2, 2, 2), (2, 1), (2, 1), (1, 2));
        gemm(
            args.0,
            &mut dst,
            args.1,
            false,
            &lhs,
            args.2,
            &rhs_t,
            args.3,
            Parallelism::None,
        );
        assert_eq!(dst, [19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    #[should_panic(expected = "dst too short")]
    fn a_short_destination_panics_instead_of_writing_past_it() {
        let (lhs, rhs) = ([1f32; 4], [1f32; 4]);
        let mut dst = [0f32; 3];
        gemm(
            (2, 2, 2),
            &mut dst,
            (2, 1),
            false,
            &lhs,
            (2, 1),
            &rhs,
            (2, 1),
            Parallelism::None,
        );
    }

    #[test]
    fn empty_products_are_in_bounds() {
        assert!(covers(0, (0, 5), (5, 1)));
        assert!(!covers(9, (2, 5), (5, 1)));
        assert!(covers(10, (2, 5), (5, 1)));
    }
}
