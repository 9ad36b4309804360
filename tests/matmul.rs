//! The parallel matrix product against a naive triple loop, at awkward sizes and on
//! transposed views, and bit-identical for 1 and 2 threads.

use ndarray::{Array2, ArrayView2};
use tinymoe::engine::init;
use tinymoe::engine::ops::matmul::matmul;

fn naive(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
    let (m, k) = a.dim();
    let n = b.ncols();
    Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] * b[[p, j]]).sum())
}

#[test]
fn matmul_matches_the_naive_product_at_odd_sizes_and_strides() {
    let mut g = init::rng(61);
    for &(m, k, n) in &[(0, 3, 2), (1, 1, 1), (7, 17, 3), (17, 63, 65), (257, 64, 300), (300, 64, 257), (63, 600, 400)]
    {
        let a: Array2<f64> = init::uniform((m, k), 1.0, &mut g);
        let b: Array2<f64> = init::uniform((k, n), 1.0, &mut g);
        let c = matmul(a.view(), b.view());
        let want = naive(a.view(), b.view());
        assert!((&c - &want).iter().all(|d| d.abs() < 1e-10), "{m}x{k}x{n}");
        // Transposed views go in without a copy and give the same product.
        let at = a.t().to_owned();
        let bt = b.t().to_owned();
        let c2 = matmul(at.t(), bt.t());
        assert!((&c2 - &want).iter().all(|d| d.abs() < 1e-10), "{m}x{k}x{n} transposed");
    }
}

#[test]
fn matmul_is_bit_identical_for_any_thread_count() {
    let mut g = init::rng(62);
    for &(m, k, n) in &[(2048, 256, 512), (256, 2048, 1024)] {
        let a: Array2<f32> = init::uniform((m, k), 1.0, &mut g);
        let b: Array2<f32> = init::uniform((k, n), 1.0, &mut g);
        let on =
            |t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap().install(|| matmul(a.view(), b.view()));
        assert_eq!(on(1), on(2), "{m}x{k}x{n}");
        assert_eq!(on(1), on(3), "{m}x{k}x{n}");
    }
}
