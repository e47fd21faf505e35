//! The geometry of a 2-D convolution and its im2col / col2im matrices: the layout the
//! GEMMs of [`super::conv`] multiply (`[c_in * k * k, h_out * w_out]` per sample).

use std::ops::Range;

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride on both axes.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Geometry {
    /// Output height.
    pub fn h_out(&self) -> usize {
        (self.h + 2 * self.padding).saturating_sub(self.k) / self.stride + 1
    }

    /// Output width.
    pub fn w_out(&self) -> usize {
        (self.w + 2 * self.padding).saturating_sub(self.k) / self.stride + 1
    }

    /// Rows of the im2col matrix.
    pub fn rows(&self) -> usize {
        self.c_in * self.k * self.k
    }

    /// Columns of the im2col matrix: output positions.
    pub fn positions(&self) -> usize {
        self.h_out() * self.w_out()
    }

    /// For output coordinate range `0..n_out` and kernel offset `offset`, the first and
    /// one-past-last outputs whose input coordinate `o * stride + offset - padding` lies in
    /// `0..n_in`.
    pub fn valid(&self, n_in: usize, n_out: usize, offset: usize) -> (usize, usize) {
        let (s, p) = (self.stride as isize, self.padding as isize);
        let first = (p - offset as isize).max(0);
        let first = ((first + s - 1) / s) as usize;
        let last = (n_in as isize - 1 + p - offset as isize).div_euclid(s) + 1;
        let last = (last.max(0) as usize).min(n_out);
        (first.min(last), last)
    }

    /// When output and input planes have the same size (stride 1, "same" padding), a
    /// tap's valid outputs `rows x cols` read the input plane shifted by a fixed offset:
    /// returns where in the input plane the span from the first to the last valid output
    /// starts, and that span in the output plane. Copying whole spans instead of row by
    /// row matters for the small planes of deep layers.
    pub fn shifted(
        &self,
        rows: Range<usize>,
        cols: Range<usize>,
        (i, j): (usize, usize),
    ) -> Option<(usize, Range<usize>)> {
        if self.stride != 1 || self.w_out() != self.w || rows.is_empty() || cols.is_empty() {
            return None;
        }
        let taps = rows.start * self.w + cols.start..(rows.end - 1) * self.w + cols.end;
        let from = (rows.start + i - self.padding) * self.w + cols.start + j - self.padding;
        Some((from, taps))
    }

    /// Every kernel tap, in im2col row order within a channel: computed once per sample
    /// rather than once per channel (perf: `valid` alone was 0.6% of a ResNet18 step).
    pub fn taps(&self) -> Vec<Tap> {
        let (h_out, w_out) = (self.h_out(), self.w_out());
        (0..self.k)
            .flat_map(|i| (0..self.k).map(move |j| (i, j)))
            .map(|(i, j)| {
                let (y0, y1) = self.valid(self.h, h_out, i);
                let (x0, x1) = self.valid(self.w, w_out, j);
                Tap {
                    offset: (i, j),
                    rows: (y0, y1),
                    cols: (x0, x1),
                    shifted: self.shifted(y0..y1, x0..x1, (i, j)),
                }
            })
            .collect()
    }

    /// Working space [`Geometry::im2col`] needs: at stride 2, the sample with the even and
    /// the odd columns of each row apart.
    pub fn split_len(&self) -> usize {
        if self.stride == 2 {
            self.c_in * self.h * self.w
        } else {
            0
        }
    }

    /// The im2col matrix of one sample `x` (`[c_in, h, w]`) into columns
    /// `offset..offset + positions` of `cols` (`rows` rows of `stride` values); `split` is
    /// working space of [`Geometry::split_len`] values.
    pub fn im2col(
        &self,
        x: &[f32],
        cols: &mut [f32],
        (stride, offset): (usize, usize),
        split: &mut [f32],
    ) {
        let (h_out, w_out) = (self.h_out(), self.w_out());
        // At stride 2 a tap reads every other column: from the rows split into their even
        // and odd columns (once per sample), each tap's row is one contiguous copy. Here
        // that only matches the gathers it replaced (perf); in `col2im` the same split
        // turns scatter-adds into contiguous adds, which is faster.
        let evens = self.w.div_ceil(2);
        if self.stride == 2 {
            for (row, out) in x.chunks(self.w).zip(split.chunks_mut(self.w)) {
                let (even, odd) = out.split_at_mut(evens);
                let (pairs, last) = row.as_chunks::<2>();
                for ((e, o), &[a, b]) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
                    (*e, *o) = (a, b);
                }
                if let [a] = last {
                    even[pairs.len()] = *a;
                }
            }
        }
        let taps = self.taps();
        for c in 0..self.c_in {
            let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for (t, tap) in taps.iter().enumerate() {
                let &Tap {
                    offset: (i, j),
                    rows: (y0, y1),
                    cols: (x0, x1),
                    ref shifted,
                } = tap;
                let at = (c * taps.len() + t) * stride + offset;
                let out = &mut cols[at..at + h_out * w_out];
                // Zeros where the window reaches into the padding, the taps elsewhere.
                out[..y0 * w_out].fill(0.0);
                out[y1 * w_out..].fill(0.0);
                if let Some((from, span)) = shifted {
                    out[span.clone()].copy_from_slice(&plane[*from..from + span.len()]);
                    // What the block brought in across row edges is padding.
                    zero_outside(&mut out[y0 * w_out..y1 * w_out], w_out, x0..x1);
                    continue;
                }
                for oy in y0..y1 {
                    let iy = oy * self.stride + i - self.padding;
                    let source = &plane[iy * self.w..(iy + 1) * self.w];
                    let target = &mut out[oy * w_out..(oy + 1) * w_out];
                    target[..x0].fill(0.0);
                    target[x1..].fill(0.0);
                    let ix0 = x0 * self.stride + j - self.padding;
                    let taps = &source[ix0..];
                    match self.stride {
                        1 => target[x0..x1].copy_from_slice(&taps[..x1 - x0]),
                        2 => {
                            let row = &split[(c * self.h + iy) * self.w..][..self.w];
                            let half = if ix0.is_multiple_of(2) {
                                &row[..evens]
                            } else {
                                &row[evens..]
                            };
                            let from = &half[ix0 / 2..][..x1 - x0];
                            target[x0..x1].copy_from_slice(from);
                        }
                        _ => {
                            for (t, tap) in target[x0..x1].iter_mut().zip(taps.chunks(self.stride))
                            {
                                *t = tap[0];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds columns `offset..offset + positions` of the im2col-shaped gradient `cols` back
    /// onto the sample gradient `dx` (its part of `cols` is overwritten); `split` is working
    /// space of [`Geometry::split_len`] values.
    pub fn col2im(
        &self,
        cols: &mut [f32],
        (stride, offset): (usize, usize),
        dx: &mut [f32],
        split: &mut [f32],
    ) {
        let (h_out, w_out) = (self.h_out(), self.w_out());
        // At stride 2, sums into the rows split as in `im2col`, merged at the end.
        let evens = self.w.div_ceil(2);
        split.fill(0.0);
        let taps = self.taps();
        for c in 0..self.c_in {
            let plane = &mut dx[c * self.h * self.w..(c + 1) * self.h * self.w];
            for (t, tap) in taps.iter().enumerate() {
                let &Tap {
                    offset: (i, j),
                    rows: (y0, y1),
                    cols: (x0, x1),
                    ref shifted,
                } = tap;
                let at = (c * taps.len() + t) * stride + offset;
                let source = &mut cols[at..at + h_out * w_out];
                if let Some((from, span)) = shifted {
                    // Gradients of padding positions, zeroed, add nothing across row
                    // edges; they are not needed after this.
                    zero_outside(&mut source[y0 * w_out..y1 * w_out], w_out, x0..x1);
                    let targets = plane[*from..from + span.len()].iter_mut();
                    targets
                        .zip(&source[span.clone()])
                        .for_each(|(t, &g)| *t += g);
                    continue;
                }
                for oy in y0..y1 {
                    let iy = oy * self.stride + i - self.padding;
                    let target = &mut plane[iy * self.w..(iy + 1) * self.w];
                    let from = &source[oy * w_out..(oy + 1) * w_out];
                    let ix0 = x0 * self.stride + j - self.padding;
                    let (taps, from) = (&mut target[ix0..], &from[x0..x1]);
                    match self.stride {
                        1 => taps.iter_mut().zip(from).for_each(|(t, &g)| *t += g),
                        2 => {
                            let row = &mut split[(c * self.h + iy) * self.w..][..self.w];
                            let half = if ix0.is_multiple_of(2) {
                                &mut row[..evens]
                            } else {
                                &mut row[evens..]
                            };
                            let taps = half[ix0 / 2..].iter_mut();
                            taps.zip(from).for_each(|(t, &g)| *t += g);
                        }
                        _ => {
                            for (tap, &g) in taps.chunks_mut(self.stride).zip(from) {
                                tap[0] += g;
                            }
                        }
                    }
                }
            }
        }
        if self.stride == 2 {
            for (row, sums) in dx.chunks_mut(self.w).zip(split.chunks(self.w)) {
                let (even, odd) = sums.split_at(evens);
                let (pairs, last) = row.as_chunks_mut::<2>();
                for ((pair, &e), &o) in pairs.iter_mut().zip(even).zip(odd) {
                    pair[0] += e;
                    pair[1] += o;
                }
                if let [a] = last {
                    *a += even[pairs.len()];
                }
            }
        }
    }
}

/// One tap of the kernel: its offset `(i, j)` in the window, the output rows and columns
/// (`first..last`, as pairs) whose input it reads lies inside the plane, and
/// [`Geometry::shifted`] for them.
pub struct Tap {
    offset: (usize, usize),
    rows: (usize, usize),
    cols: (usize, usize),
    shifted: Option<(usize, Range<usize>)>,
}

/// Zeros each `width`-long row of `rows` outside the columns `keep`: a column at a time,
/// as `keep` leaves out one or two per row and a `fill` per row edge was a `memset` call
/// each (perf: 2.4% of a ResNet18 step).
pub fn zero_outside(rows: &mut [f32], width: usize, keep: Range<usize>) {
    for column in (0..keep.start).chain(keep.end..width) {
        rows.iter_mut()
            .skip(column)
            .step_by(width)
            .for_each(|v| *v = 0.0);
    }
}
