//! Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", CVPR 2016) for 3x3 convolutions with stride 1 and
//! padding 1 on the CPU.
//!
//! Each 2x2 block of outputs (a tile) depends on a 4x4 block of inputs. Transformed
//! (`B^T d B` for the inputs, `G g G^T` for the kernel), the convolution becomes 16
//! independent products, one per point of the 4x4 block: 16 GEMMs of
//! `[c_out, c_in] x [c_in, tiles]`, then `A^T m A` gives the tile. That is 16 multiplications
//! per tile and channel pair where im2col + GEMM needs 36: 2.25 times fewer, for the price
//! of the three transforms, which are additions (and halvings). [`super::conv`] runs the
//! forward pass and the input gradient (the same convolution with the kernel flipped and its
//! channels swapped) of ResNet's 3x3 convolutions through it. The weight gradient stays
//! im2col + GEMM: through the transforms (both operands transformed, 16 accumulated
//! `[c_out, c_in]` matrices) it measured 10-25% slower on ResNet18's layers.
//!
//! F(4x4, 3x3) (6x6 blocks, 36 points: 1.78 times fewer multiplications again) was measured
//! too, on 32 samples and 2 threads: 10-20% faster on planes of 16x16 and more, slower below
//! (14x14 and 7x7 cut their last tiles; at 4x4, one tile per sample cannot pay for a
//! transformed kernel 2.25 times larger: twice as slow), so F(2x2) it is.
//!
//! In f32 the transforms cost a little accuracy: the tests against Candle's convolution
//! hold to 1e-5 relative for outputs and 1e-4 for gradients, as for im2col.

use gemm::Parallelism;

use super::cpu_storage::{par_build, with_scratch};
use super::gemm::gemm;

/// Points of a transformed 4x4 block.
const POINTS: usize = 16;

/// GEMM columns (tiles) a group of samples needs. Fewer than im2col's: a group's transformed
/// inputs and products (16 values per tile and channel each) then stay in the L2 cache, and
/// ResNet18's 3x3 layers ran 15-25% faster with groups of one or two samples than of four
/// to sixteen, the GEMMs being as fast.
pub const MIN_COLUMNS: usize = 64;

/// Channels on each side below which im2col + GEMM is faster.
pub const MIN_CHANNELS: usize = 64;

/// Tiles of an `h x w` plane.
pub fn tiles(h: usize, w: usize) -> usize {
    h.div_ceil(2) * w.div_ceil(2)
}

/// `G (a, b, c)`: one kernel column or row transformed.
fn kernel_1d([a, b, c]: [f32; 3]) -> [f32; 4] {
    [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c]
}

