//! Matrix products for the layers: C = A·B, split across rayon tasks when it pays.
//!
//! matrixmultiply's GEMM (BLIS-style packing + an AVX-512/FMA micro-kernel) runs on one
//! core. A product big enough to be worth it is cut into as many blocks as there are rayon
//! threads — along C's rows when A is tall (forward passes, dx = dy·Wᵀ), along C's columns
//! otherwise (dW = xᵀ·dy, whose rows are only d_in) — and each task runs one GEMM into its
//! own block of C.
//!
//! Determinism: every element of C is still a dot product over k accumulated in the same
//! order (the split is over rows or columns, never over k), so the result is bit-identical
//! for any thread count. `tests` compare it with the plain product.
//!
//! Shapes: a [m, k], b [k, n] (any strides: `.t()` views are free), c [m, n].

use crate::engine::Float;
use ndarray::{linalg::general_mat_mul, s, Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Below this many multiply-adds a product runs as one GEMM: splitting costs more than it saves.
const PARALLEL_MIN_MACS: usize = 1 << 22;

/// c ← a·b + β·c, split across the rayon pool's threads when large.
pub fn gemm_into<F: Float>(a: ArrayView2<F>, b: ArrayView2<F>, beta: F, mut c: ArrayViewMut2<F>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!(k, b.nrows(), "matmul: a is {:?}, b is {:?}", a.dim(), b.dim());
    assert_eq!(c.dim(), (m, n), "matmul: c is {:?}, expected ({m}, {n})", c.dim());
    let threads = rayon::current_num_threads();
    if threads < 2 || m * k * n < PARALLEL_MIN_MACS {
        general_mat_mul(F::one(), &a, &b, beta, &mut c);
        return;
    }
    if m >= n {
        // Row blocks: C[rows] = A[rows]·B.
        let rows = m.div_ceil(threads);
        c.axis_chunks_iter_mut(Axis(0), rows).into_par_iter().enumerate().for_each(|(i, mut c_block)| {
            let a_block = a.slice(s![i * rows..i * rows + c_block.nrows(), ..]);
            general_mat_mul(F::one(), &a_block, &b, beta, &mut c_block);
        });
    } else {
        // Column blocks: C[:, cols] = A·B[:, cols].
        let cols = n.div_ceil(threads);
        c.axis_chunks_iter_mut(Axis(1), cols).into_par_iter().enumerate().for_each(|(i, mut c_block)| {
            let b_block = b.slice(s![.., i * cols..i * cols + c_block.ncols()]);
            general_mat_mul(F::one(), &a, &b_block, beta, &mut c_block);
        });
    }
}

/// a [m, k] · b [k, n] → [m, n].
pub fn matmul<F: Float>(a: ArrayView2<F>, b: ArrayView2<F>) -> Array2<F> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    gemm_into(a, b, F::zero(), c.view_mut());
    c
}
