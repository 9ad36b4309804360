//! Optimisers, clipping, schedules and parameter groups against hand-computed values.

use ndarray::{array, Array1, ArrayD};
use tinymoe::engine::optim::{self, Kind, Optimizer, Rule, Schedule};
use tinymoe::engine::params::{Named, NamedMut, Tensors};

/// Two named vectors: enough to test groups ("a" and "b").
#[derive(Clone, Debug, PartialEq)]
struct Two {
    a: Array1<f64>,
    b: Array1<f64>,
}

impl Tensors<f64> for Two {
    fn tensors(&self) -> Vec<Named<'_, f64>> {
        vec![("a".into(), self.a.view().into_dyn()), ("b".into(), self.b.view().into_dyn())]
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, f64>> {
        vec![("a".into(), self.a.view_mut().into_dyn()), ("b".into(), self.b.view_mut().into_dyn())]
    }
}

fn two(a: [f64; 2], b: [f64; 2]) -> Two {
    Two { a: Array1::from(a.to_vec()), b: Array1::from(b.to_vec()) }
}

fn close(a: &Array1<f64>, b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
}

#[test]
fn sgd_with_momentum_by_hand() {
    let mut p = two([1.0, 2.0], [0.0, 0.0]);
    let g = two([1.0, -1.0], [0.0, 0.0]);
    let mut opt = Optimizer::new(Kind::Sgd { momentum: 0.9 }, &[], &p);
    // step 1: v = g = [1, −1]; θ = θ − 0.1·v = [0.9, 2.1]
    opt.step(&mut p, &g, 0.1);
    assert!(close(&p.a, &[0.9, 2.1]));
    // step 2: v = 0.9·v + g = [1.9, −1.9]; θ = [0.9 − 0.19, 2.1 + 0.19]
    opt.step(&mut p, &g, 0.1);
    assert!(close(&p.a, &[0.71, 2.29]));
}

#[test]
fn adam_first_step_moves_each_coordinate_by_lr() {
    // At t = 1: m̂ = g, v̂ = g², so the step is lr·g/(|g| + ε) ≈ lr·sign(g), whatever |g| is.
    let mut p = two([1.0, 1.0], [1.0, 1.0]);
    let g = two([1e-3, -50.0], [3.0, 0.0]);
    let mut opt = Optimizer::new(Kind::Adam { beta1: 0.9, beta2: 0.999, eps: 0.0, weight_decay: 0.0 }, &[], &p);
    opt.step(&mut p, &g, 0.01);
    assert!(close(&p.a, &[0.99, 1.01]));
    assert!((p.b[0] - 0.99).abs() < 1e-12);
    assert!(p.b[1].is_nan() || p.b[1] == 1.0, "0/0 with eps = 0 is the caller's problem");
}

#[test]
fn adam_second_step_by_hand() {
    let mut p = two([0.0, 0.0], [0.0, 0.0]);
    let mut opt = Optimizer::new(Kind::adam(), &[], &p);
    opt.step(&mut p, &two([1.0, 0.0], [0.0, 0.0]), 0.1);
    opt.step(&mut p, &two([3.0, 0.0], [0.0, 0.0]), 0.1);
    // m = 0.9·0.1 + 0.1·3 = 0.39, v = 0.999·0.001 + 0.001·9 = 0.009999
    // m̂ = 0.39/0.19, v̂ = 0.009999/0.001999; step 2 = 0.1·m̂/(√v̂ + 1e-8)
    let m_hat = 0.39 / (1.0 - 0.9f64.powi(2));
    let v_hat = 0.009999 / (1.0 - 0.999f64.powi(2));
    // step 1 moved θ by −0.1·1/(1 + 1e-8) (m̂ = 1, √v̂ = 1).
    let expected = -0.1 / (1.0 + 1e-8) - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
    assert!((p.a[0] - expected).abs() < 1e-14, "{} vs {expected}", p.a[0]);
}

#[test]
fn adamw_decays_weights_even_without_gradient_and_adam_l2_does_not_when_scaled() {
    let mut p = two([2.0, 2.0], [0.0, 0.0]);
    let zero = two([0.0, 0.0], [0.0, 0.0]);
    let mut opt = Optimizer::new(Kind::adamw(0.1), &[], &p);
    opt.step(&mut p, &zero, 0.5);
    // Decoupled: θ ← θ·(1 − lr·λ) = 2·0.95; the Adam part is 0 (m = 0).
    assert!(close(&p.a, &[1.9, 1.9]));
    // Coupled L2 in Adam: g = λθ = 0.2 enters the moments, so the first step is ≈ lr.
    let mut q = two([2.0, 2.0], [0.0, 0.0]);
    let mut adam = Optimizer::new(Kind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 }, &[], &q);
    adam.step(&mut q, &zero, 0.5);
    assert!((q.a[0] - 1.5).abs() < 1e-6);
}

