//! Property tests: invariants that must hold for any input.

use ndarray::Array2;
use proptest::prelude::*;
use tinymoe::engine::ops::softmax::{log_softmax, softmax};

fn matrix() -> impl Strategy<Value = Array2<f64>> {
    (1usize..6, 1usize..9).prop_flat_map(|(r, c)| {
        proptest::collection::vec(-50.0f64..50.0, r * c).prop_map(move |v| Array2::from_shape_vec((r, c), v).unwrap())
    })
}

proptest! {
    #[test]
    fn softmax_rows_sum_to_one_and_ignore_a_shift(x in matrix(), shift in -100.0f64..100.0) {
        let y = softmax(x.view());
        for row in y.rows() {
            prop_assert!((row.sum() - 1.0).abs() < 1e-12);
            prop_assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)));
        }
        let shifted = softmax((&x + shift).view());
        prop_assert!((&shifted - &y).iter().all(|d| d.abs() < 1e-12));
    }

    #[test]
    fn log_softmax_is_the_log_of_softmax(x in matrix()) {
        let a = log_softmax(x.view()).mapv(f64::exp);
        let b = softmax(x.view());
        prop_assert!((&a - &b).iter().all(|d| d.abs() < 1e-12));
    }
}