/// `B^T d`: one input column or row transformed.
fn input_1d([d0, d1, d2, d3]: [f32; 4]) -> [f32; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// `A^T m`: one column or row of products back to two outputs.
fn output_1d([m0, m1, m2, m3]: [f32; 4]) -> [f32; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// The kernel `w` (`[c_out, c_in, 3, 3]`) transformed: the 16 points of each channel pair
/// together (`[c_out, c_in, 16]`), so that the pairs are transformed in parallel and each
/// written once; the GEMMs read a point's `[c_out, c_in]` matrix through strides (they pack
/// it either way).
pub fn kernel(w: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    par_build(POINTS * c_out * c_in, POINTS * c_in, |o, u| {
        let kernels = w[o * c_in * 9..][..c_in * 9].chunks_exact(9);
        for (g, u) in kernels.zip(u.chunks_exact_mut(POINTS)) {
            let mut columns = [[0f32; 3]; 4];
            for q in 0..3 {
                let t = kernel_1d([g[q], g[3 + q], g[6 + q]]);
                for (r, v) in t.into_iter().enumerate() {
                    columns[r][q] = v;
                }
            }
            for (row, u) in columns.into_iter().zip(u.chunks_exact_mut(4)) {
                u.copy_from_slice(&kernel_1d(row));
            }
        }
    })
}

/// The kernel of the input gradient: `w` (`[c_out, c_in, 3, 3]`) rotated by 180 degrees,
/// with the channel axes swapped (`[c_in, c_out, 3, 3]`).
pub fn flipped(w: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let mut f = vec![0f32; w.len()];
    for (pair, g) in w.chunks_exact(9).enumerate() {
        let (o, c) = (pair / c_in, pair % c_in);
        for (t, &v) in g.iter().enumerate() {
            f[(c * c_out + o) * 9 + 8 - t] = v;
        }
    }
    f
}

/// `y` (samples of `[c_out, h, w]`) = the convolution of `x` (as many samples of
/// `[c_in, h, w]`) with the transformed kernel `u` of [`kernel`]; all samples' tiles form
/// the columns of one set of GEMMs.
///
/// Both transforms run a row of tiles at a time, vertically over whole rows and then
/// horizontally into (or out of) each point's row of tiles: slices the compiler vectorises,
/// where a tile at a time left them scalar and as slow as the GEMMs.
// Longer than 80 lines: the transforms and the 16 GEMMs share their buffers and loop
// bounds; apart they would pass a dozen arguments each.
pub fn convolve(
    x: &[f32],
    u: &[f32],
    (c_in, c_out): (usize, usize),
    (h, w): (usize, usize),
    y: &mut [f32],
    parallelism: Parallelism,
) {
    let (tiles_y, tiles_x) = (h.div_ceil(2), w.div_ceil(2));
    let samples = x.len() / (c_in * h * w);
    let columns = samples * tiles_y * tiles_x;
    // A plane with one zero row and column of padding before it, and enough after it
    // for whole tiles.
    let (padded_h, padded_w) = (2 * tiles_y + 2, 2 * tiles_x + 2);
    let rows_len = 4 * padded_w;
    let len = POINTS * (c_in + c_out) * columns + padded_h * padded_w + rows_len;
    with_scratch(len, |scratch| {
        let (v, rest) = scratch.split_at_mut(POINTS * c_in * columns);
        let (m, rest) = rest.split_at_mut(POINTS * c_out * columns);
        let (padded, rows) = rest.split_at_mut(padded_h * padded_w);
        // Only the interior is written below: the border stays zero for every plane.
        padded.fill(0.0);
        for (s, sample) in x.chunks_exact(c_in * h * w).enumerate() {
            for (c, plane) in sample.chunks_exact(h * w).enumerate() {
                let interior = padded[padded_w..].chunks_exact_mut(padded_w);
                for (row, source) in interior.zip(plane.chunks_exact(w)) {
                    row[1..=w].copy_from_slice(source);
                }
                for ty in 0..tiles_y {
                    let block = &padded[2 * ty * padded_w..][..4 * padded_w];
                    transform_rows(block, rows, padded_w);
                    let column = (s * tiles_y + ty) * tiles_x;
                    for (r, row) in rows.chunks_exact(padded_w).enumerate() {
                        let at = |q: usize| {
                            let start = ((4 * r + q) * c_in + c) * columns + column;
                            start..start + tiles_x
                        };
                        let [p0, p1, p2, p3] = v
                            .get_disjoint_mut([at(0), at(1), at(2), at(3)])
                            .expect("the four points' rows are apart");
                        let (pairs, _) = row.as_chunks::<2>();
                        let quads = pairs.iter().zip(&pairs[1..]);
                        let points = p0.iter_mut().zip(p1).zip(p2).zip(p3);
                        for ((((p0, p1), p2), p3), (&[d0, d1], &[d2, d3])) in points.zip(quads) {
                            [*p0, *p1, *p2, *p3] = input_1d([d0, d1, d2, d3]);
                        }
                    }
                }
            }
        }
        for point in 0..POINTS {
            gemm(
                (c_out, columns, c_in),
                &mut m[point * c_out * columns..][..c_out * columns],
                (columns, 1),
                false,
                &u[point..],
                (POINTS * c_in, POINTS),
                &v[point * c_in * columns..][..c_in * columns],
                (columns, 1),
                parallelism,
            );
        }
        let (sums, _) = rows.split_at_mut(4 * tiles_x);
        for (s, sample) in y.chunks_exact_mut(c_out * h * w).enumerate() {
            for (o, plane) in sample.chunks_exact_mut(h * w).enumerate() {
                for ty in 0..tiles_y {
                    let column = (s * tiles_y + ty) * tiles_x;
                    let p = |point: usize| &m[(point * c_out + o) * columns + column..][..tiles_x];
                    for a in 0..2 {
                        let oy = 2 * ty + a;
                        // Odd heights: the last tile's second row is outside the plane.
                        if oy >= h {
                            break;
                        }
                        // Vertically: output row `a` of each of the four columns.
                        for (q, sum) in sums.chunks_exact_mut(tiles_x).enumerate() {
                            let (p0, p1, p2, p3) = (p(q), p(4 + q), p(8 + q), p(12 + q));
                            let products = p0.iter().zip(p1).zip(p2).zip(p3);
                            for (sum, (((&m0, &m1), &m2), &m3)) in sum.iter_mut().zip(products) {
                                *sum = output_1d([m0, m1, m2, m3])[a];
                            }
                        }
                        let (s0, rest) = sums.split_at(tiles_x);
                        let (s1, rest) = rest.split_at(tiles_x);
                        let (s2, s3) = rest.split_at(tiles_x);
                        let out = &mut plane[oy * w..(oy + 1) * w];
                        let (pairs, last) = out.as_chunks_mut::<2>();
                        let columns_t = s0.iter().zip(s1).zip(s2).zip(s3);
                        for (pair, (((&m0, &m1), &m2), &m3)) in pairs.iter_mut().zip(columns_t) {
                            *pair = output_1d([m0, m1, m2, m3]);
                        }
                        // Odd widths: the last tile's second column is outside the plane.
                        if let [last] = last {
                            let t = tiles_x - 1;
                            *last = output_1d([s0[t], s1[t], s2[t], s3[t]])[0];
                        }
                    }
                }
            }
        }
    });
}

/// `B^T` applied down the four rows of `block` (each `width` long) into `rows`.
fn transform_rows(block: &[f32], rows: &mut [f32], width: usize) {
    let (r0, rest) = block.split_at(width);
    let (r1, rest) = rest.split_at(width);
    let (r2, r3) = rest.split_at(width);
    let (t0, rest) = rows.split_at_mut(width);
    let (t1, rest) = rest.split_at_mut(width);
    let (t2, t3) = rest.split_at_mut(width);
    let inputs = r0.iter().zip(r1).zip(r2).zip(r3);
    let outputs = t0.iter_mut().zip(t1).zip(t2).zip(t3.iter_mut());
    for ((((t0, t1), t2), t3), (((&d0, &d1), &d2), &d3)) in outputs.zip(inputs) {
        [*t0, *t1, *t2, *t3] = input_1d([d0, d1, d2, d3]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_of_three_by_three_neighbourhoods() {
        // A 3x3 kernel of ones over a plane of ones with zero padding counts each output's
        // neighbours inside the plane: 4 at corners, 6 on edges, 9 inside (5x3: odd sides,
        // so the last tiles are cut). Two channels in, each kernel weighted by its output
        // channel: channel o sums 2 * (o + 1) times the count.
        let (h, w) = (5, 3);
        let x = vec![1f32; 2 * h * w];
        let weights: Vec<f32> = (0..2 * 2 * 9).map(|i| (i / 18 + 1) as f32).collect();
        let mut y = vec![0f32; 2 * h * w];
        convolve(
            &x,
            &kernel(&weights, 2, 2),
            (2, 2),
            (h, w),
            &mut y,
            Parallelism::None,
        );
        let counts = [4., 6., 4., 6., 9., 6., 6., 9., 6., 6., 9., 6., 4., 6., 4.];
        for (o, plane) in y.chunks(h * w).enumerate() {
            let expected: Vec<f32> = counts.iter().map(|c| c * 2.0 * (o + 1) as f32).collect();
            assert_eq!(plane, expected, "output channel {o}");
        }
    }

    #[test]
    fn flipped_rotates_each_kernel_and_swaps_channels() {
        // Kernel (o, c) holds 100 o + 10 c + t at tap t.
        let (c_out, c_in) = (2, 3);
        let w: Vec<f32> = (0..c_out * c_in * 9)
            .map(|i| (100 * (i / 9 / c_in) + 10 * (i / 9 % c_in) + i % 9) as f32)
            .collect();
        let f = flipped(&w, c_out, c_in);
        // Now [c_in, c_out, 3, 3]: kernel (c, o) = kernel (o, c) backwards.
        let at = |c: usize, o: usize, t: usize| f[(c * c_out + o) * 9 + t];
        assert_eq!(at(2, 1, 0), 128.0);
        assert_eq!(at(2, 1, 8), 120.0);
        assert_eq!(at(0, 1, 4), 104.0);
    }
}