#[test]
fn clipping_scales_to_the_global_norm() {
    let mut g = two([3.0, 0.0], [0.0, 4.0]); // ‖g‖ = 5 across both tensors
    assert_eq!(optim::global_norm(&g), 5.0);
    let before = optim::clip_global_norm(&mut g, 1.0);
    assert_eq!(before, 5.0);
    assert!(close(&g.a, &[0.6, 0.0]) && close(&g.b, &[0.0, 0.8]), "direction kept, length 1");
    let before = optim::clip_global_norm(&mut g, 10.0);
    assert!((before - 1.0).abs() < 1e-12);
    assert!(close(&g.a, &[0.6, 0.0]), "under the cap: unchanged");
}

#[test]
fn warmup_cosine_schedule_by_hand() {
    let s = Schedule::WarmupCosine { warmup: 4, total: 14, min_lr: 0.0 };
    let lr: Vec<f64> = (0..16).map(|i| s.lr_at(i, 1.0)).collect();
    assert_eq!(&lr[..4], &[0.25, 0.5, 0.75, 1.0][..]);
    assert!((lr[4] - 1.0).abs() < 1e-12, "cosine starts at the peak");
    assert!((lr[9] - 0.5).abs() < 1e-12, "halfway through the decay: ½(1 + cos π/2) = ½");
    assert_eq!(lr[14], 0.0);
    assert!(lr[4..14].windows(2).all(|w| w[1] <= w[0]), "monotone decay");
    assert_eq!(Schedule::Constant.lr_at(1000, 0.3), 0.3);
}

#[test]
fn frozen_group_does_not_move_and_lr_scale_scales_the_step() {
    let mut p = two([1.0, 1.0], [1.0, 1.0]);
    let g = two([1.0, 1.0], [1.0, 1.0]);
    let rules = [Rule::new("a").frozen()];
    let mut opt = Optimizer::new(Kind::Sgd { momentum: 0.0 }, &rules, &p);
    opt.step(&mut p, &g, 0.1);
    assert!(close(&p.a, &[1.0, 1.0]));
    assert!(close(&p.b, &[0.9, 0.9]));

    let mut p = two([1.0, 1.0], [1.0, 1.0]);
    let mut opt = Optimizer::new(Kind::Sgd { momentum: 0.0 }, &[Rule::new("b").lr_scale(0.5)], &p);
    opt.step(&mut p, &g, 0.1);
    assert!(close(&p.a, &[0.9, 0.9]) && close(&p.b, &[0.95, 0.95]));
}

#[test]
fn l2sp_pulls_toward_the_starting_weights() {
    // θ₀ = [1, −1]. After moving θ to [3, −1] by hand, a zero loss gradient still gives
    // g = 2λ(θ − θ₀) = 2·0.5·[2, 0] = [2, 0]; SGD with lr 0.1 moves θ to [2.8, −1].
    let mut p = two([1.0, -1.0], [0.0, 0.0]);
    let mut opt = Optimizer::new(Kind::Sgd { momentum: 0.0 }, &[Rule::new("a").l2sp(0.5)], &p);
    p.a[0] = 3.0;
    assert!((opt.l2sp_penalty(&p) - 0.5 * 4.0).abs() < 1e-12, "λ‖θ − θ₀‖² = 0.5·2²");
    opt.step(&mut p, &two([0.0, 0.0], [0.0, 0.0]), 0.1);
    assert!(close(&p.a, &[2.8, -1.0]));
    assert!(close(&p.b, &[0.0, 0.0]));
}

#[test]
fn group_prefixes_match_whole_name_components() {
    let r = Rule::new("experts.1");
    assert!(r.matches("experts.1.layers.0.w"));
    assert!(r.matches("experts.1"));
    assert!(!r.matches("experts.10.layers.0.w"));
    assert!(Rule::new("").matches("anything"));
}

#[test]
fn optimiser_result_does_not_depend_on_thread_count() {
    let make = || {
        let a: ArrayD<f64> = ndarray::Array::from_shape_fn(ndarray::IxDyn(&[1000]), |i| (i[0] as f64).sin());
        Two { a: a.into_dimensionality().unwrap(), b: array![1.0, 2.0] }
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut p = make();
            let g = make();
            let mut opt = Optimizer::new(Kind::adamw(0.01), &[], &p);
            for _ in 0..5 {
                opt.step(&mut p, &g, 0.01);
            }
            p
        })
    };
    assert_eq!(run(1), run(2));
}
